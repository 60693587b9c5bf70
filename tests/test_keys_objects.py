"""Tests for infercache.keys.objects: a key covers an object's whole state, or
the object is refused.

An object is keyed by its class's verified name and its whole Python-level
state; a class that keeps state in C, or whose name does not lead back to it
(local or factory-made), is refused unless an adapter or ``register_hasher``
covers it. Plain objects, slots, enums, dataclasses, subclasses of builtins
and pydantic models are keyed by class and whole state, never by identity.
Time zones are keyed by name (zone libraries) or by state.
"""

from __future__ import annotations

import array
import collections
import ctypes
import dataclasses
import datetime as dt
import decimal
import enum
import gc
import itertools
import pathlib
import struct
import sys
import threading
import types
from typing import Any, NamedTuple

import numpy as np
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keys_fixtures import all_distinct, k, refusal_message, refused
from pydantic import v1 as pydantic_v1

import infercache as ic
from infercache.keys import UnhashableError, make_call_key, make_key, register_hasher

# ---------------------------------------------------------------- plain objects and value types


class Req:
    """A plain request object (module level: a local class cannot be keyed by content)."""

    def __init__(self, text: str) -> None:
        self.text = text


class OtherReq:
    def __init__(self, text: str) -> None:
        self.text = text


class Slotted:
    __slots__ = ("a", "__b")  # noqa: RUF023 (a mangled slot name, on purpose)

    def __init__(self, a: Any, b: Any) -> None:
        self.a = a
        self.__b = b


class SlottedSubclass(Slotted):
    __slots__ = ("c",)

    def __init__(self, a: Any, b: Any, c: Any) -> None:
        super().__init__(a, b)
        self.c = c


def test_plain_objects_are_keyed_by_content_not_identity() -> None:
    texts = [f"prompt {i % 500}" for i in range(2000)]
    by_text: dict[str, bytes] = {}
    for text in texts:
        req = Req(text)
        key = make_call_key((req,), ("req",))
        del req
        gc.collect(0)
        if text in by_text:
            assert by_text[text] == key
        by_text[text] = key
    assert len(set(by_text.values())) == len(by_text) == 500


def test_plain_objects_are_keyed_by_class_and_state() -> None:
    assert k(Req("a")) == k(Req("a"))
    assert all_distinct([Req("a"), Req("b"), OtherReq("a"), {"text": "a"}])
    r = Req("a")
    r.extra = [1, 2]
    assert k(r) != k(Req("a"))


def test_one_object_met_twice_in_a_value_is_keyed_twice_not_taken_for_a_cycle() -> None:
    shared, point = Req("a"), Point(1, 2)
    assert k([shared, shared]) == k([Req("a"), Req("a")])
    assert k(Req([point, point])) == k(Req([Point(1, 2), Point(1, 2)]))
    assert k((shared, Req(shared))) == k((Req("a"), Req(Req("a"))))


class NoState:
    """Declares no slots and has no __dict__: nothing tells two instances apart, or what they hold."""

    __slots__ = ()


@pytest.mark.parametrize("value", [object(), NoState()], ids=["object", "empty slots"])
def test_an_object_without_state_is_refused_with_the_whole_message(value: Any) -> None:
    with pytest.raises(UnhashableError) as err:
        make_key(value)
    t = type(value)
    name = "builtins.object" if t is object else f"{__name__}.NoState"
    assert err.value.type is t
    assert str(err.value) == refusal_message(
        name, "it has no state (no __dict__ or __slots__) to identify its content", t.__qualname__
    )


def test_slotted_objects_key_every_slot() -> None:
    assert k(Slotted(1, 2)) == k(Slotted(1, 2))
    assert all_distinct([Slotted(1, 2), Slotted(2, 1), SlottedSubclass(1, 2, 3), SlottedSubclass(1, 2, 4)])
    half = Slotted.__new__(Slotted)
    half.a = 1
    assert k(half) != k(Slotted(1, None))


def test_an_unset_slot_leaves_the_slots_after_it_keyed() -> None:
    # Slots are written by name: "_Slotted__b" (unset here) comes before "a".
    first, second = Slotted.__new__(Slotted), Slotted.__new__(Slotted)
    first.a, second.a = 1, 2
    assert k(first) != k(second)
    again = Slotted.__new__(Slotted)
    again.a = 1
    assert k(first) == k(again)


class SlotBase:
    __slots__ = ("x",)


class SlotRedeclared(SlotBase):
    """Declares its base's slot again: Python gives it a second storage of its own."""

    __slots__ = ("x",)


def _redeclared(mine: Any, base: Any) -> SlotRedeclared:
    obj = SlotRedeclared()
    obj.x = mine
    SlotBase.x.__set__(obj, base)  # type: ignore[attr-defined]
    return obj


