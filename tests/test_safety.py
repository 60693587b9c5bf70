"""Tests for infercache.safety: protect() once, release() per caller."""

from __future__ import annotations

import array
import collections
import copy
import dataclasses
import datetime
import decimal
import enum
import fractions
import io
import itertools
import logging
import mmap
import pathlib
import subprocess
import sys
import types
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import infercache as ic
from infercache.safety import protect, register_copier, release

np = pytest.importorskip("numpy")


# --------------------------------------------------------------------------- helpers


@dataclasses.dataclass
class Box:
    """A plain mutable user object (takes the deepcopy path)."""

    x: Any


class Color(enum.Enum):
    RED = 1
    GREEN = 2


Point = collections.namedtuple("Point", "x y")


def freeze(v: Any) -> Any:
    """A hashable, comparable snapshot of a value's full content."""
    if isinstance(v, np.ndarray):
        return ("nd", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, Box):
        return ("box", freeze(v.x))
    if isinstance(v, bytearray):
        return ("ba", bytes(v))
    if isinstance(v, list):
        return ("list", tuple(freeze(x) for x in v))
    if isinstance(v, tuple):
        return (type(v).__name__, tuple(freeze(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple((freeze(k), freeze(x)) for k, x in v.items()))
    if isinstance(v, (set, frozenset)):
        return (type(v).__name__, frozenset(freeze(x) for x in v))
    return (type(v).__name__, v)


def mutable_ids(v: Any, out: set[int] | None = None) -> set[int]:
    """ids of every mutable object reachable in ``v`` (read-only arrays excluded)."""
    out = set() if out is None else out
    if isinstance(v, np.ndarray):
        if v.flags.writeable:
            out.add(id(v))
        return out
    if isinstance(v, (list, dict, set, bytearray, Box)):
        if id(v) in out:
            return out
        out.add(id(v))
    if isinstance(v, Box):
        mutable_ids(v.x, out)
    elif isinstance(v, dict):
        for k, x in v.items():
            mutable_ids(k, out)
            mutable_ids(x, out)
    elif isinstance(v, (list, tuple, set, frozenset)):
        for x in v:
            mutable_ids(x, out)
    return out


def mutate_all(v: Any) -> None:
    """Mutate every mutable thing reachable in ``v``, in place."""
    if isinstance(v, np.ndarray):
        if v.size == 0:
            return
        if v.flags.writeable:
            v.flat[0] = v.flat[0] + 1
        else:
            with pytest.raises(ValueError, match="read-only"):
                v.flat[0] = 0
        return
    if isinstance(v, Box):
        mutate_all(v.x)
        v.x = ["mutated", v.x]
    elif isinstance(v, list):
        for x in v:
            mutate_all(x)
        v.append("mutated")
    elif isinstance(v, dict):
        for x in v.values():
            mutate_all(x)
        v["mutated"] = True
    elif isinstance(v, set):
        v.add("mutated")
    elif isinstance(v, bytearray):
        v.extend(b"!")
    elif isinstance(v, (tuple, frozenset)):
        for x in v:
            mutate_all(x)


def assert_isolated(value: Any) -> None:
    """The three guarantees, for one value."""
    snapshot = freeze(value)
    kept = protect(value)
    first = release(kept)
    assert freeze(first) == snapshot
    # callers never share a mutable object with each other or with the producer
    second = release(kept)
    assert not (mutable_ids(first) & mutable_ids(second))
    assert not (mutable_ids(first) & mutable_ids(value))
    # a caller mutating what it got does not change what the next caller gets
    mutate_all(first)
    assert freeze(release(kept)) == snapshot
    # the producer mutating its original does not change the cache
    mutate_all(value)
    assert freeze(release(kept)) == snapshot


# --------------------------------------------------------------------------- immutables

IMMUTABLES = [
    None,
    True,
    0,
    -(2**100),
    1.5,
    2 + 3j,
    "hello",
    b"bytes",
    decimal.Decimal("1.10"),
    fractions.Fraction(1, 3),
    datetime.date(2024, 1, 2),
    datetime.datetime(2024, 1, 2, 3, 4, tzinfo=datetime.timezone.utc),
    datetime.time(1, 2),
    datetime.timedelta(seconds=5),
    datetime.timezone.utc,
    uuid.UUID(int=7),
    pathlib.Path("a/b"),
    pathlib.PurePosixPath("x"),
    Color.RED,
    range(10),
    Ellipsis,
    np.float32(1.5),
    np.int64(3),
]


@pytest.mark.parametrize("value", IMMUTABLES, ids=lambda v: type(v).__name__)
def test_immutables_pass_through_without_copy(value):
    kept = protect(value)
    assert kept is value
    assert release(kept) is value
    assert release(kept) is value


@pytest.mark.parametrize(
    "value",
    [
        ("a", 1, 2.0),
        (),
        ((1, 2), ("x", (None,))),
        frozenset({1, "a", (2, 3)}),
        Point(1, "y"),
        (Color.RED, 1),
    ],
    ids=repr,
)
def test_immutable_tuples_and_frozensets_are_released_as_is(value):
    kept = protect(value)
    out = release(kept)
    assert out == value and type(out) is type(value)
    assert release(kept) is out  # no rebuilding on later hits


def test_immutable_builtin_subclass_with_attributes_is_copied():
    class Tagged(str):
        pass

    s = Tagged("abc")
    s.tag = ["t"]
    out = release(protect(s))
    assert out == "abc" and out is not s
    out.tag.append("x")
    assert release(protect(s)).tag == ["t"]


class Meter(float):
    """A float subclass whose instances carry state in slots."""

    __slots__ = ("tags", "unit")


class Label(str):
    """A str subclass adding nothing: as immutable as str."""

    __slots__ = ()


class Blob(bytes):
    pass  # has a __dict__ (bytes subclasses cannot add slots)


class Stamp(datetime.datetime):
    pass  # has a __dict__


class Tags(frozenset):
    pass  # has a __dict__


class Row(tuple):
    pass  # has a __dict__


class Pair(collections.namedtuple("Pair", "a b")):
    pass  # a namedtuple subclass with a __dict__


@dataclasses.dataclass(frozen=True)
class Frozen:
    items: list


class MutableZone(datetime.tzinfo):
    def __init__(self) -> None:
        self.hours = [1]

    def utcoffset(self, dt):
        return datetime.timedelta(hours=self.hours[0])


def _meter() -> Meter:
    m = Meter(1.5)
    m.unit = "m"
    m.tags = ["a"]
    return m


def test_slotted_subclass_of_an_immutable_is_copied_per_caller():
    value = _meter()
    kept = protect(value)
    hit = release(kept)
    assert hit == 1.5 and type(hit) is Meter and hit is not value
    hit.tags.append("leaked")
    hit.unit = "ft"
    value.tags.append("producer")  # the producer's later mutation
    value.unit = "cm"
    again = release(kept)
    assert again.tags == ["a"] and again.unit == "m"


def test_cached_function_returning_a_slotted_float_subclass():
    produced = []

    @ic.cache
    def measure(x):
        m = _meter()
        produced.append(m)
        return m

    measure(1)  # the miss
    produced[0].tags.append("producer")  # the producer keeps a reference and mutates it
    hit = measure(1)
    hit.tags.append("caller")
    hit.unit = "ft"
    again = measure(1)
    assert len(produced) == 1
    assert again.tags == ["a"] and again.unit == "m" and again == 1.5


@pytest.mark.parametrize(
    "make,mutate,check",
    [
        (lambda: _with(Blob(b"xy"), meta=["m"]), lambda v: v.meta.append(1), lambda v: v.meta == ["m"]),
        (
            lambda: _with(Stamp(2024, 1, 1), note=["n"]),
            lambda v: v.note.append(1),
            lambda v: v.note == ["n"],
        ),
        (lambda: _with(Tags({1, 2}), extra=[0]), lambda v: v.extra.append(1), lambda v: v.extra == [0]),
        (lambda: _with(Row((1, 2)), extra=[0]), lambda v: v.extra.append(1), lambda v: v.extra == [0]),
        (lambda: _with(Pair(1, 2), extra=[0]), lambda v: v.extra.append(1), lambda v: v.extra == [0]),
        (lambda: Pair([1], 2), lambda v: v.a.append(2), lambda v: v.a == [1]),
        (lambda: Frozen([1]), lambda v: v.items.append(2), lambda v: v.items == [1]),
        (
            lambda: datetime.datetime(2024, 1, 1, tzinfo=MutableZone()),
            lambda v: v.tzinfo.hours.__setitem__(0, 5),
            lambda v: v.utcoffset() == datetime.timedelta(hours=1),
        ),
    ],
    ids=["bytes-dict", "datetime-dict", "frozenset-dict", "tuple-dict", "namedtuple-dict",
         "namedtuple-list-field", "frozen-dataclass-list", "datetime-with-stateful-tzinfo"],
)
def test_immutable_looking_values_with_state_are_copied(make, mutate, check):
    value = make()
    kept = protect(value)
    mutate(release(kept))
    assert check(release(kept))
    mutate(value)
    assert check(release(kept))


def _with(obj, **attrs):
    for name, v in attrs.items():
        setattr(obj, name, v)
    return obj


def test_a_value_holding_a_class_is_kept_whatever_the_class_holds():
    # A class is shared, not copied: what its attributes hold is no caller's value to refuse.
    class Registry:
        ids = itertools.count()

    class Job:
        def __init__(self):
            self.kind = Registry
            self.steps = [1]

    job = Job()
    out = release(protect(job))
    assert out.kind is Registry and out.steps == [1] and out.steps is not job.steps


def test_stateless_subclasses_and_singletons_are_shared():
    label = Label("abc")
    assert release(protect(label)) is label
    assert release(protect(Color.RED)) is Color.RED  # enum members keep their identity
    aware = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    assert release(protect(aware)) is aware
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        zoned = datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database")
    assert release(protect(zoned)) is zoned


def test_pandas_timestamps_have_a_dict_so_are_copied():
    pd = pytest.importorskip("pandas")
    ts = pd.Timestamp("2024-01-01", tz="UTC")
    kept = protect(ts)
    hit = release(kept)
    assert hit == ts and type(hit) is pd.Timestamp
    hit.note = ["leaked"]  # Timestamp instances accept attributes
    assert not hasattr(release(kept), "note")


def test_mapping_proxy_is_copied_per_caller():
    inner = {"a": [1]}
    kept = protect(types.MappingProxyType(inner))
    hit = release(kept)
    assert type(hit) is types.MappingProxyType and hit == {"a": [1]}
    hit["a"].append(2)
    inner["b"] = [0]  # the producer writes through its own dict
    assert release(kept) == {"a": [1]}


# --------------------------------------------------------------------------- containers


def test_list_append():
    value = [1, "a", 2.0]
    kept = protect(value)
    out = release(kept)
    out.append(4)
    assert release(kept) == [1, "a", 2.0]
    value.append(5)
    assert release(kept) == [1, "a", 2.0]


def test_dict_set_key():
    value = {"a": 1, "b": (1, 2)}
    kept = protect(value)
    out = release(kept)
    out["c"] = 3
    del out["a"]
    assert release(kept) == {"a": 1, "b": (1, 2)}
    value["z"] = 0
    assert release(kept) == {"a": 1, "b": (1, 2)}


@dataclasses.dataclass(unsafe_hash=True)
class Tag:
    """A hashable object of state: as a dict key it is kept as a copy, not as itself."""

    name: str


def test_dict_with_object_keys_is_rebuilt_with_copies_of_keys_and_values():
    value = {Tag("a"): [1, 2], "b": 3}
    kept = protect(value)
    out = release(kept)
    assert out == value
    (key, items), _ = out.items()
    assert key is not next(iter(value))
    assert items is not value[Tag("a")]
    key.name = "changed"
    items.append(3)
    assert release(kept) == {Tag("a"): [1, 2], "b": 3}


def test_a_kept_form_shows_its_kind_and_value():
    # What a developer sees of a cached value when debugging the store.
    assert repr(protect(bytearray(b"ab"))) == "<infercache kept ByteArray: b'ab'>"


def test_set_add_and_bytearray():
    kept = protect({1, 2})
    release(kept).add(3)
    assert release(kept) == {1, 2}
    kb = protect(bytearray(b"ab"))
    out = release(kb)
    out[0] = ord("z")
    assert release(kb) == bytearray(b"ab") and type(release(kb)) is bytearray


def test_nested_list_inside_dict_inside_object():
    value = Box({"inner": [1, [2, 3]]})
    kept = protect(value)
    out = release(kept)
    out.x["inner"][1].append(4)
    out.x["new"] = 1
    assert release(kept) == Box({"inner": [1, [2, 3]]})
    value.x["inner"][1].clear()
    assert release(kept) == Box({"inner": [1, [2, 3]]})


def test_tuple_and_namedtuple_holding_mutables_are_rebuilt():
    kept = protect(([1], "a"))
    out = release(kept)
    out[0].append(2)
    assert release(kept) == ([1], "a")
    kp = protect(Point([1], {"k": 1}))
    p = release(kp)
    assert type(p) is Point
    p.x.append(9)
    p.y["k"] = 2
    assert release(kp) == Point([1], {"k": 1})


def test_frozenset_with_mutable_hashable_members():
    class Node:
        def __init__(self, v):
            self.v = v

    n = Node([1])
    kept = protect(frozenset([n, 1]))
    out = release(kept)
    member = next(x for x in out if isinstance(x, Node))
    member.v.append(2)
    again = next(x for x in release(kept) if isinstance(x, Node))
    assert again.v == [1]


def test_shared_references_and_cycles_keep_their_shape():
    inner = [1, 2]
    kept = protect([inner, inner, {"x": inner}])
    out = release(kept)
    assert out[0] is out[1] is out[2]["x"]
    out[0].append(3)
    assert release(kept) == [[1, 2], [1, 2], {"x": [1, 2]}]

    loop: list = [1]
    loop.append(loop)
    kl = protect(loop)
    o = release(kl)
    assert o[1] is o and o is not loop
    o.append(5)
    assert len(release(kl)) == 2


def test_a_user_object_holding_a_memoryview_and_none_comes_back_equal():
    # The memoryview is copied by its own rule inside the object's deep copy.
    value = Box([memoryview(b"ab"), None, 0])
    out = release(protect(value))
    assert out.x[0].tobytes() == b"ab" and out.x[1:] == [None, 0]
    assert out is not value and out.x is not value.x


def test_other_container_types_use_deepcopy():
    for value in (
        collections.OrderedDict(a=[1]),
        collections.defaultdict(list, a=[1]),
        collections.deque([[1]]),
    ):
        kept = protect(value)
        out = release(kept)
        assert type(out) is type(value) and out == value
        (out["a"] if isinstance(out, dict) else out[0]).append(2)
        assert release(kept) == value


def test_memoryview_is_kept_read_only():
    data = bytearray(b"abcd")
    kept = protect(memoryview(data))
    data[0] = ord("z")
    out = release(kept)
    assert out.tobytes() == b"abcd" and out.readonly
    with pytest.raises(TypeError):
        out[0] = 1


def test_memoryview_hits_are_new_handles():
    kept = protect(memoryview(b"abcd"))
    hit = release(kept)
    hit.release()  # ends this caller's handle only
    with release(kept) as other:
        assert other.tobytes() == b"abcd"
    assert release(kept).tobytes() == b"abcd"


def test_memoryview_keeps_format_and_shape():
    arr = np.arange(6, dtype=np.int32).reshape(2, 3)
    kept = protect(memoryview(arr))
    arr[0, 0] = 100
    hit = release(kept)
    assert hit.format == memoryview(arr).format and hit.shape == (2, 3)
    assert hit.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert release(kept) is not hit


def test_cached_function_returning_a_memoryview():
    @ic.cache
    def raw(n):
        return memoryview(bytearray(range(n)))

    raw(4)  # the miss
    with raw(4) as hit:
        assert hit.tolist() == [0, 1, 2, 3]
    raw(4).release()
    assert raw(4).tolist() == [0, 1, 2, 3]


def test_array_array_and_bytearray_are_per_caller():
    kept = protect(array.array("i", [1, 2]))
    release(kept).append(3)
    assert release(kept) == array.array("i", [1, 2])
    kb = protect(bytearray(b"ab"))
    release(kb).extend(b"!")
    assert release(kb) == bytearray(b"ab")


@pytest.mark.parametrize(
    "make",
    [
        lambda: (x for x in range(3)),
        lambda: iter([1, 2]),
        lambda: map(str, [1]),
        lambda: io.BytesIO(b"data"),
        lambda: Box(iter([1])),  # inside a user object
        lambda: [1, {"it": iter([1])}],  # inside containers
    ],
    ids=["generator", "list-iterator", "map", "file", "in-object", "in-containers"],
)
def test_values_that_cannot_be_replayed_are_refused(make):
    value = make()
    with pytest.raises(TypeError, match=r"cannot be replayed|lifecycle"):
        protect(value)


class Countdown:
    """An async iterator that is no generator: consumed by its first reader as well."""

    def __init__(self) -> None:
        self.left = 2

    def __aiter__(self) -> Countdown:
        return self

    async def __anext__(self) -> int:
        if not self.left:
            raise StopAsyncIteration
        self.left -= 1
        return self.left


class Ticket:
    """An awaitable that is no coroutine."""

    def __await__(self) -> Any:
        yield
        return 1


_HANDLE = (
    "it is a handle to external state (a file, mmap or socket) with a "
    "lifecycle of its own; return its contents (e.g. bytes) instead"
)
_ITERATOR = (
    "it is an iterator or generator: it is consumed by the first caller "
    "and cannot be replayed (return a list, or make the cached function "
    "a generator so that its yields are cached)"
)
_AWAITABLE = "it is an awaitable: it can be awaited once, not replayed (await it and return its result)"


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: io.BytesIO(b"data"), _HANDLE),
        (lambda: iter([1, 2]), _ITERATOR),
        (Countdown, _ITERATOR),
        (Ticket, _AWAITABLE),
    ],
    ids=["file", "iterator", "async-iterator", "awaitable"],
)
def test_a_refusal_names_the_type_and_says_why_and_what_to_return_instead(make, reason):
    value = make()
    t = type(value)
    with pytest.raises(TypeError) as refused:
        protect(value)
    assert str(refused.value) == f"a {t.__module__}.{t.__qualname__} cannot be cached: {reason}"


