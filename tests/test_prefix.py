"""Tests for infercache.prefix.PrefixIndex against a brute-force model."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from infercache.prefix import PrefixIndex

# Small alphabets so that keys share prefixes and split/merge paths get exercised.
STR_ALPHABET = "ab\u00e9\U0001f600"
BYTES_ALPHABET = b"ab\x00\xff"
TOKEN_IDS = st.integers(min_value=0, max_value=2)

str_keys = st.text(alphabet=STR_ALPHABET, max_size=7)
bytes_keys = st.binary(max_size=7).map(
    lambda b: bytes(BYTES_ALPHABET[x % len(BYTES_ALPHABET)] for x in b)
)
token_keys = st.lists(TOKEN_IDS, max_size=7).map(tuple)
any_key = st.one_of(str_keys, bytes_keys, token_keys)


def kind_of(k: Any) -> str:
    return {str: "str", bytes: "bytes", tuple: "tokens"}[type(k)]


def as_token_input(k: tuple[int, ...], form: int) -> Any:
    """Present a token tuple as a tuple, a list, or a numpy array."""
    if form == 1:
        return list(k)
    if form == 2:
        np = pytest.importorskip("numpy")
        return np.array(k, dtype=np.int64)
    return k


def brute_longest(
    model: dict[tuple[str, Any], int], query: Any, strict: bool, accept: Any
) -> tuple[Any, int] | None:
    """The guide's scan, generalised: longest same-kind stored prefix."""
    kind = kind_of(query)
    best = None
    for (k_kind, k), token in model.items():
        if k_kind != kind or query[: len(k)] != k:
            continue
        if strict and len(k) == len(query):
            continue
        if accept is not None and not accept(token):
            continue
        if best is None or len(k) > len(best[0]):
            best = (k, token)
    return best


class PrefixIndexMachine(RuleBasedStateMachine):
    """Random add/remove/lookup sequences over all three kinds in one index."""

    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.index = PrefixIndex()
        self.model: dict[tuple[str, Any], int] = {}
        self.counter = itertools.count()

    @initialize()
    def start_empty(self) -> None:
        assert self.index._node_count() == 0

    @rule(target=keys, key=any_key, form=st.integers(0, 2))
    def add(self, key: Any, form: int) -> Any:
        token = next(self.counter)
        given_key = as_token_input(key, form) if isinstance(key, tuple) else key
        self.index.add(given_key, token)
        self.model[(kind_of(key), key)] = token
        return key

    @rule(key=keys)
    def re_add(self, key: Any) -> None:
        token = next(self.counter)
        self.index.add(key, token)
        self.model[(kind_of(key), key)] = token

    @rule(key=st.one_of(keys, any_key))
    def remove(self, key: Any) -> None:
        expected = (kind_of(key), key) in self.model
        assert self.index.remove(key) is expected
        self.model.pop((kind_of(key), key), None)

    @rule(
        key=keys,
        suffix=st.one_of(str_keys, bytes_keys, token_keys),
        strict=st.booleans(),
        reject_mod=st.integers(0, 3),
        form=st.integers(0, 2),
    )
    def lookup_extension(
        self, key: Any, suffix: Any, strict: bool, reject_mod: int, form: int
    ) -> None:
        """Query a stored key plus an extension of the same kind."""
        if type(suffix) is not type(key):
            suffix = key[:0]
        self._check_lookup(key + suffix, strict, reject_mod, form)

    @rule(
        query=any_key,
        strict=st.booleans(),
        reject_mod=st.integers(0, 3),
        form=st.integers(0, 2),
    )
    def lookup_random(self, query: Any, strict: bool, reject_mod: int, form: int) -> None:
        self._check_lookup(query, strict, reject_mod, form)

    def _check_lookup(self, query: Any, strict: bool, reject_mod: int, form: int) -> None:
        # reject_mod == 0 means no predicate; otherwise reject tokens divisible by it.
        accept = None if reject_mod == 0 else (lambda t: t % reject_mod != 0)
        given_query = as_token_input(query, form) if isinstance(query, tuple) else query
        got = self.index.longest_prefix(given_query, strict=strict, accept=accept)
        want = brute_longest(self.model, query, strict, accept)
        assert got == want
        if got is not None:
            assert type(got[0]) is type(query)

    @rule(key=any_key)
    def contains(self, key: Any) -> None:
        assert (key in self.index) is ((kind_of(key), key) in self.model)

    @rule()
    def remove_all(self) -> None:
        for kind_key in list(self.model):
            assert self.index.remove(kind_key[1])
        self.model.clear()

    @invariant()
    def consistent(self) -> None:
        self.index._check_invariants()
        assert len(self.index) == len(self.model)
        assert sorted(map(repr, self.index.items())) == sorted(
            repr((k, t)) for (_, k), t in self.model.items()
        )
        if not self.model:
            assert self.index._node_count() == 0