def test_a_slot_declared_again_by_a_subclass_keys_both_of_its_storages() -> None:
    assert k(_redeclared(1, 2)) == k(_redeclared(1, 2))
    assert all_distinct([_redeclared(1, 2), _redeclared(1, 3), _redeclared(3, 2), SlotRedeclared()])


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Size(enum.IntEnum):
    SMALL = 1


def test_enums_are_keyed_by_class_and_value() -> None:
    assert all_distinct([Color.RED, Color.BLUE, Size.SMALL, 1])
    assert k(Color.RED) == k(Color(1))


@dataclasses.dataclass
class Point:
    x: int
    y: Any = None


@dataclasses.dataclass
class OtherPoint:
    x: int
    y: Any = None


def test_dataclasses_are_keyed_by_class_and_fields() -> None:
    assert k(Point(1, 2)) == k(Point(1, 2))
    assert all_distinct([Point(1, 2), Point(2, 1), OtherPoint(1, 2), (1, 2), {"x": 1, "y": 2}])
    assert k(Point(1, [1, {"a": 2}])) == k(Point(1, [1, {"a": 2}]))


@dataclasses.dataclass
class Job:
    name: str
    result: object = dataclasses.field(init=False)


def test_dataclass_with_an_unset_init_false_field() -> None:
    unset = Job("a")
    done = Job("a")
    done.result = None
    assert make_key(Job("a")) == make_key(unset)
    assert make_key(unset) != make_key(done)


class MyStr(str):
    pass


class MyList(list):
    pass


Pair = collections.namedtuple("Pair", "a b")


def test_subclasses_of_builtins_key_apart_from_their_bases() -> None:
    assert all_distinct(["ab", MyStr("ab"), [1], MyList([1]), (1, 2), Pair(1, 2)])
    assert k(MyStr("ab")) == k(MyStr("ab"))
    assert k(Pair(1, 2)) == k(Pair(1, 2))
    assert k(collections.Counter("aab")) == k(collections.Counter("baa"))
    assert k(collections.deque([1, 2])) != k(collections.deque([2, 1]))


class Params(pydantic.BaseModel):
    prompt: str
    temperature: float = 0.7


class Other(pydantic.BaseModel):
    prompt: str
    temperature: float = 0.7


def test_pydantic_models_are_keyed_by_class_fields_and_which_were_set() -> None:
    assert k(Params(prompt="a")) == k(Params(prompt="a"))
    # Which fields were set is state (model_dump(exclude_unset=True) depends on it).
    assert k(Params(prompt="a")) != k(Params(prompt="a", temperature=0.7))
    assert all_distinct([Params(prompt="a"), Params(prompt="b"), Other(prompt="a"),
                         {"prompt": "a", "temperature": 0.7}])


# ---------------------------------------------------------------- state kept in C


class ArrayWithUnit(array.array):
    pass


class QueueWithLabel(collections.deque):
    pass


class DecimalWithUnit(decimal.Decimal):
    pass


class StampWithSource(dt.datetime):
    pass


class LocalStorage(threading.local):
    pass


class CStruct(ctypes.Structure):
    _fields_ = [("value", ctypes.c_int)]


class PlainWithSlots:
    __slots__ = ("a", "b")


class SlotsAndWeakref:
    """Slots and a weak-reference list: one pointer each in the instance."""

    __slots__ = ("__weakref__", "a")

    def __init__(self, a: Any) -> None:
        self.a = a


def _real_c_backed_types() -> list[type]:
    pd = pytest.importorskip("pandas")
    return [
        pd.Period, pd.Interval, pd.Timestamp, pd.Timedelta, type(pd.NaT), pd.Categorical,
        pd.arrays.DatetimeArray, pd.arrays.TimedeltaArray, pd.arrays.PeriodArray,
        type(pd.offsets.MonthEnd()), collections.deque, array.array, dt.datetime,
        decimal.Decimal, threading.local, CStruct, collections.defaultdict,
        collections.OrderedDict, QueueWithLabel, ArrayWithUnit, DecimalWithUnit, LocalStorage,
        StampWithSource,
    ]


@pytest.mark.parametrize("t", _real_c_backed_types(), ids=lambda t: t.__qualname__)
def test_state_kept_in_c_is_found_by_instance_layout(t: type) -> None:
    from infercache.keys.objects import _hidden_state

    # Cython types (pandas) are heap types: the HEAPTYPE flag alone does not tell.
    assert _hidden_state(t) is not None


@pytest.mark.parametrize("t", [PlainWithSlots, SlotsAndWeakref, dt.tzinfo, types.SimpleNamespace, object, enum.Enum,
                               pydantic.BaseModel, PlainWithSlots.__mro__[0]],
                         ids=lambda t: t.__qualname__)
