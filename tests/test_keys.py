"""Tests for infercache.keys: content keys that are type-tagged, injective and stable.

The package's core: key forms (the short encoding, BLAKE3 and xxh3 digests,
``hash_key``), type tags of the built-in types and containers, refusals and
their messages, ``register_hasher``, call keys, independence from the process
and hash seed, streamed large buffers, and hypothesis properties (equal values
share a key, unequal ones never do). Object reflection and each library
adapter have their own ``test_keys_<module>.py``; every supported type's key
is pinned in ``test_keys_golden.py``.
"""

from __future__ import annotations

import builtins
import collections
import datetime as dt
import decimal
import functools
import importlib.resources
import importlib.util
import io
import json
import math
import os
import pathlib
import struct
import subprocess
import sys
import textwrap
import threading
import uuid
from array import array
from typing import Any
from zoneinfo import ZoneInfo

import blake3
import pytest
import xxhash
from flight_fixtures import HANG_BOUND
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from keys_fixtures import all_distinct, k, refusal_message

from infercache import keys
from infercache.keys import (
    ALGORITHMS,
    UnhashableError,
    encoder,
    hash_key,
    make_call_key,
    make_key,
    register_adapter,
    register_hasher,
    wire,
)
from infercache.keys.api import general_call_key
from infercache.keys.files import key_files_under
from infercache.keys.wire import BIG

# ---------------------------------------------------------------- forms


def test_algorithms_constant() -> None:
    assert ALGORITHMS == ("blake3", "xxh3")


def test_short_form_is_the_encoding() -> None:
    key = k("hello")
    assert type(key) is bytes and type(k("x" * 100)) is bytes
    assert type(make_call_key(("a",), ("p",))) is bytes
    assert key[:1] == b"\x00"
    assert b"hello" in key
    assert len(key) <= 65


def test_long_form_is_a_digest() -> None:
    text = "x" * 200
    blake = k(text)
    xxh = k(text, algorithm="xxh3")
    assert blake[:1] == b"\x01" and len(blake) == 33
    assert xxh[:1] == b"\x02" and len(xxh) == 17


def test_short_keys_do_not_depend_on_algorithm() -> None:
    assert k((1, "a"), algorithm="xxh3") == k((1, "a"))


def test_boundary_between_short_and_long() -> None:
    lengths = set()
    for n in range(40, 80):
        key = k("a" * n)
        lengths.add(key[0])
        if key[0] == 0:
            assert len(key) <= 65
        else:
            assert len(key) == 33
    assert lengths == {0, 1}


def test_hash_key_is_always_a_hex_digest() -> None:
    short = hash_key(1)
    assert len(short) == 64 and int(short, 16) >= 0
    assert len(hash_key(1, algorithm="xxh3")) == 32
    assert hash_key("x" * 1000) == k("x" * 1000)[1:].hex()
    assert hash_key("x" * 1000, algorithm="xxh3") == k("x" * 1000, algorithm="xxh3")[1:].hex()


def test_hash_key_of_short_value_is_digest_of_its_encoding() -> None:
    import blake3

    encoding = k("abc")[1:]
    assert hash_key("abc") == blake3.blake3(encoding).hexdigest()


def test_bad_algorithm_is_value_error() -> None:
    with pytest.raises(ValueError):
        make_key(1, algorithm="md5")
    with pytest.raises(ValueError):
        hash_key(1, algorithm="sha1")
    with pytest.raises(ValueError):
        make_call_key((1,), ("a",), algorithm="nope")


@pytest.mark.parametrize(
    "refuse",
    [
        lambda: make_key(1, algorithm="md5"),
        lambda: hash_key(1, algorithm="md5"),
        lambda: make_call_key((1,), ("a",), algorithm="md5"),
        lambda: make_call_key(tuple(range(20)), ("a",) * 20, algorithm="md5"),
        lambda: general_call_key((1,), ("a",), algorithm="md5"),
    ],
)
def test_an_unknown_algorithm_is_named_with_the_choices(refuse: Any) -> None:
    with pytest.raises(ValueError) as info:
        refuse()
    assert str(info.value) == "unknown hash algorithm 'md5'; choose one of ('blake3', 'xxh3')"


def test_call_keys_are_blake3_keys_unless_told() -> None:
    long_call = ("x" * 100, 0.5)
    assert make_call_key(long_call, ("p", "t")) == make_key(long_call) == general_call_key(long_call, ("p", "t"))
    assert make_call_key(long_call, ("p", "t"))[:1] == b"\x01"


def test_tags_are_unique() -> None:
    tags = list(keys.TAGS.values())
    assert all(len(t) == 1 for t in tags)
    assert len(set(tags)) == len(tags)


# ---------------------------------------------------------------- type tags


def test_seven_kinds_of_one_differ() -> None:
    assert all_distinct([1, 1.0, True, "1", b"1", [1], (1,)])


def test_none_zero_false_differ() -> None:
    assert all_distinct([None, "None", 0, False, 0.0, -0.0, "", b"", (), [], {}, set(), frozenset()])


def test_nan_is_deterministic() -> None:
    assert k(float("nan")) == k(float("nan"))
    assert k([math.nan]) == k([float("nan")])
    assert k(math.nan) != k(math.inf)


def test_bytes_like_types_differ() -> None:
    assert all_distinct([b"ab", bytearray(b"ab"), memoryview(b"ab"), "ab"])
    assert k(bytearray(b"ab")) == k(bytearray(b"ab"))


def test_big_ints() -> None:
    values = [0, 1, -1, 127, 128, -128, -129, 255, 256, 2**63 - 1, 2**63, -(2**63), 2**64,
              10**100, -(10**100), 2**10000, -(2**10000), 2**10000 + 1]
    assert all_distinct(values)
    assert k(10**100) == k(int("1" + "0" * 100))


def test_length_prefixes_prevent_concatenation_collisions() -> None:
    assert k(["ab", "c"]) != k(["a", "bc"])
    assert k([b"ab", b"c"]) != k([b"a", b"bc"])
    assert k((("a",), "b")) != k(("a", ("b",)))
    assert k([[1], [2, 3]]) != k([[1, 2], [3]])
    assert k({"a": "bc"}) != k({"ab": "c"})


def test_dict_insertion_order_does_not_matter() -> None:
    a = {"x": 1, "y": [1, 2], 3: "z", (1, 2): None}
    b = {(1, 2): None, 3: "z", "y": [1, 2], "x": 1}
    assert k(a) == k(b)
    assert k({"b": 1, "a": 2}) == k({"a": 2, "b": 1})


def test_sets_order_independent() -> None:
    a = set()
    b = set()
    items = ["apple", 3, 2.5, (1, "x"), b"q", None, frozenset({1})]
    for x in items:
        a.add(x)
    for x in reversed(items):
        b.add(x)
    assert k(a) == k(b)
    assert k(frozenset(items)) == k(frozenset(reversed(items)))
    assert k(set(items)) != k(frozenset(items))


def test_nested_containers() -> None:
    v1 = {"a": [1, (2, {"b": {3, 4}})], "c": {"d": None}}
    v2 = {"c": {"d": None}, "a": [1, (2, {"b": {4, 3}})]}
    assert k(v1) == k(v2)
    v3 = {"a": [1, (2, {"b": {3, 5}})], "c": {"d": None}}
    assert k(v1) != k(v3)


def test_ordered_dict_keeps_order_and_differs_from_dict() -> None:
    a = collections.OrderedDict([("a", 1), ("b", 2)])
    b = collections.OrderedDict([("b", 2), ("a", 1)])
    assert k(a) != k(b)
    assert k(a) != k({"a": 1, "b": 2})
    assert k(a) == k(collections.OrderedDict([("a", 1), ("b", 2)]))


