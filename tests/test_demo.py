"""The demo app: the ``infercache demo`` command starts it, and its tabs answer.

One in-process server (module fixture) serves the API tests; one test runs the
real command in a subprocess; one drives a tab in Chromium to see the badge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gradio_fixtures import artifact_path, chromium, client, free_port, serve, wait_until

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def demo_app() -> Iterator[tuple[Any, str]]:
    from infercache.demo import build_demo

    app = build_demo()
    with serve(app) as url:
        yield app, url


def test_demo_command_starts_the_app_on_the_given_port() -> None:
    port = free_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from infercache.cli import main; sys.exit(main())",
         "demo", "--host", "127.0.0.1", "--port", str(port), "--no-warmup"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the demo exited: {proc.stdout.read() if proc.stdout else ''}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/config", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=180, what="the demo server to answer")
        config = httpx.get(f"http://127.0.0.1:{port}/config", timeout=10).json()
        assert config["title"] == "infercache demo"
        # The KV tab keeps a per-session cache: Gradio must connect the heartbeat.
        assert config["connect_heartbeat"] is True
        c = client(f"http://127.0.0.1:{port}/")
        assert c.predict("Paris", api_name="/lookup_city").startswith("**Paris**")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_cli_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    from infercache.cli import build_parser, main

    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip()
    args = build_parser().parse_args(["demo", "--port", "9999"])
    assert (args.host, args.port, args.kv_model) == ("127.0.0.1", 9999, None)


def test_city_lookup_normalizes_keys_and_hits(demo_app: tuple[Any, str]) -> None:
    app, url = demo_app
    cache = app.infercache_functions["city_cache"]
    c = client(url)
    first = c.predict("  Tokyo ", api_name="/lookup_city")
    assert "Japan" in first and "c.set('tokyo'" in first
    hits = cache.stats().hits
    again = client(url).predict("TOKYO", api_name="/lookup_city")
    assert "c.get('tokyo')" in again and "Japan" in again
    assert cache.stats().hits == hits + 1


def test_translation_and_summary_hits(demo_app: tuple[Any, str]) -> None:
    app, url = demo_app
    fns = app.infercache_functions
    c = client(url)
    assert c.predict("Hello my friend", "German", api_name="/translate") == "Hallo mein Freund"
    assert c.predict("Hello my friend", "German", api_name="/translate") == "Hallo mein Freund"
    assert fns["translate"].cache.stats().hits >= 1
    text = "Caching is good. Caching saves time. The sky is blue."
    job = c.submit(text, 2, api_name="/summarize")
    job.result()
    first = list(job.outputs())
    job = c.submit(text, 2, api_name="/summarize")
    job.result()
    assert list(job.outputs()) == first
    assert fns["summarize"].cache.stats().hits >= 1


def test_kv_tab_reuses_the_cached_prefix(demo_app: tuple[Any, str]) -> None:
    _, url = demo_app
    c = client(url)
    base = "The cache keeps the keys and values of every layer. "
    _, report1 = c.predict(base, 4, api_name="/generate")
    assert "reused **0**" in report1
    _, report2 = c.predict(base + "So a longer prompt", 4, api_name="/generate")
    n = len(base.encode())
    assert f"reused **{n}**" in report2
    # Another session has its own KV cache: nothing to reuse there.
    _, report3 = client(url).predict(base + "So a longer prompt", 4, api_name="/generate")
    assert "reused **0**" in report3


def test_helper_and_embedding_tabs(demo_app: tuple[Any, str]) -> None:
    app, url = demo_app
    fns = app.infercache_functions
    c = client(url)
    a1 = c.predict("How are generators cached?", api_name="/answer")
    a2 = c.predict("How are generators cached?", api_name="/answer")
    assert a1 == a2 and "Generators" in a1
    assert fns["retrieve"].cache.stats().hits >= 1
    info1, sims1 = c.predict("A kitten naps in the sun.", api_name="/embed")
    info2, sims2 = c.predict("A kitten naps in the sun.", api_name="/embed")
    assert "Real inference" in info1 and (info1, sims1) == (info2, sims2)
    assert sims1["label"] == "A cat sits on the warm windowsill."  # a real model at work
    assert fns["embed"].cache.stats().hits >= 1


def test_melody_wav_is_served_on_a_hit(demo_app: tuple[Any, str]) -> None:
    app, url = demo_app
    c = client(url)
    job = c.submit("abc", api_name="/melody")
    job.result()
    wav1 = [o for o in job.outputs() if o[1]][-1][1]
    job = c.submit("abc", api_name="/melody")
    job.result()
    wav2 = [o for o in job.outputs() if o[1]][-1][1]
    with open(wav1, "rb") as f1, open(wav2, "rb") as f2:
        assert f1.read() == f2.read()
    assert app.infercache_functions["melody"].cache.stats().hits >= 1


def _sample_png(folder: str, name: str, rgb: tuple[int, int, int]) -> str:
    import numpy as np
    from PIL import Image

    path = os.path.join(folder, name)
    Image.fromarray(np.full((40, 60, 3), rgb, dtype=np.uint8)).save(path)
    return path


def _picture_and_renamed_copy(name: str, rgb: tuple[int, int, int]) -> tuple[str, str, str]:
    """A new folder with a PNG of one colour and the same bytes under another name: ``(folder, first, renamed)``."""
    folder = tempfile.mkdtemp(prefix="ic-demo-img-")
    first = _sample_png(folder, name, rgb)
    renamed = os.path.join(folder, "renamed-" + name)
    shutil.copyfile(first, renamed)
    return folder, first, renamed


def test_classifier_takes_a_file_path_and_a_reupload_under_another_name_is_a_hit(
    demo_app: tuple[Any, str],
) -> None:
    from gradio_client import handle_file

    app, url = demo_app
    classify = app.infercache_functions["classify"]
    folder, first, renamed = _picture_and_renamed_copy("apple.png", (200, 30, 30))
    before = classify.cache.stats()
    label = client(url).predict(handle_file(first), api_name="/classify")
    assert label["label"] == "red"
    # The same bytes under another name, from another session: answered from the cache.
    assert client(url).predict(handle_file(renamed), api_name="/classify") == label
    after = classify.cache.stats()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    # Other pixels: computed.
    green = client(url).predict(handle_file(_sample_png(folder, "leaf.png", (30, 180, 40))), api_name="/classify")
    assert green["label"] == "green" and classify.cache.stats().misses == after.misses + 1


@pytest.mark.browser
def test_classifier_tab_reupload_under_another_name_shows_the_from_cache_badge(
    demo_app: tuple[Any, str],
) -> None:
    app, url = demo_app
    classify = app.infercache_functions["classify"]
    _, first, renamed = _picture_and_renamed_copy("sky.png", (40, 60, 210))
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Classifier (sync)").click()
        button = page.get_by_role("button", name="Classify")
        misses = classify.cache.stats().misses
        page.locator("input[type=file]").first.set_input_files(first)
        button.click()
        wait_until(lambda: classify.cache.stats().misses > misses, what="the first picture to be computed")
        page.get_by_text("blue").first.wait_for(state="visible", timeout=60_000)
        page.get_by_role("button", name="Remove Image").click()
        page.locator("input[type=file]").first.set_input_files(renamed)
        button.click()
        page.get_by_text("from cache").first.wait_for(state="visible", timeout=30_000)
        page.screenshot(path=str(artifact_path("demo-classifier-from-cache.png")), full_page=True)
        assert classify.cache.stats().misses == misses + 1


@pytest.mark.browser
def test_demo_tab_shows_the_from_cache_badge(demo_app: tuple[Any, str]) -> None:
    app, url = demo_app
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Translation (async)").click()
        page.get_by_label("English text").fill("Thank you my friend")
        button = page.get_by_role("button", name="Translate")
        button.click()
        wait_until(lambda: page.get_by_label("Translation").input_value() == "Merci vous mon ami",
                   what="the translation")
        button.click()
        page.get_by_text("from cache").first.wait_for(state="visible", timeout=30_000)
        page.screenshot(path=str(artifact_path("demo-translation-from-cache.png")), full_page=True)
        page.locator("button:visible", has_text="Refresh stats").click()
        stats = page.locator("p:visible", has_text="time saved")
        hits = app.infercache_functions["translate"].cache.stats().hits
        assert hits >= 1
        wait_until(lambda: f"{hits} hits" in stats.inner_text(), what="the stats line to count the hit")