def test_python_level_state_is_not_mistaken_for_c_state(t: type) -> None:
    from infercache.keys.objects import _hidden_state

    assert _hidden_state(t) is None


def test_an_object_with_slots_and_a_weakref_list_is_keyed_by_its_slots() -> None:
    assert k(SlotsAndWeakref(1)) == k(SlotsAndWeakref(1))
    assert k(SlotsAndWeakref(1)) != k(SlotsAndWeakref(2))


def test_the_generic_object_rule_refuses_c_backed_pandas_values() -> None:
    from infercache.keys.encoder import Unencodable
    from infercache.keys.objects import _generic_object_encoder
    from infercache.keys.wire import new_sink

    pd = pytest.importorskip("pandas")
    values = [
        pd.Period("2020-01", "M"), pd.Interval(0, 1), pd.Timestamp(0), pd.Timedelta(1), pd.NaT,
        pd.Categorical(["a"]), pd.array(pd.date_range("2020", periods=2)),
        pd.array(pd.timedelta_range(0, periods=2)), pd.array(["a"], dtype="string[python]"),
        pd.Series(["a"], dtype="category").values, pd.period_range("2020", periods=2, freq="M").array,
    ]
    for v in values:  # the rule alone, as it was applied before the pandas adapter keyed these
        with pytest.raises(Unencodable) as err:
            _generic_object_encoder(type(v))(v, new_sink("blake3"))
        assert "C type" in err.value.reason


# ---------------------------------------------------------------- state a library type's subclass adds
# (extra_state_writer: the numpy adapter keys an ndarray subclass's array, this the rest)


class UnitArray(np.ndarray):
    """An ndarray subclass from outside numpy with a unit in its ``__dict__`` (as astropy's Quantity)."""


class SlottedUnitArray(np.ndarray):
    __slots__ = ("unit",)


class StatelessArray(np.ndarray):
    """An ndarray subclass from outside numpy that adds no state (no ``__dict__``, no slots)."""

    __slots__ = ()


class _TypeSlot(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_int), ("pfunc", ctypes.c_void_p)]


class _TypeSpec(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("basicsize", ctypes.c_int), ("itemsize", ctypes.c_int),
                ("flags", ctypes.c_uint), ("slots", ctypes.POINTER(_TypeSlot))]


def _extension_type(name: str, base: type) -> type:
    """An extension type deriving from ``base`` with one C field of its own, as a Cython
    ``cdef class`` with a ``cdef`` attribute makes: made through CPython's own
    ``PyType_FromSpecWithBases``, so that no compiler is needed."""
    c_name = ctypes.create_string_buffer(name.encode())
    no_slots = (_TypeSlot * 1)()
    default_and_base_type = (1 << 18) | (1 << 10)  # Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE
    spec = _TypeSpec(ctypes.cast(c_name, ctypes.c_char_p), base.__basicsize__ + ctypes.sizeof(ctypes.c_void_p),
                     0, default_and_base_type, no_slots)
    make = ctypes.pythonapi.PyType_FromSpecWithBases
    make.restype = ctypes.py_object
    make.argtypes = [ctypes.POINTER(_TypeSpec), ctypes.py_object]
    made: type = make(ctypes.byref(spec), (base,))
    made._spec_memory = (c_name, no_slots, spec)  # type: ignore[attr-defined]
    return made


class ArrayOverCState(_extension_type("compiled_ext.CArray", np.ndarray)):  # type: ignore[misc]
    """A Python subclass of that extension type: its C field is state no ``__dict__`` shows."""


def _unit_array(cls: type, values: list[float], unit: str) -> Any:
    a = np.array(values).view(cls)
    a.unit = unit
    return a


@pytest.mark.parametrize("cls", [UnitArray, SlottedUnitArray])
def test_an_array_subclass_from_outside_numpy_keys_the_state_it_adds(cls: type) -> None:
    m = _unit_array(cls, [1.0, 2.0], "m")
    assert k(m) == k(_unit_array(cls, [1.0, 2.0], "m"))
    assert all_distinct([m, _unit_array(cls, [1.0, 2.0], "km"), _unit_array(cls, [1.0, 3.0], "m"),
                         np.array([1.0, 2.0]), np.array([1.0, 2.0]).view(cls)])


def test_an_array_subclass_from_outside_numpy_that_adds_no_state_is_keyed_by_class_and_array() -> None:
    a = np.array([1.0, 2.0]).view(StatelessArray)
    assert k(a) == k(np.array([1.0, 2.0]).view(StatelessArray))
    assert all_distinct([a, np.array([1.0, 3.0]).view(StatelessArray), np.array([1.0, 2.0]),
                         np.array([1.0, 2.0]).view(UnitArray)])