def test_packed_float_and_int_lists() -> None:
    floats = [i / 7 for i in range(100)]
    assert k(floats) == k(list(floats))
    assert k(floats) != k(tuple(floats))
    changed = list(floats)
    changed[50] = -changed[50]
    assert k(floats) != k(changed)
    mixed = list(floats)
    mixed[3] = 3
    assert k(mixed) != k(floats)
    ints = list(range(-50, 50))
    assert k(ints) != k([float(i) for i in ints])
    assert k(ints) != k([*ints[:-1], 2**70])
    assert k([True] * 20) != k([1] * 20)


def test_scalars_of_many_kinds() -> None:
    values = [
        1 + 2j, 1 - 2j, complex(1, 0), range(3), range(0, 3, 2), range(1, 3), slice(1, 2),
        slice(1, 2, 1), ..., decimal.Decimal("1.5"), decimal.Decimal("1.50"),
        uuid.UUID(int=1), uuid.UUID(int=2), pathlib.PurePosixPath("a/b"),
        pathlib.PurePosixPath("a/c"), pathlib.PureWindowsPath("a/b"), "a/b",
        dt.date(2024, 1, 2), dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 2, 3),
        dt.datetime(2024, 1, 2, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.time(1, 2), dt.time(1, 2, tzinfo=dt.timezone.utc), dt.timedelta(days=1),
        dt.timedelta(seconds=1), dt.timedelta(days=-1), dt.timezone.utc, int, str,
    ]
    assert all_distinct(values)
    assert k(range(3)) == k(range(0, 3))  # the point: an explicit start is equal
    assert k(pathlib.PurePosixPath("a/b")) == k(pathlib.PurePosixPath("a") / "b")
    assert k(decimal.Decimal("2.5")) == k(decimal.Decimal("2.5"))
    assert k(uuid.UUID(int=7)) == k(uuid.UUID(int=7))


# ---------------------------------------------------------------- refusals and errors


def test_slices_key_apart_in_each_of_start_stop_and_step() -> None:
    base = slice(1, 5, 2)
    others = [slice(0, 5, 2), slice(1, 6, 2), slice(1, 5, 3), slice(None, 5, 2), slice(1, None, 2),
              slice(1, 5), slice("1", 5, 2), slice(1, "5", 2), slice(1, 5, "2")]
    assert all_distinct([base, *others])
    assert k(base) == k(slice(1, 5, 2)) and k(slice("a", "b")) == k(slice("a", "b", None))


def test_strided_memoryviews_are_keyed_by_the_items_they_show() -> None:
    data = bytes(range(200)) * 50  # 10 000 bytes: the items shown are streamed past 4 KiB
    for view in (memoryview(data)[::2], memoryview(data)[::-1], memoryview(array("i", range(3000)))[1::3]):
        assert not view.c_contiguous
        assert k(view) == k(memoryview(view.tobytes()).cast(view.format))
        assert k(view) != k(memoryview(data))


class Req:
    """A plain object (module level: a local class cannot be keyed by content)."""

    def __init__(self, text: str) -> None:
        self.text = text


@pytest.mark.parametrize(
    "value, word",
    [
        (object(), "no state"),
        (lambda x: x, "code"),
        (len, "code"),
        (sys, "module"),
        (threading.Lock(), "lock"),
        (threading.RLock(), "lock"),
        ((i for i in range(3)), "generator"),
        (threading.Thread(target=None), "thread"),
        (Req("a").__init__, "code"),
    ],
)
def test_unhashable_values_raise(value: Any, word: str) -> None:
    with pytest.raises(UnhashableError) as info:
        make_key(value, where="arg")
    msg = str(info.value)
    assert word in msg
    assert "'arg'" in msg
    assert "key=" in msg and "register_hasher" in msg
    assert isinstance(info.value, TypeError)


_CODE = "functions and methods are code, not data: their content cannot be compared"
_RUNNING = "generators, coroutines and frames are running computations, not data"


async def _coroutine() -> None:
    pass


async def _async_generator() -> Any:
    yield 1


def _frame_and_traceback() -> tuple[Any, Any]:
    try:
        raise ValueError("x")
    except ValueError as e:
        return sys._getframe(), e.__traceback__


class AppThread(threading.Thread):
    pass


class AppStream(io.StringIO):
    pass


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: (lambda x: x), _CODE),
        (lambda: len, _CODE),
        (lambda: Req("a").__init__, _CODE),
        (lambda: Req("a").__str__, _CODE),  # a method-wrapper
        (lambda: object.__init__, _CODE),  # a wrapper descriptor
        (lambda: str.join, _CODE),  # a method descriptor
        (lambda: dict.__dict__["fromkeys"], _CODE),  # a class method descriptor
        (lambda: functools.partial(int, base=2), _CODE),
        (lambda: sys, "modules are not data"),
        (lambda: (i for i in range(3)), _RUNNING),
        (_coroutine, _RUNNING),
        (_async_generator, _RUNNING),
        (lambda: _frame_and_traceback()[0], _RUNNING),
        (lambda: _frame_and_traceback()[1], _RUNNING),
        (io.BytesIO, "open files and streams have no stable content"),
        (AppStream, "open files and streams have no stable content"),
        (threading.Lock, "locks are synchronisation objects, not data"),
        (threading.RLock, "locks are synchronisation objects, not data"),
        (lambda: threading.Thread(target=None), "threads are running computations, not data"),
        (lambda: AppThread(target=None), "threads are running computations, not data"),
    ],
)
def test_values_that_are_not_data_are_refused_with_the_reason_of_their_kind(make: Any, reason: str) -> None:
    value = make()
    try:
        with pytest.raises(UnhashableError) as info:
            make_key([value], where="arg")
        assert (info.value.type, info.value.reason, info.value.path) == (type(value), reason, "[0]")
    finally:
        if hasattr(value, "close"):
            value.close()


class Outer:
    class Inner:
        """A nested class: its qualified name, Outer.Inner, leads back to it through Outer."""


def _make_class() -> type:
    return type("Unreachable", (), {})  # named Unreachable, but the module has no such name


_MADE = _make_class()
_LOCAL = ("its class is defined inside a function (a local class), so its name does not identify it across "
          "calls and processes")


def _local_class() -> type:
    class Local:
        pass

    return Local


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: _MADE, f"the name {__name__}.Unreachable does not lead back to this class (a class made by a factory, "
                        "or replaced or removed from its module), so two different classes could share it"),
        (_local_class, _LOCAL),
        (lambda: type("Nameless", (), {"__module__": None}),
         "its class has no module and qualified name to identify it by"),
        (lambda: type("Ghost", (), {"__module__": "no_module_of_that_name"}),
         "its class's module 'no_module_of_that_name' is not imported, so its name cannot be checked"),
    ],
)
def test_a_class_whose_name_does_not_lead_back_to_it_is_refused_with_why(make: Any, reason: str) -> None:
    cls = make()
    for value in (cls, [cls], {"k": cls}):
        with pytest.raises(UnhashableError) as info:
            make_key(value)
        assert (info.value.type, info.value.reason) == (cls, reason)


def test_a_class_whose_name_leads_back_to_it_is_keyed_by_that_name() -> None:
    assert k(Outer.Inner) == k(Outer.Inner) != k(Outer)
    assert all_distinct([Outer.Inner, Outer, Req, Outer.Inner()])
    # Built-in types exist once per process under their name, even one its module does not export.
    assert all_distinct([type({}.keys()), type({}.values()), type({}.items()), dict])
    assert k(type({}.keys())) == k(type({1: 2}.keys()))


class ModuleNamingMeta(type):
    """A metaclass with a ``__module__`` of its own: a class's own entry comes first."""

    @property  # type: ignore[override]
    def __module__(cls) -> str:
        return str(cls.__dict__.get("home", "no_module_of_that_name"))


class NamedByItsModule(metaclass=ModuleNamingMeta):
    """Defined here, so its own ``__module__`` entry names this module."""


