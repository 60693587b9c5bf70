"""Uploaded files are keyed by their bytes: ``gr.Image(type="filepath")`` and path inputs in real servers.

Gradio saves each upload into its upload cache and hands a ``type="filepath"``
function the path. A cached function taking that path is keyed by the file's
content: the same bytes uploaded again under another name are a hit, a file
changed in place at the same path is a miss, and a path outside the upload
cache, or naming no file, is keyed as its characters.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from gradio_fixtures import client, serve
from PIL import Image

import infercache as ic
from infercache.integrations import gradio as ic_gradio
from infercache.keys import make_call_key, make_key
from infercache.keys.files import keyed_dirs

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]


def _png(path: Path, seed: int, size: tuple[int, int] = (48, 32)) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _upload_dir() -> Path:
    return Path(ic_gradio.upload_dirs()[0])


def test_the_upload_cache_gradio_names_is_keyed_by_content() -> None:
    """The integration names the very folder Gradio saves uploads into."""
    from gradio.utils import get_upload_folder

    folder = get_upload_folder().rstrip(os.sep) + os.sep
    assert folder in keyed_dirs()


def test_filepath_image_reupload_under_another_name_is_a_hit_and_a_change_in_place_a_miss(tmp_path: Path) -> None:
    computed: list[str] = []

    @ic.cache
    def describe(path: str | Path) -> str:
        computed.append(str(path))
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        return f"{pixels.shape[1]}x{pixels.shape[0]} {int(pixels.sum())}"

    def describe_as_path(text: str) -> str:
        return describe(Path(text))

    with gr.Blocks() as app:
        img, txt, out = gr.Image(type="filepath"), gr.Textbox(), gr.Textbox()
        gr.Button().click(describe, img, out, api_name="image")
        gr.Button().click(describe, txt, out, api_name="text")
        gr.Button().click(describe_as_path, txt, out, api_name="path")

    first = _png(tmp_path / "one.png", seed=1)
    second = tmp_path / "two.png"
    second.write_bytes(first.read_bytes())
    other = _png(tmp_path / "other.png", seed=2)
    with serve(app) as url:
        c = client(url)
        answer = c.predict(handle_file(str(first)), api_name="/image")
        assert len(computed) == 1
        uploaded = computed[0]
        assert uploaded.startswith(str(_upload_dir())), "the function must get a path in Gradio's upload cache"
        # The same bytes under another name, from another session: a hit.
        assert client(url).predict(handle_file(str(second)), api_name="/image") == answer
        assert len(computed) == 1
        # Other bytes: computed.
        other_answer = c.predict(handle_file(str(other)), api_name="/image")
        assert other_answer != answer and len(computed) == 2
        # The upload's path as a string input: the same content, a hit.
        assert c.predict(uploaded, api_name="/text") == answer
        assert len(computed) == 2
        # The file changed in place at the same path: the new content decides. Bytes seen
        # before are that content's entry; new bytes are computed.
        Path(uploaded).write_bytes(other.read_bytes())
        assert c.predict(uploaded, api_name="/text") == other_answer
        assert len(computed) == 2
        _png(Path(uploaded), seed=3)
        third_answer = c.predict(uploaded, api_name="/text")
        assert third_answer not in (answer, other_answer)
        assert len(computed) == 3
        # A pathlib path is keyed by content too (apart from str: a key is type-tagged).
        assert c.predict(uploaded, api_name="/path") == third_answer
        assert c.predict(uploaded, api_name="/path") == third_answer
        assert len(computed) == 4
        _png(Path(uploaded), seed=4)
        assert c.predict(uploaded, api_name="/path") not in (answer, other_answer, third_answer)
        assert len(computed) == 5


def test_paths_outside_the_upload_cache_and_missing_files_are_keyed_as_strings(tmp_path: Path) -> None:
    computed: list[str] = []

    @ic.cache
    def size(path: str) -> int:
        computed.append(path)
        return len(Path(path).read_bytes())

    with gr.Blocks() as app:
        txt, out = gr.Textbox(), gr.Number()
        gr.Button().click(size, txt, out, api_name="size")

    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"12345")
    missing = str(_upload_dir() / "no-such-folder-ic" / "missing.png")
    with serve(app) as url:
        c = client(url)
        assert c.predict(str(outside), api_name="/size") == 5
        outside.write_bytes(b"1234567")
        # Keyed by its characters, as any string: the earlier answer (documented).
        assert c.predict(str(outside), api_name="/size") == 5
        assert computed == [str(outside)]
        # A missing file in the upload cache: the function raises, every time (nothing cached).
        for _ in range(2):
            with pytest.raises(AppError, match="No such file"):
                c.predict(missing, api_name="/size")
        assert computed == [str(outside), missing, missing]
    assert make_call_key((str(outside),), ("path",)) == make_key((str(outside),))
    assert make_key(missing) == b"\x00" + make_key(missing)[1:] and missing.encode() in make_key(missing)


def test_a_directory_in_the_upload_cache_is_keyed_as_its_string() -> None:
    _upload_dir().mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=_upload_dir()))
    try:
        key = make_key(str(folder))
        assert key.startswith(b"\x00") and str(folder).encode() in key
    finally:
        folder.rmdir()


def test_gradio_temp_dir_names_the_upload_cache_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "uploads"
    folder.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))
    try:
        ic_gradio.key_uploads_by_content()
        from gradio.utils import get_upload_folder

        assert get_upload_folder().rstrip(os.sep) + os.sep in keyed_dirs()
        for name in ("a.png", "b.png"):
            (folder / name).write_bytes(b"same bytes")
        assert make_key(str(folder / "a.png")) == make_key(str(folder / "b.png"))
        default = os.path.join(tempfile.gettempdir(), "gradio") + os.sep
        assert default not in keyed_dirs()
    finally:
        monkeypatch.undo()  # the environment as it was, then the upload cache it names
        ic_gradio.key_uploads_by_content()
    assert str(folder) + os.sep not in keyed_dirs()