def test_an_array_subclass_over_a_c_type_outside_numpy_is_refused_naming_that_type() -> None:
    with pytest.raises(UnhashableError) as err:
        make_key(np.zeros(2).view(ArrayOverCState))
    reason = ("its state lives in the C type 'compiled_ext:CArray' (an extension type whose instances hold "
              "data that no __dict__ or __slots__ shows), which infercache cannot read")
    assert err.value.type is ArrayOverCState
    assert err.value.reason == reason
    assert str(err.value) == refusal_message(f"{__name__}.ArrayOverCState", reason, "ArrayOverCState")


class FloatOverCState(_extension_type("compiled_ext.CFloat", float)):  # type: ignore[misc]
    """A float subclass over an extension type with a C field: state the float value does not show."""


def test_a_builtin_subclass_over_a_c_type_is_refused_naming_that_type() -> None:
    with pytest.raises(UnhashableError) as err:
        make_key(FloatOverCState(1.5))
    reason = ("its state lives in the C type 'compiled_ext:CFloat' (an extension type whose instances hold "
              "data that no __dict__ or __slots__ shows), which infercache cannot read")
    assert err.value.type is FloatOverCState
    assert err.value.reason == reason
    assert str(err.value) == refusal_message(f"{__name__}.FloatOverCState", reason, "FloatOverCState")


class AppPath(pathlib.PurePosixPath):
    """A path type of the app's own: keyed by its path and its own state, not by what the
    base class caches in its slots (the string, the hash, the parts) as it is used."""


def test_a_subclass_of_a_value_type_is_keyed_by_its_value_not_by_the_base_class_caches() -> None:
    used, fresh = AppPath("/data/a.png"), AppPath("/data/a.png")
    str(used), hash(used), used.parts  # fills the base class's cached slots
    assert k(used) == k(fresh)
    assert k(used) != k(AppPath("/data/b.png"))


class UnitList(list):
    __slots__ = ("unit",)


class UnitFloat(float):
    __slots__ = ("unit",)


class UnitOrderedDict(collections.OrderedDict):
    __slots__ = ("unit",)


class UnitDeque(collections.deque):
    __slots__ = ("unit",)


@pytest.mark.parametrize("make", [
    lambda: UnitList([1, 2]), lambda: UnitFloat(1.5), lambda: UnitOrderedDict(a=1),
    lambda: UnitDeque([1]),
], ids=["list", "float", "OrderedDict", "deque"])
def test_a_value_type_subclass_keys_the_slots_it_adds(make: Any) -> None:
    unset, m, km, m_again = make(), make(), make(), make()
    m.unit, km.unit, m_again.unit = "m", "km", "m"
    assert all_distinct([unset, m, km])
    assert k(m) == k(m_again)


class TaggedPath(type(pathlib.PurePath())):  # type: ignore[misc]
    """A path subclass with an attribute of its own."""


def test_a_path_subclass_keys_its_own_state_not_the_caches_of_pathlib() -> None:
    # pathlib fills slots of its own (the string form, the hash) on first use: they are not state.
    fresh, used = TaggedPath("a/b"), TaggedPath("a/b")
    fresh.source = used.source = "upload"
    _ = (str(used), hash(used), used.parts)  # fills pathlib's caches
    assert k(fresh) == k(used)
    other = TaggedPath("a/b")
    other.source = "disk"
    assert all_distinct([fresh, other, TaggedPath("a/c")])


def test_subclass_of_array_is_keyed_by_its_content() -> None:
    a, b = ArrayWithUnit("i", [1, 2]), ArrayWithUnit("i", [1, 3])
    assert k(a) != k(b)
    assert k(a) == k(ArrayWithUnit("i", [1, 2]))
    assert k(a) != k(array.array("i", [1, 2]))


def test_subclass_of_deque_keys_its_own_attributes() -> None:
    a, b = QueueWithLabel([1]), QueueWithLabel([1])
    a.label, b.label = "x", "y"
    assert k(a) != k(b)
    b.label = "x"
    assert k(a) == k(b)


def test_subclass_of_decimal_keys_its_own_attributes() -> None:
    a, b = DecimalWithUnit("1.5"), DecimalWithUnit("1.5")
    a.unit, b.unit = "m", "km"
    assert k(a) != k(b)


def test_defaultdict_keys_its_default_factory() -> None:
    assert k(collections.defaultdict(list, a=1)) != k(collections.defaultdict(int, a=1))
    assert k(collections.defaultdict(list, a=1)) == k(collections.defaultdict(list, a=1))
    assert k(collections.defaultdict(list)) != k({})
    assert refused(collections.defaultdict(lambda: 0))


def _unkeyable() -> None:
    """A function: code, which no key can be made of."""