def _class_made_where_no_module_is_named(
    name: str, namespace: dict[str, Any], meta: type = type, bases: tuple[type, ...] = ()
) -> type:
    """A class made by code run without a module name: it has no ``__module__`` entry of its own."""
    scope: dict[str, Any] = {"__builtins__": builtins, "meta": meta, "namespace": namespace, "bases": bases}
    exec(f"made = meta({name!r}, bases, namespace)", scope)  # noqa: S102 - no __name__ in its globals
    made: type = scope["made"]
    assert "__module__" not in made.__dict__
    return made


# Named by its metaclass only (its namespace's "home"): the name leads back to it.
Homeless = _class_made_where_no_module_is_named("Homeless", {"home": __name__}, ModuleNamingMeta)


def test_a_class_is_named_by_its_own_module_entry_else_by_what_its_type_says() -> None:
    assert k(NamedByItsModule) == k(NamedByItsModule) != k(Homeless)
    assert all_distinct([NamedByItsModule, Homeless, NamedByItsModule(), Homeless()])
    plain = _class_made_where_no_module_is_named("Plain", {})
    with pytest.raises(UnhashableError) as info:
        make_key(plain)
    reason = "its class has no module and qualified name to identify it by"
    assert (info.value.type, info.value.reason) == (plain, reason)
    assert str(info.value).startswith("infercache cannot build a cache key for the value: a None.Plain object cannot ")


def test_open_file_is_unhashable(tmp_path: pathlib.Path) -> None:
    with open(tmp_path / "f.txt", "w") as fh, pytest.raises(UnhashableError, match="file"):
        make_key(fh)


class Holder:
    def __init__(self) -> None:
        self.model = threading.Lock()


def test_error_names_parameter_type_and_path() -> None:
    with pytest.raises(UnhashableError) as info:
        make_call_key(("ok", {"cfg": [1, lambda: 0]}), ("prompt", "options"))
    err = info.value
    assert err.where == "options"
    assert "'options'" in str(err)
    assert "options['cfg'][1]" in str(err)
    assert "function" in str(err)
    assert "register_hasher(function" in str(err)

    with pytest.raises(UnhashableError) as info:
        make_call_key((1, 2, Holder()), ("a", "b", "holder"))
    assert info.value.where == "holder"
    assert "holder.model" in str(info.value)


def test_cycles_raise_unhashable_not_recursion() -> None:
    a: list = [1]
    a.append(a)
    d: dict = {}
    d["self"] = d
    r = Req("x")
    r.me = r
    for value in (a, d, r, [[a]]):
        with pytest.raises(UnhashableError, match="cycle"):
            make_key(value)


_LOCK_REASON = "locks are synchronisation objects, not data"


def _self_holding_list() -> list[Any]:
    a: list[Any] = [1]
    a.append(a)
    return a


def _self_holding_dict() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


@pytest.mark.parametrize(
    ("make", "path", "type_", "reason"),
    [
        (lambda lock: {lock}, " (an element)", None, _LOCK_REASON),
        (lambda lock: frozenset({lock}), " (an element)", None, _LOCK_REASON),
        (lambda lock: [0, {1, lock}], "[1] (an element)", None, _LOCK_REASON),
        (lambda lock: {lock: 1}, " (key {lock!r})", None, _LOCK_REASON),
        (lambda lock: {1: lock}, "[1]", None, _LOCK_REASON),
        (lambda lock: {"a": lock}, "['a']", None, _LOCK_REASON),
        (lambda lock: {1: [0, lock]}, "[1][1]", None, _LOCK_REASON),
        (lambda lock: _self_holding_dict(), "['self']", dict, "it contains itself (a reference cycle)"),
        (lambda lock: {1: _self_holding_dict()}, "[1]['self']", dict, "it contains itself (a reference cycle)"),
        (lambda lock: _self_holding_list(), "[1]", list, "it contains itself (a reference cycle)"),
        (lambda lock: ("x", [0, _self_holding_list()]), "[1][1][1]", list, "it contains itself (a reference cycle)"),
    ],
)
def test_a_refusal_inside_a_set_or_a_dict_says_where_it_is(make: Any, path: str, type_: Any, reason: str) -> None:
    lock = threading.Lock()
    with pytest.raises(UnhashableError) as info:
        make_key(make(lock))
    assert (info.value.path, info.value.type, info.value.reason) == (
        path.format(lock=lock), type_ or type(lock), reason)


def test_a_dict_keyed_by_distinct_objects_of_equal_content_is_keyed() -> None:
    # Its keys encode alike: the order between them must not compare the keys or their values.
    d = {Req("a"): [1], Req("a"): {2}, Req("b"): None}
    assert k(d) == k(d) and len(d) == 3
    assert k(d) != k({Req("a"): [1], Req("b"): None})
    shared: dict[str, Any] = {"x": 1}
    assert k({"a": shared, "b": shared}) == k({"a": {"x": 1}, "b": {"x": 1}})  # not a cycle


def test_shared_references_are_not_cycles() -> None:
    inner = [1, 2]
    assert k([inner, inner]) == k([[1, 2], [1, 2]])


def test_very_deep_nesting_raises_unhashable() -> None:
    v: Any = 0
    for _ in range(100_000):
        v = [v]
    with pytest.raises(UnhashableError):
        make_key(v)
    with pytest.raises(UnhashableError):
        make_call_key((v,), ("deep",))


_TWELVE = tuple(f"p{i}" for i in range(12))


@pytest.mark.parametrize(
    "refuse, where, path, subject",
    [
        (lambda lock: make_key(lock, where="model"), "model", "", "parameter 'model'"),
        (lambda lock: make_key(lock), None, "", "the value"),
        (lambda lock: hash_key({"a": [lock]}), None, "['a'][0]", "the value (at value['a'][0])"),
        (lambda lock: make_key({"a": [lock]}, where="cfg"), "cfg", "['a'][0]", "parameter 'cfg' (at cfg['a'][0])"),
        # A call names the parameter whose value is refused, and the path inside it.
        (lambda lock: make_call_key(("x", lock), ("p", "m")), "m", "", "parameter 'm'"),
        (lambda lock: make_call_key(("x", {"a": [lock]}), ("p", "cfg"), "xxh3"), "cfg", "['a'][0]",
         "parameter 'cfg' (at cfg['a'][0])"),
        (lambda lock: make_call_key((*range(11), [lock]), _TWELVE), "p11", "[0]", "parameter 'p11' (at p11[0])"),
        (lambda lock: make_call_key((*range(16), lock, 0.5), ("a",) * 16 + ("seventeenth", "b")),
         "seventeenth", "", "parameter 'seventeenth'"),
        # More values than names (a caller's *args): the position stands for the name.
        (lambda lock: make_call_key(("x", lock), ("p",)), "#1", "", "parameter '#1'"),
    ],
)
def test_a_refusal_says_which_value_what_type_why_and_how_to_fix(
    refuse: Any, where: str | None, path: str, subject: str
) -> None:
    lock = threading.Lock()
    with pytest.raises(UnhashableError) as info:
        refuse(lock)
    err = info.value
    assert str(err) == refusal_message("_thread.lock", _LOCK_REASON, "lock", subject=subject)
    assert (err.where, err.path, err.type, err.reason) == (where, path, type(lock), _LOCK_REASON)


def test_a_value_nested_too_deeply_is_refused_with_what_to_do() -> None:
    v: Any = 0
    for _ in range(100_000):
        v = [v]
    fix = (
        ": it is nested too deeply (or a registered hasher returns the object itself). "
        "Fix: choose what identifies the call (key= on the decorator; for a Cache, a flatter key) "
        "or use infercache.register_hasher."
    )
    for refuse, subject, where, type_ in [
        (lambda: make_key(v, where="deep"), "parameter 'deep'", "deep", list),
        (lambda: make_key(v), "the value", None, list),
        (lambda: make_key(v, where=""), "the value", "", list),
        # A call's own encoder runs out of stack too: refused as the tuple of its values.
        (lambda: make_call_key((v,), ("deep",), "xxh3"), "the value", None, tuple),
        (lambda: general_call_key([v], ("deep",)), "the value", None, tuple),  # type: ignore[arg-type]
    ]:
        with pytest.raises(UnhashableError) as info:
            refuse()
        err = info.value
        assert str(err) == "infercache cannot build a cache key for " + subject + fix
        assert (err.where, err.path, err.type, err.reason) == (where, "", type_, "nested too deeply")