class Holder:
    __slots__ = ("aside", "inner")


def test_an_iterator_in_a_slot_after_an_unset_one_is_refused():
    value = Holder()
    value.inner = iter([1])  # "aside" left unset
    with pytest.raises(TypeError, match="list_iterator cannot be cached"):
        protect(value)


def test_mmap_is_refused():
    m = mmap.mmap(-1, 16)
    try:
        with pytest.raises(TypeError, match="lifecycle"):
            protect(m)
    finally:
        m.close()


def test_cached_function_returning_an_iterator_is_logged_and_runs_each_time(caplog: pytest.LogCaptureFixture):
    calls = []

    @ic.cache
    def numbers(n):
        calls.append(n)
        return iter(range(n))

    with caplog.at_level(logging.WARNING, logger="infercache"):
        assert list(numbers(3)) == [0, 1, 2]
    assert any("cannot be replayed" in r.getMessage() for r in caplog.records)
    assert list(numbers(3)) == [0, 1, 2]  # not a consumed iterator from the cache
    assert calls == [3, 3]


def test_release_of_a_value_not_from_protect_is_still_safe():
    value = [1, [2]]
    out = release(value)
    assert out == value
    out[1].append(3)
    assert value == [1, [2]]


def test_register_copier():
    class Buf:
        def __init__(self, data):
            self.data = data

    calls = []

    def rel(k):
        calls.append(k)
        return Buf(list(k))

    register_copier(Buf, protect=lambda b: tuple(b.data), release=rel)
    kept = protect([Buf([1, 2])])
    out = release(kept)
    out[0].data.append(3)
    assert release(kept)[0].data == [1, 2]
    assert len(calls) == 2


