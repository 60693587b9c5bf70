"""infercache and Gradio's queue, in real servers driven by ``gradio_client``.

A hit of a cached event function is answered by the queue's probe before any
concurrency slot (every function kind, injected ``gr.Request`` and
``gr.Progress`` included); identical calls in flight join one computation;
errors (unkeyable arguments, a failing ``key=``, exceptions, a generator
failing mid-stream) reach the client and nothing is cached; the ``from cache``
and ``used cache`` badges match gr.cache's. No timing assertions: a slow miss
is a function blocked on a ``threading.Event``, so "the hit returned while the
miss still held the only slot" is a fact about ordering, not about durations.
The badge tests read the queue's own messages (``gradio_fixtures.run_event``),
where the cache flag behind Gradio's badges is.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gradio as gr
import pytest
from gradio_client.exceptions import AppError
from gradio_fixtures import client, outputs, run_event, serve, wait_started, wait_until

import infercache as ic

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]


def test_hit_returns_while_a_slow_miss_holds_the_only_slot() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    @ic.cache
    def work(x: str) -> str:
        calls.append(x)
        if x.startswith("slow"):
            started.set()
            assert release.wait(120), "the test never released the slow call"
        return x.upper()

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(work, inp, out, api_name="work", concurrency_limit=1)

    with serve(app) as url:
        c = client(url)
        assert c.predict("a", api_name="/work") == "A"  # miss: now cached
        slow = c.submit("slow", api_name="/work")
        wait_started(started, slow)  # the only slot is taken
        queued = client(url).submit("other", api_name="/work")  # a miss, waits behind it
        try:
            # The hit is answered although the slot is busy and a miss is queued.
            assert client(url).predict("a", api_name="/work") == "A"
            assert not slow.done() and not queued.done() and not release.is_set()
            assert calls == ["a", "slow"]
        finally:
            release.set()
        assert slow.result() == "SLOW"
        assert queued.result() == "OTHER"
        assert calls == ["a", "slow", "other"]
        assert work.cache.stats().hits == 1


def test_async_function_hit_bypasses_a_busy_slot() -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    @ic.cache
    async def work(x: str) -> str:
        runs.append(x)
        if x == "slow":
            started.set()
            while not release.is_set():
                await asyncio.sleep(0.01)
        return x[::-1]

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(work, inp, out, api_name="work", concurrency_limit=1)

    with serve(app) as url:
        c = client(url)
        assert c.predict("abc", api_name="/work") == "cba"
        slow = c.submit("slow", api_name="/work")
        wait_started(started, slow)
        try:
            assert client(url).predict("abc", api_name="/work") == "cba"
            assert not slow.done()
        finally:
            release.set()
        assert slow.result() == "wols"
        assert runs == ["abc", "slow"]


def test_async_generator_hit_bypasses_a_busy_slot() -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    @ic.cache
    async def f(x: str) -> Any:
        runs.append(x)
        if x == "slow":
            started.set()
            while not release.is_set():
                await asyncio.sleep(0.01)
        for k in range(3):
            await asyncio.sleep(0)
            yield f"{x}{k}"

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(f, inp, out, api_name="f", concurrency_limit=1)

    with serve(app) as url:
        first = outputs(client(url).submit("a", api_name="/f"))
        assert first == ["a0", "a1", "a2"]
        slow = client(url).submit("slow", api_name="/f")
        wait_started(started, slow)
        try:
            assert outputs(client(url).submit("a", api_name="/f")) == first
            assert not slow.done()
        finally:
            release.set()
        assert slow.result() == "slow2"
    assert runs == ["a", "slow"]


def test_generator_hit_replays_every_yield_in_order_without_a_slot() -> None:
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    @ic.cache
    def tokens(prompt: str) -> Any:
        runs.append(prompt)
        if prompt == "slow":
            started.set()
            assert release.wait(120)
        text = ""
        for word in f"{prompt} is streamed word by word".split():
            text += word + " "
            yield text.strip()

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(tokens, inp, out, api_name="tokens", concurrency_limit=1)

    with serve(app) as url:
        first = outputs(client(url).submit("this", api_name="/tokens"))
        assert first == ["this", "this is", "this is streamed", "this is streamed word",
                         "this is streamed word by", "this is streamed word by word"]
        slow = client(url).submit("slow", api_name="/tokens")
        wait_started(started, slow)
        try:
            replay = outputs(client(url).submit("this", api_name="/tokens"))
            assert not slow.done()
        finally:
            release.set()
        assert replay == first
        slow.result()
        assert runs == ["this", "slow"]


def test_hit_with_request_and_progress_parameters_bypasses_a_busy_slot() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    @ic.cache
    def f(x: str, request: gr.Request, progress: Any = gr.Progress()) -> str:
        calls.append(x)
        progress(0.5)
        if x == "slow":
            started.set()
            assert release.wait(120)
        return x + "!"

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(f, inp, out, api_name="f", concurrency_limit=1)

    with serve(app) as url:
        assert client(url).predict("a", api_name="/f") == "a!"
        slow = client(url).submit("slow", api_name="/f")
        wait_started(started, slow)
        try:
            assert client(url).predict("a", api_name="/f") == "a!"  # other session, a hit
            assert not slow.done()
        finally:
            release.set()
        assert slow.result() == "slow!"
    assert calls == ["a", "slow"]


def test_identical_calls_in_flight_join_one_computation() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    @ic.cache
    def work(x: str) -> str:
        calls.append(x)
        started.set()
        assert release.wait(120)
        return x * 2

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(work, inp, out, api_name="work", concurrency_limit=2)

    with serve(app) as url:
        first = client(url).submit("z", api_name="/work")
        wait_started(started, first)
        # The probe of an identical call finds the computation in flight: a miss,
        # so it is queued, then joins the flight instead of computing again.
        second = client(url).submit("z", api_name="/work")
        wait_until(lambda: work.cache.stats().joins >= 1 or second.done(), what="the join")
        release.set()
        assert first.result() == second.result() == "zz"
        assert calls == ["z"]


# --------------------------------------------------------------------- errors


def test_unkeyable_argument_error_reaches_the_client_as_an_event_error() -> None:
    calls: list[str] = []

    @ic.cache
    def f(x: str, st: Any) -> str:
        calls.append(x)
        return x + "!"

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        state = gr.State(lambda: {"fn": len})  # a function: no content to key
        gr.Button().click(f, [inp, state], out, api_name="f")

    with serve(app) as url, pytest.raises(AppError, match="cannot build a cache key"):
        client(url).predict("a", api_name="/f")
    assert calls == []


def test_key_function_error_reaches_the_client_as_an_event_error() -> None:
    @ic.cache(key=lambda kw: kw["prompt"]["missing"])
    def f(prompt: str) -> str:
        return prompt

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(f, inp, out, api_name="f")

    with serve(app) as url, pytest.raises(AppError, match="key= function"):
        client(url).predict("a", api_name="/f")


def test_an_exception_is_shown_to_the_client_and_nothing_is_cached() -> None:
    calls: list[str] = []

    @ic.cache
    def f(x: str) -> str:
        calls.append(x)
        raise ValueError(f"boom {x}")

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(f, inp, out, api_name="f")

    with serve(app) as url:
        for _ in range(2):
            with pytest.raises(AppError, match="boom a"):
                client(url).predict("a", api_name="/f")
    assert calls == ["a", "a"]
    assert len(f.cache) == 0


def test_generator_failing_mid_stream_shows_its_chunks_and_is_not_cached() -> None:
    calls: list[str] = []

    @ic.cache
    def f(x: str) -> Any:
        calls.append(x)
        yield "one"
        yield "two"
        raise ValueError("mid-stream boom")

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(f, inp, out, api_name="f")

    with serve(app) as url:
        for _ in range(2):
            job = client(url).submit("a", api_name="/f")
            with pytest.raises(AppError, match="mid-stream boom"):
                job.result()
            assert list(job.outputs()) == ["one", "two"]
    assert calls == ["a", "a"]
    assert len(f.cache) == 0


# --------------------------------------------------------------------- cache badges
#
# The badge the page shows comes from the final queue message's cache flag:
# "full" is Gradio's "from cache" (the queue answered a hit of the event
# function itself), "partial" is "used cache" (a run reused a manual cache or a
# cached helper), None is no badge. Each test runs against gr.cache as well:
# infercache shows what Gradio shows.


KINDS = ("function", "async function", "generator", "async generator")


LIBRARIES = {"infercache": ic.cache, "gradio": gr.cache}


def _api(kind: str) -> str:
    return kind.replace(" ", "_")


def _four_kinds(runs: list[str]) -> dict[str, Callable[[str], Any]]:
    """A function, async function, generator and async generator that log their runs."""

    def function(x: str) -> str:
        runs.append(f"function {x}")
        return x.upper()

    async def async_function(x: str) -> str:
        runs.append(f"async function {x}")
        await asyncio.sleep(0)
        return x.upper()

    def generator(x: str) -> Any:
        runs.append(f"generator {x}")
        for i in range(1, 4):
            yield x * i

    async def async_generator(x: str) -> Any:
        runs.append(f"async generator {x}")
        for i in range(1, 4):
            await asyncio.sleep(0)
            yield x * i

    return dict(zip(KINDS, (function, async_function, generator, async_generator)))


@pytest.fixture(scope="module", params=list(LIBRARIES))
def cached_events(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, list[str]]]:
    """An app whose four event functions are decorated by the library; (library, url, runs)."""
    cache = LIBRARIES[request.param]
    runs: list[str] = []
    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        for kind, fn in _four_kinds(runs).items():
            gr.Button().click(cache(fn), inp, out, api_name=_api(kind))
    with serve(app) as url:
        yield request.param, url, runs


@pytest.fixture(scope="module", params=list(LIBRARIES))
def cached_helpers(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, list[str]]]:
    """An app whose plain event functions call a helper cached at runtime; (library, url, runs)."""
    cache = LIBRARIES[request.param]
    runs: list[str] = []
    helpers = _four_kinds(runs)

    def function(x: str) -> str:
        return "|".join([cache(helpers["function"])(x)])

    async def async_function(x: str) -> str:
        return "|".join([await cache(helpers["async function"])(x)])

    def generator(x: str) -> str:
        return "|".join(cache(helpers["generator"])(x))

    async def async_generator(x: str) -> str:
        return "|".join([part async for part in cache(helpers["async generator"])(x)])

    events = dict(zip(KINDS, (function, async_function, generator, async_generator)))
    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        for kind, fn in events.items():
            gr.Button().click(fn, inp, out, api_name=_api(kind))
    with serve(app) as url:
        yield request.param, url, runs


@pytest.mark.parametrize("kind", KINDS)
def test_event_function_miss_shows_no_badge_and_its_repeat_shows_from_cache(
    cached_events: tuple[str, str, list[str]], kind: str
) -> None:
    library, url, runs = cached_events
    miss = run_event(url, _api(kind), "ab")
    assert miss.used_cache is None, (
        f"{library}: the first run (a miss) of a cached {kind} showed the "
        f"{miss.used_cache!r} cache badge"
    )
    hit = run_event(url, _api(kind), "ab")
    assert hit.used_cache == "full", f"{library}: a repeat of a cached {kind} showed {hit.used_cache!r}"
    assert hit.data == miss.data
    assert hit.generating == miss.generating  # a generator hit streams every yield again
    assert runs.count(f"{kind} ab") == 1


@pytest.mark.parametrize("kind", KINDS)
def test_cached_helper_shows_used_cache_only_when_it_hits(
    cached_helpers: tuple[str, str, list[str]], kind: str
) -> None:
    library, url, runs = cached_helpers
    miss = run_event(url, _api(kind), "cd")
    assert miss.used_cache is None, (
        f"{library}: a run whose cached {kind} helper missed showed the "
        f"{miss.used_cache!r} cache badge"
    )
    hit = run_event(url, _api(kind), "cd")
    assert hit.used_cache == "partial", (
        f"{library}: a run whose cached {kind} helper hit showed {hit.used_cache!r}"
    )
    assert hit.data == miss.data
    assert runs.count(f"{kind} cd") == 1


@pytest.mark.parametrize("kind", ["function", "generator"])
def test_joining_an_identical_run_in_flight_shows_no_badge(kind: str) -> None:
    """A run that waited for an identical run's result computed nothing itself, but hit nothing either.

    gr.cache would compute both runs and show no badge on either; infercache
    computes once, and shows no badge either.
    """
    started, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def function(x: str) -> str:
        runs.append(x)
        started.set()
        assert release.wait(120), "the test never released the first run"
        return x.upper()

    def generator(x: str) -> Any:
        runs.append(x)
        started.set()
        assert release.wait(120), "the test never released the first run"
        yield x
        yield x.upper()

    slow = ic.cache(function if kind == "function" else generator)
    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(slow, inp, out, api_name="slow", concurrency_limit=2)

    with serve(app) as url, ThreadPoolExecutor(max_workers=2) as pool:
        try:
            first = pool.submit(run_event, url, "slow", "ef")
            wait_until(lambda: started.is_set() or first.done(), what="the first run to start")
            second = pool.submit(run_event, url, "slow", "ef")
            wait_until(lambda: slow.cache.stats().joins == 1 or second.done(),
                       what="the second run to join the first")
        finally:
            release.set()
        one, two = first.result(), second.result()
    assert runs == ["ef"]
    assert one.data == two.data
    assert (one.used_cache, two.used_cache) == (None, None)