# ---------------------------------------------------------------- registration


class Doc:
    def __init__(self, text: str, handle: Any) -> None:
        self.text = text
        self.handle = handle


class SubDoc(Doc):
    pass


class Twin:
    def __init__(self, text: str) -> None:
        self.text = text


def test_register_hasher() -> None:
    lock = threading.Lock()
    with pytest.raises(UnhashableError):
        make_key(Doc("a", lock))
    register_hasher(Doc, lambda d: d.text)
    assert k(Doc("a", lock)) == k(Doc("a", threading.Lock()))
    assert k(Doc("a", lock)) != k(Doc("b", lock))
    assert k(Doc("a", lock)) != k("a")
    assert k(SubDoc("a", lock)) == k(SubDoc("a", None))
    assert k(SubDoc("a", lock)) != k(Doc("a", lock))
    register_hasher(Twin, lambda t: t.text)
    assert k(Twin("a")) != k(Doc("a", lock))
    register_hasher(Doc, lambda d: d.text.upper())
    assert k(Doc("a", lock)) == k(Doc("A", lock))


class Vouched:
    """A class registered by the test below only (and unregistered again)."""

    def __init__(self, text: str) -> None:
        self.text = text


class SubVouched(Vouched):
    pass


def test_a_registered_class_is_keyed_under_its_name_and_a_subclass_only_if_its_name_identifies_it() -> None:
    # Registering a class vouches for it, even a local one; a subclass only inherits the
    # registration when its name leads back to it.
    class Local(Vouched):
        pass

    class LocalSub(Vouched):
        pass

    register_hasher(Local, lambda v: v.text)
    register_hasher(Vouched, lambda v: v.text)
    try:
        assert k(Local("a")) == k(Local("a")) != k(Local("b"))
        assert all_distinct([Local("a"), Vouched("a"), SubVouched("a"), "a"])
        with pytest.raises(UnhashableError) as info:
            make_key(LocalSub("a"))
        assert [encoder._rule(t)[0] for t in (Local, Vouched, LocalSub)] == ["registered", "registered", "refused"]
    finally:
        for registered in (Local, Vouched):
            encoder._REGISTRY.pop(registered, None)
        encoder._forget_resolved()
    assert (info.value.type, info.value.reason) == (
        LocalSub,
        "its class is defined inside a function (a local class), so its name does not identify it across "
        f"calls and processes; register_hasher({LocalSub.__qualname__}, fn) to key it",
    )


@pytest.mark.parametrize(
    ("type_", "fn", "message"),
    [
        ("Doc", len, "register_hasher needs a type, got 'Doc'"),
        (Doc, 42, "register_hasher needs a callable, got 42"),
        (str, len, "the encoding of built-in type str cannot be overridden"),
        (list, len, "the encoding of built-in type list cannot be overridden"),
    ],
)
def test_register_hasher_refuses_what_it_cannot_use_and_says_why(type_: Any, fn: Any, message: str) -> None:
    with pytest.raises(TypeError) as info:
        register_hasher(type_, fn)
    assert str(info.value) == message


class ReadingAdapter:
    """An adapter that is a callable object, not a function (it has no ``__qualname__``)."""

    def __call__(self, t: type) -> Any:
        return _enc_reading if t is Reading else None


def test_an_adapter_may_be_any_callable() -> None:
    anonymous = _class_made_where_no_module_is_named("Anonymous", {"__call__": ReadingAdapter.__call__})
    for builder in (ReadingAdapter(), anonymous()):  # the second has no __module__ either
        register_adapter(builder)
        try:
            assert k(Reading(1.5, None)) == k(Reading(1.5, None)) != k(Reading(2.5, None))
            assert encoder._rule(Reading)[0] in encoder._builders()
        finally:
            encoder._ADAPTERS.remove(builder)
            encoder._forget_resolved()


def test_every_builder_is_named_by_its_module_and_qualified_name() -> None:
    # The golden table's check names the rule that keyed each type this way, and tells by the
    # name's module which library an adapter needs (its rows skip without it).
    builders = [*encoder._ADAPTERS, *encoder._OBJECT_RULES, *encoder._OBJECT_FALLBACK]
    names = encoder._builders()
    assert names == [f"{b.__module__}.{b.__qualname__}" for b in builders]
    assert all(n.startswith("infercache.keys.") and " at 0x" not in n for n in names)
    assert encoder._rule(Req)[0] in names and encoder._rule(int)[0] == "core"
    # Every way to refuse a type is named alike, whichever step refuses it.
    assert encoder._rule(type(threading.Lock()))[0] == "refused"  # by its kind
    assert encoder._rule(_local_class())[0] == "refused"  # by a builder (the object rules)


class Reading:
    """A value the object rules refuse (it holds a lock): only the adapter below keys it."""

    def __init__(self, celsius: float, lock: Any) -> None:
        self.celsius = celsius
        self.lock = lock


class Fahrenheit:
    """A value the object rules key (by its attributes): the adapter below declines it."""

    def __init__(self, degrees: float) -> None:
        self.degrees = degrees


def _enc_reading(obj: Reading, out: Any) -> None:
    out += encoder.tagged(b"R", Reading)
    encoder.encode(obj.celsius, out)


def test_an_adapter_keys_the_types_its_builder_knows_before_the_object_rules() -> None:
    lock = threading.Lock()
    with pytest.raises(UnhashableError):
        make_key(Reading(21.5, lock))
    asked: list[type] = []

    def builder(t: type) -> Any:
        asked.append(t)
        return _enc_reading if t is Reading else None

    assert register_adapter(builder) is builder  # usable as a decorator
    try:
        assert k(Reading(21.5, lock)) == k(Reading(21.5, None))
        assert all_distinct([Reading(21.5, lock), Reading(22.0, lock), 21.5, Fahrenheit(21.5)])
        assert k(Fahrenheit(70.0)) == k(Fahrenheit(70.0))  # keyed by the object rules, as before
        assert k([Reading(1.0, None), Fahrenheit(1.0), Reading(2.0, None)]) != k([Reading(1.0, None)])  # among items
        assert asked.count(Reading) == 1 and asked.count(Fahrenheit) == 1  # once per type
    finally:
        encoder._ADAPTERS.remove(builder)
        encoder._forget_resolved()
    with pytest.raises(UnhashableError):
        make_key(Reading(21.5, lock))


def test_a_hasher_registered_while_another_thread_makes_keys_never_fails() -> None:
    # A registration forgets the encoder of every type resolved so far while the other
    # thread resolves each type it meets for the first time: neither may fail for it (an
    # iteration over the resolved types failed here with "dictionary changed size during
    # iteration" in nearly every run).
    met = [type(f"Met{i}", (), {}) for i in range(12000)]
    for c in met:
        register_hasher(c, bool)
    values = [c() for c in met]
    done, progress = threading.Event(), threading.Event()
    errors: list[Exception] = []

    def register() -> None:
        try:
            for i in range(30):
                progress.wait(10)  # thousands of types met since the last registration
                progress.clear()
                register_hasher(met[i], bool)
        except Exception as e:  # noqa: BLE001 - the test thread reports it
            errors.append(e)

    def make_keys() -> None:
        try:
            while not done.is_set():
                for i, v in enumerate(values):
                    make_key(v)
                    if i % 6000 == 5999:
                        progress.set()
        except Exception as e:  # noqa: BLE001 - the test thread reports it
            errors.append(e)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads take turns as often as they can
    threads = [threading.Thread(target=make_keys), threading.Thread(target=register)]
    try:
        for t in threads:
            t.start()
        threads[1].join(30)
        done.set()
        threads[0].join(30)
    finally:
        sys.setswitchinterval(interval)
        done.set()
        for c in met:
            encoder._REGISTRY.pop(c, None)
        encoder._forget_resolved()
    assert not any(t.is_alive() for t in threads)
    assert errors == []