TestPrefixIndexMachine = PrefixIndexMachine.TestCase
TestPrefixIndexMachine.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)


# -- example-based tests ----------------------------------------------------


def test_kinds() -> None:
    k = PrefixIndex.kind
    assert k("ab") == "str"
    assert k(b"ab") == "bytes"
    assert k(bytearray(b"ab")) == "bytes"
    assert k([1, 2]) == "tokens"
    assert k((1, 2)) == "tokens"
    assert k(()) == "tokens"
    assert k([]) == "tokens"
    for bad in (1, 1.5, None, {"a": 1}, [1, "a"], [1.0], [True, 2], (None,), {1, 2}):
        assert k(bad) is None, bad


def test_kinds_do_not_mix() -> None:
    idx = PrefixIndex()
    idx.add("ab", "s")
    idx.add(b"a", "b")
    assert idx.longest_prefix(b"abc") == (b"a", "b")
    assert idx.longest_prefix("abc") == ("ab", "s")
    assert idx.longest_prefix([97, 98]) is None
    assert "ab" in idx and b"ab" not in idx and b"a" in idx and "a" not in idx


def test_list_and_tuple_are_the_same_key() -> None:
    idx = PrefixIndex()
    idx.add([1, 2], "first")
    idx.add((1, 2), "second")
    assert len(idx) == 1
    assert idx.longest_prefix([1, 2, 3]) == ((1, 2), "second")
    assert PrefixIndex.normalize([1, 2]) == (1, 2)


def test_readd_replaces_token() -> None:
    idx = PrefixIndex()
    idx.add("abc", 1)
    idx.add("abc", 2)
    assert len(idx) == 1
    assert idx.get("abc") == 2


@pytest.mark.parametrize("empty", ["", b"", ()])
def test_empty_key_is_prefix_of_everything(empty: Any) -> None:
    idx = PrefixIndex()
    idx.add(empty, "root")
    longer = {str: "x", bytes: b"x", tuple: (1,)}[type(empty)]
    assert idx.longest_prefix(longer) == (empty, "root")
    assert idx.longest_prefix(empty) == (empty, "root")
    assert idx.longest_prefix(empty, strict=True) is None
    assert empty in idx
    assert idx.remove(empty)
    assert idx._node_count() == 0
    assert idx.longest_prefix(longer) is None


def test_strict_excludes_exact_match() -> None:
    idx = PrefixIndex()
    idx.add("hello", 1)
    idx.add("hello world", 2)
    assert idx.longest_prefix("hello world") == ("hello world", 2)
    assert idx.longest_prefix("hello world", strict=True) == ("hello", 1)
    assert idx.longest_prefix("hello", strict=True) is None


def test_accept_skips_to_next_longest() -> None:
    idx = PrefixIndex()
    for i, k in enumerate(["", "a", "ab", "abc"]):
        idx.add(k, i)
    seen: list[int] = []

    def accept(token: int) -> bool:
        seen.append(token)
        return token in (0, 1)

    assert idx.longest_prefix("abcd", accept=accept) == ("a", 1)
    assert seen == [3, 2, 1]  # longest first, stops at the first accepted
    assert idx.longest_prefix("abcd", accept=lambda t: False) is None


def test_unicode_keys() -> None:
    idx = PrefixIndex()
    idx.add("h\u00e9llo \U0001f600", 1)
    idx.add("h\u00e9", 2)
    idx.add("\u65e5\u672c\u8a9e", 3)
    assert idx.longest_prefix("h\u00e9llo \U0001f600\U0001f600") == ("h\u00e9llo \U0001f600", 1)
    assert idx.longest_prefix("h\u00e9llo \U0001f601") == ("h\u00e9", 2)
    assert idx.longest_prefix("he") is None
    assert idx.longest_prefix("\u65e5\u672c\u8a9e\u3067\u3059") == ("\u65e5\u672c\u8a9e", 3)


