"""File outputs of cached Gradio functions in the persistent and shared tiers.

A file output is kept as a :class:`~infercache.integrations.gradio.KeptFile`
(original path + private content-addressed copy). In a tier it is stored by
content: the record carries the bytes, and reading it back writes them into
this process's own directory of kept copies, never anywhere else, and a hit
serves that copy (same name, same bytes, the type returned). The first
half checks that through the codec in this process; the second half runs real
Gradio servers in separate processes, driven by ``gradio_client``: a disk
store that survives a restart, and two servers sharing one ``redis-server``.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import secrets
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import gradio as gr  # noqa: F401 - loads the Gradio integration
import pytest
from gradio.data_classes import FileData
from gradio_client import Client
from gradio_fixtures import client as new_client
from gradio_fixtures import wait_until
from redis_fixtures import redis_server, redis_url  # noqa: F401 - pytest fixtures

from infercache.codec import Codec, CorruptEntry
from infercache.config import Settings
from infercache.engine import Engine
from infercache.integrations import gradio as integration
from infercache.tiers import MemoryTier

SECRET = b"gradio-tiers-test-secret-0123456789"
NAME = b"infercache/1/{tests.gradio_tiers.f/v}//00"


def engine() -> Engine:
    return Engine(Settings.of(), "tests.gradio_tiers.f", tiers=[MemoryTier()], codec=Codec(SECRET))


def kept_output(value: Any) -> Any:
    """What the engine keeps for ``value`` returned by a cached function inside Gradio."""
    return engine().keep(value, [integration.INTEGRATION])


def through_a_tier(kept: Any) -> Any:
    """``kept`` written as a tier record and read back (what another process would read)."""
    codec = Codec(SECRET)
    return codec.loads(NAME, codec.dumps(NAME, kept))


def write_file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def in_root(path: str | Path) -> bool:
    root = integration._root().resolve()
    return Path(path).resolve().is_relative_to(root)


# --------------------------------------------------------------------- by content, in this process


def test_a_file_output_read_back_from_a_tier_is_rewritten_from_the_records_bytes(tmp_path: Path) -> None:
    data = b"RIFF" + bytes(range(256)) * 40
    path = write_file(tmp_path, "voice.wav", data)
    kept = kept_output((str(path), path, FileData(path=str(path)), "caption"))
    record = Codec(SECRET).dumps(NAME, kept)
    # The function's file and this process's own copy both disappear: only the record holds the bytes.
    path.unlink()
    del kept
    gc.collect()
    assert not list(integration._root().glob("*/voice.wav"))

    loaded = Codec(SECRET).loads(NAME, record)  # held, as the memory store holds a promoted entry
    as_str, as_path, file_data, caption = engine().deliver(loaded)
    assert caption == "caption"
    assert isinstance(as_str, str) and isinstance(as_path, Path)
    assert isinstance(file_data, FileData) and isinstance(file_data.path, str)
    for served in (as_str, as_path, file_data.path):
        assert in_root(served), "a record's file is rewritten in the blob root"
        assert Path(served).name == "voice.wav"
        assert Path(served).read_bytes() == data
    assert not path.exists(), "a file read back from a tier is never created at its original path"


def test_a_file_read_back_from_a_tier_is_served_from_this_processs_copy_even_where_its_original_exists(
    tmp_path: Path,
) -> None:
    # The original path belongs to the process that wrote the record (it may delete it
    # at any time, and this app may not be allowed to serve it): it is neither served nor touched.
    path = write_file(tmp_path, "pic.png", b"\x89PNG same bytes")
    codec = Codec(SECRET)
    record = codec.dumps(NAME, kept_output(str(path)))
    loaded = codec.loads(NAME, record)
    served = engine().deliver(loaded)
    assert served != str(path) and in_root(served) and Path(served).read_bytes() == b"\x89PNG same bytes"
    path.write_bytes(b"\x89PNG else bytes")
    assert engine().deliver(codec.loads(NAME, record)) == served, "the same content and name: one copy"
    assert path.read_bytes() == b"\x89PNG else bytes"


def test_the_same_content_and_name_share_one_kept_copy(tmp_path: Path) -> None:
    a = write_file(tmp_path, "a.bin", b"same")
    (tmp_path / "sub").mkdir()
    b = write_file(tmp_path / "sub", "a.bin", b"same")
    c = write_file(tmp_path, "c.bin", b"same")
    kept = [through_a_tier(kept_output(str(p))) for p in (a, b, c)]
    for p in (a, b, c):
        p.unlink()
    served = [engine().deliver(k) for k in kept]  # ``kept`` holds the copies
    assert served[0] == served[1], "same bytes and name: one copy"
    assert served[2] != served[0] and Path(served[2]).name == "c.bin"


def test_a_record_pickled_with_an_older_protocol_carries_the_bytes_too(tmp_path: Path) -> None:
    path = write_file(tmp_path, "clip.mp4", b"\x00\x00\x00\x18ftypmp42")
    kept = kept_output(path)
    back = pickle.loads(pickle.dumps(kept, protocol=4))
    path.unlink()
    served = engine().deliver(back)
    assert isinstance(served, Path) and served.read_bytes() == b"\x00\x00\x00\x18ftypmp42"


def test_a_kept_file_whose_copy_vanished_stays_in_memory_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_file(tmp_path, "gone.wav", b"bytes")
    e = engine()
    kept = e.keep(str(path), [integration.INTEGRATION])
    (copy,) = integration._root().glob("*/gone.wav")
    copy.unlink()
    with pytest.raises(pickle.PicklingError, match=r"kept copy of the file output .*gone\.wav.* is gone"):
        Codec(SECRET).dumps(NAME, kept)
    full = ("", b"\x01" * 32)
    with caplog.at_level(logging.INFO, logger="infercache"):
        assert e.save(full, kept, e.store.begin(*full))
    assert any("memory only" in r.getMessage() for r in caplog.records)
    assert e.lookup(full) is not None, "the entry is kept in memory"
    assert not list(e.tiers[0].entries()) and e.tiers[0].get(e.keyspace.name("", full[1])) is None


def test_a_file_whose_name_another_process_would_refuse_is_kept_under_a_plain_name(tmp_path: Path) -> None:
    path = write_file(tmp_path, "back\\slash.wav", b"odd name")
    loaded = through_a_tier(kept_output(str(path)))
    path.unlink()
    served = engine().deliver(loaded)
    assert Path(served).name == "file" and Path(served).read_bytes() == b"odd name"


class _Forged:
    """Pickles as a kept file whose name tries to leave the blob root (a signed record from a bad writer)."""

    def __init__(self, name: Any) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (integration._restore_kept_file, (b"payload", "out.wav", self.name))


@pytest.mark.parametrize(
    "name",
    ["../escaped.wav", "../../escaped.wav", "ABSOLUTE", "sub/escaped.wav", "sub\\escaped.wav", "..", ".", "",
     "nul\x00escaped.wav", "e" * 300, None, b"escaped.wav"],
)
def test_a_record_naming_a_file_outside_the_blob_root_is_refused(name: Any) -> None:
    root = integration._root()
    outside = Path(tempfile.gettempdir(), "escaped.wav")
    if name == "ABSOLUTE":
        name = str(outside)
    before = set(root.rglob("*"))
    codec = Codec(SECRET)
    with pytest.raises(CorruptEntry, match=r"plain file name|cannot be encoded|longer than"):
        codec.loads(NAME, codec.dumps(NAME, _Forged(name)))
    assert set(root.rglob("*")) == before, "nothing is written, not even inside the root"
    assert not outside.exists() and not (root / "escaped.wav").exists()


def test_a_record_with_a_plain_name_is_accepted() -> None:
    codec = Codec(SECRET)
    kept = codec.loads(NAME, codec.dumps(NAME, _Forged("out.wav")))
    assert isinstance(kept, integration.KeptFile)
    served = kept.materialize()
    assert in_root(served) and Path(served).read_bytes() == b"payload"


# --------------------------------------------------------------------- real servers in separate processes

APP = textwrap.dedent(
    """
    import os
    import socket
    import sys
    import wave

    import gradio as gr

    import infercache as ic

    store, calls, out, url_file = sys.argv[1:5]


    def called(name, text):
        with open(os.path.join(calls, name), "a") as f:
            f.write(text + "\\n")


    @ic.cache(store=store)
    def shout(text):
        called("shout", text)
        return text.upper() + "!"


    @ic.cache(store=store)
    def speak(text):
        called("speak", text)
        path = os.path.join(out, "speech-" + text + ".wav")
        with wave.open(path, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(bytes((i * len(text)) % 251 for i in range(8000)) + text.encode())
        return path, "said " + text


    with gr.Blocks() as app:
        text = gr.Textbox()
        loud, audio, caption = gr.Textbox(), gr.Audio(type="filepath"), gr.Textbox()
        gr.Button().click(shout, text, loud, api_name="shout")
        gr.Button().click(speak, text, [audio, caption], api_name="speak")

    for attempt in range(5):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            app.launch(
                server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, show_error=True
            )
            break
        except OSError:
            if attempt == 4:
                raise
    with open(url_file + ".part", "w") as f:
        f.write(f"http://127.0.0.1:{port}/")
    os.replace(url_file + ".part", url_file)
    app.block_thread()
    """
)


#: INFERCACHE_SECRET of every app process: replicas sharing a store share it.
SHARED_SECRET = secrets.token_hex(16)


class AppProcess:
    """The app above in a fresh Python process: its own calls log, output folder and Gradio temp dir."""

    def __init__(self, folder: Path, store: str, secret: str) -> None:
        self.folder = folder
        self.calls = folder / "calls"
        # Its temporary directory (where Gradio serves files from, and infercache keeps
        # its copies) is inside the test's, so nothing outlives the test.
        self.tmp = folder / "tmp"
        self.out = self.tmp / "out"  # where its function writes files
        for d in (self.calls, self.out):
            d.mkdir(parents=True)
        script = folder / "app.py"
        script.write_text(APP)
        self.url_file = folder / "url"
        self.log = folder / "server.log"
        env = {k: v for k, v in os.environ.items() if k != "INFERCACHE_STORE"}
        env.update(
            INFERCACHE_SECRET=secret,
            GRADIO_ANALYTICS_ENABLED="False",
            GRADIO_TEMP_DIR=str(folder / "gradio"),
            TMPDIR=str(self.tmp),
        )
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), store, str(self.calls), str(self.out), str(self.url_file)],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )

    def client(self) -> Client:
        """A new client (a new Gradio session) once the server answers; it downloads into the app's folder."""
        wait_until(lambda: self.url_file.exists() or self.proc.poll() is not None, timeout=120, what="the app")
        assert self.proc.poll() is None, f"the app exited:\n{self.log.read_text(errors='replace')[-3000:]}"
        return new_client(self.url_file.read_text(), str(self.folder / "downloads"))

    def computed(self, name: str) -> list[str]:
        """The inputs this process's function ``name`` was called with."""
        path = self.calls / name
        return path.read_text().split() if path.exists() else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def apps(tmp_path: Path, store: str, *tags: str) -> Iterator[list[AppProcess]]:
    """Start one app process per tag (all at once), stop them all afterwards."""
    with ExitStack() as stack:
        started = []
        for tag in tags:
            app = AppProcess(tmp_path / tag, store, SHARED_SECRET)
            stack.callback(app.stop)
            started.append(app)
        yield started


def speak(c: Client, text: str) -> tuple[bytes, str]:
    """The bytes of the audio file the client downloads for ``text``, and the caption."""
    path, caption = c.predict(text, api_name="/speak")
    return Path(path).read_bytes(), caption


@pytest.mark.server
@pytest.mark.timeout(240)
def test_a_file_output_in_a_disk_store_survives_a_restart(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    with apps(tmp_path, store, "first") as (first,):
        c = first.client()
        assert c.predict("hello", api_name="/shout") == "HELLO!"
        audio, caption = speak(c, "hello")
        written = first.out / "speech-hello.wav"
        assert audio == written.read_bytes() and caption == "said hello"
        assert first.computed("speak") == first.computed("shout") == ["hello"]
    written.unlink()  # the first process's files are gone with it

    with apps(tmp_path, store, "second") as (second,):
        c = second.client()
        assert c.predict("hello", api_name="/shout") == "HELLO!"
        assert speak(c, "hello") == (audio, caption)
        assert second.computed("speak") == second.computed("shout") == [], "answered from the store"
        assert not written.exists(), "the bytes came back in the second process's own directory"
        assert c.predict("other", api_name="/shout") == "OTHER!"
        assert second.computed("shout") == ["other"], "a new input is computed"


@pytest.mark.server
@pytest.mark.timeout(240)
def test_two_gradio_servers_sharing_one_redis_server_compute_an_input_once(
    tmp_path: Path,
    redis_url: str,  # noqa: F811 - the fixture imported above
) -> None:
    with apps(tmp_path, redis_url, "first", "second") as (first, second):
        a, b = first.client(), second.client()
        assert a.predict("hello", api_name="/shout") == "HELLO!"
        audio, caption = speak(a, "hello")
        assert audio == (first.out / "speech-hello.wav").read_bytes()
        # The second server's first requests: answered from Redis, its functions never called.
        assert b.predict("hello", api_name="/shout") == "HELLO!"
        assert speak(b, "hello") == (audio, caption)
        assert second.computed("shout") == second.computed("speak") == []
        # And the other way round.
        fresh = speak(b, "fresh")
        assert speak(a, "fresh") == fresh
        assert first.computed("speak") == ["hello"] and second.computed("speak") == ["fresh"]