def test_a_hasher_registered_while_another_thread_resolves_its_type_is_the_one_used() -> None:
    """An encoder built from the rules before a registration is not remembered after it:
    the type is keyed by the hasher registered for it from then on."""

    class Late:
        """Refused (a local class) until a hasher is registered for it."""

    asked, go = threading.Event(), threading.Event()

    def builder(t: type) -> None:
        if t is Late:  # the other thread resolves it: it waits here until the registration
            asked.set()
            go.wait(HANG_BOUND)
        return None

    hashed: list[object] = []
    value, first = Late(), []
    register_adapter(builder)
    try:
        resolving = threading.Thread(target=lambda: first.append(_key_or_none(value)), daemon=True)
        resolving.start()
        assert asked.wait(HANG_BOUND)
        register_hasher(Late, lambda v: hashed.append(v) or "registered")
        go.set()
        resolving.join(HANG_BOUND)
        assert first == [None] and hashed == []  # refused by the rules it was resolved with
        make_key(value)  # not refused: the hasher keys it
        assert hashed == [value]
    finally:
        encoder._ADAPTERS.remove(builder)
        encoder._REGISTRY.pop(Late, None)
        encoder._forget_resolved()


def _key_or_none(value: Any) -> bytes | None:
    """``value``'s key, or None when it is refused."""
    try:
        return make_key(value)
    except UnhashableError:
        return None


def _tzif(name: str) -> bytes:
    """The TZif data of zone ``name``, as the tzdata package ships it."""
    pytest.importorskip("tzdata")
    return importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/")).read_bytes()


def test_a_dateutil_zone_read_from_an_unnamed_file_object_is_keyed_by_its_contents() -> None:
    # dateutil names such a zone by the file object's repr, which holds an address: one file
    # object read once for London and once for Tokyo gives both zones the same name.
    dateutil_tz = pytest.importorskip("dateutil.tz")
    data = io.BytesIO(_tzif("Europe/London"))
    london = dateutil_tz.tzfile(data)
    data.seek(0)
    data.truncate()
    data.write(_tzif("Asia/Tokyo"))
    data.seek(0)
    tokyo = dateutil_tz.tzfile(data)
    assert london != tokyo
    # Keyed by its state instead, never by that name: refused when the state holds methods
    # (dateutil 4 keeps a footer's daylight-saving rule as one), else a key of its own.
    keyed = [_key_or_none(london), _key_or_none(tokyo)]
    assert keyed != [None, None] and keyed[0] != keyed[1]
    # So is a zone given an empty file name.
    london, tokyo = (dateutil_tz.tzfile(io.BytesIO(_tzif(n)), filename="") for n in ("Europe/London", "Asia/Tokyo"))
    keyed = [_key_or_none(london), _key_or_none(tokyo)]
    assert keyed != [None, None] and keyed[0] != keyed[1]


def test_a_dateutil_zone_is_named_alike_from_any_path_to_its_database() -> None:
    dateutil_tz = pytest.importorskip("dateutil.tz")

    def zone(name: str, path: str) -> Any:
        return dateutil_tz.tzfile(io.BytesIO(_tzif(name)), filename=path)

    paths = [
        "Europe/London",
        "/usr/share/zoneinfo/Europe/London",
        "C:\\Python\\Lib\\site-packages\\tzdata\\zoneinfo\\Europe\\London",
        "/zoneinfo/Europe/London",  # a database at the root (a container's)
        "/srv/zoneinfo/app/.venv/lib/site-packages/tzdata/zoneinfo/Europe/London",  # the last one counts
    ]
    assert len({k(zone("Europe/London", path)) for path in paths}) == 1
    assert k(zone("Europe/London", paths[2])) != k(zone("Europe/Dublin", "C:\\tzdata\\zoneinfo\\Europe\\Dublin"))


def _local_zone() -> dt.tzinfo:
    class LocalZone(dt.tzinfo):
        def utcoffset(self, when: Any) -> dt.timedelta:
            return dt.timedelta(0)

    return LocalZone()


def _zone_from_file() -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo.from_file(io.BytesIO(_tzif("UTC")))  # no key: nothing names it


@pytest.mark.parametrize(
    ("zone", "reason"),
    [
        (_local_zone, "its class is defined inside a function (a local class), so its name does not "
                      "identify it across calls and processes"),
        (_zone_from_file, "its state lives in the C type 'zoneinfo:ZoneInfo' (an extension type whose "
                          "instances hold data that no __dict__ or __slots__ shows), which infercache cannot read"),
    ],
)
@pytest.mark.parametrize("holder", ["zone", "datetime", "time"])
def test_a_zone_keyed_by_a_state_that_cannot_be_read_is_refused_with_why(zone: Any, reason: str, holder: str) -> None:
    tz = zone()
    value = {"zone": tz, "datetime": dt.datetime(2024, 1, 1, tzinfo=tz), "time": dt.time(9, tzinfo=tz)}[holder]
    for _ in range(2):  # the refusal is remembered per type: the second time too
        with pytest.raises(UnhashableError) as info:
            make_key(value)
        t = type(tz)
        assert (info.value.type, info.value.reason) == (t, reason)
        assert str(info.value) == refusal_message(f"{t.__module__}.{t.__qualname__}", reason, t.__qualname__)


if importlib.util.find_spec("dateutil") is not None:
    from dateutil import tz as _dateutil_tz

    class ZoneFromData(_dateutil_tz.tzfile):  # type: ignore[misc]
        """A dateutil zone of the app's own making, read from TZif data without a file name
        (``tzfile.__init__``, which sets one, is not run)."""

        def __init__(self, data: bytes) -> None:
            self._load_file(io.BytesIO(data))
            self._key = None


def test_a_dateutil_zone_without_a_file_name_is_keyed_by_its_state() -> None:
    pytest.importorskip("dateutil.tz")
    london, tokyo = ZoneFromData(_tzif("Europe/London")), ZoneFromData(_tzif("Asia/Tokyo"))
    assert not hasattr(london, "_filename")
    keyed = [_key_or_none(london), _key_or_none(tokyo)]  # as above: refused, or keyed apart
    assert keyed != [None, None] and keyed[0] != keyed[1]


class AppZone(ZoneInfo):
    """A zone class of the app's own, on top of zoneinfo's."""


_APP_ZONES: dict[str, type] = {"zoneinfo": AppZone}
if importlib.util.find_spec("pytz") is not None:
    import pytz as _pytz

    class AppUTC(type(_pytz.utc)):  # type: ignore[misc]
        """A pytz zone class of the app's own."""

    _APP_ZONES["pytz"] = AppUTC
if importlib.util.find_spec("dateutil") is not None:

    class AppZoneFile(_dateutil_tz.tzfile):  # type: ignore[misc]
        """A dateutil zone class of the app's own."""

    _APP_ZONES["dateutil"] = AppZoneFile


def _zones(library: str) -> tuple[Any, Any, Any]:
    """A zone of ``library``'s own class, the same zone of the app's class, another zone of the app's."""
    pytest.importorskip(library)
    if library == "zoneinfo":
        return ZoneInfo("Europe/London"), AppZone.no_cache("Europe/London"), AppZone.no_cache("Europe/Paris")
    if library == "pytz":
        return _pytz.utc, AppUTC(), _pytz.timezone("Europe/London")  # the app's class has one zone: UTC

    def read(cls: type, name: str) -> Any:
        return cls(io.BytesIO(_tzif(name)), filename=name)

    return (read(_dateutil_tz.tzfile, "Europe/London"), read(AppZoneFile, "Europe/London"),
            read(AppZoneFile, "Europe/Paris"))