def test_numpy_token_inputs() -> None:
    np = pytest.importorskip("numpy")
    idx = PrefixIndex()
    idx.add(np.array([5, 6, 7], dtype=np.int32), "a")
    idx.add([np.int64(5), np.uint16(6)], "b")
    assert len(idx) == 2
    got = idx.longest_prefix(np.array([5, 6, 7, 8], dtype=np.uint64))
    assert got == ((5, 6, 7), "a")
    assert all(type(x) is int for x in got[0])
    assert idx.longest_prefix((5, 6, 9)) == ((5, 6), "b")
    assert PrefixIndex.kind(np.array([1.0, 2.0])) is None
    assert PrefixIndex.kind(np.array([True, False])) is None
    assert PrefixIndex.kind(np.array([[1, 2]])) is None
    assert PrefixIndex.kind(np.array([], dtype=np.int64)) == "tokens"
    assert PrefixIndex.kind([np.bool_(True)]) is None
    assert idx.remove(np.array([5, 6], dtype=np.int8))
    assert (5, 6) not in idx


def test_token_elements_are_ints_or_numpy_integers_never_bools() -> None:
    import enum

    class Token(enum.IntEnum):
        BOS = 1

    assert PrefixIndex.normalize([Token.BOS, 2]) == (1, 2)
    assert PrefixIndex.kind([1, True]) is None
    assert PrefixIndex.kind([1, 2.0]) is None
    np = pytest.importorskip("numpy")
    assert PrefixIndex.normalize((np.int8(3), 4, np.uint64(5))) == (3, 4, 5)
    assert PrefixIndex.kind([np.int8(3), np.float32(4)]) is None


def test_torch_token_inputs() -> None:
    torch = pytest.importorskip("torch")
    idx = PrefixIndex()
    idx.add(torch.tensor([1, 2, 3]), "t")
    got = idx.longest_prefix(torch.tensor([1, 2, 3, 4], dtype=torch.int32))
    assert got == ((1, 2, 3), "t")
    assert all(type(x) is int for x in got[0])
    assert idx.longest_prefix([1, 2, 3, 4]) == ((1, 2, 3), "t")
    assert PrefixIndex.kind(torch.tensor([1.0])) is None
    assert PrefixIndex.kind(torch.tensor([True])) is None
    assert PrefixIndex.kind(torch.tensor([[1, 2]])) is None
    assert PrefixIndex.kind(torch.tensor([1, 2], dtype=torch.uint8)) == "tokens"


def test_subclasses_of_str_and_bytes_are_stored_as_plain_str_and_bytes() -> None:
    np = pytest.importorskip("numpy")
    for key, plain in ((np.str_("abc"), "abc"), (np.bytes_(b"abc"), b"abc")):
        found = PrefixIndex.normalize(key)
        assert found == plain and type(found) is type(plain)


def test_unsearchable_keys() -> None:
    idx = PrefixIndex()
    with pytest.raises(TypeError):
        idx.add({"a": 1}, 1)
    with pytest.raises(TypeError) as refused:
        idx.add(3.5, 1)
    assert str(refused.value) == "PrefixIndex keys must be str, bytes or a 1-D sequence of int token ids, not float"
    assert idx.longest_prefix({"a": 1}) is None
    assert idx.remove(3.5) is False
    assert 3.5 not in idx
    assert PrefixIndex.normalize(3.5) is None and PrefixIndex.kind(3.5) is None


def _break_root_label(idx: PrefixIndex) -> None:
    idx._roots["str"].label = "z"


def _keep_an_empty_root(idx: PrefixIndex) -> None:
    root = idx._roots["str"]
    idx._roots["tokens"] = type(root)(())


def _empty_an_edge(idx: PrefixIndex) -> None:
    idx._roots["str"].children["a"].children["c"].label = ""


def _leave_one_child_under_a_keyless_node(idx: PrefixIndex) -> None:
    del idx._roots["str"].children["a"].children["e"]
    idx._len -= 1


def _file_a_child_under_another_element(idx: PrefixIndex) -> None:
    inner = idx._roots["str"].children["a"]
    inner.children["x"] = inner.children.pop("c")


def _miscount(idx: PrefixIndex) -> None:
    idx._len += 1


@pytest.mark.parametrize(("breakage", "message"), [
    (_break_root_label, "root label must be empty"),
    (_keep_an_empty_root, "empty tokens root kept"),
    (_empty_an_edge, "empty edge label"),
    (_leave_one_child_under_a_keyless_node, "keyless node with fewer than two children"),
    (_file_a_child_under_another_element, "child filed under wrong element"),
    (_miscount, "len 4 but 3 keys stored"),
])
def test_the_invariant_check_finds_each_kind_of_broken_tree(breakage: Any, message: str) -> None:
    # The property tests trust _check_invariants to see a broken tree: each break is found.
    idx = PrefixIndex()
    for i, key in enumerate(["abcd", "abef", b"xy"]):  # "ab" is a keyless node with two children
        idx.add(key, i)
    idx._check_invariants()
    breakage(idx)
    with pytest.raises(AssertionError) as info:
        idx._check_invariants()
    assert str(info.value) == message


