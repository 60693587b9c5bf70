"""The ``infercache`` command.

``infercache demo [--host 127.0.0.1] [--port 7860] [--kv-model NAME] [--no-warmup]``
starts the demo app (needs the ``demo`` extra: ``pip install "infercache[demo]"``).

``infercache ls|stats|clear STORE [--function NAME] [--session ID]`` inspect
and empty a persistent or shared store. ``STORE`` is what ``store=`` takes as
a string: a directory, ``disk`` (the default directory), or a ``redis://``,
``rediss://`` or ``unix://`` URL.

- ``ls``: one line per entry: function, code version, session (``-`` for
  entries shared by all sessions), the key's first hex digits, size in bytes;
- ``stats``: per function, entries, bytes, code versions and sessions, then
  the totals;
- ``clear``: removes the entries of one function (every code version and
  session of it), of one session (in every function), of both (that session
  in that function), or, with neither option, every infercache entry (after
  a confirmation unless ``--yes``). Names outside ``infercache/`` are never
  touched: a Redis database shared with other data keeps that data.

These tools read entry names and sizes, never records, so they need no
``INFERCACHE_SECRET``. Exit status: 0 done, 2 bad usage, 1 the store could
not be opened or failed (with a one-line message on stderr).

``infercache stats http://HOST:PORT/metrics [--function NAME]`` reads a
running app's counters instead, from the Prometheus page that
``ic.metrics.mount(app)`` serves (needs the ``prometheus`` extra): per live
cache (``--function`` picks one by its name), entries, bytes, hits, misses,
joins (in-process and across processes), evicted entries (every reason),
errors (tier errors and verification failures), hit ratio, seconds saved
and seconds computing, then the totals.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote, urlsplit, urlunsplit

from .keyspace import ROOT, EntryName, Keyspace
from .tiers import Tier
from .tiers.disk import INDEX_FILE

__all__ = ["Listed", "build_parser", "clear_prefixes", "main", "open_tier", "scan"]

#: Every name infercache writes starts with this; nothing outside it is listed or removed.
ROOT_PREFIX = f"{ROOT}/".encode()
#: Hex digits of a key shown by ``ls`` (keys are up to 64; these tell entries apart at a glance).
_KEY_DIGITS = 16
#: Seconds to wait for a running app's /metrics page.
_HTTP_TIMEOUT = 10.0


class StoreError(Exception):
    """The store named on the command line cannot be opened (reported in one line, exit status 1)."""


@dataclass(frozen=True)
class Listed:
    """One stored entry: its full name, the name's parts, and the record's size in bytes."""

    name: bytes
    entry: EntryName
    size: int


# -- the parser ----------------------------------------------------------------


def _nonempty(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


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
        description="Run the demo app: the caching guide's demos on infercache, one tab each. "
        "It uses the store INFERCACHE_STORE names (memory only when unset).",
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
    for command, text in (
        ("ls", "list the entries of a store, one per line"),
        ("stats", "count entries, bytes, versions and sessions per function"),
        ("clear", "remove the entries of a function, a session, or all of them"),
    ):
        p = sub.add_parser(command, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument(
            "store",
            metavar="STORE",
            help="a directory, 'disk' (the default directory), or a redis://, rediss:// or unix:// URL"
            + (", or the http(s):// URL of a running app's /metrics" if command == "stats" else ""),
        )
        p.add_argument(
            "--function",
            type=_nonempty,
            metavar="NAME",
            help="only this function (module.qualname, or the cache's name=)",
        )
        p.add_argument("--session", type=_nonempty, metavar="ID", help="only this session's entries")
        if command == "clear":
            p.add_argument(
                "--yes", "-y", action="store_true", help="do not ask before removing every entry"
            )
    sub.add_parser("version", help="print the version")
    return parser


# -- stores ----------------------------------------------------------------------


def open_tier(spec: str) -> Tier:
    """The tier ``spec`` names, opened only to list and delete (no secret needed).

    Through :func:`infercache.stores.open_tier`: unlike ``store=``, the tier
    is not behind the circuit breaker (a store that is down must be an error
    here, not an empty listing) nor shared with the process's caches (the
    command closes it). A directory must already hold a store: a mistyped
    path is reported instead of becoming an empty store. Raises
    :class:`StoreError`.
    """
    from . import stores

    text = spec.strip()
    if text and "://" not in text:
        try:
            path = stores.disk_path(text)  # the directory store= would use, "disk" included
        except Exception as exc:  # e.g. 'disk' without platformdirs: a store that cannot be found
            raise StoreError(f"cannot find {spec!r}: {exc}") from exc
        if not (path / INDEX_FILE).is_file():
            raise StoreError(f"no infercache store at {path} (it has no {INDEX_FILE})")
    try:
        return stores.open_tier(text)
    except ImportError as exc:
        raise StoreError(f"a Redis store needs the redis package ({exc})") from exc
    except Exception as exc:  # an unknown scheme, a bad URL, an unreadable database
        raise StoreError(f"cannot open {spec}: {exc}") from exc


# -- listing and clearing --------------------------------------------------------


def scan(tier: Tier, function: str | None = None, session: str | None = None) -> tuple[list[Listed], int]:
    """The entries of ``function`` and ``session`` (None: any), sorted; and how many names did not parse.

    Every name under ``infercache/`` is read once and filtered here, so
    entries of every key format and code version are found.
    """
    found: list[Listed] = []
    unknown = 0
    for name, size in tier.entries(ROOT_PREFIX):
        try:
            entry = Keyspace.parse(name)
        except ValueError:
            unknown += 1
            continue
        if function is not None and entry.function != function:
            continue
        if session is not None and entry.namespace != session:
            continue
        found.append(Listed(name, entry, size))
    found.sort(key=lambda item: (item.entry.function, item.entry.version, item.entry.namespace, item.name))
    return found, unknown


def _function_prefix(key_format: int, function: str) -> bytes:
    """The name prefix of every entry of ``function`` (all code versions and sessions) in one key format."""
    # Keyspace.root fixes the version too; this is its text up to the version, encoded the same way.
    return f"{ROOT}/{key_format}/{{{quote(function, safe='')}/".encode()


def clear_prefixes(listed: Iterable[Listed], function: str | None, session: str | None) -> set[bytes]:
    """The fewest name prefixes that cover exactly the selection, given the entries found by :func:`scan`.

    A function alone is one prefix per key format; a session is one prefix
    per function version it has entries in (a session's entries are spread
    over functions, and no single prefix covers them). Prefixes, not the
    names listed, so entries written between the scan and the clear go too.
    """
    if function is None and session is None:
        return {ROOT_PREFIX}
    prefixes: set[bytes] = set()
    for item in listed:
        e = item.entry
        if session is None:
            prefixes.add(_function_prefix(e.key_format, e.function))
        else:
            prefixes.add(Keyspace(e.function, e.version, e.key_format).prefix(session))
    return prefixes


# -- output ------------------------------------------------------------------------


def _table(rows: Sequence[Sequence[str]], right: set[int], out: TextIO) -> None:
    """Print ``rows`` in aligned columns (those in ``right`` right-aligned)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        out.write("  ".join(cells).rstrip() + "\n")


