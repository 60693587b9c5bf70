"""Call keys of small arguments: the short path gives the general path's key, byte for byte.

``keys.api.short_call_key`` (the hit path's encoder: a prefix memo for a
first ``str`` argument, one ``struct.pack`` per float, no sink) must give the
key ``make_key`` gives the same argument tuple through the general encoder, or
decline (None) so the general path decides. Checked over the types it keys
(str, int, float, bool, None) mixed with ones it declines (bytes, big ints,
long or unencodable strings, tuples), and through ``@cache``: a call keyed by
the inlined path and one keyed through keyword binding reach one entry, and
values the general path keys apart (0.0 / -0.0, 1 / 1.0 / True, "1" / 1, NaN
payloads) stay apart.
"""

from __future__ import annotations

import math
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import infercache as ic
from infercache.keys import api, make_call_key, make_key
from infercache.keys.api import (
    STR_FLOAT_PREFIXES,
    forget_str_chunks,
    general_call_key,
    short_call_key,
    str_float_key,
)
from infercache.keys.files import key_files_under
from infercache.keys.wire import KEY_TAG, T_FLOAT, pack_float

NAN_BITS = st.binary(min_size=8, max_size=8).map(lambda b: struct.unpack("<d", b)[0])
"""Floats from any 8 bytes: NaNs with every payload and sign, -0.0, infinities, subnormals."""

SMALL = st.one_of(
    st.text(max_size=70),  # past 127 UTF-8 bytes too, and lone surrogates (general path only)
    st.sampled_from(["", "hello world", "1", "a" * 127, "é" * 64, "\ud800"]),
    st.integers(-300, 1100),  # both sides of the small-int table [-256, 1024]
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    NAN_BITS,
    st.sampled_from([0.0, -0.0, 1.0, 1, True, False, 0, None]),
    st.booleans(),
    st.none(),
    st.binary(max_size=8),
)
ARGS = st.one_of(
    st.lists(SMALL, max_size=17).map(tuple),
    st.lists(st.one_of(SMALL, st.tuples(SMALL, SMALL)), max_size=4).map(tuple),
)

#: Owners of the directories these tests name (see key_files_under): their own, so that the
#: directories a framework integration names meanwhile are neither dropped nor taken over.
KEYED = "the keyed fixture"
TEST = "this test"



def general(values: tuple[Any, ...], alg: str) -> bytes:
    """The general path's key of a call's arguments (the encoder, no short path)."""
    return make_key(values, algorithm=alg)


@pytest.mark.parametrize("alg", ["blake3", "xxh3"])
@settings(max_examples=600, deadline=None)
@given(values=ARGS)
def test_the_short_path_gives_the_general_paths_key_or_declines(alg: str, values: tuple[Any, ...]) -> None:
    short = short_call_key(values, KEY_TAG[alg])
    expected = general(values, alg)
    assert short is None or short == expected
    names = tuple(f"p{i}" for i in range(len(values)))
    assert make_call_key(values, names, alg) == general_call_key(values, names, alg) == expected
    assert short_call_key(values, KEY_TAG[alg]) == short  # memoized prefixes change nothing


@settings(max_examples=600, deadline=None)
@given(a=ARGS, b=ARGS)
def test_short_keys_are_equal_exactly_when_general_keys_are(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    ka, kb = short_call_key(a, b"\x01"), short_call_key(b, b"\x01")
    if ka is not None and kb is not None:
        assert (ka == kb) == (general(a, "blake3") == general(b, "blake3"))


@pytest.mark.parametrize(
    "group",
    [
        [("p", 0.0), ("p", -0.0)],
        [("p", 1), ("p", 1.0), ("p", True)],
        [("p", 0), ("p", 0.0), ("p", False), ("p", None)],
        [("1", 1), (1, "1"), ("1", "1"), (1, 1)],
        [("p", math.nan), ("p", -math.nan), ("p", struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0])],
        [("hello world", 0.7), ("hello world", 0.7000000000000001), ("hello world ", 0.7)],
        [("a",), ("a", None), (None, "a")],
    ],
)
def test_values_the_general_path_keys_apart_get_different_short_keys(group: list[tuple[Any, ...]]) -> None:
    keys = [short_call_key(v, b"\x01") for v in group]
    assert None not in keys
    assert keys == [general(v, "blake3") for v in group]
    assert len(set(keys)) == len(group)


PROMPTS = st.one_of(
    st.text(max_size=140),  # both sides of 128 UTF-8 bytes and of the short form's 51
    st.sampled_from(["", "hello world", "x" * 51, "x" * 52, "é" * 25, "é" * 26, "x" * 127, "x" * 128, "\ud800"]),
)