def test_get_finds_a_key_stored_several_edges_deep() -> None:
    idx = PrefixIndex()
    for i, key in enumerate(["ab", "abcd", "abce", "abcdxyz"]):  # edges "ab", "c", "d", "xyz"
        idx.add(key, i)
    assert [idx.get(key) for key in ["ab", "abcd", "abce", "abcdxyz"]] == [0, 1, 2, 3]
    assert idx.get("abc") is None and idx.get("abcdx", "none") == "none"


def test_an_edge_splits_where_the_new_key_leaves_it_at_every_point() -> None:
    # The split point is found by a binary search over the edge: each answer from 1 to 15.
    edge = "abcdefghijklmnop"
    for point in range(1, len(edge)):
        idx = PrefixIndex()
        idx.add(edge, "edge")
        leaving = edge[:point] + "#tail"
        idx.add(leaving, "leaving")
        idx._check_invariants()
        assert idx._node_count() == 4  # root, the shared run, the two ends
        assert (idx.get(edge), idx.get(leaving), idx.get(edge[:point])) == ("edge", "leaving", None)


def test_remove_missing_and_inner_prefix() -> None:
    idx = PrefixIndex()
    idx.add("abcd", 1)
    idx.add("abef", 2)  # creates keyless inner node "ab"
    assert not idx.remove("ab")
    assert not idx.remove("abc")
    assert not idx.remove("abcde")
    assert not idx.remove(b"abcd")
    assert len(idx) == 2
    idx._check_invariants()


def test_pruning_keeps_tree_proportional() -> None:
    idx = PrefixIndex()
    keys = ["", "a", "ab", "abc", "abd", "b", "ba", "bab", "xyz"]
    for i, k in enumerate(keys):
        idx.add(k, i)
    assert idx._node_count() <= 2 * len(keys) + 1
    for k in keys[::2] + keys[1::2]:
        assert idx.remove(k)
        idx._check_invariants()
    assert len(idx) == 0
    assert idx._node_count() == 0


def test_merge_after_remove_restores_compression() -> None:
    idx = PrefixIndex()
    idx.add("abcd", 1)
    idx.add("abxy", 2)
    assert idx._node_count() == 4  # root, "ab", "cd", "xy"
    idx.remove("abxy")
    assert idx._node_count() == 2  # root, "abcd"
    idx.add("ab", 3)
    idx.add("abxy", 4)
    idx.remove("ab")
    idx._check_invariants()
    assert idx._node_count() == 4


def test_clear() -> None:
    idx = PrefixIndex()
    idx.add("a", 1)
    idx.add(b"a", 2)
    idx.add((1,), 3)
    idx.clear()
    assert len(idx) == 0
    assert idx._node_count() == 0
    assert idx.longest_prefix("abc") is None


def test_str_subclass_and_bytearray_are_normalised() -> None:
    class S(str):
        pass

    idx = PrefixIndex()
    idx.add(S("abc"), 1)
    idx.add(bytearray(b"xy"), 2)
    k, _ = idx.longest_prefix("abcd")  # type: ignore[misc]
    assert type(k) is str
    k, _ = idx.longest_prefix(bytearray(b"xyz"))  # type: ignore[misc]
    assert type(k) is bytes


def test_long_token_sequence_no_recursion_limit() -> None:
    idx = PrefixIndex()
    seq = tuple(i % 7 for i in range(50_000))
    for cut in (10, 1000, 20_000, 50_000):
        idx.add(seq[:cut], cut)
    assert idx.longest_prefix((*seq, 1)) == (seq, 50_000)
    assert idx.longest_prefix(seq[:30_000])[1] == 20_000  # type: ignore[index]
    for cut in (10, 1000, 20_000, 50_000):
        assert idx.remove(seq[:cut])
    assert idx._node_count() == 0


@settings(deadline=None)
@given(st.lists(any_key, max_size=30), any_key)
def test_matches_brute_force_after_bulk_insert(keys: list[Any], query: Any) -> None:
    idx = PrefixIndex()
    model: dict[tuple[str, Any], int] = {}
    for i, k in enumerate(keys):
        idx.add(k, i)
        model[(kind_of(k), k)] = i
    idx._check_invariants()
    for strict in (False, True):
        assert idx.longest_prefix(query, strict=strict) == brute_longest(
            model, query, strict, None
        )
    for k in keys:
        idx.remove(k)
    assert idx._node_count() == 0
