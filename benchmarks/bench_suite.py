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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cases
import pytest
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


@functools.cache
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


@functools.cache
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


@functools.cache
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
        def fn() -> Any:
            return cases.guide_longest_prefix(c, query)
    elif method == "keys":
        def fn() -> Any:
            return c.keys()
    else:
        lp = getattr(c, "longest_prefix", None)
        if lp is None:
            na("Cache.longest_prefix not in infercache yet")
        def fn() -> Any:
            return lp(query)
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


@functools.cache
def _memory_results() -> dict[str, dict[str, Any]]:
    """Run the probe once, in a fresh interpreter, for every case."""
    proc = subprocess.run(  # noqa: S603 - this interpreter on the suite's own probe
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


@functools.cache
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

NOOP = "no-op (returns its input, no cache)"
PLAIN = "no cache (plain call)"
E2E_PEERS = (NOOP, PLAIN, cases.REFERENCE, cases.ic_peer_name(cases.IC_DIGESTS[0]))
#: clients of the end-to-end rows (the ``case`` of a row), and the column labels of the report.
E2E_CLIENTS = {
    "gradio_client": "gradio_client (client-bound)",
    "keepalive": "keep-alive client (join + event stream)",
    "chromium": "headless Chromium, click to output",
}
IMG_NOOP = 'no-op, gr.Image(type="numpy") (no cache)'
IMG_NUMPY = 'infercache, gr.Image(type="numpy")'
IMG_PATH = 'infercache, gr.Image(type="filepath"), decode inside'
E2E_IMAGE_PEERS = (IMG_NOOP, IMG_NUMPY, IMG_PATH)
E2E_IMAGE_CLIENTS = ("keepalive", "chromium")
E2E_TEXT = "hello world"


def _e2e_compute() -> float:
    return 0.02 if cases.QUICK else 0.2


def _e2e_rounds(client: str, slow: bool) -> int:
    """Timed requests per row: few for the browser, fewer when every request computes."""
    if cases.QUICK:
        return 3
    return {"gradio_client": 15, "keepalive": 25 if slow else 60, "chromium": 15 if slow else 21}[client]


@dataclass
class _E2EApp:
    """A launched app and, per row: its function's counter, the input it is sent, its expected output."""

    app: Any
    counters: dict[str, Counter]
    inputs: dict[str, Any]
    expected: dict[str, str]

    def slow(self, peer: str) -> bool:
        """True for the row whose every request computes (fewer rounds)."""
        return peer == PLAIN


def _gradio() -> Any:
    try:
        import gradio as gr
    except ImportError as exc:
        na(f"needs {exc.name}")
    return gr


def _echo(counter: Counter) -> Callable[[str], str]:
    """The no-op event function: counts its runs, returns its input."""

    def echo(text: str) -> str:
        counter.bump()
        return text

    return echo


def _upper(counter: Counter, compute: float) -> Callable[[str], str]:
    """The slow event function: counts its runs, sleeps ``compute`` seconds, returns its input upper-cased."""

    def classify(text: str) -> str:
        counter.bump()
        time.sleep(compute)
        return text.upper()

    return classify


@pytest.fixture(scope="module")
def e2e_text_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The textbox app: a button per function of :data:`E2E_PEERS`, served for the whole module."""
    _gradio()
    import gradio_e2e

    compute = _e2e_compute()
    counters = {p: Counter() for p in E2E_PEERS}
    functions: dict[str, Callable[[str], str]] = {}
    wrapped: list[Wrapped] = []
    for peer in E2E_PEERS:
        if peer == NOOP:
            functions[peer] = _echo(counters[peer])
            continue
        w = wrap(peer, _upper(counters[peer], compute), tmp_path_factory.mktemp("e2e"))
        wrapped.append(w)
        functions[peer] = w.fn
    try:
        app = gradio_e2e.textbox_app(functions)
    except gradio_e2e.Missing as exc:
        na(str(exc))
    expected = {p: E2E_TEXT if p == NOOP else E2E_TEXT.upper() for p in E2E_PEERS}
    yield _E2EApp(app, counters, dict.fromkeys(E2E_PEERS, E2E_TEXT), expected)
    app.close()
    for w in wrapped:
        w.close()


@pytest.fixture(scope="module")
def e2e_image_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The image app (1080p PNG into a classifier-like function) for :data:`E2E_IMAGE_PEERS`."""
    _gradio()

    try:
        import numpy as np
        from PIL import Image
    except ImportError as exc:
        na(f"needs {exc.name}")
    import gradio_e2e

    compute = _e2e_compute() / 4  # the same figure is in the rows' label
    png = gradio_e2e.write_png(tmp_path_factory.mktemp("e2e-image") / "photo.png", SIZES.image_1080p)
    counters = {p: Counter() for p in E2E_IMAGE_PEERS}

    def label(pixels: Any) -> str:
        return f"brightness {float(pixels[::16, ::16].mean()):.1f}"

    def noop(pixels: Any) -> str:
        counters[IMG_NOOP].bump()
        return label(pixels)

    def classify(pixels: Any) -> str:
        counters[IMG_NUMPY].bump()
        time.sleep(compute)
        return label(pixels)

    def classify_file(path: str) -> str:
        counters[IMG_PATH].bump()
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        time.sleep(compute)
        return label(pixels)

    try:
        functions = {
            IMG_NOOP: ("numpy", noop),
            IMG_NUMPY: ("numpy", cases.ic_decorate(classify, cases.IC_DIGESTS[0])),
            IMG_PATH: ("filepath", cases.ic_decorate(classify_file, cases.IC_DIGESTS[0])),
        }
        app = gradio_e2e.image_app(functions)
    except (Unavailable, gradio_e2e.Missing) as exc:
        na(str(exc))
    with Image.open(png) as im:
        want = label(np.asarray(im.convert("RGB")))
    yield _E2EApp(app, counters, dict.fromkeys(E2E_IMAGE_PEERS, png), dict.fromkeys(E2E_IMAGE_PEERS, want))
    app.close()
    for _, fn in functions.values():
        _clear_attr_cache(fn)


def _clear_attr_cache(fn: Any) -> None:
    handle = getattr(fn, "cache", None)
    if handle is not None and hasattr(handle, "clear"):
        handle.clear()


@pytest.fixture(scope="module")
def e2e_browser() -> Any:
    """One headless Chromium for every browser row (n/a without Playwright or a browser)."""
    import gradio_e2e

    try:
        browser = gradio_e2e.Browser()
    except gradio_e2e.Missing as exc:
        na(str(exc))
    yield browser
    browser.close()


@dataclass
class _Interleaved:
    """Per-row samples of one client over one app, the rows' requests interleaved round by round."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    paint: dict[str, list[float]] = field(default_factory=dict)
    computations: dict[str, int] = field(default_factory=dict)
    answered_from: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _interleave(
    target: _E2EApp,
    prime: Callable[[str], None],
    once: Callable[[str], tuple[float, float | None]],
    rounds: dict[str, int],
    warmup: int,
) -> _Interleaved:
    """``prime`` every row (its miss), then time ``once`` per row A, B, C, A, B, C ... (``rounds[row]`` each).

    One row after the other would let a change in the machine's load between
    rows (other processes on a small machine) look like a difference between
    them; interleaved, every row sees the same conditions.
    """
    out = _Interleaved()
    live = []
    for peer in rounds:
        try:
            prime(peer)
            live.append(peer)
        except Exception as exc:  # noqa: BLE001 - the row shows the error; the others still run
            out.errors[peer] = f"{exc.__class__.__name__}: {str(exc)[:240]}"
    for _ in range(warmup):
        for peer in live:
            once(peer)
    start = {p: target.counters[p].n for p in live}
    for i in range(max((rounds[p] for p in live), default=0)):
        for peer in live:
            if i < rounds[peer]:
                took, paint = once(peer)
                out.seconds.setdefault(peer, []).append(took)
                if paint is not None:
                    out.paint.setdefault(peer, []).append(paint)
    for peer in live:
        out.computations[peer] = target.counters[peer].n - start[peer]
    return out


def _keepalive_run(target: _E2EApp) -> _Interleaved:
    """Every row of ``target`` through one :class:`gradio_e2e.QueueClient` (one connection, one session)."""
    import gradio_e2e

    client = gradio_e2e.QueueClient(target.app.url)
    sent: dict[str, Any] = {}
    answered: dict[str, str] = {}

    def prime(peer: str) -> None:
        data = target.inputs[peer]
        sent[peer] = client.upload(data) if isinstance(data, Path) else data
        got = client.call(target.app.endpoints[peer].api_name, sent[peer])
        if got != [target.expected[peer]]:
            raise RuntimeError(f"unexpected output {got!r}")

    def once(peer: str) -> tuple[float, float | None]:
        t0 = time.perf_counter()
        client.call(target.app.endpoints[peer].api_name, sent[peer])
        took = time.perf_counter() - t0
        answered[peer] = client.last_message.get("used_cache") or "queue"
        return took, None

    rounds = {p: _e2e_rounds("keepalive", target.slow(p)) for p in target.counters}
    try:
        run = _interleave(target, prime, once, rounds, warmup=0 if cases.QUICK else 2)
    finally:
        client.close()
    run.answered_from = answered
    return run


def _chromium_run(target: _E2EApp, browser: Any) -> _Interleaved:
    """Every row of ``target`` clicked in one page (one session), timed inside the page."""
    page = browser.page(target.app)

    def prime(peer: str) -> None:
        data = target.inputs[peer]
        if isinstance(data, Path):
            page.upload(peer, data)
        else:
            page.fill(peer, data)
        page.reset(peer)
        page.click(peer, target.expected[peer])  # the miss, not timed

    def once(peer: str) -> tuple[float, float | None]:
        page.reset(peer)
        return page.click(peer, target.expected[peer])

    rounds = {p: _e2e_rounds("chromium", target.slow(p)) for p in target.counters}
    try:
        return _interleave(target, prime, once, rounds, warmup=0 if cases.QUICK else 1)
    finally:
        page.close()


@pytest.fixture(scope="module")
def e2e_runs() -> dict[tuple[str, str], _Interleaved]:
    """Interleaved runs, made by the first row that needs each (app, client) and shared by its rows."""
    return {}


def _report_interleaved(benchmark: Any, request: pytest.FixtureRequest, app: str, client: str, peer: str) -> None:
    """This row's figures from the interleaved run of (``app``, ``client``) (made on first use)."""
    import statistics

    target: _E2EApp = request.getfixturevalue(f"e2e_{app}_app")
    runs: dict[tuple[str, str], _Interleaved] = request.getfixturevalue("e2e_runs")
    if (app, client) not in runs:
        if client == "chromium":
            runs[(app, client)] = _chromium_run(target, request.getfixturevalue("e2e_browser"))
        else:
            runs[(app, client)] = _keepalive_run(target)
    run = runs[(app, client)]
    if peer in run.errors:
        raise RuntimeError(run.errors[peer])
    samples = run.seconds[peer]
    # The figures are the interleaved samples (own_median, read by report.py); pytest-benchmark
    # times nothing of this row, so its raw JSON entry carries only the extra_info.
    benchmark.pedantic(_nothing, rounds=1, iterations=1)
    benchmark.extra_info["timing"] = (
        "interleaved with the other rows of this client" + ("; the page's clock" if client == "chromium" else "")
    )
    benchmark.extra_info["own_median"] = statistics.median(samples)
    q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    benchmark.extra_info["own_iqr"] = q[2] - q[0]
    benchmark.extra_info["own_rounds"] = len(samples)
    if peer in run.paint:
        benchmark.extra_info["in_page_paint_median"] = statistics.median(run.paint[peer])
    benchmark.extra_info["computations_during_hits"] = run.computations[peer]
    if peer in run.answered_from:
        benchmark.extra_info["answered_from"] = run.answered_from[peer]


@pytest.mark.parametrize("peer", E2E_PEERS)
@pytest.mark.parametrize("client", list(E2E_CLIENTS))
def test_gradio_end_to_end(
    benchmark: Any, request: pytest.FixtureRequest, client: str, peer: str
) -> None:
    """A real Gradio server on 127.0.0.1, textbox in and out: latency of a repeated request per client."""
    compute = _e2e_compute()
    tag(request, benchmark, section="e2e", case=client, label=E2E_CLIENTS[client], peer=peer,
        app=f"Gradio Blocks, textbox in/out, {compute * 1000:.0f} ms compute")
    if client != "gradio_client":
        _report_interleaved(benchmark, request, "text", client, peer)
        return
    target: _E2EApp = request.getfixturevalue("e2e_text_app")
    try:
        from gradio_client import Client
    except ImportError as exc:
        na(f"needs {exc.name}")
    api = "/" + target.app.endpoints[peer].api_name
    gc = Client(target.app.url, verbose=False)
    try:
        gc.predict(E2E_TEXT, api_name=api)  # the miss
        start = target.counters[peer].n
        benchmark.pedantic(
            lambda: gc.predict(E2E_TEXT, api_name=api),
            rounds=_e2e_rounds(client, target.slow(peer)),
            iterations=1,
            warmup_rounds=1,
        )
        benchmark.extra_info["computations_during_hits"] = target.counters[peer].n - start
    finally:
        gc.close()  # its heartbeat thread would otherwise run through the rows that follow


@pytest.mark.parametrize("peer", E2E_IMAGE_PEERS)
@pytest.mark.parametrize("client", E2E_IMAGE_CLIENTS)
def test_gradio_end_to_end_image(
    benchmark: Any, request: pytest.FixtureRequest, client: str, peer: str
) -> None:
    """A PNG uploaded once into a Gradio image input, then a repeated request (a hit for the cached rows)."""
    h, w, _ = SIZES.image_1080p
    tag(request, benchmark, section="e2e_image", case=client, label=E2E_CLIENTS[client], peer=peer,
        app=f"Gradio Blocks, {w}x{h} PNG upload in, text out, {_e2e_compute() / 4 * 1000:.0f} ms compute")
    _report_interleaved(benchmark, request, "image", client, peer)