@pytest.mark.parametrize("alg", ["blake3", "xxh3"])
@settings(max_examples=600, deadline=None)
@given(first=PROMPTS, second=st.one_of(st.floats(allow_nan=True, allow_infinity=True), NAN_BITS))
def test_a_new_prompt_and_temperature_is_keyed_as_the_short_path_keys_it(alg: str, first: str, second: float) -> None:
    # str_float_key is the miss path's key of f(<new prompt>, t): the general path's key, declined
    # exactly when short_call_key declines, and the prompt's prefix memoized for the hit path.
    forget_str_chunks()
    key = str_float_key(first, second, KEY_TAG[alg])
    assert key == short_call_key((first, second), KEY_TAG[alg])
    assert key is None or key == general((first, second), alg)
    if key is not None and key[:1] == b"\x00":
        assert STR_FLOAT_PREFIXES[first] + pack_float(T_FLOAT, second) == key
    else:
        assert first not in STR_FLOAT_PREFIXES


def test_a_new_prompt_naming_a_file_of_a_keyed_folder_is_keyed_by_the_file() -> None:
    folder = Path(tempfile.mkdtemp(prefix="k"))
    path = folder / "u"
    path.write_bytes(b"first")
    calls: list[bytes] = []

    @ic.cache
    def f(p: str, t: float) -> bytes:
        calls.append(Path(p).read_bytes())
        return calls[-1]

    key_files_under([str(folder)], owner=TEST)
    try:
        assert str_float_key(str(path), 0.5, b"\x01") is None
        assert f(str(path), 0.5) == b"first"  # a new prompt: never keyed by its characters
        path.write_bytes(b"second")
        assert f(str(path), 0.5) == b"second"
        assert calls == [b"first", b"second"]
        assert str(path) not in STR_FLOAT_PREFIXES
    finally:
        key_files_under([], owner=TEST)
        shutil.rmtree(folder)


def test_a_long_first_string_is_digested_like_the_general_path() -> None:
    for n in (1, 2, 3):
        values = ("x" * 100, *([0.5] * (n - 1)))
        for alg in ("blake3", "xxh3"):
            assert short_call_key(values, KEY_TAG[alg]) == general(values, alg)
            assert short_call_key(values, KEY_TAG[alg])[:1] == KEY_TAG[alg]


def test_a_memoized_first_string_later_naming_a_keyed_file_is_keyed_by_the_file(tmp_path: Path) -> None:
    path = tmp_path / "upload.png"
    path.write_bytes(b"first")
    values = (str(path), 0.5)
    as_text = short_call_key(values, b"\x01")  # memoized as characters
    assert as_text == general(values, "blake3")
    key_files_under([str(tmp_path)], owner=TEST)
    try:
        assert short_call_key(values, b"\x01") is None  # the prefix memo was emptied
        by_content = make_call_key(values, ("image", "t"))
        assert by_content == general(values, "blake3") != as_text
    finally:
        key_files_under([], owner=TEST)


@settings(max_examples=200, deadline=None)
@given(a=SMALL, b=SMALL)
def test_positional_and_keyword_calls_of_a_cached_function_share_one_entry(a: Any, b: Any) -> None:
    calls: list[tuple[Any, Any]] = []

    @ic.cache(max_size=16)
    def f(x: Any, y: Any = 0.7) -> tuple[Any, Any]:
        calls.append((x, y))
        return (x, y)

    assert f(a, b) == (a, b) or a != a or b != b  # NaN never equals itself
    f(a, y=b)
    f(x=a, y=b)
    f(y=b, x=a)
    assert len(calls) == 1
    stats = f.cache.stats()
    assert (stats.hits, stats.misses) == (3, 1)


def test_arguments_the_general_path_keys_apart_are_separate_entries_of_a_cached_function() -> None:
    @ic.cache
    def f(x: Any, y: Any) -> str:
        return f"{x!r}/{y!r}/{type(y).__name__}"

    for _ in range(2):  # the second round is served from the cache
        assert f("p", 0.0) == "'p'/0.0/float"
        assert f("p", -0.0) == "'p'/-0.0/float"
        assert f("p", 1) == "'p'/1/int"
        assert f("p", 1.0) == "'p'/1.0/float"
        assert f("p", True) == "'p'/True/bool"
        assert f("1", 1) == "'1'/1/int"
        assert f(1, "1") == "1/'1'/str"
    assert f.cache.stats().hits == 7 and f.cache.stats().misses == 7