def test_a_copier_registered_for_a_type_already_kept_as_immutable_is_used() -> None:
    class Version(int):
        """A stateless int subclass: shared as immutable until a copier says otherwise."""

        __slots__ = ()

    first = Version(3)
    assert protect(first) is first  # classified: immutable, kept and handed out as is
    calls: list[str] = []

    def kept(v: Version) -> int:
        calls.append("protect")
        return int(v)

    def released(k: int) -> Version:
        calls.append("release")
        return Version(k)

    register_copier(Version, protect=kept, release=released)
    out = release(protect(Version(3)))
    assert type(out) is Version and out == 3
    assert calls == ["protect", "release"]


def test_a_copier_covers_its_exact_type_in_rebuilt_containers_and_can_be_replaced() -> None:
    class Cell:
        def __init__(self, data: list[int]) -> None:
            self.data = data

    class SubCell(Cell):
        pass

    class Holder:
        def __init__(self, cell: Cell) -> None:
            self.cell = cell

    used: list[str] = []

    def first(k: tuple[int, ...]) -> Cell:
        used.append("first")
        return Cell(list(k))

    register_copier(Cell, protect=lambda c: tuple(c.data), release=first)
    release(protect({"a": (Cell([1]),)}))
    assert used == ["first"]
    sub = release(protect(SubCell([1])))  # a subclass: deep-copied, the copier is not used
    held = release(protect(Holder(Cell([2]))))  # inside another object: deep-copied as a whole
    assert used == ["first"]
    assert type(sub) is SubCell and sub.data == [1]
    assert type(held.cell) is Cell and held.cell.data == [2]

    register_copier(Cell, protect=lambda c: tuple(c.data), release=lambda k: Cell([*k, 0]))
    assert release(protect(Cell([1]))).data == [1, 0]