@pytest.mark.parametrize(("value", "path"), [
    (Req(_unkeyable), ".text"),
    (Req([1, _unkeyable]), ".text[1]"),
    (Req({"inner": _unkeyable}), ".text['inner']"),
    (Req(Req(_unkeyable)), ".text.text"),
    (Slotted(_unkeyable, 2), ".a"),
    (Slotted(1, _unkeyable), "._Slotted__b"),
    (Point(1, _unkeyable), ".y"),
    (collections.defaultdict(_unkeyable), ".default_factory"),
    (collections.defaultdict(list, a=_unkeyable), "['a']"),
], ids=["attribute", "in a list attribute", "in a dict attribute", "nested object", "slot",
        "mangled slot", "dataclass field", "default_factory", "defaultdict item"])
def test_a_refusal_names_where_in_the_object_the_unkeyable_value_is(value: Any, path: str) -> None:
    with pytest.raises(UnhashableError) as err:
        make_key(value)
    assert err.value.path == path
    assert f"(at value{path}): a builtins.function object cannot be hashed" in str(err.value)


def test_a_defaultdict_with_an_unkeyable_factory_is_refused_with_the_whole_message() -> None:
    with pytest.raises(UnhashableError) as err:
        make_key(collections.defaultdict(_unkeyable))
    assert str(err.value) == refusal_message(
        "builtins.function",
        "functions and methods are code, not data: their content cannot be compared",
        "function",
        at="value.default_factory",
    )


def test_objects_backed_by_c_without_an_adapter_are_refused() -> None:
    with pytest.raises(UnhashableError, match="C type"):
        make_key(LocalStorage())
    with pytest.raises(UnhashableError, match="C type"):
        make_key(CStruct(3))


def test_cached_function_tells_array_subclasses_apart() -> None:
    f = ic.cache(lambda a: a.tolist())
    assert f(ArrayWithUnit("i", [1, 2])) == [1, 2]
    assert f(ArrayWithUnit("i", [5, 6])) == [5, 6]


# ---------------------------------------------------------------- whole state of dataclasses and models


@dataclasses.dataclass
class Base:
    x: int


class Child(Base):
    def __init__(self, x: int, y: int) -> None:
        super().__init__(x)
        self.y = y


@dataclasses.dataclass(slots=True)
class SlottedBase:
    x: int


class SlottedChild(SlottedBase):
    __slots__ = ("extra",)

    def __init__(self, x: int, extra: int) -> None:
        super().__init__(x)
        self.extra = extra


def test_dataclass_subclass_attributes_outside_the_fields_are_keyed() -> None:
    assert k(Child(1, 2)) != k(Child(1, 3))
    assert k(Child(1, 2)) == k(Child(1, 2))
    assert k(SlottedChild(1, 2)) != k(SlottedChild(1, 3))


def test_cached_function_tells_dataclass_subclasses_apart() -> None:
    use = ic.cache(lambda obj: (obj.x, obj.y))
    assert use(Child(1, 2)) == (1, 2)
    assert use(Child(1, 3)) == (1, 3)


class Model(pydantic.BaseModel):
    x: int


class ModelWithPrivate(Model):
    _secret: int = pydantic.PrivateAttr(default=0)


class ModelExtra(pydantic.BaseModel, extra="allow"):
    x: int


def test_pydantic_state_outside_the_fields_is_keyed() -> None:
    a, b = ModelWithPrivate(x=1), ModelWithPrivate(x=1)
    b._secret = 5
    assert k(a) != k(b)
    c, d = Model(x=1), Model(x=1)
    object.__setattr__(d, "note", "set outside the fields")
    assert k(c) != k(d)
    assert k(ModelExtra(x=1, z=2)) != k(ModelExtra(x=1, z=3))
    assert k(Model(x=1)) == k(Model(x=1))


class ParamsV1(pydantic_v1.BaseModel):
    """A model of pydantic's v1 API, which pydantic 2 still ships."""

    prompt: str
    steps: int = 10


def test_a_pydantic_v1_model_is_keyed_by_class_and_fields() -> None:
    assert k(ParamsV1(prompt="a")) == k(ParamsV1(prompt="a"))
    assert all_distinct([ParamsV1(prompt="a"), ParamsV1(prompt="b"), ParamsV1(prompt="a", steps=20),
                         ParamsV1(prompt="a", steps=10)])


class InnerA(pydantic.BaseModel):
    v: int


class InnerB(pydantic.BaseModel):
    v: int


class Outer(pydantic.BaseModel):
    inner: InnerA | InnerB


class WithExcluded(pydantic.BaseModel):
    prompt: str
    temperature: float = pydantic.Field(default=1.0, exclude=True)


def test_a_nested_pydantic_models_class_is_part_of_the_key() -> None:
    @ic.cache
    def kind(cfg):
        return type(cfg.inner).__name__

    assert kind(Outer(inner=InnerA(v=1))) == "InnerA"
    assert kind(Outer(inner=InnerB(v=1))) == "InnerB"