@pytest.mark.parametrize("library", ["zoneinfo", "pytz", "dateutil"])
def test_a_zone_class_made_outside_its_library_is_part_of_the_zones_key(library: str) -> None:
    own, app, other = _zones(library)
    assert type(app) is _APP_ZONES[library] and type(own) is not type(app)
    when = dt.datetime(2024, 1, 15, 9)
    assert all_distinct([own, app, other, when.replace(tzinfo=own), when.replace(tzinfo=app)])
    assert k(app) == k(_zones(library)[1])


class ClaimingMeta(type):
    """A metaclass that says its classes belong to zoneinfo."""

    @property  # type: ignore[override]
    def __module__(cls) -> str:
        return "zoneinfo"


class ClaimingZone(ZoneInfo, metaclass=ClaimingMeta):
    """Defined here: its own ``__module__`` entry, not its metaclass, says whose it is."""


def test_a_zone_class_is_its_librarys_own_only_by_its_own_module_entry() -> None:
    zone = ClaimingZone.no_cache("Europe/London")
    assert type(zone).__module__ == "zoneinfo"
    assert k(zone) == k(ClaimingZone.no_cache("Europe/London")) != k(ZoneInfo("Europe/London"))
    made = _class_made_where_no_module_is_named("MadeZone", {}, bases=(ZoneInfo,))
    with pytest.raises(UnhashableError) as info:
        make_key(made.no_cache("Europe/London"))
    reason = "its class has no module and qualified name to identify it by"
    assert (info.value.type, info.value.reason) == (made, reason)


@pytest.mark.parametrize("library", ["zoneinfo", "pytz", "dateutil"])
def test_a_local_zone_class_made_on_top_of_a_library_is_refused(library: str) -> None:
    class LocalZone(type(_zones(library)[0])):  # type: ignore[misc]
        pass

    if library == "zoneinfo":
        zone = LocalZone.no_cache("Europe/London")
    elif library == "pytz":
        zone = LocalZone()
    else:
        zone = LocalZone(io.BytesIO(_tzif("Europe/London")), filename="Europe/London")
    with pytest.raises(UnhashableError) as info:
        make_key(dt.datetime(2024, 1, 15, 9, tzinfo=zone))
    assert (info.value.type, info.value.reason) == (
        LocalZone,
        "its class is defined inside a function (a local class), so its name does not identify it across "
        "calls and processes",
    )


# ---------------------------------------------------------------- call keys


@pytest.mark.parametrize(
    "values",
    [
        (),
        ("hello world", 0.7),
        ("hello", 1, None, True, False, -3, 2.5),
        ("x" * 500, 0.1),
        ("\ud800 lone surrogate", 1),
        ("é日本", 2**80),
        tuple(float(i) for i in range(20)),
        tuple(range(20)),
        ([1, 2], {"a": 1}, Req("r")),
        ("a" * 60,),
        ("a" * 61,),
        ("a" * 62,),
    ],
)
def test_call_key_equals_make_key_of_tuple(values: tuple) -> None:
    names = tuple(f"p{i}" for i in range(len(values)))
    for algorithm in ALGORITHMS:
        assert make_call_key(values, names, algorithm=algorithm) == make_key(values, algorithm=algorithm)


def test_call_key_distinguishes_arguments() -> None:
    names = ("prompt", "temperature")
    assert make_call_key(("hi", 0.7), names) != make_call_key(("hi", 0.8), names)
    assert make_call_key(("hi", 1), names) != make_call_key(("hi", 1.0), names)
    assert make_call_key(("hi", 1), names) != make_call_key(("hi", True), names)
    assert make_call_key(("a", "bc"), names) != make_call_key(("ab", "c"), names)


# ---------------------------------------------------------------- process independence


_STABLE_SCRIPT = textwrap.dedent(
    """
    import dataclasses, datetime, decimal, json, pathlib, uuid
    from infercache.keys import hash_key

    class Req:
        def __init__(self, text):
            self.text = text

    values = [
        "text", 1, 2**90, 1.5, None, True, b"raw", ("t", 1), [1, "a"],
        {"b": 1, "a": 2, 3: [4]}, {"x", "y", "z", "w", "v"}, frozenset({1, "a", (2, 3)}),
        {("k", 1): {"s", "t"}}, Req("hello"), decimal.Decimal("1.1"), uuid.UUID(int=5),
        pathlib.PurePosixPath("a/b"), datetime.datetime(2020, 1, 1), "x" * 1000,
        [float(i) for i in range(100)],
    ]
    print(json.dumps([[hash_key(v), hash_key(v, algorithm="xxh3")] for v in values]))
    """
)


def _run(code: str, **env: str) -> str:
    full_env = dict(os.environ)
    full_env.update(env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=full_env, check=True, timeout=120)
    return result.stdout


def test_keys_do_not_depend_on_hash_seed_or_process() -> None:
    a = json.loads(_run(_STABLE_SCRIPT, PYTHONHASHSEED="1"))
    b = json.loads(_run(_STABLE_SCRIPT, PYTHONHASHSEED="987654"))
    c = json.loads(_run(_STABLE_SCRIPT, PYTHONHASHSEED="random"))
    assert a == b == c


