"""Entry names in shared tiers: unambiguous, prefix-selectable, reversible."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infercache.keyspace import Keyspace

names = st.text(min_size=1, max_size=20)


@given(names, st.text(max_size=10), st.text(max_size=10), st.binary(max_size=40))
def test_a_name_parses_back_to_its_parts(function: str, version: str, ns: str, key: bytes) -> None:
    parsed = Keyspace.parse(Keyspace(function, version).name(ns, key))
    assert (parsed.function, parsed.version, parsed.namespace, parsed.key) == (function, version, ns, key)


@given(
    st.tuples(names, st.text(max_size=5), st.text(max_size=5), st.binary(max_size=8)),
    st.tuples(names, st.text(max_size=5), st.text(max_size=5), st.binary(max_size=8)),
)
def test_distinct_entries_never_share_a_name(a: tuple, b: tuple) -> None:
    if a != b:
        assert Keyspace(a[0], a[1]).name(a[2], a[3]) != Keyspace(b[0], b[1]).name(b[2], b[3])


@given(names, names, st.text(max_size=5), st.text(max_size=5), st.binary(max_size=8))
def test_a_session_prefix_selects_exactly_that_session(fn: str, other: str, ns: str, ns2: str, key: bytes) -> None:
    space = Keyspace(fn)
    name = Keyspace(other).name(ns2, key)
    selected = name.startswith(space.prefix(ns))
    assert selected == (other == fn and ns2 == ns)
    assert name.startswith(space.prefix()) == (other == fn)


def test_versions_and_key_formats_are_apart() -> None:
    assert Keyspace("f", "1").name("", b"k") != Keyspace("f", "2").name("", b"k")
    assert Keyspace("f", key_format=1).name("", b"k") != Keyspace("f", key_format=2).name("", b"k")


def test_one_function_is_one_redis_cluster_hash_tag() -> None:
    name = Keyspace("a{b}.f", "v").name("s", b"k").decode()
    tag = name[name.index("{") + 1 : name.index("}")]
    assert tag == Keyspace("a{b}.f", "v").name("other", b"x").decode().split("{", 1)[1].split("}", 1)[0]
    assert "{" not in tag


def test_garbage_is_not_an_entry_name() -> None:
    for bad in (b"", b"infercache/x/{f/}/ns/00", b"other/1/{f/}/ns/00", b"infercache/1/{f/}/ns/zz"):
        with pytest.raises(ValueError):
            Keyspace.parse(bad)
    with pytest.raises(ValueError):
        Keyspace("")