# --------------------------------------------------------------------------- numpy


def test_array_hits_are_new_read_only_arrays_over_one_kept_buffer():
    value = np.arange(10.0)
    kept = protect(value)
    out = release(kept)
    again = release(kept)
    assert out is not again  # an array object of each caller's own ...
    assert np.shares_memory(out, again)  # ... over the same kept data: zero copy
    assert type(out.base) is bytes  # immutable: nothing behind it can be made writeable
    assert not out.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        out[0] = 42
    with pytest.raises(ValueError):
        out.flags.writeable = True  # cannot be re-enabled by a caller
    mine = out.copy()
    mine[0] = 42  # the documented way to get a mutable array
    assert release(kept)[0] == 0


def test_array_protect_copies_to_c_contiguous():
    base = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    view = base[:, ::2]
    kept = protect(view)
    assert release(kept).flags.c_contiguous
    assert not np.shares_memory(release(kept), base)
    base[:] = -1
    assert (release(kept) == np.arange(12.0).reshape(3, 4)[:, ::2]).all()


def test_same_array_twice_is_kept_once_and_released_aliased():
    arr = np.zeros(1000)
    kept = protect((arr, arr, [arr]))
    out = release(kept)
    assert out[0] is out[1] is out[2][0]  # the value's aliasing is kept ...
    assert not out[0].flags.writeable
    again = release(kept)
    assert again[0] is again[1] and again[0] is not out[0]  # ... per caller
    assert np.shares_memory(again[0], out[0])