def test_import_does_not_pull_heavy_libraries() -> None:
    code = textwrap.dedent(
        """
        import sys
        import infercache.keys
        from infercache.keys import make_key
        make_key([1, "a", {"b": 2.0}, {3}, (None,)])
        heavy = [m for m in ("numpy", "torch", "pandas", "PIL", "pydantic") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    assert _run(code).strip() == ""


# ---------------------------------------------------------------- large buffers


np = pytest.importorskip("numpy")


def test_numpy_large_buffers_streamed_equal_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    arr = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    values = [arr, {"img": arr, "n": 1}, {(1, 2): "x" * 10_000}, {b"k" * 5000}, "y" * 50_000]
    streamed = [(make_key(v), make_key(v, algorithm="xxh3")) for v in values]
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("infercache.keys.") and hasattr(module, "BIG"):
            monkeypatch.setattr(module, "BIG", 10**9)
    inline = [(make_key(v), make_key(v, algorithm="xxh3")) for v in values]
    assert streamed[:3] == inline[:3]
    assert streamed[4] == inline[4]
    assert streamed[3] != inline[3]
    for key, xkey in streamed:
        assert key[0] == 1 and len(key) == 33
        assert xkey[0] == 2 and len(xkey) == 17


def test_a_buffer_of_exactly_4_kib_is_copied_into_the_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    # Up to BIG bytes a buffer is part of the encoding; past it, streamed into the hasher (in a
    # set, each such element is replaced by its digest): the edge is pinned, as key bytes are.
    values = [{b"k" * BIG}, {b"k" * (BIG + 1)}, {"k": np.zeros(BIG, dtype=np.uint8)},
              {"s" * BIG, 1}, {"s" * (BIG + 1), 1}]
    streamed = [make_key(v) for v in values]
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("infercache.keys.") and hasattr(module, "BIG"):
            monkeypatch.setattr(module, "BIG", 10**9)
    inline = [make_key(v) for v in values]
    assert streamed[0] == inline[0] and streamed[1] != inline[1] and streamed[2] == inline[2]
    assert streamed[3] == inline[3] and streamed[4] != inline[4]  # a str's alike (among others: on its own)


_WRAPS = {  # each place a string is encoded: alone, among items, as a dict's value or key, in a set
    "alone": lambda s: s,
    "in a list": lambda s: ["x", s, 1],
    "in a tuple": lambda s: (s,),
    "as a value": lambda s: {"k": s},
    "as a str key": lambda s: {s: 1, "b": 2},
    "as a key among others": lambda s: {s: 1, 2: 2},
    "in a set": lambda s: {s, "y"},
    "in a set of others": lambda s: {s, 1},
}


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize("where", list(_WRAPS))
def test_a_path_under_a_keyed_directory_is_keyed_by_the_files_bytes_wherever_it_appears(
    tmp_path: pathlib.Path, where: str, alg: str
) -> None:
    wrap = _WRAPS[where]
    (tmp_path / "a").mkdir()
    paths = [tmp_path / "a" / "one.png", tmp_path / "two.png", tmp_path / "other.png"]
    for path, data in zip(paths, [b"same", b"same", b"other"]):
        path.write_bytes(data)
    strings = [*map(str, paths), "plain text", str(tmp_path), str(tmp_path) + "x/none.png", "s" * 200]
    before = [k(wrap(s), algorithm=alg) for s in strings]
    key_files_under([str(tmp_path)], owner="test_keys")
    try:
        after = [k(wrap(s), algorithm=alg) for s in strings]
    finally:
        key_files_under([], owner="test_keys")
    assert after[0] == after[1] != after[2]  # by the files' bytes, whatever their names
    assert all(a != b for a, b in zip(after[:3], before[:3]))
    assert after[3:] == before[3:]  # every other string keyed as it was


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_an_element_holding_a_large_buffer_is_replaced_by_its_digest_in_the_keys_algorithm(alg: str) -> None:
    # In a set (or as a dict key that is not a str) an element is encoded on its own; one past
    # 4 KiB is replaced by the digest of its encoding, made with the algorithm the key asked for.
    big = b"k" * (BIG + 1)
    element = wire.new_sink(alg)
    encoder.encode(big, element)
    assert element.hasher is not None  # streamed
    encoding = wire.T_SET + wire.varint(1) + wire.T_DIGEST + wire.digest_sink(element)
    digest = blake3.blake3(encoding).digest() if alg == "blake3" else xxhash.xxh3_128_digest(encoding)
    assert make_key({big}, algorithm=alg) == wire.KEY_TAG[alg] + digest


@pytest.mark.parametrize("where", list(_WRAPS))
def test_strings_and_bytes_on_each_side_of_the_length_edges_are_keyed_apart(where: str) -> None:
    # 128 bytes: the one-byte length header ends; 4 KiB: copied into the encoding or streamed.
    wrap = _WRAPS[where]
    texts = ["é" * 63 + "x", "é" * 64, "é" * 64 + "x", "k" * 4095, "k" * 4096, "k" * 4097]  # 127, 128, 129 bytes, ...
    blobs = [b"k" * n for n in (127, 128, 129, 4095, 4096, 4097)]
    found = [k(wrap(v)) for v in texts + blobs]
    assert len(set(found)) == len(found)
    assert [k(wrap("é" * 64)), k(wrap(b"k" * 128))] == [found[1], found[7]]


@pytest.mark.parametrize("where", list(_WRAPS))
def test_strings_with_lone_surrogates_are_keyed_by_their_code_points(where: str) -> None:
    # Text from the file system or a JSON decoder may hold lone surrogates: keyed, not refused.
    wrap = _WRAPS[where]
    texts = ["\ud800", "\udfff", "a\ud800b", "\ud800" * 50]  # the last past 128 bytes
    found = [k(wrap(t)) for t in texts]
    assert len(set(found)) == len(found)
    assert found == [k(wrap(t)) for t in texts]


def test_a_registered_class_whose_module_name_holds_a_lone_surrogate_is_keyed() -> None:
    # A class's own name cannot hold one (type() refuses it), its __module__ can.
    first, second = (type("Odd", (), {"__module__": f"plugins.{c}"}) for c in ("\udc80", "\udc81"))
    for cls in (first, second):
        register_hasher(cls, bool)
    try:
        assert k(first()) == k(first()) != k(second())
    finally:
        for cls in (first, second):
            encoder._REGISTRY.pop(cls, None)
        encoder._forget_resolved()


@pytest.mark.parametrize("container", [list, tuple])
def test_int_sequences_are_packed_up_to_the_int64_bounds(container: type) -> None:
    packed, general = (wire.T_INTS_LIST, wire.T_LIST) if container is list else (wire.T_INTS_TUPLE, wire.T_TUPLE)

    def tag(values: list[int]) -> bytes:
        out = wire.new_sink("blake3")
        encoder.encode(container(values), out)
        return bytes(out[:1])

    for edge in (wire.I64_MIN, wire.I64_MAX):
        assert tag([edge] * wire.PACK_MIN) == packed
        assert tag([edge] * (wire.PACK_MIN - 1)) == general
    for beyond in (wire.I64_MIN - 1, wire.I64_MAX + 1):
        assert tag([0] * (wire.PACK_MIN - 1) + [beyond]) == general
    assert tag([0.5] * wire.PACK_MIN) == (wire.T_FLOATS_LIST if container is list else wire.T_FLOATS_TUPLE)
    assert k(container([wire.I64_MAX] * 16)) != k(container([wire.I64_MAX] * 15 + [wire.I64_MAX - 1]))


def _keys_inline(values: list[Any], monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Each value's blake3 and xxh3 keys with every buffer copied into the encoding (none streamed)."""
    with monkeypatch.context() as patch:
        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("infercache.keys.") and hasattr(module, "BIG"):
                patch.setattr(module, "BIG", 10**9)
        return [(make_key(v), make_key(v, algorithm="xxh3")) for v in values]


def test_large_memoryviews_of_any_format_and_shape_are_streamed_as_their_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ints = array("i", range(3000))  # 12 000 bytes
    views = [
        memoryview(ints),
        memoryview(array("d", [0.5] * 1000)),
        memoryview(ints).cast("B").cast("i", (100, 30)),
        memoryview(bytes(range(256)) * 40).cast("B", (80, 128)),
    ]
    streamed = [(make_key(v), make_key(v, algorithm="xxh3")) for v in views]
    assert streamed == _keys_inline(views, monkeypatch)
    assert make_key(views[0]) == make_key(memoryview(array("i", range(3000))))
    assert all_distinct([*views, memoryview(ints).cast("B"), memoryview(ints).cast("B").cast("i", (30, 100))])


@pytest.mark.parametrize("typecode", ["b", "B", "h", "H", "i", "I", "l", "L", "q", "Q", "f", "d"])
def test_a_python_array_is_keyed_by_its_little_endian_bytes_on_a_big_endian_machine(
    typecode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This machine is little-endian (the key's byte order): the encoder is told its memory is
    # big-endian, and must then key each item's bytes reversed, from a copy, the caller's array untouched.
    assert sys.byteorder == "little"
    items = list(range(1, 14))
    value = array(typecode, items)
    before = value.tobytes()
    swapped = array(typecode, items)
    swapped.byteswap()
    native = [make_key(swapped), make_key(value), make_key(swapped, algorithm="xxh3")]
    big = array(typecode, items * 400)  # streamed into the hasher
    big_swapped = array(typecode, items * 400)
    big_swapped.byteswap()
    native_big = make_key(big_swapped)
    monkeypatch.setattr(encoder, "NATIVE_BIG_ENDIAN", True)
    assert [make_key(value), make_key(swapped), make_key(value, algorithm="xxh3")] == native
    assert make_key(big) == native_big
    assert value.tobytes() == before


class Node:
    """A hashable object (module level, keyed by its attributes)."""

    def __init__(self) -> None:
        self.links: Any = None


def test_a_cycle_through_a_set_or_a_dict_key_is_refused_as_a_cycle() -> None:
    # Elements of sets and non-string dict keys are encoded on their own: the containers
    # being encoded are still known there.
    in_set, as_key = Node(), Node()
    in_set.links = {in_set, 1}
    as_key.links = {as_key: "self", 1: "one"}
    for value in (in_set, as_key, [in_set]):
        with pytest.raises(UnhashableError) as info:
            make_key(value)
        assert info.value.reason == "it contains itself (a reference cycle)"


# ---------------------------------------------------------------- properties


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80)
    | st.binary(max_size=80)
)
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4),
                         max_leaves=8)
