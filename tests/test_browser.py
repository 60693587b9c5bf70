"""infercache in a real browser: Playwright driving Debian's headless Chromium.

The badges are Gradio's own UI (``from cache`` for a queue-bypassing hit of a
decorated function, ``used cache`` for a ``Cache.get`` hit inside a run);
screenshots of them are written to ``artifacts/`` at the repository root.
"""

from __future__ import annotations

import threading
from typing import Any

import gradio as gr
import pytest
from gradio_fixtures import artifact_path, chromium, serve, wait_until

import infercache as ic

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.timeout(240)]


def _submit(page: Any, text: str, button: str = "Run") -> None:
    page.get_by_label("Input").fill(text)
    page.get_by_role("button", name=button).click()


def test_from_cache_badge_after_a_repeated_submit() -> None:
    calls: list[str] = []

    @ic.cache
    def shout(text: str) -> str:
        calls.append(text)
        return text.upper() + "!"

    with gr.Blocks() as app:
        inp = gr.Textbox(label="Input")
        out = gr.Textbox(label="Output")
        gr.Button("Run").click(shout, inp, out)

    with serve(app) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        _submit(page, "hello")
        wait_until(lambda: page.get_by_label("Output").input_value() == "HELLO!", what="first result")
        assert page.get_by_text("from cache").count() == 0
        _submit(page, "hello")
        badge = page.get_by_text("from cache").first
        badge.wait_for(state="visible", timeout=30_000)
        page.screenshot(path=str(artifact_path("badge-from-cache.png")), full_page=True)
        assert page.get_by_label("Output").input_value() == "HELLO!"
        assert calls == ["hello"]


def test_used_cache_badge_after_a_manual_cache_hit() -> None:
    def lookup(text: str, c: Any = ic.Cache()) -> str:
        key = text.strip().casefold()
        hit = c.get(key)
        if hit is not None:
            return hit["v"]
        c.set(key, v=f"looked up {key}")
        return f"looked up {key}"

    with gr.Blocks() as app:
        inp = gr.Textbox(label="Input")
        out = gr.Textbox(label="Output")
        gr.Button("Run").click(lookup, inp, out)

    with serve(app) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        _submit(page, "Paris")
        wait_until(lambda: page.get_by_label("Output").input_value() == "looked up paris",
                   what="first result")
        assert page.get_by_text("used cache").count() == 0
        _submit(page, "  PARIS ")
        badge = page.get_by_text("used cache").first
        badge.wait_for(state="visible", timeout=30_000)
        page.screenshot(path=str(artifact_path("badge-used-cache.png")), full_page=True)
        assert page.get_by_text("from cache").count() == 0


def test_used_cache_badge_after_a_cached_helper_hit() -> None:
    """A runtime-wrapped helper hit inside an event is reported like gr.cache reports it."""
    retrieved: list[str] = []

    def retrieve(query: str) -> str:
        retrieved.append(query)
        return f"docs for {query}"

    def answer(text: str) -> str:
        return "answer from " + ic.cache(retrieve)(text.strip().casefold())

    with gr.Blocks() as app:
        inp = gr.Textbox(label="Input")
        out = gr.Textbox(label="Output")
        gr.Button("Run").click(answer, inp, out)

    with serve(app) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        _submit(page, "kv caches")
        wait_until(lambda: page.get_by_label("Output").input_value() == "answer from docs for kv caches",
                   what="first result")
        assert page.get_by_text("used cache").count() == 0
        _submit(page, "KV Caches ")
        page.get_by_text("used cache").first.wait_for(state="visible", timeout=30_000)
        page.screenshot(path=str(artifact_path("badge-helper-used-cache.png")), full_page=True)
        assert retrieved == ["kv caches"]


def test_closing_one_tab_drops_only_its_session_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    # A short heartbeat, so the server notices a closed tab quickly.
    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.25")
    calls: list[str] = []
    lock = threading.Lock()

    @ic.cache(per_session=True)
    def private(text: str) -> str:
        with lock:
            calls.append(text)
            return f"{text} (computation #{len(calls)})"

    def notes(text: str, c: Any = ic.Cache(per_session=True)) -> str:
        hit = c.get("note")
        c.set("note", v=text)
        return "previous: " + (hit["v"] if hit else "none")

    with gr.Blocks() as app:
        inp = gr.Textbox(label="Input")
        out = gr.Textbox(label="Output")
        out2 = gr.Textbox(label="Notes")
        # Separate buttons: Gradio's page hides a cache badge while a chained event runs.
        gr.Button("Run").click(private, inp, out)
        gr.Button("Note").click(notes, inp, out2)

    # Nothing in this app but infercache caches needs a heartbeat.
    assert app.get_config_file()["connect_heartbeat"] is True
    note_cache = notes.__defaults__[0]  # type: ignore[index]

    with serve(app) as url, chromium() as browser:
        context = browser.new_context()
        one, two = context.new_page(), context.new_page()
        for page, text in ((one, "alpha"), (two, "beta")):
            page.goto(url)
            _submit(page, text)
            wait_until(lambda p=page, t=text: p.get_by_label("Output").input_value().startswith(t),
                       what=f"{text} to finish")
            page.get_by_role("button", name="Note").click()
            wait_until(lambda p=page: p.get_by_label("Notes").input_value() == "previous: none",
                       what=f"{text}'s note")
        assert len(private.cache) == 2 and len(note_cache) == 2
        # The same input in tab two is a miss: tab one's entry is not visible there.
        _submit(two, "alpha")
        wait_until(lambda: two.get_by_label("Output").input_value() == "alpha (computation #3)",
                   what="tab two's own computation of alpha")
        assert len(private.cache) == 3
        two.screenshot(path=str(artifact_path("tabs-before-close.png")), full_page=True)

        one.close()
        wait_until(lambda: len(private.cache) == 2 and len(note_cache) == 1,
                   what="tab one's entries to be dropped")

        # Tab two's entries are still there: a repeat is a hit.
        _submit(two, "beta")
        two.get_by_text("from cache").first.wait_for(state="visible", timeout=30_000)
        wait_until(lambda: two.get_by_label("Output").input_value() == "beta (computation #2)",
                   what="tab two's cached beta")
        two.screenshot(path=str(artifact_path("tabs-after-close.png")), full_page=True)
        two.get_by_role("button", name="Note").click()
        wait_until(lambda: two.get_by_label("Notes").input_value() == "previous: beta",
                   what="tab two's note")
        assert calls == ["alpha", "beta", "alpha"]
        context.close()
