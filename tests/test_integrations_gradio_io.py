"""Inputs and outputs of cached Gradio events, in real servers driven by ``gradio_client``.

What is keyed (a ``gr.State``'s content, batches; injected ``gr.Request``,
``gr.Progress`` and ``Cache()`` defaults left out), what a hit replays
(streams, chat messages, audio chunks, image pixels), and file outputs kept
past Gradio's temp-file cleanup, their private copies deleted with their
entries.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import wave
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pytest
from gradio_fixtures import client, outputs, serve
from PIL import Image

import infercache as ic

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]


# --------------------------------------------------------------------- inputs


def test_manual_cache_default_is_a_gr_cache_and_hits() -> None:
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


def test_request_progress_and_cache_defaults_are_left_out_of_the_key() -> None:
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


def test_a_batch_function_hits() -> None:
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


# --------------------------------------------------------------------- streams


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
        first = outputs(client(url).submit(text, api_name="/summary"))
        again = outputs(client(url).submit(text, api_name="/summary"))
        assert len(first) == 4
        assert again == first
        assert runs == [text]


def test_chatbot_stream_replays_the_same_messages() -> None:
    runs: list[str] = []

    @ic.cache(per_session=True)
    def chat(message: str, history: list[dict[str, Any]]) -> Any:
        runs.append(message)
        history = [*(history or []), {"role": "user", "content": message}]
        reply = ""
        for word in ["Hello", "there,", "you", "said", message]:
            reply += word + " "
            yield [*history, {"role": "assistant", "content": reply.strip()}]

    with gr.Blocks() as app:
        bot, msg = gr.Chatbot(), gr.Textbox()
        gr.Button().click(chat, [msg, bot], bot, api_name="chat")

    with serve(app) as url:
        c = client(url)
        first = outputs(c.submit("hi", [], api_name="/chat"))
        again = outputs(c.submit("hi", [], api_name="/chat"))
        assert len(first) == 5 and again == first
        assert runs == ["hi"]
        # Another session computes its own stream.
        outputs(client(url).submit("hi", [], api_name="/chat"))
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
        first = outputs(client(url).submit(4, api_name="/beeps"))
        assert seen == [0, 1, 2, 3]
        again = outputs(client(url).submit(4, api_name="/beeps"))
        assert seen == [0, 1, 2, 3]  # not recomputed
        assert len(again) == len(first) >= 1
        assert beeps.cache.stats().hits == 1


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


# --------------------------------------------------------------------- images and files


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