def test_a_cached_function_given_a_memoized_path_follows_the_file_once_its_folder_is_keyed() -> None:
    # A short folder, so f(path, t)'s key is in the short form and its prefix memoized.
    folder = Path(tempfile.mkdtemp(prefix="k"))
    path = folder / "u"
    path.write_bytes(b"first")
    calls: list[bytes] = []

    @ic.cache
    def f(p: str, t: float) -> bytes:
        calls.append(Path(p).read_bytes())
        return calls[-1]

    assert f(str(path), 0.5) == f(str(path), 0.5) == b"first"  # keyed by characters, memoized
    assert short_call_key((str(path), 0.5), b"\x01")[:1] == b"\x00"
    key_files_under([str(folder)], owner=TEST)
    try:
        assert f(str(path), 0.5) == b"first"  # now keyed by the bytes: a new key
        path.write_bytes(b"second")
        assert f(str(path), 0.5) == b"second"
        assert f(str(path), 0.5) == b"second"
        assert calls == [b"first", b"first", b"second"]
    finally:
        key_files_under([], owner=TEST)
        shutil.rmtree(folder)


@pytest.mark.parametrize("digest", ["blake3", "xxh3"])
@pytest.mark.parametrize("prompt", ["", "hello world", "x" * 51, "x" * 52, "é" * 25, "é" * 26, "x" * 127, "x" * 128])
def test_every_call_of_a_prompt_and_temperature_is_stored_under_the_general_paths_key(
    prompt: str, digest: str
) -> None:
    # Around the longest prompt whose key is in the short form (51 bytes with a float after
    # it): the first call fills the memos, later positional calls take the inlined path.
    calls: list[float] = []

    @ic.cache(digest=digest)
    def f(prompt: str, temperature: float) -> float:
        calls.append(temperature)
        return temperature

    for _ in range(3):
        assert f(prompt, 0.5) == 0.5
        assert f(prompt, temperature=0.5) == 0.5
        assert math.copysign(1.0, f(prompt, -0.0)) == -1.0
    assert calls == [0.5, -0.0]
    stored = {key for key, _ in f.cache.engine.store.entries()}
    assert stored == {general((prompt, 0.5), digest), general((prompt, -0.0), digest)}


class Text(str):
    """A str subclass: keyed with its type by the general path, never by the short one."""


class Real(float):
    """A float subclass (the same)."""


#: Calls at the edges of what the short path keys, and just past them, with whether it keys
#: them itself (True) or declines (False) for the general path. Its key lengths: 14 bytes
#: plus the prompt for f(prompt, temperature), 5 plus the string for f(string), 8 plus the
#: string for f(1, string); at most 65 bytes (b"\x00" + 64) stay in the short form.
EDGES: list[tuple[tuple[Any, ...], bool]] = [
    ((), True),
    (("x" * 51, 0.5), True),  # 65 bytes: the longest short f(prompt, temperature)
    (("x" * 52, 0.5), True),  # 66: digested
    (("é" * 25, 0.5), True),
    (("é" * 26, 0.5), True),
    (("x" * 127, 0.5), True),
    (("x" * 128, 0.5), False),  # 128 UTF-8 bytes: the general path's string
    (("\ud800", 0.5), False),  # UTF-8 cannot encode it
    ((Text("p"), 0.5), False),
    (("p", Real(0.5)), False),
    (("x" * 60,), True),  # 65 bytes
    (("x" * 61,), True),
    ((1, "x" * 57), True),  # 65 bytes
    ((1, "x" * 58), True),
    ((0.5, "x" * 127), True),
    ((0.5, "x" * 128), False),
    ((0.5, "\ud800"), False),
    ((0.5, Text("p")), False),
    (("p", 1), True),
    (("p", "q"), True),
    (("p", None), True),
    (("p", True), True),
    (("p", False), True),
    (("p", -256), True),
    (("p", 1024), True),
    (("p", -257), False),
    (("p", 1025), False),
    (("p", 2**70), False),
    (("p", b"x"), False),
    (("p", [1]), False),
    (("p", (0.5,)), False),
    (("p", "x" * 128), False),
    (("p", 0.5, 1), True),
    (("p", 1, 0.5, None, True, False, "q"), True),
    ((1.5, "p", -3, None, True, False), True),
    ((True,), True),
    ((None,), True),
    ((None, [1]), False),
    ((0.5,) * 15, True),
    ((0.5,) * 16, False),  # sixteen or more: the general path's packed floats
    (("p",) + (0.5,) * 14, True),
    (("p",) + (0.5,) * 15, False),
]


@pytest.mark.parametrize("alg", ["blake3", "xxh3"])
@pytest.mark.parametrize("values, keyed", EDGES, ids=[repr(v)[:40] for v, _ in EDGES])
def test_the_short_path_keys_small_arguments_as_the_general_path_and_declines_the_rest(
    alg: str, values: tuple[Any, ...], keyed: bool
) -> None:
    expected = general(values, alg)
    for _ in range(2):  # the second time from the memos
        key = short_call_key(values, KEY_TAG[alg])
        assert key == (expected if keyed else None)
    names = tuple(f"p{i}" for i in range(len(values)))
    assert make_call_key(values, names, alg) == general_call_key(values, names, alg) == expected
    assert make_call_key(list(values), names, alg) == general_call_key(list(values), names, alg) == expected  # type: ignore[arg-type]