def test_a_pydantic_field_excluded_from_dumps_is_part_of_the_key() -> None:
    a = WithExcluded(prompt="p", temperature=0.1)
    b = WithExcluded(prompt="p", temperature=0.9)
    assert make_key(a) != make_key(b)


class PairWithNote(NamedTuple("PairBase", [("a", int), ("b", int)])):
    pass


def test_namedtuple_subclass_keys_its_attributes() -> None:
    p, q = PairWithNote(1, 2), PairWithNote(1, 2)
    p.note, q.note = "x", "y"
    assert k(p) != k(q)


# ---------------------------------------------------------------- classes must name themselves back


def _factory(tag: str) -> type:
    class Made:
        def __init__(self, v: Any) -> None:
            self.v = v
    Made.tag = tag
    return Made


def test_classes_made_by_a_factory_never_share_keys() -> None:
    a_cls, b_cls = _factory("a"), _factory("b")
    assert a_cls.__module__ == b_cls.__module__ and a_cls.__qualname__ == b_cls.__qualname__
    outcomes = []
    for cls in (a_cls, b_cls):
        try:
            outcomes.append(k(cls(1)))
        except UnhashableError as err:
            assert "local class" in str(err)
            outcomes.append(None)
    assert outcomes[0] is None or outcomes[0] != outcomes[1]


_impostor_module = types.ModuleType("infercache_test_impostors")
sys.modules[_impostor_module.__name__] = _impostor_module


def _named_class(name: str, install: bool) -> type:
    cls = type(name, (), {"__init__": lambda self, v: setattr(self, "v", v)})
    cls.__module__ = _impostor_module.__name__
    cls.__qualname__ = name
    if install:
        setattr(_impostor_module, name, cls)
    return cls


def test_two_classes_with_one_module_and_qualname_never_share_keys() -> None:
    real = _named_class("Thing", install=True)
    impostor = _named_class("Thing", install=False)
    assert k(real(1)) == k(real(1))
    with pytest.raises(UnhashableError, match="does not lead back"):
        make_key(impostor(1))
    with pytest.raises(UnhashableError, match="does not lead back"):
        make_key(impostor)  # the type object itself is keyed by its name too


def test_class_removed_from_its_module_is_refused() -> None:
    gone = _named_class("Gone", install=False)
    with pytest.raises(UnhashableError):
        make_key([gone(1)])


def test_factory_made_enums_and_dataclasses_are_refused() -> None:
    def make_enum() -> type:
        return enum.Enum("Color", "RED GREEN")

    def make_dc() -> type:
        return dataclasses.make_dataclass("P", ["x"])

    e1, e2 = make_enum(), make_enum()
    assert refused(e1.RED) and refused(e2.RED)
    assert refused(make_dc()(1))


def test_local_classes_as_values_are_refused_module_classes_keyed() -> None:
    class Local:
        pass

    assert refused(Local)
    assert refused(Local())
    assert k(Base) == k(Base) and k(Base) != k(Child)


def test_a_registered_class_is_keyed_by_its_registration_even_when_local() -> None:
    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

    register_hasher(Local, lambda o: o.v)
    assert k(Local(1)) == k(Local(1)) != k(Local(2))

    class LocalChild(Local):
        pass

    with pytest.raises(UnhashableError, match="register_hasher"):
        make_key(LocalChild(1))  # inheriting a registration needs a name that leads back


# ---------------------------------------------------------------- time zones


class OffsetZone(dt.tzinfo):
    """A custom zone with no key/zone attribute: keyed by its state."""

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes

    def utcoffset(self, d: Any) -> dt.timedelta:
        return dt.timedelta(minutes=self.minutes)

    def dst(self, d: Any) -> dt.timedelta:
        return dt.timedelta(0)

    def tzname(self, d: Any) -> str:
        return "OZ"


class SameOffsetOtherRules(OffsetZone):
    def __init__(self, minutes: int, rule: str) -> None:
        super().__init__(minutes)
        self.rule = rule


def test_equal_datetimes_with_equal_custom_zones_hit() -> None:
    a = dt.datetime(2024, 1, 1, 12, tzinfo=OffsetZone(60))
    b = dt.datetime(2024, 1, 1, 12, tzinfo=OffsetZone(60))
    assert k(a) == k(b)
    assert k(a) != k(dt.datetime(2024, 1, 1, 12, tzinfo=OffsetZone(120)))
    assert k(dt.time(1, tzinfo=OffsetZone(60))) == k(dt.time(1, tzinfo=OffsetZone(60)))


def test_custom_zones_differing_only_in_state_differ() -> None:
    a = dt.datetime(2024, 1, 1, tzinfo=SameOffsetOtherRules(60, "a"))
    b = dt.datetime(2024, 1, 1, tzinfo=SameOffsetOtherRules(60, "b"))
    assert k(a) != k(b)