def test_arrays_inside_containers_are_new_read_only_arrays_per_caller():
    value = {"emb": np.ones(4), "meta": [np.zeros(2)]}
    kept = protect(value)
    a, b = release(kept), release(kept)
    assert a is not b and a["meta"] is not b["meta"]
    assert a["emb"] is not b["emb"] and np.shares_memory(a["emb"], b["emb"])
    with pytest.raises(ValueError):
        a["emb"][0] = 5


def test_object_arrays_are_deep_copied():
    arr = np.empty(2, dtype=object)
    arr[0] = [1]
    arr[1] = {"a": 1}
    kept = protect(arr)
    out = release(kept)
    out[0].append(2)
    out[1]["b"] = 2
    again = release(kept)
    assert again[0] == [1] and again[1] == {"a": 1}


def test_masked_array_subclass():
    m = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    kept = protect(m)
    out = release(kept)
    assert type(out) is np.ma.MaskedArray
    out[0] = 99
    out.mask[2] = True
    again = release(kept)
    assert again[0] == 1 and list(again.mask) == [False, True, False]


def test_read_only_array_inside_user_object_is_mutable_in_the_copy():
    arr = np.arange(3)
    arr.flags.writeable = False
    kept = protect(Box(arr))
    out = release(kept)
    assert out.x.flags.writeable  # a private deep copy: safe to mutate
    out.x[0] = 100
    assert release(kept).x[0] == 0


# --------------------------------------------------------------------------- torch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def test_tensor_add_(torch):
    value = torch.zeros(5, requires_grad=True) * 2  # has autograd history
    kept = protect(value)
    out = release(kept)
    assert out.grad_fn is None and not out.requires_grad
    out.add_(1)
    assert torch.equal(release(kept), torch.zeros(5))
    with torch.no_grad():
        value.add_(7)
    assert torch.equal(release(kept), torch.zeros(5))


def test_tensor_view_original_mutation(torch):
    base = torch.arange(10.0)
    kept = protect(base[2:5])
    base.zero_()
    assert torch.equal(release(kept), torch.tensor([2.0, 3.0, 4.0]))


def test_plain_kv_cache_object(torch):
    class KV:
        def __init__(self):
            self.layers = [
                (torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 4)) for _ in range(2)
            ]

    kv = KV()
    kept = protect(kv)
    out = release(kept)
    out.layers[0][0].add_(1)
    out.layers.append(None)
    again = release(kept)
    assert len(again.layers) == 2 and torch.equal(
        again.layers[0][0], torch.ones(1, 2, 3, 4)
    )
    kv.layers[1][1].zero_()
    assert torch.equal(release(kept).layers[1][1], torch.ones(1, 2, 3, 4))


def test_transformers_dynamic_cache(torch):
    transformers = pytest.importorskip("transformers")
    cache = transformers.DynamicCache()
    for layer in range(2):
        cache.update(torch.ones(1, 2, 4, 8), torch.ones(1, 2, 4, 8), layer)
    kept = protect(cache)
    out = release(kept)
    # generation appends to the cache in place
    out.update(torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 1, 8), 0)
    out.layers[1].keys.mul_(0)
    again = release(kept)
    assert again.get_seq_length(0) == 4
    assert torch.equal(again.layers[1].keys, torch.ones(1, 2, 4, 8))
    cache.layers[0].values.zero_()
    assert torch.equal(release(kept).layers[0].values, torch.ones(1, 2, 4, 8))


def test_a_torch_module_is_copied_per_caller(torch):
    layer = torch.nn.Linear(2, 2)
    kept = protect(layer)
    out = release(kept)
    assert out is not layer
    with torch.no_grad():
        out.weight.fill_(7.0)
    assert not torch.equal(release(kept).weight, out.weight)


def test_objects_holding_tensors_with_autograd_history(torch):
    transformers = pytest.importorskip("transformers")
    w = torch.ones(3, requires_grad=True)
    logits = w * 2  # non-leaf: plain deepcopy refuses it
    output = transformers.modeling_outputs.CausalLMOutput(logits=logits)
    for value in (output, Box({"logits": logits, "again": logits})):
        kept = protect(value)
        out = release(kept)
        t = out["logits"] if isinstance(out, dict) else out.x["logits"]
        assert t.grad_fn is None and torch.equal(t, torch.full((3,), 2.0))
        t.add_(1)
        again = release(kept)
        t2 = again["logits"] if isinstance(again, dict) else again.x["logits"]
        assert torch.equal(t2, torch.full((3,), 2.0))
    shared = release(protect(Box({"logits": logits, "again": logits})))
    assert shared.x["logits"] is shared.x["again"]


# --------------------------------------------------------------------------- PIL and pandas