def test_one_first_string_in_calls_of_every_length_keeps_each_calls_key() -> None:
    # The prefix memo is per argument count: a first string memoized for one count never
    # lends its prefix to a call of another count.
    forget_str_chunks()
    calls = [("p",), ("p", 0.5), ("p", 1), ("p", 1, 2), ("p", "q", 0.5, None), ("p",), ("p", 0.5), ("p", 1, 2)]
    for values in calls * 2:
        assert short_call_key(values, b"\x01") == general(values, "blake3")


@pytest.mark.parametrize("prompt", ["p", "x" * 51])
def test_a_short_prompt_and_temperature_call_memoizes_the_prefix_the_inlined_path_reads(prompt: str) -> None:
    # The decorator's inlined hit path keys f(prompt, t) as STR_FLOAT_PREFIXES[prompt] + the
    # packed float: the prefix short_call_key memoizes must give the general key of any t.
    forget_str_chunks()
    assert short_call_key((prompt, 0.5), b"\x01") == general((prompt, 0.5), "blake3")
    for t in (0.25, -0.0, math.inf):
        assert STR_FLOAT_PREFIXES[prompt] + pack_float(T_FLOAT, t) == general((prompt, t), "blake3")
    short_call_key((prompt, 0.75), b"\x01")  # memoized already: the same prefix
    assert STR_FLOAT_PREFIXES[prompt] + pack_float(T_FLOAT, 0.25) == general((prompt, 0.25), "blake3")


def test_a_prompt_too_long_for_the_short_form_is_not_memoized_for_the_inlined_path() -> None:
    forget_str_chunks()
    for values in [("x" * 52, 0.5), ("p", 1), ("p", "q"), ("p",), ("p", 0.5, 0.5)]:
        assert short_call_key(values, b"\x01") == general(values, "blake3")
    assert STR_FLOAT_PREFIXES == {}


def test_the_string_memos_stay_bounded() -> None:
    # A service sees prompts without end: each memo is emptied once it holds _STR_CHUNKS_MAX.
    forget_str_chunks()
    bound = api._STR_CHUNKS_MAX
    memos = [api._str_chunks, STR_FLOAT_PREFIXES, *api._call_prefixes]
    for i in range(bound + 50):
        first, second = f"s{i}", f"t{i}"
        assert short_call_key((first, 0.5), b"\x01") == general((first, 0.5), "blake3")
        assert short_call_key((0.5, second), b"\x01") == general((0.5, second), "blake3")
        assert str_float_key(second, 0.5, b"\x01") == general((second, 0.5), "blake3")
        assert max(len(m) for m in memos) <= bound
    for last in (f"s{bound + 49}", f"t{bound + 49}"):  # both entry points fill it, after emptying it
        assert STR_FLOAT_PREFIXES[last] + pack_float(T_FLOAT, 1.0) == general((last, 1.0), "blake3")
    forget_str_chunks()
    for i in range(bound + 50):  # the miss path's own filling of the inlined path's memo
        assert str_float_key(f"u{i}", 0.5, b"\x01") == general((f"u{i}", 0.5), "blake3")
        assert len(STR_FLOAT_PREFIXES) <= bound


def test_strings_outside_the_keyed_folders_keep_the_short_path(tmp_path: Path) -> None:
    inside = str(tmp_path / "upload.png")
    key_files_under([str(tmp_path)], owner=TEST)
    try:
        for values in [("hello", 0.5), ("hello", 1), (0.5, "hello"), ("hello",)]:
            assert short_call_key(values, b"\x01") == general(values, "blake3")
        for values in [(inside, 0.5), (inside, 1), (0.5, inside), (inside,)]:
            assert short_call_key(values, b"\x01") is None
        assert str_float_key(inside, 0.5, b"\x01") is None
        assert str_float_key("hello", 0.5, b"\x01") == general(("hello", 0.5), "blake3")
    finally:
        key_files_under([], owner=TEST)


def test_strings_memoized_anywhere_in_a_call_follow_their_file_once_its_folder_is_keyed(tmp_path: Path) -> None:
    path = str(tmp_path / "upload.png")
    (tmp_path / "upload.png").write_bytes(b"first")
    calls = [(0.5, path), (path, 1, 2), (path,), (path, 0.5)]
    for values in calls:
        assert short_call_key(values, b"\x01") == general(values, "blake3")  # memoized as characters
    str_float_key(path, 0.25, b"\x01")
    key_files_under([str(tmp_path)], owner=TEST)
    try:
        for values in calls:
            assert short_call_key(values, b"\x01") is None  # every memo was emptied
        assert path not in STR_FLOAT_PREFIXES
    finally:
        key_files_under([], owner=TEST)