def test_cached_function_hits_for_datetimes_with_custom_zones() -> None:
    calls = []

    @ic.cache
    def stamp(when: dt.datetime) -> str:
        calls.append(when)
        return when.isoformat()

    stamp(dt.datetime(2024, 1, 1, tzinfo=OffsetZone(30)))
    stamp(dt.datetime(2024, 1, 1, tzinfo=OffsetZone(30)))
    assert len(calls) == 1


def test_local_zone_classes_are_refused() -> None:
    class LocalZone(dt.tzinfo):
        def utcoffset(self, d: Any) -> dt.timedelta:
            return dt.timedelta(0)

    with pytest.raises(UnhashableError, match="local class"):
        make_key(dt.datetime(2024, 1, 1, tzinfo=LocalZone()))


def test_named_zones_are_keyed_by_name_per_library() -> None:
    from zoneinfo import ZoneInfo

    pytz = pytest.importorskip("pytz")
    dateutil_tz = pytest.importorskip("dateutil.tz")
    when = dt.datetime(2024, 1, 15, 9)
    zi = when.replace(tzinfo=ZoneInfo("Europe/London"))
    assert k(zi) == k(when.replace(tzinfo=ZoneInfo.no_cache("Europe/London")))
    assert k(zi) != k(when.replace(tzinfo=ZoneInfo("Europe/Dublin")))  # same offset in January
    assert k(pytz.timezone("Europe/London")) != k(ZoneInfo("Europe/London"))
    assert k(pytz.FixedOffset(60)) == k(pytz.FixedOffset(60)) != k(pytz.FixedOffset(61))
    a = dateutil_tz.gettz("Europe/London")
    path = getattr(a, "_filename", "")
    if path.startswith("/"):  # the system database: the same zone named without the path
        with open(path, "rb") as fh:
            b = dateutil_tz.tzfile(fh, filename="Europe/London")
        assert k(a) == k(b)
    assert "zoneinfo/" not in repr(k(a))


def test_zoneinfo_without_a_key_is_refused() -> None:
    from zoneinfo import TZPATH, ZoneInfo

    path = next((f"{p}/UTC" for p in TZPATH), None)
    if path is None:
        pytest.skip("no system time zone database")
    with open(path, "rb") as fh:
        zone = ZoneInfo.from_file(fh)
    assert refused(dt.datetime(2024, 1, 1, tzinfo=zone))


def test_a_datetimes_zone_is_part_of_the_key() -> None:
    from zoneinfo import ZoneInfo

    @ic.cache
    def half_year_later(when):
        return (when + dt.timedelta(days=180)).isoformat()

    utc = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)
    london = dt.datetime(2024, 1, 1, 12, tzinfo=ZoneInfo("Europe/London"))
    assert half_year_later(utc) == "2024-06-29T12:00:00+00:00"
    assert half_year_later(london) == "2024-06-29T12:00:00+01:00"  # BST in June


def test_an_aware_time_differs_from_the_naive_time() -> None:
    from zoneinfo import ZoneInfo

    assert make_key(dt.time(12, tzinfo=ZoneInfo("Europe/Paris"))) != make_key(dt.time(12))


# ---------------------------------------------------------------- the rule, over generated classes


_generated = types.ModuleType("infercache_generated_classes")
sys.modules[_generated.__name__] = _generated
_counter = itertools.count()

ATTRS = ("a", "b", "c", "_d", "__e")
scalar = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text("xy", max_size=2),
                   st.floats(allow_nan=False, width=32), st.tuples(st.integers(0, 2)))


def _canon(v: Any) -> Any:
    """State compared the way keys compare it: by type and exact value."""
    if isinstance(v, float):
        return ("f", struct.pack("<d", v))
    if isinstance(v, tuple):
        return ("t", tuple(_canon(x) for x in v))
    if isinstance(v, dict):
        return ("d", tuple(sorted((k, _canon(x)) for k, x in v.items())))
    return (type(v).__name__, v)


@dataclasses.dataclass(frozen=True)
class Shape:
    kind: str
    slots: tuple[str, ...]


SHAPES = st.sampled_from([
    Shape("dict", ()), Shape("slots", ("a", "b")), Shape("slots+dict", ("a", "__dict__")),
    Shape("dataclass-child", ()), Shape("pydantic-child", ()), Shape("deque", ()),
    Shape("array", ()), Shape("period", ()), Shape("datetime", ()), Shape("local", ()),
    Shape("tzinfo", ()), Shape("threading.local", ()),
])


@dataclasses.dataclass
class _GenBase:
    a: Any = None


class _GenModel(pydantic.BaseModel):
    a: Any = None