def test_pil_putpixel():
    Image = pytest.importorskip("PIL.Image")
    value = Image.new("RGB", (4, 4), (10, 20, 30))
    kept = protect(value)
    out = release(kept)
    out.putpixel((0, 0), (255, 0, 0))
    assert release(kept).getpixel((0, 0)) == (10, 20, 30)
    value.putpixel((1, 1), (0, 0, 0))
    assert release(kept).getpixel((1, 1)) == (10, 20, 30)


def test_pandas_dataframe_iloc():
    pd = pytest.importorskip("pandas")
    value = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    expected = value.copy(deep=True)
    kept = protect(value)
    out = release(kept)
    out.iloc[0, 0] = 100
    out["c"] = 1
    pd.testing.assert_frame_equal(release(kept), expected)
    value.iloc[1, 0] = -1
    pd.testing.assert_frame_equal(release(kept), expected)


def test_pandas_series_and_index():
    pd = pytest.importorskip("pandas")
    s = pd.Series([1.0, 2.0], index=["a", "b"])
    kept = protect(s)
    out = release(kept)
    out.iloc[0] = 9.0
    out["c"] = 3.0
    pd.testing.assert_series_equal(
        release(kept), pd.Series([1.0, 2.0], index=["a", "b"])
    )
    idx = pd.Index([1, 2, 3])
    assert release(protect(idx)).equals(idx)


def test_pydantic_model():
    pydantic = pytest.importorskip("pydantic")

    class Result(pydantic.BaseModel):
        labels: list[str]
        scores: dict[str, float]

    kept = protect(Result(labels=["a"], scores={"a": 1.0}))
    out = release(kept)
    out.labels.append("b")
    out.scores["b"] = 0.5
    assert release(kept) == Result(labels=["a"], scores={"a": 1.0})


# --------------------------------------------------------------------------- property-based

