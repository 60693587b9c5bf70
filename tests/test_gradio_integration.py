"""infercache inside real Gradio apps, driven over HTTP with ``gradio_client``.

Each test launches a small app on 127.0.0.1 (a free port) and closes it. No
timing assertions: a slow miss is a function blocked on a ``threading.Event``,
so "the hit returned while the miss still held the only slot" is a fact about
ordering, not about durations. The badge tests read the queue's own messages
(``gradio_fixtures.run_event``), where the cache flag behind Gradio's badges is.
"""

# ruff: noqa: B008 - `c=ic.Cache()` and `gr.Progress()` defaults are how Gradio injects them

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client
from gradio_client.client import Job
from gradio_fixtures import run_event, serve, wait_until

import infercache as ic

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]


def client(url: str) -> Client:
    """A new client: a new Gradio session."""
    return Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix="ic-client-"))


def wait_started(event: threading.Event, job: Job) -> None:
    """Wait until ``event`` is set, failing early if ``job`` ended instead."""
    wait_until(lambda: event.is_set() or job.done(), what="the slow call to start")
    assert event.is_set(), f"the slow call ended before blocking: {job.exception()!r}"


# --------------------------------------------------------------------- queue bypass


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


def test_async_function_hit_bypasses_busy_slot() -> None:
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


# --------------------------------------------------------------------- manual Cache


def test_manual_cache_is_injected_and_hits() -> None:
    computed: list[str] = []

    def lookup(city: str, c: Any = ic.Cache()) -> str:
        key = " ".join(city.split()).casefold()
        hit = c.get(key)
        if hit is not None:
            return "hit:" + hit["v"]
        computed.append(key)
        c.set(key, v=key.title())
        return "miss:" + key.title()

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(lookup, inp, out, api_name="lookup")

    cache = lookup.__defaults__[0]  # type: ignore[index]
    assert isinstance(cache, gr.Cache), "Gradio must recognise ic.Cache as a gr.Cache"
    with serve(app) as url:
        c = client(url)
        assert c.predict(" New  York", api_name="/lookup") == "miss:New York"
        assert c.predict("NEW YORK", api_name="/lookup") == "hit:New York"
        assert client(url).predict("new york", api_name="/lookup") == "hit:New York"
        assert computed == ["new york"]
        assert cache.stats().hits == 2


def test_cache_default_of_a_decorated_function_is_not_part_of_the_key() -> None:
    calls: list[str] = []

    @ic.cache
    def f(x: str, request: gr.Request, progress: Any = gr.Progress(), c: Any = ic.Cache()) -> str:
        calls.append(x)
        assert request is not None and request.session_hash
        return x + "!"

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(f, inp, out, api_name="f")

    with serve(app) as url:
        assert client(url).predict("q", api_name="/f") == "q!"
        # Another session: another gr.Request, same progress/cache objects — one key.
        assert client(url).predict("q", api_name="/f") == "q!"
        assert calls == ["q"]


# --------------------------------------------------------------------- sessions


def test_per_session_decorator_entries_are_private_to_a_session() -> None:
    calls: list[str] = []

    @ic.cache(per_session=True)
    def mine(x: str) -> str:
        calls.append(x)
        return f"{x}#{len(calls)}"

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(mine, inp, out, api_name="mine")

    assert app.config is not None
    with serve(app) as url:
        alice, bob = client(url), client(url)
        assert alice.predict("x", api_name="/mine") == "x#1"
        assert alice.predict("x", api_name="/mine") == "x#1"  # hit in alice's session
        assert bob.predict("x", api_name="/mine") == "x#2"  # a miss in bob's
        assert bob.predict("x", api_name="/mine") == "x#2"
        assert calls == ["x", "x"]
        assert len(mine.cache) == 2
        # Dropping alice's session leaves bob's entry alone.
        ic.clear_session(alice.session_hash)
        assert len(mine.cache) == 1
        assert bob.predict("x", api_name="/mine") == "x#2"
        assert alice.predict("x", api_name="/mine") == "x#3"


def test_per_session_manual_cache_entries_are_private_to_a_session() -> None:
    def remember(text: str, c: Any = ic.Cache(per_session=True)) -> str:
        seen = c.get("last")
        c.set("last", v=text)
        return "none" if seen is None else seen["v"]

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(remember, inp, out, api_name="remember")

    with serve(app) as url:
        alice, bob = client(url), client(url)
        assert alice.predict("a1", api_name="/remember") == "none"
        assert alice.predict("a2", api_name="/remember") == "a1"
        assert bob.predict("b1", api_name="/remember") == "none"
        assert alice.predict("a3", api_name="/remember") == "a2"


