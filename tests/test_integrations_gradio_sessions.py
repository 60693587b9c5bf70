"""Per-session caches in Gradio apps: Gradio's session hash is the session.

Entries of per-session decorated functions and ``Cache(per_session=True)``
are private to a browser session; identical calls of two sessions never join;
Gradio connects the heartbeat for infercache's per-session caches, and the end
of a session's heartbeat drops that session's entries only. Real servers,
driven by ``gradio_client`` (each client is a new session).
"""

from __future__ import annotations

import threading
from typing import Any

import gradio as gr
import gradio.caching as gr_caching
import pytest
from gradio_fixtures import client, serve, wait_started, wait_until

import infercache as ic

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]


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
