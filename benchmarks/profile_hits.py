"""Profile infercache's hit path for one benchmark case.

Usage (from the repository root)::

    python benchmarks/profile_hits.py small_args            # cProfile, top functions
    python benchmarks/profile_hits.py image_1080p --digest xxh3
    python benchmarks/profile_hits.py small_args --lines     # line_profiler on the hot path
    python benchmarks/profile_hits.py small_args --no-gradio # a plain-Python program
    python benchmarks/profile_hits.py image_1080p --store /tmp/ic  # hits read from a tier
    python benchmarks/profile_hits.py small_value --store redis://127.0.0.1:6379/0

By default gradio is imported first, as in a Gradio app, so the framework
integration is active on every call exactly as in the benchmark suite.

With ``--store`` (a directory or a redis:// URL) the case is one of the
suite's tier cases (``small_value``, ``image_1080p``) and the in-memory store
is emptied before every hit, so each hit reads, verifies and decodes the
record from that tier. Without ``INFERCACHE_SECRET`` a random one is used.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "src"), str(HERE)]
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def _call(case: str) -> tuple[tuple[Any, ...], int]:
    import cases

    if case == "small_args":
        return ("hello world", 0.7), 100_000
    value = cases.VALUE_CASES_BY_NAME[case].build()
    return (value,), 50


def _tier_call(case: str, store: str) -> tuple[Callable[..., Any], tuple[Any, ...], int]:
    """A tier case's cached function, emptying its in-memory store before each call; its arguments; hits."""
    import secrets

    import cases

    os.environ.setdefault("INFERCACHE_SECRET", secrets.token_hex(16))
    spec = cases.TIER_CASES_BY_NAME[case]
    cached = cases.ic_tier(spec.function(cases.Counter()), store).fn
    clear = cached.cache.engine.store.clear

    def from_tier(*args: Any) -> Any:
        clear()
        return cached(*args)

    return from_tier, spec.args(), 2000 if case == "small_value" else 50


def _hot_functions() -> list[Callable[..., Any]]:
    """Functions whose lines are timed with ``--lines`` (those that exist)."""
    import importlib

    found: list[Callable[..., Any]] = []
    for module, names in (
        ("infercache.keys.api", ("make_call_key", "finish")),
        ("infercache.keys.encoder", ("enc_tuple",)),
        ("infercache.keys.wire", ("digest_sink", "feed")),
        ("infercache.store", ("lookup",)),
        ("infercache.safety", ("release",)),
        ("infercache.hooks", ("active",)),
    ):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        found += [getattr(mod, n) for n in names if callable(getattr(mod, n, None))]
    return found


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", help="small_args or a value case (image_1080p, pil_1080p, torch_tensor, ...)")
    parser.add_argument("--digest", default="blake3")
    parser.add_argument("--lines", action="store_true", help="line-by-line profile (needs line_profiler)")
    parser.add_argument("--no-gradio", action="store_true", help="do not import gradio first")
    parser.add_argument("-n", type=int, default=None, help="number of hits")
    parser.add_argument("--store", default=None, help="a directory or redis:// URL: hits read from that tier")
    args = parser.parse_args(argv)

    if not args.no_gradio:
        import gradio  # noqa: F401

    import cases

    if args.store:
        fn, args_tuple, n = _tier_call(args.case, args.store)
    else:
        args_tuple, n = _call(args.case)

        def infer(prompt: str, temperature: float = 0.7) -> str:  # same shape as the suite's
            return prompt

        def classify(x: Any) -> int:
            return 1

        fn = cases.ic_decorate(infer if args.case == "small_args" else classify, args.digest)
    n = args.n or n
    fn(*args_tuple)
    t0 = time.perf_counter()
    for _ in range(n):
        fn(*args_tuple)
    per = (time.perf_counter() - t0) / n
    print(f"{args.case} ({args.digest}, gradio {'off' if args.no_gradio else 'loaded'}): "
          f"{per * 1e6:.2f} µs per hit over {n} hits")

    if args.lines:
        from line_profiler import LineProfiler

        lp = LineProfiler()
        lp.add_function(fn)
        for cell in fn.__closure__ or ():  # key_of, deliver, ... live in the wrapper's closure
            if callable(cell.cell_contents) and hasattr(cell.cell_contents, "__code__"):
                lp.add_function(cell.cell_contents)
        for f in _hot_functions():
            lp.add_function(f)
        lp.enable_by_count()
        for _ in range(n):
            fn(*args_tuple)
        lp.disable_by_count()
        buf = io.StringIO()
        lp.print_stats(stream=buf, output_unit=1e-6, stripzeros=True)
        print(buf.getvalue())
    else:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(n):
            fn(*args_tuple)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