def test_gradio_connects_the_heartbeat_for_infercache_per_session_caches() -> None:
    @ic.cache(per_session=True)
    def decorated(x: str) -> str:
        return x

    def manual(x: str, c: Any = ic.Cache(per_session=True)) -> str:
        return x

    @ic.cache
    def shared(x: str) -> str:
        return x

    def shared_manual(x: str, c: Any = ic.Cache()) -> str:
        return x

    def config_of(fn: Any) -> bool:
        with gr.Blocks() as app:
            inp, out = gr.Textbox(), gr.Textbox()
            gr.Button().click(fn, inp, out)
        return bool(app.get_config_file()["connect_heartbeat"])

    assert config_of(decorated) is True
    assert config_of(manual) is True
    assert config_of(shared) is False
    assert config_of(shared_manual) is False


def test_end_of_heartbeat_clears_that_session_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A page's heartbeat stream ending drops its session's entries (as a closed tab does)."""
    import httpx

    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.2")

    @ic.cache(per_session=True)
    def f(x: str) -> str:
        return x * 3

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(f, inp, out, api_name="f")

    with serve(app) as url:
        alice, bob = client(url), client(url)
        alice.predict("a", api_name="/f")
        bob.predict("b", api_name="/f")
        assert len(f.cache) == 2
        heartbeat = f"{url}gradio_api/heartbeat/{alice.session_hash}"
        with httpx.Client(timeout=30) as http, http.stream("GET", heartbeat) as r:
            assert r.status_code == 200
            next(r.iter_lines())  # the stream is open
        wait_until(lambda: len(f.cache) == 1, what="alice's entry to be dropped")
        hits = f.cache.stats().hits
        assert bob.predict("b", api_name="/f") == "bbb"
        assert f.cache.stats().hits == hits + 1


# --------------------------------------------------------------------- generators


def _job_outputs(job: Job) -> list[Any]:
    job.result()
    return list(job.outputs())


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
        first = _job_outputs(client(url).submit("this", api_name="/tokens"))
        assert first == ["this", "this is", "this is streamed", "this is streamed word",
                         "this is streamed word by", "this is streamed word by word"]
        slow = client(url).submit("slow", api_name="/tokens")
        wait_started(started, slow)
        try:
            replay = _job_outputs(client(url).submit("this", api_name="/tokens"))
            assert not slow.done()
        finally:
            release.set()
        assert replay == first
        slow.result()
        assert runs == ["this", "slow"]


def test_async_generator_hit_replays_every_yield_in_order() -> None:
    runs: list[str] = []

    @ic.cache
    async def summary(text: str) -> Any:
        runs.append(text)
        out = ""
        for sentence in text.split(". "):
            await asyncio.sleep(0)
            out += "- " + sentence + "\n"
            yield out

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(summary, inp, out, api_name="summary")

    with serve(app) as url:
        text = "one. two. three. four"
        first = _job_outputs(client(url).submit(text, api_name="/summary"))
        again = _job_outputs(client(url).submit(text, api_name="/summary"))
        assert len(first) == 4
        assert again == first
        assert runs == [text]


def test_chatbot_stream_replays_the_same_messages() -> None:
    runs: list[str] = []

    @ic.cache(per_session=True)
    def chat(message: str, history: list[dict[str, Any]]) -> Any:
        runs.append(message)
        history = list(history or []) + [{"role": "user", "content": message}]
        reply = ""
        for word in ["Hello", "there,", "you", "said", message]:
            reply += word + " "
            yield history + [{"role": "assistant", "content": reply.strip()}]

    with gr.Blocks() as app:
        bot, msg = gr.Chatbot(), gr.Textbox()
        gr.Button().click(chat, [msg, bot], bot, api_name="chat")

    with serve(app) as url:
        c = client(url)
        first = _job_outputs(c.submit("hi", [], api_name="/chat"))
        again = _job_outputs(c.submit("hi", [], api_name="/chat"))
        assert len(first) == 5 and again == first
        assert runs == ["hi"]
        # Another session computes its own stream.
        _job_outputs(client(url).submit("hi", [], api_name="/chat"))
        assert runs == ["hi", "hi"]


def test_streaming_audio_hit_replays_every_chunk() -> None:
    assert shutil.which("ffmpeg"), "Gradio streams audio through ffmpeg: install it (scripts/test.sh does)"
    seen: list[int] = []
    rate = 8000

    @ic.cache
    def beeps(n: float) -> Any:
        for i in range(int(n)):
            seen.append(i)
            t = np.arange(rate // 4) / rate
            yield rate, (np.sin(2 * np.pi * (300 + 100 * i) * t) * 8000).astype(np.int16)

    with gr.Blocks() as app:
        n = gr.Number(value=4)
        audio = gr.Audio(streaming=True)
        gr.Button().click(beeps, n, audio, api_name="beeps")

    with serve(app) as url:
        first = _job_outputs(client(url).submit(4, api_name="/beeps"))
        assert seen == [0, 1, 2, 3]
        again = _job_outputs(client(url).submit(4, api_name="/beeps"))
        assert seen == [0, 1, 2, 3]  # not recomputed
        assert len(again) == len(first) >= 1
        assert beeps.cache.stats().hits == 1


# --------------------------------------------------------------------- file outputs


def _gradio_cached_copies(name: str) -> list[Path]:
    root = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")
    return list(root.glob(f"*/{name}"))


def test_file_output_is_served_after_its_temp_files_are_cleaned() -> None:
    made: list[str] = []

    @ic.cache
    def render(text: str) -> str:
        fd, path = tempfile.mkstemp(suffix=f"-{text}.wav")
        os.close(fd)
        with wave.open(path, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes((np.arange(4000) % 200).astype(np.int16).tobytes() + text.encode() * 2)
        made.append(path)
        return path

    with gr.Blocks() as app:
        inp = gr.Textbox()
        out = gr.File()
        gr.Button().click(render, inp, out, api_name="render")

    with serve(app) as url:
        first = Path(client(url).predict("abc", api_name="/render"))
        expected = first.read_bytes()
        original = made[0]
        name = Path(original).name
        # The function's temp file and every copy Gradio made of it disappear.
        os.remove(original)
        for copy in _gradio_cached_copies(name):
            shutil.rmtree(copy.parent)
        second = Path(client(url).predict("abc", api_name="/render"))
        assert second.read_bytes() == expected
        assert len(made) == 1  # a hit
        # Now the original path holds other bytes: the hit still serves the kept ones.
        Path(original).write_bytes(b"something else entirely")
        for copy in _gradio_cached_copies(name):
            shutil.rmtree(copy.parent)
        third = Path(client(url).predict("abc", api_name="/render"))
        assert third.read_bytes() == expected
        assert len(made) == 1
        os.remove(original)


def test_image_filepath_and_filedata_outputs_survive_cleanup() -> None:
    from PIL import Image

    calls: list[int] = []
    written: list[str] = []

    @ic.cache
    def picture(seed: float) -> tuple[str, str]:
        calls.append(int(seed))
        arr = np.random.default_rng(int(seed)).integers(0, 255, (16, 16, 3)).astype(np.uint8)
        folder = tempfile.mkdtemp(prefix="ic-img-")
        path = os.path.join(folder, "pic.png")
        Image.fromarray(arr).save(path)
        written.append(folder)
        return path, f"seed {int(seed)}"

    with gr.Blocks() as app:
        seed = gr.Number(value=1)
        img = gr.Image(type="filepath")
        caption = gr.Textbox()
        gr.Button().click(picture, seed, [img, caption], api_name="picture")

    with serve(app) as url:
        path1, cap1 = client(url).predict(1, api_name="/picture")
        expected = Path(path1).read_bytes()
        shutil.rmtree(written[0])  # the function's temp folder is gone
        for copy in _gradio_cached_copies("pic.png"):
            shutil.rmtree(copy.parent)
        path2, cap2 = client(url).predict(1, api_name="/picture")
        assert Path(path2).read_bytes() == expected and cap2 == cap1
        assert calls == [1]



def test_kept_file_copies_are_deleted_with_their_entries() -> None:
    """The private copy of a file output lives exactly as long as a cache entry uses it."""
    import gc

    from infercache.integrations import gradio as integration

    folder = Path(tempfile.mkdtemp(prefix="ic-evict-"))

    @ic.cache(max_size=1)
    def write(n: int) -> str:
        path = folder / f"out-{n}.bin"
        path.write_bytes(bytes([n]) * 1000)
        return str(path)

    def copies() -> set[str]:
        return {p.name for p in integration._root().glob("*/out-*.bin")}

    write(1)
    assert "out-1.bin" in copies()
    write(2)  # evicts write(1)'s entry
    gc.collect()
    assert "out-1.bin" not in copies() and "out-2.bin" in copies()
    write.cache.clear()
    gc.collect()
    assert "out-2.bin" not in copies()
    shutil.rmtree(folder)


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