names = st.text(max_size=12)  # dict keys as apps write them: parameter names, labels, prompts
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.lists(inner, max_size=6).map(tuple)
        | st.dictionaries(hashables, inner, max_size=5)
        | st.dictionaries(names, inner, min_size=2, max_size=5)
        | st.sets(hashables, max_size=5)
        | st.frozensets(hashables, max_size=5)
        | st.lists(st.floats(), min_size=14, max_size=20)
        | st.lists(st.integers(min_value=-(2**64), max_value=2**64), min_size=14, max_size=20)
    ),
    max_leaves=25,
)

# A leaf of two scalars of different types, and containers of different kinds holding such leaves:
# every draw is a string-keyed dict of at least two entries whose values are mixed containers.
mixed_leaf = st.tuples(
    st.text(max_size=6),
    st.none() | st.booleans() | st.integers() | st.floats() | st.binary(max_size=6),
)
mixed_containers = st.one_of(
    st.lists(mixed_leaf, min_size=1, max_size=3),
    st.tuples(st.lists(st.integers(), max_size=3), st.frozensets(st.text(max_size=3), max_size=3)),
    st.dictionaries(st.integers(-3, 3), mixed_leaf, min_size=1, max_size=3),
    st.dictionaries(names, st.lists(st.floats(), max_size=3), min_size=2, max_size=3),
    st.sets(mixed_leaf, min_size=1, max_size=3),
)
nested_records = st.dictionaries(names, mixed_containers, min_size=2, max_size=5)


def str_keyed_dicts(v: Any) -> int:
    """How many dicts inside ``v`` (itself included) have two or more keys, all of them str."""
    found = 0
    if isinstance(v, dict):
        found += len(v) >= 2 and all(type(key) is str for key in v)
        children: Any = [*v.keys(), *v.values()]
    elif isinstance(v, (list, tuple, set, frozenset)):
        children = v
    else:
        return 0
    return found + sum(str_keyed_dicts(c) for c in children)


def kinds(v: Any) -> str:
    """The container kinds of ``v``'s values, as an event for ``--hypothesis-show-statistics``."""
    return "values: " + ", ".join(sorted({type(x).__name__ for x in v.values()}))


def same(a: Any, b: Any) -> bool:
    """Type-tagged structural equality (floats by bits, containers by typed content)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (set, frozenset)):
        return _match(list(a), list(b))
    if isinstance(a, dict):
        return _match(list(a.items()), list(b.items()))
    return a == b


def _match(xs: list, ys: list) -> bool:
    if len(xs) != len(ys):
        return False
    remaining = list(ys)
    for x in xs:
        for i, y in enumerate(remaining):
            if same(x, y):
                del remaining[i]
                break
        else:
            return False
    return True


def rebuilt(v: Any) -> Any:
    """An equal value built fresh, with dict and set insertion orders reversed."""
    if isinstance(v, list):
        return [rebuilt(x) for x in v]
    if isinstance(v, tuple):
        return tuple(rebuilt(x) for x in v)
    if isinstance(v, dict):
        return {rebuilt(key): rebuilt(val) for key, val in reversed(list(v.items()))}
    if isinstance(v, frozenset):
        return frozenset(rebuilt(x) for x in reversed(list(v)))
    if isinstance(v, set):
        return {rebuilt(x) for x in reversed(list(v))}
    if isinstance(v, str):
        return "".join(list(v))
    if isinstance(v, bytes):
        return bytes(bytearray(v))
    if isinstance(v, int) and not isinstance(v, bool):
        return int(str(v))
    if isinstance(v, float):
        return struct.unpack("<d", struct.pack("<d", v))[0]
    return v


PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(values)
def test_prop_equal_values_equal_keys(v: Any) -> None:
    found = ("none", "one", "two or more")[min(str_keyed_dicts(v), 2)]
    event(f"string-keyed dicts of two or more keys inside: {found}")
    w = rebuilt(v)
    for algorithm in ALGORITHMS:
        assert make_key(v, algorithm=algorithm) == make_key(w, algorithm=algorithm)
        assert hash_key(v, algorithm=algorithm) == hash_key(w, algorithm=algorithm)


@PROPS
@given(values, values)
def test_prop_keys_equal_iff_typed_equal(a: Any, b: Any) -> None:
    assert (make_key(a) == make_key(b)) == same(a, b)


tiny = st.sampled_from([0, 1, True, False, 0.0, -0.0, 1.0, math.nan, "", "0", "1", b"", b"0", None])
tiny_hashable = st.recursive(tiny, lambda inner: st.tuples(inner) | st.frozensets(inner, max_size=2),
                             max_leaves=3)
tiny_values = st.recursive(
    tiny,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(tiny_hashable, inner, max_size=2)
        | st.sets(tiny_hashable, max_size=2)
    ),
    max_leaves=5,
)


@settings(max_examples=1000, deadline=None)
@given(tiny_values, tiny_values)
def test_prop_injective_on_small_domain(a: Any, b: Any) -> None:
    """Values drawn from a tiny domain often coincide; keys must agree exactly then."""
    assert (make_key(a) == make_key(b)) == same(a, b)
    assert (make_key([a, b]) == make_key([b, a])) == same(a, b)


@PROPS
@given(st.lists(scalars, max_size=4), st.data())
def test_prop_near_misses_differ(xs: list, data: st.DataObject) -> None:
    ys = data.draw(st.lists(scalars, max_size=4))
    assert (make_key(xs) == make_key(ys)) == same(xs, ys)
    assert (make_key(tuple(xs)) == make_key(tuple(ys))) == same(xs, ys)


@PROPS
@given(st.dictionaries(hashables, scalars | st.lists(scalars, max_size=3), max_size=8), st.randoms())
def test_prop_dict_order_invariance(d: dict, rnd: Any) -> None:
    items = list(d.items())
    rnd.shuffle(items)
    assert make_key(dict(items)) == make_key(d)


@settings(PROPS, max_examples=150)  # the case is certain in every draw
@given(st.dictionaries(names, scalars | st.lists(scalars, max_size=3) | nested_records, min_size=2, max_size=8))
def test_prop_string_keyed_dicts_key_alike_in_every_insertion_order(d: dict) -> None:
    """The common case of real arguments (``{"prompt": ..., "temperature": ...}``), certain in every draw."""
    backwards = dict(reversed(list(d.items())))
    rotated = dict([*list(d.items())[1:], next(iter(d.items()))])
    assert list(backwards) != list(d) and list(rotated) != list(d)
    assert make_key(backwards) == make_key(d) == make_key(rotated)
    assert make_key(backwards, algorithm="xxh3") == make_key(d, algorithm="xxh3")


@settings(PROPS, max_examples=150)  # the case is certain in every draw
@given(nested_records, nested_records)
def test_prop_nested_mixed_containers_key_alike_iff_equal(a: dict, b: dict) -> None:
    """Records of mixed containers: equal when rebuilt in another order, distinct unless typed-equal."""
    event(kinds(a))
    assert str_keyed_dicts(a) >= 1
    assert make_key(rebuilt(a)) == make_key(a)
    assert (make_key(a) == make_key(b)) == same(a, b)
    first = next(iter(a))
    changed = {**a, first: [a[first]]}  # the same content one level deeper is another value
    assert make_key(changed) != make_key(a)


@PROPS
@given(values)
def test_prop_short_and_long_forms(v: Any) -> None:
    key = make_key(v)
    xkey = make_key(v, algorithm="xxh3")
    if key[0] == 0:
        assert len(key) <= 65 and xkey == key
    else:
        assert key[0] == 1 and len(key) == 33
        assert xkey[0] == 2 and len(xkey) == 17
        assert key[1:].hex() == hash_key(v)


@PROPS
@given(st.lists(scalars, max_size=6))
def test_prop_call_key_equals_make_key(xs: list) -> None:
    names = tuple(f"p{i}" for i in range(len(xs)))
    for algorithm in ALGORITHMS:
        assert make_call_key(tuple(xs), names, algorithm=algorithm) == make_key(tuple(xs), algorithm=algorithm)