_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
_hashables = st.recursive(
    _leaves, lambda c: st.tuples(c, c) | st.frozensets(c, max_size=3), max_leaves=6
)
_arrays = st.builds(
    lambda xs: np.array(xs, dtype=np.int64),
    st.lists(st.integers(-1000, 1000), max_size=5),
)
_values = st.recursive(
    _leaves | _arrays | st.builds(bytearray, st.binary(max_size=4)),
    lambda c: (
        st.lists(c, max_size=4)
        | st.tuples(c, c)
        | st.dictionaries(st.text(max_size=4) | st.integers(), c, max_size=4)
        | st.sets(_hashables, max_size=4)
        | st.builds(Box, c)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_property_nested_values_are_isolated(value):
    assert_isolated(value)


@settings(max_examples=100, deadline=None)
@given(_values)
def test_property_protect_shares_nothing_mutable_with_the_original(value):
    kept = protect(value)
    out = release(kept)
    assert not (mutable_ids(out) & mutable_ids(value))
    assert freeze(out) == freeze(copy.deepcopy(value))


# --------------------------------------------------------------------------- properties: everything a caller can touch
#
# Generated values mix containers, numpy arrays (views, object arrays, one
# array reachable twice), subclasses of immutable builtins with state,
# memoryviews and DataFrames with object cells. ``mutate_everything`` changes
# every mutable thing reachable from a value -- items, attributes, array
# contents (or tries to), shapes and dtypes, index names, memoryview handles --
# and ``snapshot`` records everything a caller can observe.


class Note(str):
    """A str subclass with a __dict__."""


def _note(text: str, tags: list) -> Note:
    n = Note(text)
    n.tags = tags
    return n


def _measured(x: float, tags: list) -> Meter:
    m = Meter(x)
    m.unit = "m"
    m.tags = tags
    return m


def snapshot(v: Any) -> Any:
    """Everything observable about ``v``, as nested tuples."""
    if isinstance(v, np.ndarray):
        if v.dtype.hasobject:
            return ("ndo", v.shape, tuple(snapshot(x) for x in v.ravel().tolist()))
        return ("nd", v.dtype.str, v.dtype.names, v.shape, v.tobytes())
    if isinstance(v, memoryview):
        return ("mv", v.format, v.shape, v.tobytes())
    if isinstance(v, Meter):
        return ("meter", float(v), v.unit, snapshot(v.tags))
    if isinstance(v, Note):
        return ("note", str(v), snapshot(v.__dict__))
    if isinstance(v, Box):
        return ("box", snapshot(v.x))
    if isinstance(v, bytearray):
        return ("ba", bytes(v))
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(v, pd.DataFrame):
        return (
            "df",
            tuple(v.columns),
            v.columns.name,
            tuple(v.index),
            v.index.name,
            tuple(str(d) for d in v.dtypes),
            tuple(tuple(snapshot(x) for x in v[c].tolist()) for c in v.columns),
            snapshot(dict(v.attrs)),
        )
    if isinstance(v, list):
        return ("list", tuple(snapshot(x) for x in v))
    if isinstance(v, tuple):
        return (type(v).__name__, tuple(snapshot(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple((snapshot(k), snapshot(x)) for k, x in v.items()))
    if isinstance(v, (set, frozenset)):
        return (type(v).__name__, frozenset(snapshot(x) for x in v))
    return (type(v).__name__, v)


def _try(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except (AttributeError, TypeError, ValueError):
        pass  # refused (read-only data, incompatible shape): nothing changed


def mutate_everything(v: Any, seen: set[int] | None = None) -> None:
    """Mutate every mutable thing reachable from ``v``, in place."""
    seen = set() if seen is None else seen
    if id(v) in seen:
        return
    seen.add(id(v))
    if isinstance(v, np.ndarray):
        if v.dtype.hasobject:
            for x in v.ravel().tolist():
                mutate_everything(x, seen)
        if v.size:
            _try(v.__setitem__, (0,) * v.ndim, v.ravel()[-1])
            _try(setattr, v.flags, "writeable", True)
        _try(setattr, v, "shape", (v.size,) if v.ndim != 1 else (1, v.size))
        _try(setattr, v, "dtype", np.uint8)
        return
    if isinstance(v, memoryview):
        if not v.readonly and v.nbytes:
            v.cast("B")[0] ^= 0xFF
        v.release()
        return
    if isinstance(v, (Meter, Note)):
        mutate_everything(v.tags, seen)
        v.tags = ["replaced"]
        if isinstance(v, Meter):
            v.unit = "ft"
        else:
            v.extra = 1
        return
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(v, pd.DataFrame):
        for column in v.columns:
            for x in v[column].tolist():
                mutate_everything(x, seen)
        _try(v.iloc[:, 0].array.__setitem__, 0, -7)  # past copy-on-write
        _try(v.iloc.__setitem__, (0, 0), -9)
        v.index.name = "mutated"
        v.columns.name = "mutated"
        v.attrs["mutated"] = True
        v["added"] = 0
        return
    if isinstance(v, Box):
        mutate_everything(v.x, seen)
        v.x = ["mutated", v.x]
    elif isinstance(v, list):
        for x in v:
            mutate_everything(x, seen)
        v.append("mutated")
    elif isinstance(v, dict):
        for x in v.values():
            mutate_everything(x, seen)
        v["mutated"] = True
    elif isinstance(v, set):
        v.add("mutated")
    elif isinstance(v, bytearray):
        v.extend(b"!")
    elif isinstance(v, (tuple, frozenset)):
        for x in v:
            mutate_everything(x, seen)


def _frame(cells: list) -> Any:
    pd = pytest.importorskip("pandas")
    column = np.empty(len(cells), dtype=object)
    for i, cell in enumerate(cells):
        column[i] = cell
    index = [f"r{i}" for i in range(len(cells))]
    return pd.DataFrame({"n": np.arange(len(cells), dtype=np.int64), "o": column}, index=index)


def _object_array(items: list) -> Any:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


_ints = st.lists(st.integers(-1000, 1000), min_size=1, max_size=12)
_numpy = st.one_of(
    st.builds(lambda xs: np.array(xs, dtype=np.int64), _ints),
    st.builds(lambda xs: np.array(xs, dtype=np.float32)[::2], _ints),  # a strided view
    st.builds(lambda xs: np.array(xs + xs, dtype=np.int16).reshape(2, -1).T, _ints),
    st.builds(
        lambda xs: np.array([(x, float(x)) for x in xs], dtype=[("i", "i4"), ("f", "f8")]), _ints
    ),
    st.builds(lambda xs: [a := np.array(xs), a], _ints),  # one array reachable twice
)
_views = st.one_of(
    st.builds(memoryview, st.binary(max_size=8)),
    st.builds(lambda b: memoryview(bytearray(b)), st.binary(max_size=8)),
    st.builds(lambda xs: memoryview(np.array(xs, dtype=np.int32)), _ints),
)
_text = st.text(max_size=6)
_everything = st.recursive(
    _leaves | _numpy | _views | st.builds(bytearray, st.binary(max_size=4)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(_text, inner, max_size=4),
        st.sets(_hashables, max_size=3),
        st.builds(Box, inner),
        st.builds(_measured, st.floats(-1e6, 1e6), st.lists(inner, max_size=2)),
        st.builds(_note, _text, st.lists(inner, max_size=2)),
        st.builds(_object_array, st.lists(inner, min_size=1, max_size=3)),
        st.builds(_frame, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_everything)
def test_property_a_caller_mutating_everything_leaves_later_hits_unchanged(value):
    expected = snapshot(value)
    kept = protect(value)
    first = release(kept)
    assert snapshot(first) == expected
    mutate_everything(first)
    assert snapshot(release(kept)) == expected


@settings(max_examples=200, deadline=None)
@given(_everything)
def test_property_the_producer_mutating_its_value_leaves_hits_unchanged(value):
    expected = snapshot(value)
    kept = protect(value)
    mutate_everything(value)
    assert snapshot(release(kept)) == expected


# --------------------------------------------------------------------------- properties: string-keyed records
#
# The common return value of an ML function is a record: a dict of two or more
# str keys ("label", "scores", "boxes", ...) whose values mix scalars with
# lists, arrays and nested dicts. Each draw below is such a record, either all
# of immutable values or with at least one mutable value, so both ways protect()
# keeps a dict are certain to be drawn (the event shows which form was kept).

_record_names = st.text(min_size=1, max_size=8)
_record_immutables = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6)
    | st.tuples(st.integers(), st.text(max_size=3))
)
_record_mutables = st.one_of(
    st.lists(_record_immutables, max_size=3),
    _arrays,
    st.dictionaries(_record_names, _record_immutables, min_size=2, max_size=3),
    st.builds(Box, _record_immutables),
    st.builds(bytearray, st.binary(max_size=4)),
)


@st.composite
def _records(draw: Any) -> tuple[dict, bool]:
    """A string-keyed dict of 2+ entries, and whether every value is immutable."""
    flat = draw(st.booleans())
    values = _record_immutables if flat else _record_immutables | _record_mutables
    record = draw(st.dictionaries(_record_names, values, min_size=2, max_size=6))
    if not flat:
        record[draw(_record_names)] = draw(_record_mutables)  # at least one mutable value
    return record, flat


@settings(max_examples=200, deadline=None)
@given(_records())
def test_property_string_keyed_records_are_isolated_and_share_only_immutables(drawn):
    from hypothesis import event

    record, flat = drawn
    assert len(record) >= 2 and all(type(name) is str for name in record)
    event(f"{'all values immutable' if flat else 'a mutable value'}: kept as {type(protect(record)).__name__}")
    out = release(protect(record))
    assert out is not record and list(out) == list(record)  # a new dict, insertion order kept
    for name, value in record.items():
        shared = out[name] is value
        assert shared == (not mutable_ids(value)), name  # immutables handed out as they are
    assert_isolated(record)


def test_subclasses_of_slotted_immutables_adding_no_state_are_shared():
    """Fraction and UUID keep their value in slots of their own; a subclass adding none is as immutable."""

    class Half(fractions.Fraction):
        __slots__ = ()

    class Tagged(uuid.UUID):
        __slots__ = ()

    for value in (Half(1, 2), Tagged(int=7)):
        assert protect(value) is value
        assert release(protect(value)) is value


def test_a_slot_of_state_makes_a_subclass_copied_and_a_weakref_slot_does_not():
    class Labelled(fractions.Fraction):
        __slots__ = "label"  # one slot, named by a bare string

    class Referable(fractions.Fraction):
        __slots__ = ("__weakref__",)  # no state: only lets weak references point at it

    labelled = Labelled(1, 2)
    labelled.label = ["half"]
    out = release(protect(labelled))
    assert out is not labelled and out == labelled and out.label == ["half"]
    out.label.append("changed")
    assert labelled.label == ["half"]
    referable = Referable(1, 3)
    assert release(protect(referable)) is referable


def test_a_set_slot_after_an_unset_one_is_kept_too():
    class Noted(fractions.Fraction):  # Fraction's pickling leaves both slots out
        __slots__ = ("aside", "label")

    value = Noted(1, 2)
    value.label = ["half"]  # "aside" left unset
    out = release(protect(value))
    assert out == value and out.label == ["half"] and out.label is not value.label
    assert not hasattr(out, "aside")


def test_a_memoryview_of_signed_bytes_keeps_its_format():
    view = memoryview(array.array("b", [1, -2, 3]))
    out = release(protect(view))
    assert out.format == "b" and out.tolist() == [1, -2, 3]


def test_a_memoryview_with_a_zero_in_its_shape_comes_back_as_flat_bytes():
    np = pytest.importorskip("numpy")
    empty_grid = memoryview(np.zeros((2, 0)))  # cast cannot make a shape with a zero in it
    out = release(protect(empty_grid))
    assert out.format == "B" and out.nbytes == 0


def test_memoryviews_come_back_in_their_shape_or_as_flat_bytes_for_formats_cast_cannot_make():
    grid = memoryview(bytearray(range(6))).cast("B", (2, 3))
    out = release(protect(grid))
    assert out.shape == (2, 3) and out.format == "B" and out.tolist() == grid.tolist()
    np = pytest.importorskip("numpy")
    big_endian = memoryview(np.arange(3, dtype=">i4"))  # format ">i": not a native cast format
    flat = release(protect(big_endian))
    assert flat.format == "B" and flat.tobytes() == big_endian.tobytes()


def test_datetime_subclasses_made_here_are_shared_only_without_state_of_their_own():
    # Classes made in the test: the policy chosen once per type is chosen here.
    class Stamp(datetime.datetime):
        __slots__ = ()

    class NotedStamp(datetime.datetime):
        __slots__ = ("note",)

    class NotedTime(datetime.time):
        __slots__ = ("note",)

    plain = Stamp(2026, 1, 2, 3, 4, 5)
    assert protect(plain) is plain and release(protect(plain)) is plain
    for value in (NotedStamp(2026, 1, 2), NotedTime(3, 4)):
        value.note = ["kept"]
        kept = protect(value)
        hit = release(kept)
        assert hit == value and type(hit) is type(value) and hit is not value
        hit.note.append("a caller's")
        value.note.append("the producer's")
        assert release(kept).note == ["kept"]


def test_deep_copies_are_made_without_numpy_ever_imported() -> None:
    # Looking for values to refuse looks for object arrays only where numpy is loaded.
    code = (
        "import sys\nfrom infercache.safety import protect, release\n"
        "class Holder:\n    def __init__(self, items): self.items = items\n"
        "kept = protect(Holder([1, {'a': [2]}]))\n"
        "assert release(kept).items == [1, {'a': [2]}] and release(kept) is not release(kept)\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False"]


def test_a_set_holding_mutable_objects_comes_back_whole_with_its_own_copies() -> None:
    class Tag:
        def __init__(self, name: str) -> None:
            self.name = name
            self.seen: list[str] = []

    produced = {Tag("a"), 3, "x", Tag("b")}
    kept = protect(produced)
    hit = release(kept)
    assert sorted(x.name for x in hit if isinstance(x, Tag)) == ["a", "b"] and {3, "x"} <= hit and len(hit) == 4
    for x in hit:
        if isinstance(x, Tag):
            x.seen.append("a caller's")
    assert all(x.seen == [] for x in release(kept) if isinstance(x, Tag))
    assert not any(x in produced for x in hit if isinstance(x, Tag))  # copies, not the producer's


def test_a_tuple_holding_an_arrow_array_over_the_producers_numpy_memory_is_not_changed_by_the_producer() -> None:
    pa = pytest.importorskip("pyarrow")
    np = pytest.importorskip("numpy")
    memory = np.arange(5.0)
    produced = (pa.array(memory), "label")  # pyarrow wraps the numpy buffer without a copy
    kept = protect(produced)
    memory[0] = 99.0
    assert produced[0][0].as_py() == 99.0
    hit = release(kept)
    assert hit[0].to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0] and hit[1] == "label"
