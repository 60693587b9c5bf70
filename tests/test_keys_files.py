"""Path strings under a framework's upload directories are keyed by the file's bytes (``keys/files.py``).

Equal bytes under any name are one key, other bytes another; the key is the
documented wire form (``T_FILE``, the size, the digest of the bytes with the
key's algorithm) whatever the file's size (read in chunks); the short-key fast
path of ``make_call_key`` gives what the general encoder gives; strings
outside the directories, and paths naming no regular file, keep the keys they
had without content keying.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from infercache.keys import make_call_key, make_key
from infercache.keys.files import key_files_under, keyed_dirs
from infercache.keys.wire import T_FILE, T_TUPLE, varint

ALGS = ("blake3", "xxh3")

#: Owners of the directories these tests name (see key_files_under): their own, so that the
#: directories a framework integration names meanwhile are neither dropped nor taken over.
KEYED = "the keyed fixture"
TEST = "this test"

NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=30).filter(
    lambda n: n not in (".", "..")
)


@pytest.fixture(scope="module")
def keyed() -> Iterator[Path]:
    """A directory whose files are keyed by content (named by an owner of its own, withdrawn afterwards)."""
    root = Path(tempfile.mkdtemp(prefix="ic-keyed-"))
    key_files_under([str(root)], owner=KEYED)
    try:
        yield root
    finally:
        key_files_under([], owner=KEYED)
        shutil.rmtree(root, ignore_errors=True)


def _write(root: Path, name: str, data: bytes) -> str:
    folder = Path(tempfile.mkdtemp(dir=root))
    path = folder / name
    path.write_bytes(data)
    return str(path)


def _digest(data: bytes, alg: str) -> bytes:
    return blake3.blake3(data).digest() if alg == "blake3" else xxhash.xxh3_128_digest(data)


def _spec_key(encoding: bytes, alg: str) -> bytes:
    return (b"\x01" if alg == "blake3" else b"\x02") + _digest(encoding, alg)


def _file_encoding(data: bytes, alg: str) -> bytes:
    return T_FILE + varint(len(data)) + _digest(data, alg)


@settings(max_examples=60, deadline=None)
@given(a=st.binary(max_size=300), b=st.binary(max_size=300), name_a=NAME, name_b=NAME, alg=st.sampled_from(ALGS))
def test_equal_bytes_under_any_name_are_one_key_and_other_bytes_another(
    keyed: Path, a: bytes, b: bytes, name_a: str, name_b: str, alg: str
) -> None:
    pa, pb = _write(keyed, name_a, a), _write(keyed, name_b, b)
    assert (make_key(pa, algorithm=alg) == make_key(pb, algorithm=alg)) == (a == b)
    assert make_key(pa, algorithm=alg) == _spec_key(_file_encoding(a, alg), alg)
    assert make_key(Path(pa), algorithm=alg) != make_key(pa, algorithm=alg)  # type-tagged, as any str and path


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(st.binary(max_size=64), min_size=1, max_size=4),
    others=st.lists(st.one_of(st.text(max_size=20), st.integers(-5, 5), st.none()), max_size=3),
    alg=st.sampled_from(ALGS),
    order=st.randoms(use_true_random=False),
)
def test_the_fast_call_key_equals_the_general_encoding_with_files_among_the_arguments(
    keyed: Path, data: list[bytes], others: list[object], alg: str, order: object
) -> None:
    values: list[object] = [_write(keyed, "f.png", d) for d in data] + others
    order.shuffle(values)  # type: ignore[attr-defined]
    names = tuple(f"p{i}" for i in range(len(values)))
    fast = make_call_key(tuple(values), names, alg)
    assert fast == make_key(tuple(values), algorithm=alg)
    assert fast[:1] != b"\x00", "a key holding a file's digest is itself a digest"


def test_a_file_larger_than_the_read_chunk_is_keyed_by_all_its_bytes(keyed: Path) -> None:
    data = os.urandom((5 << 20) // 2)  # 2.5 MiB: three reads
    path = _write(keyed, "big.bin", data)
    for alg in ALGS:
        assert make_key(path, algorithm=alg) == _spec_key(_file_encoding(data, alg), alg)
        call = T_TUPLE + varint(1) + _file_encoding(data, alg)
        assert make_call_key((path,), ("p",), alg) == _spec_key(call, alg)
    changed = bytearray(data)
    changed[-1] ^= 1
    Path(path).write_bytes(changed)
    assert make_key(path) == _spec_key(_file_encoding(bytes(changed), "blake3"), "blake3")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=80), alg=st.sampled_from(ALGS))
def test_other_strings_keep_their_keys(keyed: Path, text: str, alg: str) -> None:
    keyed_key = make_key(text, algorithm=alg), make_call_key((text, 1), ("a", "b"), alg)
    key_files_under([], owner=KEYED)
    try:
        plain_key = make_key(text, algorithm=alg), make_call_key((text, 1), ("a", "b"), alg)
    finally:
        key_files_under([str(keyed)], owner=KEYED)
    assert keyed_key == plain_key


def test_paths_naming_no_regular_file_are_keyed_as_strings(keyed: Path) -> None:
    folder = tempfile.mkdtemp(dir=keyed)
    missing = os.path.join(folder, "missing.png")
    fifo = os.path.join(folder, "pipe")
    os.mkfifo(fifo)  # opened for reading it would block: keyed without reading
    for path in (missing, folder, fifo, folder + os.sep + ".."):
        key_files_under([], owner=KEYED)
        try:
            as_string = make_key(path), make_call_key((path,), ("p",))
        finally:
            key_files_under([str(keyed)], owner=KEYED)
        assert (make_key(path), make_call_key((path,), ("p",))) == as_string


def test_the_directory_itself_and_look_alike_siblings_are_not_keyed_by_content(keyed: Path) -> None:
    sibling = Path(str(keyed) + "-sibling")
    sibling.mkdir()
    try:
        (sibling / "f.png").write_bytes(b"x")
        path = str(sibling / "f.png")
        assert make_key(path) == b"\x00" + b"s" + varint(len(path.encode())) + path.encode()
    finally:
        shutil.rmtree(sibling)


def test_a_string_memoized_before_its_directory_was_named_is_keyed_by_content_after(keyed: Path) -> None:
    outside = Path(tempfile.mkdtemp(prefix="ic-later-"))
    try:
        path = str(outside / "a.png")
        Path(path).write_bytes(b"first")
        as_string = make_call_key((path,), ("p",))  # memoized as characters
        key_files_under([str(outside)], owner=TEST)
        try:
            by_content = make_call_key((path,), ("p",))
            Path(path).write_bytes(b"second")
            assert make_call_key((path,), ("p",)) != by_content
        finally:
            key_files_under([], owner=TEST)
        assert by_content != as_string
        assert by_content == _spec_key(T_TUPLE + varint(1) + _file_encoding(b"first", "blake3"), "blake3")
    finally:
        shutil.rmtree(outside)


def test_each_spelling_of_a_directory_is_keyed(keyed: Path) -> None:
    """Given, absolute and with links resolved: a framework may hand out any of them."""
    real = Path(tempfile.mkdtemp(prefix="ic-real-"))
    link = Path(tempfile.mkdtemp(prefix="ic-link-")) / "uploads"
    link.symlink_to(real)
    try:
        key_files_under([str(link)], owner=TEST)
        (real / "a.png").write_bytes(b"same")
        via_link, via_real = str(link / "a.png"), str(real / "a.png")
        assert make_key(via_link) == make_key(via_real) == _spec_key(_file_encoding(b"same", "blake3"), "blake3")
        assert str(real.resolve()) + os.sep in keyed_dirs()
        # pathlib paths under it: by content too.
        assert make_key(Path(via_link)) == make_key(Path(via_real)) != make_key(via_real)
    finally:
        key_files_under([], owner=TEST)
        shutil.rmtree(real)
        shutil.rmtree(link.parent)


def test_a_file_under_the_common_start_of_two_directories_but_in_neither_is_keyed_as_its_string() -> None:
    parent = Path(tempfile.mkdtemp(prefix="ic-common-"))
    one, two, neither = parent / "uploads-one", parent / "uploads-two", parent / "uploads-other"
    for folder in (one, two, neither):
        folder.mkdir()
        (folder / "a.png").write_bytes(b"same")
    try:
        key_files_under([str(one), str(two)], owner=TEST)
        assert make_key(str(one / "a.png")) == make_key(str(two / "a.png"))
        path = str(neither / "a.png")
        assert make_key(path) == b"\x00" + b"s" + varint(len(path.encode())) + path.encode()
        assert make_call_key((path,), ("p",)) == make_key((path,))
    finally:
        key_files_under([], owner=TEST)
        shutil.rmtree(parent)


def test_each_owners_directories_stay_keyed_whatever_another_owner_names() -> None:
    """A framework naming its upload folder must not drop a folder a program keyed, nor the reverse
    (a file there changed in place would be served the old result, keyed by its characters)."""
    mine, theirs, moved = (Path(tempfile.mkdtemp(prefix=f"ic-owner-{n}-")) for n in ("a", "b", "c"))
    for folder in (mine, theirs, moved):
        (folder / "f").write_bytes(b"first")
    try:
        key_files_under([str(mine)], owner=TEST)
        key_files_under([str(theirs)], owner="a framework")
        key_files_under([str(moved)], owner="a framework")  # it moves its folder: only its own changes
        for folder, keyed_by_content in ((mine, True), (theirs, False), (moved, True)):
            path = str(folder / "f")
            first = make_key(path)
            (folder / "f").write_bytes(b"second")
            assert (make_key(path) != first) is keyed_by_content, folder
        key_files_under([], owner="a framework")
        assert str(moved) + os.sep not in keyed_dirs() and str(mine) + os.sep in keyed_dirs()
    finally:
        key_files_under([], owner="a framework")
        key_files_under([], owner=TEST)
        for folder in (mine, theirs, moved):
            shutil.rmtree(folder)
