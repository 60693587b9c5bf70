"""The benchmark suite, timed by pytest-benchmark (warm-up, calibrated rounds, medians).

Run it through ``benchmarks/run.py``, which passes the harness options, writes
the raw JSON and builds the report. Each benchmark tags itself with
``section``, ``case`` and ``peer`` (see :func:`tag`); anything that cannot be
measured is skipped with a reason and appears as "n/a" in the report.

These are benchmarks, not tests: nothing here asserts on a timing.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import cases
from cases import (
    CONCURRENCY_PEERS,
    HASH_ROWS,
    PEERS_BY_NAME,
    SIZES,
    SMALL_ARG_PEERS,
    VALUE_CASES,
    VALUE_PEERS,
    Counter,
    Unavailable,
    Wrapped,
)

try:  # keep torch to one thread: the machine has few cores and the suite times one call
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    torch = None  # type: ignore[assignment]

HERE = Path(__file__).resolve().parent

# Caches here choose their store themselves (store= on the tier rows): none reads the
# environment's, and records are signed with this run's own secret unless one is set.
os.environ.pop("INFERCACHE_STORE", None)
os.environ.setdefault("INFERCACHE_SECRET", secrets.token_hex(16))


def tag(request: pytest.FixtureRequest, benchmark: Any = None, **info: Any) -> None:
    """Attach ``info`` to the record of this benchmark (and to its JSON entry)."""
    for key, value in info.items():
        request.node.user_properties.append((key, value))
    if benchmark is not None:
        benchmark.extra_info.update(info)
        benchmark.group = f"{info.get('section')}: {info.get('case')}"


def na(reason: str) -> None:
    """Mark this cell "n/a" with ``reason``."""
    pytest.skip(reason)


def wrap(peer_name: str, fn: Callable[..., Any], tmp: Path) -> Wrapped:
    """``fn`` wrapped by the peer ``peer_name``, or n/a."""
    try:
        return PEERS_BY_NAME[peer_name].make(fn, tmp)
    except Unavailable as exc:
        na(str(exc))
        raise  # unreachable


def prime(w: Wrapped, *args: Any) -> None:
    """First call (the miss); a TypeError means this cache cannot key the argument."""
    try:
        w.fn(*args)
    except TypeError as exc:
        w.close()
        na(f"cannot key this argument ({exc.__class__.__name__}: {str(exc)[:80]})")


# --------------------------------------------------------------------------- small arguments


@pytest.mark.parametrize("peer", SMALL_ARG_PEERS)
def test_hit_small_args(benchmark: Any, request: pytest.FixtureRequest, peer: str, tmp_path: Path) -> None:
    """Hit latency of ``f("hello world", 0.7)``."""
    tag(request, benchmark, section="hit", case="small_args", label='f("hello world", 0.7)', peer=peer)
    counter = Counter()

    def infer(prompt: str, temperature: float = 0.7) -> str:
        counter.bump()
        return prompt

    w = wrap(peer, infer, tmp_path)
    try:
        prime(w, "hello world", 0.7)
        before = counter.n
        w.fn("".join(["hello", " ", "world"]), 0.7)  # equal content, new object
        benchmark.extra_info["content_keyed"] = counter.n == before
        start = counter.n
        benchmark(w.fn, "hello world", 0.7)
        benchmark.extra_info["computations_during_hits"] = counter.n - start
    finally:
        w.close()


@pytest.mark.parametrize("peer", SMALL_ARG_PEERS)
def test_miss_small_args(benchmark: Any, request: pytest.FixtureRequest, peer: str, tmp_path: Path) -> None:
    """Miss overhead: every call has a new prompt (includes making the prompt string)."""
    tag(request, benchmark, section="miss", case="small_args", label="f(<new prompt>, 0.7)", peer=peer)

    def infer(prompt: str, temperature: float = 0.7) -> str:
        return prompt

    w = wrap(peer, infer, tmp_path)
    next_prompt = cases.prompt_stream()
    try:
        benchmark(lambda: w.fn(next_prompt(), 0.7))
    finally:
        w.close()


# --------------------------------------------------------------------------- metrics mounted

METRICS_ROWS = ("without metrics", "metrics mounted")
"""The small-argument hit timed twice in one run: before ``ic.metrics.mount`` and after (this order)."""


def _mount_metrics() -> bool:
    """``ic.metrics.mount`` on a FastAPI app (the collector goes into the default registry), scraped once.

    True if the page carried the infercache families. The app is not kept
    serving: what matters to a hit is what mounting leaves in the process.
    """
    try:
        import prometheus_client  # noqa: F401 - the prometheus extra
        from fastapi import FastAPI
        from starlette.testclient import TestClient
    except ImportError as exc:
        na(f"needs {exc.name}")
    import infercache as ic

    app = FastAPI()
    ic.metrics.mount(app)
    with TestClient(app) as http:
        page = http.get("/metrics")
    return page.status_code == 200 and "infercache_requests_total{" in page.text


@pytest.mark.parametrize("row", METRICS_ROWS)
def test_hit_small_args_metrics(benchmark: Any, request: pytest.FixtureRequest, row: str, tmp_path: Path) -> None:
    """Hit latency of ``f("hello world", 0.7)`` (default digest) with the Prometheus exporter mounted, and without."""
    tag(request, benchmark, section="metrics", case="small_args", label='f("hello world", 0.7)', peer=row)

    def infer(prompt: str, temperature: float = 0.7) -> str:
        return prompt

    w = wrap(cases.ic_peer_name(cases.IC_DIGESTS[0]), infer, tmp_path)
    try:
        prime(w, "hello world", 0.7)
        if row == METRICS_ROWS[1]:
            benchmark.extra_info["metrics_served"] = _mount_metrics()
        benchmark(w.fn, "hello world", 0.7)
    finally:
        w.close()


# --------------------------------------------------------------------------- big values


@functools.lru_cache(maxsize=None)
def _value(case: str) -> Any:
    return cases.VALUE_CASES_BY_NAME[case].build()


@pytest.mark.parametrize("peer", VALUE_PEERS)
@pytest.mark.parametrize("case", [c.name for c in VALUE_CASES])
def test_hit_value(
    benchmark: Any, request: pytest.FixtureRequest, case: str, peer: str, tmp_path: Path
) -> None:
    """Hit latency of ``classify(value)`` for a big argument."""
    spec = cases.VALUE_CASES_BY_NAME[case]
    tag(request, benchmark, section="hit", case=case, label=spec.label, peer=peer)
    try:
        value = _value(case)
    except ImportError as exc:
        na(f"input needs {exc.name}")
    counter = Counter()

    def classify(x: Any) -> int:
        counter.bump()
        return 1

    w = wrap(peer, classify, tmp_path)
    try:
        prime(w, value)
        before = counter.n
        w.fn(spec.duplicate(value))
        benchmark.extra_info["content_keyed"] = counter.n == before
        start = counter.n
        benchmark(w.fn, value)
        benchmark.extra_info["computations_during_hits"] = counter.n - start
    finally:
        w.close()


# --------------------------------------------------------------------------- hashing throughput


@functools.lru_cache(maxsize=None)
def _buffer(name: str) -> Any:
    import numpy as np

    if name == "image_1080p":
        return _value("image_1080p")
    rng = np.random.default_rng(7)
    return np.frombuffer(rng.bytes(SIZES.big_buffer_bytes), dtype=np.uint8)


BUFFERS = {
    "image_1080p": "1080p image buffer",
    "big_buffer": f"{SIZES.big_buffer_bytes // 2**20} MiB buffer"
    + (" (beyond CPU caches)" if SIZES.big_buffer_bytes >= 64 * 2**20 else ""),
}


@pytest.mark.parametrize("row", HASH_ROWS)
@pytest.mark.parametrize("buffer", list(BUFFERS))
def test_hash_throughput(
    benchmark: Any, request: pytest.FixtureRequest, buffer: str, row: str
) -> None:
    """Bytes per second of each digest and of a memory copy over the same buffer."""
    tag(request, benchmark, section="hash", case=buffer, label=BUFFERS[buffer], peer=row)
    buf = _buffer(buffer)
    benchmark.extra_info["nbytes"] = int(buf.nbytes)
    try:
        fn = cases.hash_row_function(row, buf)
    except Unavailable as exc:
        na(str(exc))
    benchmark(fn)


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("peer", CONCURRENCY_PEERS)
def test_concurrent_identical_calls(
    benchmark: Any, request: pytest.FixtureRequest, peer: str, tmp_path: Path
) -> None:
    """N threads call the same slow function with the same arguments at once."""
    callers = SIZES.concurrent_callers
    tag(
        request,
        benchmark,
        section="concurrency",
        case=f"{callers}_threads",
        label=f"{callers} identical calls, {SIZES.compute_seconds * 1000:.0f} ms compute",
        peer=peer,
    )
    counts: list[int] = []
    current: dict[str, Any] = {}
    rounds = 2 if cases.QUICK else 5

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        if "wrapped" in current:
            current["wrapped"].close()
        counter = Counter()
        fn = cases.slow_function(counter, SIZES.compute_seconds)  # a new function each round
        current["counter"] = counter
        current["wrapped"] = wrap(peer, fn, tmp_path / f"round{len(counts)}")
        return (current["wrapped"].fn,), {}

    def burst(fn: Callable[..., Any]) -> None:
        cases.run_burst(fn, callers)
        counts.append(current["counter"].n)

    try:
        benchmark.pedantic(burst, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    finally:
        if "wrapped" in current:
            current["wrapped"].close()
    benchmark.extra_info["computations"] = counts
    benchmark.extra_info["callers"] = callers
    benchmark.extra_info["compute_seconds"] = SIZES.compute_seconds


# --------------------------------------------------------------------------- prefix search


@functools.lru_cache(maxsize=None)
def _prompts() -> tuple[str, ...]:
    return tuple(cases.build_prompts(SIZES.prompts))


def _filled(kind: str) -> Any:
    prompts = _prompts()
    if kind == "gr.Cache":
        try:
            import gradio as gr
        except ImportError:
            na("gradio not installed")
        c = gr.Cache(max_size=0)
    else:
        try:
            c = cases.ic_manual_cache(max_size=len(prompts) * 2)
        except Unavailable as exc:
            na(str(exc))
    for i, p in enumerate(prompts):
        c.set(p, kv=i)
    return c


PREFIX_ROWS = {
    "gr.Cache: guide loop over keys()": ("gr.Cache", "loop"),
    "gr.Cache: keys() alone": ("gr.Cache", "keys"),
    "infercache Cache: guide loop over keys()": ("ic", "loop"),
    "infercache Cache: keys() alone": ("ic", "keys"),
    "infercache Cache.longest_prefix": ("ic", "longest_prefix"),
}


@pytest.mark.parametrize("row", list(PREFIX_ROWS))
def test_prefix_search(benchmark: Any, request: pytest.FixtureRequest, row: str) -> None:
    """Find the longest cached prompt that prefixes a new prompt."""
    tag(
        request,
        benchmark,
        section="prefix",
        case=f"{SIZES.prompts}_prompts",
        label=f"longest cached prefix among {SIZES.prompts:,} prompts",
        peer=row,
    )
    kind, method = PREFIX_ROWS[row]
    c = _filled(kind)
    prompts = _prompts()
    expected = prompts[len(prompts) // 2]
    query = expected + " and now continue the conversation"
    if method == "loop":
        fn: Callable[[], Any] = lambda: cases.guide_longest_prefix(c, query)
    elif method == "keys":
        fn = lambda: c.keys()
    else:
        lp = getattr(c, "longest_prefix", None)
        if lp is None:
            na("Cache.longest_prefix not in infercache yet")
        fn = lambda: lp(query)
    found = fn()
    if method != "keys":
        text = found if isinstance(found, str) else repr(found)
        benchmark.extra_info["correct"] = expected in text
    benchmark(fn)


# --------------------------------------------------------------------------- memory accounting


def _memory_cases() -> list[str]:
    sys.path.insert(0, str(HERE))
    import memory_probe

    return list(memory_probe.CASES)


@functools.lru_cache(maxsize=None)
def _memory_results() -> dict[str, dict[str, Any]]:
    """Run the probe once, in a fresh interpreter, for every case."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "memory_probe.py")],
        capture_output=True,
        text=True,
        timeout=900,
        env=os.environ.copy(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory_probe failed: {proc.stderr[-800:]}")
    return {r["case"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize("case", _memory_cases())
def test_memory_accounting(request: pytest.FixtureRequest, case: str) -> None:
    """Bytes reported by each estimator against bytes really held."""
    request.node.user_properties.append(("section", "memory"))
    request.node.user_properties.append(("case", case))
    result = _memory_results()[case]
    for key in ("label", "method", "actual", "reported"):
        request.node.user_properties.append((key, result[key]))


# --------------------------------------------------------------------------- persistent tiers


@functools.lru_cache(maxsize=None)
def _redis_server() -> Any:
    """One real redis-server on a free 127.0.0.1 port for the whole run (stopped at exit)."""
    try:
        import redis  # noqa: F401 - redis_fixtures needs redis-py
    except ImportError:
        na("redis-py not installed")
    sys.path.insert(0, str(HERE.parent / "tests"))
    from redis_fixtures import RedisServer  # the test suite's server: skips (n/a here) without redis-server

    server = RedisServer()
    atexit.register(server.stop)
    return server


def _tier_store(peer: str, tmp: Path) -> str:
    """The ``store=`` of an infercache tier row (or of the row whose floor this is)."""
    if peer in (cases.TIER_DISK, cases.FLOOR_DISK):
        return str(tmp / "store")
    server = _redis_server()
    server.flush()  # one entry per case: the floors read it back by listing the store
    return str(server.url)


@pytest.mark.parametrize("peer", cases.TIER_PEERS)
@pytest.mark.parametrize("case", [c.name for c in cases.TIER_CASES])
def test_tier_hit(benchmark: Any, request: pytest.FixtureRequest, case: str, peer: str, tmp_path: Path) -> None:
    """Hit latency from a persistent tier, the in-memory store emptied (untimed) before every round.

    infercache rows read the record back from disk or Redis, verify and
    decode it; joblib.Memory and diskcache.memoize read their own files; the
    floors do the least any such hit must: hash the argument's key, read the
    same record's bytes (a file, a raw redis-py GET) and view them as an array.
    """
    spec = cases.TIER_CASES_BY_NAME[case]
    tag(request, benchmark, section="tiers", case=case, label=spec.label, peer=peer)
    try:
        args = spec.args()
    except ImportError as exc:
        na(f"input needs {exc.name}")
    counter = Counter()
    fn = spec.function(counter)
    try:
        w = cases.ic_tier(fn, _tier_store(peer, tmp_path)) if peer in cases.IC_TIER_ROWS else wrap(peer, fn, tmp_path)
    except Unavailable as exc:
        na(str(exc))
    try:
        prime(w, *args)
        call: Callable[..., Any] = w.fn
        empty: Callable[[], None] = _nothing
        if peer in cases.FLOOR_OF:
            empty = w.fn.cache.engine.store.clear  # every round reads the tier, not memory
        elif peer in cases.IC_TIER_ROWS:
            call = _floor(request, benchmark, peer, w, args, tmp_path)

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            empty()
            return args, {}

        start = counter.n
        quick_rounds, full_rounds = (3, 500) if case == "small_value" else (2, 60)
        benchmark.pedantic(
            call,
            setup=setup,
            rounds=quick_rounds if cases.QUICK else full_rounds,
            iterations=1,
            warmup_rounds=0 if cases.QUICK else 3,
        )
        benchmark.extra_info["computations_during_hits"] = counter.n - start
    finally:
        w.close()


def _floor(
    request: pytest.FixtureRequest, benchmark: Any, peer: str, w: Wrapped, args: tuple[Any, ...], tmp: Path
) -> Callable[..., Any]:
    """The floor ``peer`` over the record infercache stored for ``args`` (called with ``args``, ignored)."""
    try:
        name, record = cases.stored_record(w)
    except Unavailable as exc:
        na(str(exc))
    benchmark.extra_info["record_bytes"] = len(record)
    if peer == cases.FLOOR_DISK:
        path = tmp / "record"
        path.write_bytes(record)
        floor = cases.floor_disk(path, args)
    else:
        client = _redis_server().client()
        request.addfinalizer(client.close)
        floor = cases.floor_redis(client, name, args)

    def call(*_: Any) -> Any:
        return floor()

    return call


def _nothing() -> None:
    """Setup of the rows that have no in-memory store to empty."""


# --------------------------------------------------------------------------- Gradio end to end


E2E_PEERS = ("no cache (plain call)", cases.REFERENCE, cases.ic_peer_name(cases.IC_DIGESTS[0]))


@pytest.mark.parametrize("peer", E2E_PEERS)
def test_gradio_end_to_end(benchmark: Any, request: pytest.FixtureRequest, peer: str, tmp_path: Path) -> None:
    """A real Gradio server on 127.0.0.1 and a gradio_client call: latency of a repeated request."""
    compute = 0.02 if cases.QUICK else 0.2
    tag(
        request,
        benchmark,
        section="e2e",
        case="gradio_textbox",
        label=f"Gradio Blocks + gradio_client, textbox in/out, {compute * 1000:.0f} ms compute",
        peer=peer,
    )
    try:
        import gradio as gr
        from gradio_client import Client
    except ImportError as exc:
        na(f"needs {exc.name}")
    counter = Counter()

    def classify(text: str) -> str:
        counter.bump()
        import time

        time.sleep(compute)
        return text.upper()

    w = wrap(peer, classify, tmp_path)
    with gr.Blocks() as demo:
        box_in, box_out, button = gr.Textbox(), gr.Textbox(), gr.Button()
        button.click(w.fn, box_in, box_out, api_name="classify")
    demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        client = Client(demo.local_url, verbose=False)
        client.predict("hello world", api_name="/classify")  # the miss
        start = counter.n
        rounds = 3 if cases.QUICK else 15
        benchmark.pedantic(
            lambda: client.predict("hello world", api_name="/classify"),
            rounds=rounds,
            iterations=1,
            warmup_rounds=1,
        )
        benchmark.extra_info["computations_during_hits"] = counter.n - start
    finally:
        demo.close()
        w.close()
