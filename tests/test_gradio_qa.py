"""QA of infercache inside real Gradio servers, driven by ``gradio_client``.

Tests marked ``xfail(strict=True)`` reproduce a defect found during QA; they
start passing (and so fail the run) once it is fixed, when the mark should be
removed. The others pin behaviours verified during QA that
``test_gradio_integration.py`` does not cover. No timing assertions: slow
calls block on a ``threading.Event``.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from typing import Any

import gradio as gr
import gradio.caching as gr_caching
import numpy as np
import pytest
from gradio_client import Client
from gradio_client.client import Job
from gradio_client.exceptions import AppError
from gradio_fixtures import serve, wait_until
from PIL import Image

import infercache as ic

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]


def client(url: str) -> Client:
    """A new client: a new Gradio session."""
    return Client(url, verbose=False, download_files=tempfile.mkdtemp(prefix="ic-qa-"))


def wait_started(event: threading.Event, job: Job) -> None:
    wait_until(lambda: event.is_set() or job.done(), what="the slow call to start")
    assert event.is_set(), f"the slow call ended before blocking: {job.exception()!r}"


def outputs(job: Job) -> list[Any]:
    job.result()
    return list(job.outputs())


# --------------------------------------------------------------------- defects


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

    with serve(app) as url:
        with pytest.raises(AppError, match="cannot build a cache key"):
            client(url).predict("a", api_name="/f")
    assert calls == []


def test_key_function_error_reaches_the_client_as_an_event_error() -> None:
    @ic.cache(key=lambda kw: kw["prompt"]["missing"])
    def f(prompt: str) -> str:
        return prompt

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(f, inp, out, api_name="f")

    with serve(app) as url:
        with pytest.raises(AppError, match="key= function"):
            client(url).predict("a", api_name="/f")


# --------------------------------------------------------------------- errors


def test_exception_is_shown_and_nothing_is_cached() -> None:
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


# --------------------------------------------------------------------- queue bypass


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


def test_request_and_progress_parameters_hit_bypasses_a_busy_slot() -> None:
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


# --------------------------------------------------------------------- sessions


def test_per_session_identical_calls_of_two_sessions_do_not_join() -> None:
    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    @ic.cache(per_session=True)
    def f(x: str, request: gr.Request) -> str:
        calls.append(request.session_hash)
        if len(calls) == 1:
            started.set()
            assert release.wait(120)
        return f"{x}:{request.session_hash}"

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(f, inp, out, api_name="f", concurrency_limit=4)

    with serve(app) as url:
        alice, bob = client(url), client(url)
        a_job = alice.submit("x", api_name="/f")
        wait_started(started, a_job)
        try:
            # Bob's identical call computes his own result while alice's is in flight.
            assert bob.predict("x", api_name="/f") == f"x:{bob.session_hash}"
        finally:
            release.set()
        assert a_job.result() == f"x:{alice.session_hash}"
        assert alice.predict("x", api_name="/f") == f"x:{alice.session_hash}"
        assert bob.predict("x", api_name="/f") == f"x:{bob.session_hash}"
    assert len(calls) == 2
    assert f.cache.stats().joins == 0


def test_clearing_a_session_drops_only_its_manual_cache_entries() -> None:
    def remember(x: str, c: Any = ic.Cache(per_session=True)) -> str:
        seen = c.get("last")
        c.set("last", v=x)
        return "none" if seen is None else seen["v"]

    with gr.Blocks() as app:  # no gr.State: the per-session cache alone needs the heartbeat
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(remember, inp, out, api_name="remember")

    cache = remember.__defaults__[0]  # type: ignore[index]
    assert app.get_config_file()["connect_heartbeat"] is True
    with serve(app) as url:
        alice, bob = client(url), client(url)
        assert alice.predict("a1", api_name="/remember") == "none"
        assert bob.predict("b1", api_name="/remember") == "none"
        assert len(cache) == 2
        gr_caching.clear_session_caches(alice.session_hash)  # what the heartbeat's end calls
        assert len(cache) == 1
        assert alice.predict("a2", api_name="/remember") == "none"
        assert bob.predict("b2", api_name="/remember") == "b1"


# --------------------------------------------------------------------- inputs and outputs


def test_state_input_is_keyed_by_its_content() -> None:
    calls: list[tuple[str, list[str]]] = []

    @ic.cache
    def f(x: str, history: list[str]) -> tuple[str, list[str]]:
        calls.append((x, list(history)))
        return f"{x}{history}", [*history, x]

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        state = gr.State([])
        gr.Button().click(f, [inp, state], [out, state], api_name="f")

    with serve(app) as url:
        c = client(url)
        assert c.predict("a", api_name="/f") == "a[]"
        assert c.predict("a", api_name="/f") == "a['a']"  # new state content: a miss
        assert client(url).predict("a", api_name="/f") == "a[]"  # fresh state: a hit
    assert calls == [("a", []), ("a", ["a"])]
    assert f.cache.stats().hits == 1


def test_batch_function_hit() -> None:
    calls: list[list[str]] = []

    @ic.cache
    def f(xs: list[str]) -> list[list[str]]:
        calls.append(list(xs))
        return [[x.upper() for x in xs]]

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(f, inp, out, api_name="f", batch=True, max_batch_size=4)

    with serve(app) as url:
        assert client(url).predict("a", api_name="/f") == "A"
        assert client(url).predict("a", api_name="/f") == "A"
        assert client(url).predict("b", api_name="/f") == "B"
    assert calls == [["a"], ["b"]]


def test_numpy_image_output_hit_serves_the_same_pixels() -> None:
    calls: list[int] = []

    @ic.cache
    def f(n: float) -> np.ndarray:
        calls.append(int(n))
        img = np.zeros((8, 8, 3), dtype=np.uint8)
        img[..., 0] = int(n)
        return img

    with gr.Blocks() as app:
        inp, out = gr.Number(), gr.Image(format="png")
        gr.Button().click(f, inp, out, api_name="f")

    with serve(app) as url:
        first = client(url).predict(7, api_name="/f")
        again = client(url).predict(7, api_name="/f")
        a, b = np.asarray(Image.open(first)), np.asarray(Image.open(again))
        assert a.shape == (8, 8, 3) and int(a[..., 0].max()) == 7
        np.testing.assert_array_equal(a, b)
    assert calls == [7]


def test_two_apps_in_one_process_share_a_decorated_function_store() -> None:
    calls: list[str] = []

    @ic.cache
    def f(x: str) -> str:
        calls.append(x)
        return x * 2

    apps = []
    for _ in range(2):
        with gr.Blocks() as app:
            inp, out = gr.Textbox(), gr.Textbox()
            gr.Button().click(f, inp, out, api_name="f")
        apps.append(app)

    with serve(apps[0]) as first, serve(apps[1]) as second:
        assert client(first).predict("q", api_name="/f") == "qq"
        assert client(second).predict("q", api_name="/f") == "qq"
    assert calls == ["q"]


def test_manual_cache_hit_inside_a_generator_event_replays_the_stream() -> None:
    computed: list[str] = []

    def stream(x: str, c: Any = ic.Cache()) -> Any:
        hit = c.get(x)
        if hit is not None:
            yield from hit["chunks"]
            return
        computed.append(x)
        chunks = []
        for k in range(3):
            chunks.append(f"{x}{k}")
            yield chunks[-1]
        c.set(x, chunks=chunks)

    with gr.Blocks() as app:
        inp, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(stream, inp, out, api_name="stream")

    with serve(app) as url:
        first = outputs(client(url).submit("q", api_name="/stream"))
        again = outputs(client(url).submit("q", api_name="/stream"))
    assert first == again == ["q0", "q1", "q2"]
    assert computed == ["q"]


def test_guide_key_example_with_per_session_in_an_app() -> None:
    calls: list[tuple[str, float]] = []

    @ic.cache(key=lambda kw: kw["prompt"], max_size=256, max_memory="512mb", per_session=True)
    def generate(prompt: str, temperature: float = 0.7) -> str:
        calls.append((prompt, temperature))
        return f"{prompt}@{temperature}"

    with gr.Blocks() as app:
        prompt, temp, out = gr.Textbox(), gr.Number(), gr.Textbox()
        gr.Button().click(generate, [prompt, temp], out, api_name="generate")

    assert app.get_config_file()["connect_heartbeat"] is True
    with serve(app) as url:
        alice, bob = client(url), client(url)
        assert alice.predict("hi", 0.1, api_name="/generate") == "hi@0.1"
        assert alice.predict("hi", 0.9, api_name="/generate") == "hi@0.1"  # temperature ignored
        assert bob.predict("hi", 0.9, api_name="/generate") == "hi@0.9"  # bob's own entry
    assert calls == [("hi", 0.1), ("hi", 0.9)]
    generate.cache.clear()
    assert len(generate.cache) == 0