def _make_class(shape: Shape, install: bool) -> type:
    name = f"Gen{next(_counter)}"
    ns: dict[str, Any] = {}
    bases: tuple[type, ...] = ()
    if shape.kind in ("slots", "slots+dict"):
        ns["__slots__"] = shape.slots
    elif shape.kind == "dataclass-child":
        bases = (_GenBase,)
    elif shape.kind == "pydantic-child":
        bases = (_GenModel,)
        ns["_private"] = pydantic.PrivateAttr(default=None)
    elif shape.kind == "deque":
        bases = (collections.deque,)
    elif shape.kind == "array":
        bases = (array.array,)
    elif shape.kind == "period":
        bases = (pytest.importorskip("pandas").Period,)
    elif shape.kind == "datetime":
        bases = (dt.datetime,)
    elif shape.kind == "tzinfo":
        bases = (dt.tzinfo,)
    elif shape.kind == "threading.local":
        bases = (threading.local,)
    ns["__module__"] = _generated.__name__
    cls = type(name, bases, ns)
    cls.__qualname__ = name if shape.kind != "local" else f"factory.<locals>.{name}"
    if install and shape.kind != "local":
        setattr(_generated, name, cls)
    return cls


FIELD_KINDS = ("dataclass-child", "pydantic-child")


def _instance(cls: type, shape: Shape, content: int, state: dict[str, Any]) -> Any:
    if shape.kind in FIELD_KINDS:
        state = {n: v for n, v in state.items() if n != "a"}  # the field a holds the content
    if shape.kind == "deque":
        obj = cls([content])
    elif shape.kind == "array":
        obj = cls("i", [content])
    elif shape.kind == "period":
        obj = cls(str(2000 + content), "Y")
    elif shape.kind == "datetime":
        obj = cls(2000 + content, 1, 1)
    elif shape.kind == "dataclass-child":
        obj = cls(content)
    elif shape.kind == "pydantic-child":
        obj = cls(a=content)
        obj._private = state.pop("_d", None)
    else:
        obj = cls()
    for name, value in state.items():
        if shape.kind == "slots" and name not in shape.slots:
            continue
        if shape.kind == "pydantic-child":
            object.__setattr__(obj, name, value)
        else:
            setattr(obj, name, value)
    return obj


def _effective_state(shape: Shape, content: int, state: dict[str, Any]) -> Any:
    if shape.kind == "slots":
        state = {n: v for n, v in state.items() if n in shape.slots}
    if shape.kind in FIELD_KINDS:
        state = {n: v for n, v in state.items() if n != "a"}
    uses_content = shape.kind in (*FIELD_KINDS, "deque", "array", "period", "datetime")
    return (content if uses_content else None, _canon(state))


@settings(max_examples=150, deadline=None)
@given(shape=SHAPES, installed=st.booleans(),
       c1=st.integers(0, 2), s1=st.dictionaries(st.sampled_from(ATTRS), scalar, max_size=3),
       c2=st.integers(0, 2), s2=st.dictionaries(st.sampled_from(ATTRS), scalar, max_size=3))
def test_generated_classes_are_keyed_by_whole_state_or_refused(
        shape: Shape, installed: bool, c1: int, s1: dict, c2: int, s2: dict) -> None:
    cls = _make_class(shape, install=installed)
    objs = [_instance(cls, shape, c, dict(s)) for c, s in ((c1, s1), (c1, s1), (c2, s2))]
    try:
        keys = [make_key(o) for o in objs]
    except UnhashableError:
        keys = None
    if not installed or shape.kind in ("local", "threading.local"):
        assert keys is None, "a class that cannot be named back, or keeps state in C, must be refused"
        return
    assert keys is not None, f"a plain {shape.kind} class must be keyed"
    assert keys[0] == keys[1], "equal state must give equal keys"
    if _effective_state(shape, c1, s1) != _effective_state(shape, c2, s2):
        assert keys[0] != keys[2], "objects differing in any part of their state must not share a key"
    else:
        assert keys[0] == keys[2]


@dataclasses.dataclass
class Table:
    """Has a field named as a struct sequence's class attribute: it is not one."""

    name: str
    n_fields: int = 0


def test_a_class_with_an_n_fields_attribute_is_not_taken_for_a_struct_sequence() -> None:
    assert k(Table("a", 2)) == k(Table("a", 2))
    assert all_distinct([Table("a", 2), Table("a", 3), Table("b", 2)])


def test_struct_sequences_key_their_fields_beyond_the_tuple() -> None:
    import os

    a = os.stat_result((0,) * 10 + (1.5, 2.5, 3.5))
    b = os.stat_result((0,) * 10 + (1.5, 2.5, 9.5))
    assert tuple(a) == tuple(b)
    assert k(a) != k(b)
    assert k(a) == k(os.stat_result((0,) * 10 + (1.5, 2.5, 3.5)))
