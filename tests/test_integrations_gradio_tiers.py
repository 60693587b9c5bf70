"""File outputs of cached Gradio functions in the persistent and shared tiers.

A file output is kept as a :class:`~infercache.integrations.gradio.KeptFile`
(original path + private content-addressed copy). In a tier it is stored by
content: the record carries the bytes, and reading it back writes them into
this process's own directory of kept copies, never anywhere else. The first
half checks that through the codec in this process; the second half runs real
Gradio servers in separate processes, driven by ``gradio_client``: a disk
store that survives a restart, and two servers sharing one ``redis-server``.
"""

from __future__ import annotations

import gc
import logging
import pickle
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr  # noqa: F401 - loads the Gradio integration
import pytest
from gradio.data_classes import FileData

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


def test_the_original_path_is_served_when_it_still_holds_the_same_bytes(tmp_path: Path) -> None:
    path = write_file(tmp_path, "pic.png", b"\x89PNG same bytes")
    codec = Codec(SECRET)
    record = codec.dumps(NAME, kept_output(str(path)))
    first = codec.loads(NAME, record)
    assert engine().deliver(first) == str(path)
    path.write_bytes(b"\x89PNG else bytes")  # the path now names a file of the same size, other bytes
    second = codec.loads(NAME, record)
    other = engine().deliver(second)
    assert other != str(path) and in_root(other)
    assert Path(other).read_bytes() == b"\x89PNG same bytes"


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


class _Forged:
    """Pickles as a kept file whose name tries to leave the blob root (a signed record from a bad writer)."""

    def __init__(self, name: Any) -> None:
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (integration._restore_kept_file, (b"payload", "/srv/out.wav", "/srv/out.wav", self.name))


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
    served = kept.materialize()  # /srv/out.wav does not hold these bytes: the copy is served
    assert in_root(served) and Path(served).read_bytes() == b"payload"