def _ls(listed: list[Listed], out: TextIO) -> None:
    rows = [
        (
            item.entry.function,
            item.entry.version or "-",
            item.entry.namespace or "-",
            item.entry.key.hex()[:_KEY_DIGITS],
            str(item.size),
        )
        for item in listed
    ]
    if rows:
        _table(rows, {4}, out)


def _stats(listed: list[Listed], out: TextIO) -> None:
    per: dict[str, list[Listed]] = {}
    for item in listed:
        per.setdefault(item.entry.function, []).append(item)

    def row(label: str, items: list[Listed]) -> tuple[str, ...]:
        return (
            label,
            str(len(items)),
            str(sum(i.size for i in items)),
            str(len({(i.entry.function, i.entry.key_format, i.entry.version) for i in items})),
            str(len({i.entry.namespace for i in items if i.entry.namespace})),
        )

    rows: list[tuple[str, ...]] = [("function", "entries", "bytes", "versions", "sessions")]
    rows += [row(function, items) for function, items in sorted(per.items())]
    rows.append(row("total", listed))
    _table(rows, {1, 2, 3, 4}, out)


def _confirm(store: str) -> bool:
    try:
        answer = input(f"Remove every infercache entry in {store}? [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _is_metrics_url(spec: str) -> bool:
    return spec.strip().lower().startswith(("http://", "https://"))


def _fetch_metrics(url: str) -> str:
    """The Prometheus text page at ``url`` (an http or https URL)."""
    from urllib.request import Request, urlopen

    request = Request(url, headers={"Accept": "text/plain; version=0.0.4"})  # noqa: S310 - scheme checked
    with urlopen(request, timeout=_HTTP_TIMEOUT) as response:  # noqa: S310 - scheme checked
        body: bytes = response.read()
    return body.decode("utf-8")


def _live_stats(caches: dict[str, dict[str, Any]], out: TextIO) -> None:
    """The table of a running app's caches (from its /metrics page), then the totals."""
    keys = ("size", "memory", "hits", "misses", "joins", "remote_joins", "tier_errors", "verification_failures")
    seconds = ("saved_seconds", "compute_seconds")

    def row(label: str, data: dict[str, Any]) -> tuple[str, ...]:
        hits, misses = data["hits"], data["misses"]
        return (
            label,
            str(data["size"]),
            str(data["memory"]),
            str(hits),
            str(misses),
            str(data["joins"] + data["remote_joins"]),
            str(sum(data["evicted"].values())),
            str(data["tier_errors"] + data["verification_failures"]),
            f"{hits / (hits + misses) if hits + misses else 0.0:.1%}",
            f"{data['saved_seconds']:.3f}",
            f"{data['compute_seconds']:.3f}",
        )

    def filled(data: dict[str, Any]) -> dict[str, Any]:
        return {**dict.fromkeys(keys, 0), **dict.fromkeys(seconds, 0.0), **data}

    per = {name: filled(data) for name, data in caches.items()}
    total: dict[str, Any] = {key: sum(d[key] for d in per.values()) for key in (*keys, *seconds)}
    total["evicted"] = {"all": sum(sum(d["evicted"].values()) for d in per.values())}
    header = ("cache", "entries", "bytes", "hits", "misses", "joins", "evicted", "errors", "hit%", "saved_s",
              "compute_s")
    rows = [header, *(row(name, data) for name, data in sorted(per.items())), row("total", total)]
    _table(rows, set(range(1, len(header))), out)


def _metrics_command(args: argparse.Namespace) -> int:
    """``stats`` of a running app, read from its /metrics page; the exit status."""
    if args.command != "stats":
        print(f"infercache {args.command}: an http(s) URL is a running app's /metrics: only 'stats' reads it",
              file=sys.stderr)
        return 2
    if args.session is not None:
        print("infercache stats: --session: a /metrics page counts per cache, never per session", file=sys.stderr)
        return 2
    try:
        from .metrics.prometheus import parse
    except ImportError as exc:
        print(f'infercache stats: reading /metrics needs the prometheus extra ({exc}): '
              'pip install "infercache[prometheus]"', file=sys.stderr)
        return 1
    try:
        text = _fetch_metrics(args.store.strip())
        caches = parse(text)
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # unreachable, an HTTP error, not a Prometheus page
        print(f"infercache stats: {args.store}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if not caches and "infercache_requests" not in text:
        print(f"infercache stats: {args.store}: no infercache metrics on that page (is ic.metrics.mount(app) "
              "called?)", file=sys.stderr)
        return 1
    if args.function is not None:
        caches = {name: data for name, data in caches.items() if name == args.function}
    _live_stats(caches, sys.stdout)
    return 0


def _store_command(args: argparse.Namespace) -> int:
    """Run ``ls``, ``stats`` or ``clear``; the exit status."""
    if _is_metrics_url(args.store):
        return _metrics_command(args)
    out = sys.stdout
    try:
        tier = open_tier(args.store)
    except StoreError as exc:
        print(f"infercache {args.command}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "clear" and args.function is None and args.session is None:
            if not args.yes and not _confirm(args.store):
                print("infercache clear: nothing removed", file=sys.stderr)
                return 1
            listed: list[Listed] = []
        else:
            listed, unknown = scan(tier, args.function, args.session)
            if args.command == "ls":
                _ls(listed, out)
                return 0
            if args.command == "stats":
                _stats(listed, out)
                if unknown:
                    out.write(f"(names under {ROOT}/ that are not entries: {unknown})\n")
                return 0
        removed = sum(tier.clear(p) for p in sorted(clear_prefixes(listed, args.function, args.session)))
        out.write(f"removed {removed} entr{'y' if removed == 1 else 'ies'}\n")
        return 0
    except Exception as exc:  # noqa: BLE001 - a backend failing mid-command is reported in one line
        print(f"infercache {args.command}: {args.store}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        tier.close()


def _redacted(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _demo_store_line(demo: object) -> str:
    """Where the demo's caches keep their results, as its caches were actually built."""
    from .stores import ENV_STORE

    classify = getattr(demo, "infercache_functions", {}).get("classify")
    if classify is None or not classify.cache.engine.tiers:
        return f"results: in memory only (set {ENV_STORE} to a directory or a redis:// URL to keep and share them)"
    spec = os.environ.get(ENV_STORE, "").strip()
    return f"results: in memory, then in {_redacted(spec)} (from {ENV_STORE}), shared with every process using it"


# -- entry point -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``infercache`` command; returns the exit status (2 for bad usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on bad usage (2) and after --help (0)
        return exc.code if isinstance(exc.code, int) else 2
    if args.command == "version":
        from . import __version__

        print(__version__)
        return 0
    if args.command in ("ls", "stats", "clear"):
        return _store_command(args)
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
    from .errors import ConfigError

    try:
        demo = build_demo(kv_model=args.kv_model)
    except ConfigError as exc:  # a bad INFERCACHE_STORE, or a Redis store without INFERCACHE_SECRET
        print(f"infercache demo: {exc}", file=sys.stderr)
        return 1
    if not args.no_warmup:
        threading.Thread(target=warm_up, args=(args.kv_model,), daemon=True).start()
    print(f"infercache demo on http://{args.host}:{args.port}/ (Ctrl+C to stop)")
    print(_demo_store_line(demo))
    demo.launch(server_name=args.host, server_port=args.port)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
