"""The ``infercache`` command.

``infercache demo [--host 127.0.0.1] [--port 7860] [--kv-model NAME] [--no-warmup]``
starts the demo app (needs the ``demo`` extra: ``pip install "infercache[demo]"``).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``infercache`` command."""
    parser = argparse.ArgumentParser(
        prog="infercache",
        description="Content-addressed caching for expensive ML functions.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the Gradio demo app",
        description="Run the demo app: the caching guide's demos on infercache, one tab each.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    demo.add_argument("--port", type=int, default=7860, help="port to bind (default: 7860)")
    demo.add_argument(
        "--kv-model",
        default=None,
        metavar="NAME",
        help="hub name of a causal LM for the KV-cache tab (default: a tiny GPT-2 built locally)",
    )
    demo.add_argument(
        "--no-warmup",
        action="store_true",
        help="build the models on first use instead of in the background at startup",
    )
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``infercache`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "version":
        from . import __version__

        print(__version__)
        return 0
    if args.command != "demo":
        parser.print_help()
        return 2
    try:
        from .demo import build_demo
        from .demo.models import warm_up
    except ImportError as exc:
        print(
            f"infercache demo needs the demo extra ({exc}); install it with:\n"
            '    pip install "infercache[demo]"',
            file=sys.stderr,
        )
        return 1
    demo = build_demo(kv_model=args.kv_model)
    if not args.no_warmup:
        threading.Thread(target=warm_up, args=(args.kv_model,), daemon=True).start()
    print(f"infercache demo on http://{args.host}:{args.port}/ (Ctrl+C to stop)")
    demo.launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
