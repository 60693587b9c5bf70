"""The golden-key table's values: one named, deterministic value per case.

``tests/golden_keys.json`` holds the keys these values had when the table was
written, for both digests, together with the key format version. The test
(``tests/test_keys_golden.py``) recomputes them: any change of a key is then a
visible, deliberate change of the format. To change the format on purpose,
bump ``KEY_FORMAT_VERSION`` in ``infercache/keys/wire.py`` and regenerate::

    python -m tests.golden_keys_cases --write

Adding an adapter: add cases for each kind of value it keys (a ``@case``
function, with ``requires=`` naming the optional library), then regenerate.
The test fails for a registered builder that keys no value of this table.

Classes used as values live in a module of their own, ``infercache_golden``,
installed into ``sys.modules`` here, so their names (part of their keys) do not
depend on how this file was imported.
"""

from __future__ import annotations

import argparse
import array
import collections
import dataclasses
import datetime as dt
import decimal
import enum
import fractions
import importlib.util
import json
import os
import pathlib
import sys
import time
import types
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from infercache.keys import KEY_FORMAT_VERSION, make_call_key, make_key, register_hasher

TABLE = pathlib.Path(__file__).with_name("golden_keys.json")
ALGORITHMS = ("blake3", "xxh3")


class Unavailable(Exception):
    """Raised by a case's builder when this environment cannot build it."""


@dataclasses.dataclass(frozen=True)
class Case:
    """A named value: ``build()`` makes it, ``requires`` names optional libraries."""

    name: str
    build: Callable[[], Any]
    requires: tuple[str, ...] = ()
    call: bool = False  # also check make_call_key(value, names) (value is a tuple)

    def missing(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


CASES: dict[str, Case] = {}


def case(name: str, *, requires: tuple[str, ...] = (), call: bool = False) -> Callable:
    """Registers the decorated function as the builder of case ``name``."""
    def deco(fn: Callable[[], Any]) -> Callable[[], Any]:
        if name in CASES:
            raise ValueError(f"duplicate golden case {name!r}")
        CASES[name] = Case(name, fn, requires, call)
        return fn
    return deco


def cases(names_and_values: dict[str, Callable[[], Any]], *, requires: tuple[str, ...] = ()) -> None:
    for name, fn in names_and_values.items():
        case(name, requires=requires)(fn)


# ---------------------------------------------------------------- classes used as values

GOLDEN_MODULE = "infercache_golden"


def _golden_module() -> types.ModuleType:
    """The module holding the table's classes (created once per process)."""
    found = sys.modules.get(GOLDEN_MODULE)
    if found is not None:
        return found
    mod = types.ModuleType(GOLDEN_MODULE, "Classes of the golden-key table.")

    def install(cls: type) -> type:
        cls.__module__ = GOLDEN_MODULE
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)
        return cls

    class Color(enum.Enum):
        RED = 1
        GREEN = "g"

    class Level(enum.IntEnum):
        LOW = 1

    @dataclasses.dataclass
    class Point:
        x: int
        y: Any = None

    class Pair(NamedTuple):
        a: int
        b: str

    class Req:
        def __init__(self, text: str, temperature: float) -> None:
            self.text = text
            self.temperature = temperature

    class Slotted:
        __slots__ = ("a", "b")

        def __init__(self, a: Any) -> None:
            self.a = a

    class Meter(float):
        def __new__(cls, v: float, unit: str) -> Meter:  # noqa: PYI034
            self = super().__new__(cls, v)
            self.unit = unit
            return self

    class Tagged(collections.deque):
        pass

    class Fixed(dt.tzinfo):
        def __init__(self, minutes: int) -> None:
            self.minutes = minutes

        def utcoffset(self, d: Any) -> dt.timedelta:
            return dt.timedelta(minutes=self.minutes)

        def dst(self, d: Any) -> dt.timedelta:
            return dt.timedelta(0)

        def tzname(self, d: Any) -> str:
            return "FIXED"

    class Token:
        def __init__(self, value: str) -> None:
            self.value = value

    for cls in (Color, Level, Point, Pair, Req, Slotted, Meter, Tagged, Fixed, Token):
        install(cls)
    register_hasher(Token, lambda t: t.value)
    sys.modules[GOLDEN_MODULE] = mod
    return mod


G = _golden_module()


def _pydantic_model() -> type:
    import pydantic

    found = getattr(G, "Params", None)
    if found is None:
        class Params(pydantic.BaseModel):
            prompt: str
            temperature: float = 0.7
            tags: list[str] = []
        Params.__module__ = GOLDEN_MODULE
        Params.__qualname__ = "Params"
        G.Params = found = Params
    return found


# ---------------------------------------------------------------- Python values

cases({
    "none": lambda: None,
    "true": lambda: True,
    "false": lambda: False,
    "int_zero": lambda: 0,
    "int_small": lambda: 7,
    "int_negative": lambda: -300,
    "int_huge": lambda: 2**200 + 1,
    "int_huge_negative": lambda: -(3**150),
    "float": lambda: 1.5,
    "float_nan": lambda: float("nan"),
    "float_negative_zero": lambda: -0.0,
    "float_inf": lambda: float("inf"),
    "float_negative_inf": lambda: float("-inf"),
    "complex": lambda: complex(1.5, -2.0),
    "str_empty": lambda: "",
    "str_ascii": lambda: "hello world",
    "str_non_ascii": lambda: "héllo wörld ✓ 日本語 🙂",
    "str_long": lambda: "abc" * 2000,
    "str_lone_surrogate": lambda: "a\ud800b",
    "bytes": lambda: b"\x00\x01raw",
    "bytes_large": lambda: bytes(range(256)) * 40,
    "bytearray": lambda: bytearray(b"mutable"),
    "memoryview": lambda: memoryview(b"abcdef"),
    "memoryview_2d": lambda: memoryview(array.array("i", range(6))).cast("B").cast("i", (2, 3)),
    "array_double": lambda: array.array("d", [1.0, 2.5, -0.0]),
    "array_int": lambda: array.array("i", [1, -2, 3]),
    "list_mixed": lambda: [1, "a", None, 2.5, [True, (1,)]],
    "list_floats_packed": lambda: [i / 7 for i in range(40)],
    "tuple_floats_packed": lambda: tuple(i / 3 for i in range(20)),
    "list_ints_packed": lambda: list(range(-10, 30)),
    "tuple_ints_packed": lambda: tuple(range(100, 120)),
    "tuple_nested": lambda: (1, ("a", (b"b", (None,)))),
    "dict_str_keys": lambda: {"b": 1, "a": [2, 3], "c": {"d": None}},
    "dict_mixed_keys": lambda: {1: "one", "1": 1, (2, 3): [4], None: b"n"},
    "set": lambda: {3, "x", (1, 2), b"y"},
    "set_of_str": lambda: {"x", "y", "z"},
    "frozenset": lambda: frozenset({1, 2.0, "three"}),
    "range": lambda: range(2, 20, 3),
    "slice": lambda: slice(1, None, -2),
    "ellipsis": lambda: ...,
    "type_builtin": lambda: int,
    "type_class": lambda: G.Req,
    "type_with_metaclass": lambda: G.Color,
    "enum": lambda: G.Color.GREEN,
    "int_enum": lambda: G.Level.LOW,
    "datetime_naive": lambda: dt.datetime(2024, 7, 1, 12, 30, 5, 123456),
    "datetime_fold": lambda: dt.datetime(2024, 11, 3, 1, 30, fold=1),
    "datetime_utc": lambda: dt.datetime(2024, 7, 1, 12, tzinfo=dt.timezone.utc),
    "datetime_offset": lambda: dt.datetime(2024, 7, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=-5), "EST")),
    "datetime_custom_tz": lambda: dt.datetime(2024, 7, 1, 12, tzinfo=G.Fixed(90)),
    "date": lambda: dt.date(1999, 12, 31),
    "time": lambda: dt.time(23, 59, 59, 999999),
    "time_tz": lambda: dt.time(8, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "timedelta": lambda: dt.timedelta(days=-1, seconds=5, microseconds=7),
    "timezone": lambda: dt.timezone(dt.timedelta(hours=5, minutes=30), "IST"),
    "decimal": lambda: decimal.Decimal("-1.2500"),
    "decimal_nan": lambda: decimal.Decimal("sNaN12"),
    "fraction": lambda: fractions.Fraction(-3, 7),
    "uuid": lambda: uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "path_posix": lambda: pathlib.PurePosixPath("/data/images/cat.png"),
    "path_windows": lambda: pathlib.PureWindowsPath(r"C:\data\cat.png"),
    "dataclass": lambda: G.Point(1, [2, "three"]),
    "namedtuple": lambda: G.Pair(1, "b"),
    "object_by_attributes": lambda: G.Req("a prompt", 0.7),
    "object_with_slots": lambda: G.Slotted([1, 2]),
    "float_subclass_with_state": lambda: G.Meter(2.5, "m"),
    "deque": lambda: collections.deque([1, 2, 3], maxlen=5),
    "deque_subclass_with_state": lambda: _tagged_deque(),
    "ordered_dict": lambda: collections.OrderedDict([("b", 1), ("a", 2)]),
    "defaultdict": lambda: collections.defaultdict(list, {"a": [1]}),
    "counter": lambda: collections.Counter("abracadabra"),
    "struct_time": lambda: time.struct_time((2024, 7, 1, 12, 0, 0, 0, 183, 0)),
    "stat_result": lambda: os.stat_result(tuple(range(10))),
    "registered_hasher": lambda: G.Token("tok"),
    "simple_namespace": lambda: types.SimpleNamespace(a=1, b="two"),
})


def _tagged_deque() -> Any:
    d = G.Tagged([1, 2])
    d.label = "queue"
    return d


@case("call_small_args", call=True)
def _call_small() -> tuple:
    return ("hello world", 0.7)


@case("call_mixed_args", call=True)
def _call_mixed() -> tuple:
    return ("prompt", 3, None, True, -1.5, [1, 2])


@case("call_long_args", call=True)
def _call_long() -> tuple:
    return ("x" * 100, 2**70, 1.0)


@case("datetime_zoneinfo")
def _dt_zoneinfo() -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime(2024, 1, 15, 9, tzinfo=ZoneInfo("Europe/London"))


@case("zoneinfo")
def _zoneinfo() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("America/New_York")


@case("pytz_zone", requires=("pytz",))
def _pytz_zone() -> Any:
    import pytz

    return pytz.timezone("Asia/Tokyo").localize(dt.datetime(2024, 3, 1, 10))


@case("pytz_fixed_offset", requires=("pytz",))
def _pytz_fixed() -> Any:
    import pytz

    return dt.datetime(2024, 3, 1, 10, tzinfo=pytz.FixedOffset(-150))


@case("dateutil_zone", requires=("dateutil",))
def _dateutil_zone() -> Any:
    from dateutil import tz

    return dt.datetime(2024, 3, 1, 10, tzinfo=tz.gettz("Europe/Paris"))


@case("dateutil_offset", requires=("dateutil",))
def _dateutil_offset() -> Any:
    from dateutil import tz

    return dt.datetime(2024, 3, 1, 10, tzinfo=tz.tzoffset("X", 3600))


@case("pydantic_model", requires=("pydantic",))
def _pydantic() -> Any:
    return _pydantic_model()(prompt="a", tags=["x"])


@case("pydantic_secret_str", requires=("pydantic",))
def _pydantic_secret() -> Any:
    import pydantic

    return pydantic.SecretStr("token")  # a pydantic type that is not a model: keyed as an object


@case("pydantic_v1_model", requires=("pydantic",))
def _pydantic_v1() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic 2 warns that its v1 layer is deprecated
        from pydantic import v1

    found = getattr(G, "ParamsV1", None)
    if found is None:
        class ParamsV1(v1.BaseModel):
            prompt: str
            temperature: float = 0.7
        ParamsV1.__module__, ParamsV1.__qualname__ = GOLDEN_MODULE, "ParamsV1"
        G.ParamsV1 = found = ParamsV1
    return found(prompt="a")


# ---------------------------------------------------------------- numpy

def _np() -> Any:
    import numpy as np

    return np


def _numpy_cases() -> dict[str, Callable[[], Any]]:
    def rng() -> Any:
        return _np().random.default_rng(0)

    found: dict[str, Callable[[], Any]] = {
        "np_bool": lambda: _np().array([True, False, True]),
        "np_int64_c": lambda: _np().arange(12, dtype="<i8").reshape(3, 4),
        "np_int64_fortran": lambda: _np().asfortranarray(_np().arange(12, dtype="<i8").reshape(3, 4)),
        "np_int8": lambda: _np().array([-128, 0, 127], dtype="i1"),
        "np_uint16_big_endian": lambda: _np().array([1, 2, 3], dtype=">u2"),
        "np_uint64": lambda: _np().array([2**64 - 1], dtype="u8"),
        "np_float16": lambda: _np().array([0.5, -0.0, _np().inf], dtype="f2"),
        "np_float32": lambda: _np().linspace(0, 1, 5, dtype="f4"),
        "np_float64_nan": lambda: _np().array([_np().nan, 1.0]),
        "np_complex128": lambda: _np().array([1 + 2j, -1j]),
        "np_datetime64_ns": lambda: _np().array(["2024-01-01T00:00:00.000000001"], dtype="M8[ns]"),
        "np_datetime64_days": lambda: _np().array(["2024-01-01", "NaT"], dtype="M8[D]"),
        "np_timedelta64_s": lambda: _np().array([1, -5], dtype="m8[s]"),
        "np_unicode": lambda: _np().array(["ab", "日本"]),
        "np_bytes": lambda: _np().array([b"ab", b"c"]),
        "np_void": lambda: _np().array([b"\x01\x02"], dtype="V2"),
        "np_structured": lambda: _np().array([(1, 2.5, "x")], dtype=[("a", "<i4"), ("b", "<f8"), ("c", "U3")]),
        "np_subarray_dtype": lambda: _np().zeros(2, dtype=("<i2", (2, 2))),
        "np_object": lambda: _np().array([1, "a", None, [2]], dtype=object),
        "np_empty": lambda: _np().empty((0, 3), dtype="f8"),
        "np_image_uint8": lambda: rng().integers(0, 255, (64, 96, 3), dtype="u1"),
        "np_large_float32": lambda: rng().standard_normal(5000).astype("f4"),
        "np_masked": lambda: _np().ma.masked_array([1, 2, 3], mask=[0, 1, 0]),
        "np_scalar_int64": lambda: _np().int64(-7),
        "np_scalar_float32": lambda: _np().float32(0.1),
        "np_scalar_bool": lambda: _np().bool_(True),
        "np_scalar_datetime64": lambda: _np().datetime64("2024-02-29T12", "h"),
        "np_scalar_str": lambda: _np().str_("héllo"),
        "np_scalar_void_record": lambda: _np().array([(1, 2.0)], dtype=[("a", "i2"), ("b", "f4")])[0],
        "np_dtype_simple": lambda: _np().dtype("<f8"),
        "np_dtype_structured": lambda: _np().dtype([("x", "<i4"), ("y", "<f4", (2,))]),
        "np_busdaycalendar": lambda: _np().busdaycalendar(weekmask="1111100", holidays=["2024-01-01"]),
    }
    found["np_subclass_with_state"] = lambda: _app_array_with_state()
    found["np_subclass_without_state"] = lambda: _np().arange(3).view(_app_array_class("AppSlotless", slotless=True))
    found["np_stringdtype"] = lambda: _np().array(["a", "bc"], dtype=_string_dtype()())
    found["np_stringdtype_na"] = lambda: _np().array(["a", None], dtype=_string_dtype()(na_object=None))
    return found


def _app_class(name: str, base: type, namespace: dict[str, Any]) -> type:
    """A subclass of the app's own, made once and filed in the golden module."""
    found = getattr(G, name, None)
    if found is None:
        found = type(name, (base,), namespace)
        found.__module__, found.__qualname__ = GOLDEN_MODULE, name
        setattr(G, name, found)
    return found


def _app_array_class(name: str, *, slotless: bool = False) -> type:
    """An ndarray subclass of the app's own (its state is keyed beside the array's)."""
    return _app_class(name, _np().ndarray, {"__slots__": ()} if slotless else {})


def _app_array_with_state() -> Any:
    arr = _np().arange(3).view(_app_array_class("AppArray"))
    arr.unit = "m"
    return arr


def _string_dtype() -> Any:
    found = getattr(getattr(_np(), "dtypes", None), "StringDType", None)
    if found is None:
        raise Unavailable("this numpy has no StringDType (numpy 2.0+)")
    return found


cases(_numpy_cases(), requires=("numpy",))


# ---------------------------------------------------------------- pandas

def _pd() -> Any:
    import pandas as pd

    return pd


_PD = ("pandas", "numpy")


def _obj(values: list) -> Any:
    """An object-dtype Index: the same value whatever pandas infers for strings."""
    return _pd().Index(values, dtype=object)


def _ns(values: Any) -> Any:
    return values.as_unit("ns")


def _frame(data: dict, index: Any = None) -> Any:
    df = _pd().DataFrame(data, index=index)
    df.columns = _obj(list(df.columns))
    return df


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def _nan_string_dtype(storage: str) -> Any:
    try:
        return _pd().StringDtype(storage, na_value=_np().nan)
    except TypeError as why:
        raise Unavailable(f"this pandas has no NaN-backed string dtype ({why})") from None


# Values are built with explicit dtypes and units, so that a pandas version
# inferring other defaults (str vs object, "us" vs "ns") builds the same value.
cases({
    "pd_series_int": lambda: _pd().Series([1, 2, 3], name="n", dtype="int64"),
    "pd_series_float_index_str": lambda: _pd().Series([0.5, None], index=_obj(["a", "b"]), dtype="float64"),
    "pd_series_object": lambda: _pd().Series(["x", 1, None], dtype=object),
    "pd_series_datetime_naive": lambda: _pd().Series(_ns(_pd().to_datetime(["2024-01-01", None]))),
    "pd_series_with_attrs": lambda: _series_with_attrs(),
    "pd_frame_mixed": lambda: _frame({
        "i": _pd().array([1, 2], dtype="int64"), "f": [0.5, -0.0],
        "s": _pd().array(["a", "b"], dtype="string[python]"),
        "c": _pd().Categorical(["u", "v"], categories=_obj(["u", "v"])),
        "o": _pd().Series([[1], {"k": 2}], dtype=object)}),
    "pd_frame_large": lambda: _frame({"a": _pd().RangeIndex(20_000).to_numpy(dtype="int64"),
                                      "b": [i / 3 for i in range(20_000)]}),
    "pd_frame_period_index": lambda: _frame(
        {"v": [1.0, 2.0]}, index=_pd().period_range("2024-01", periods=2, freq="M")),
    "pd_index_int": lambda: _pd().Index([3, 1, 2], name="id", dtype="int64"),
    "pd_index_str_object": lambda: _obj(["a", "b"]),
    "pd_range_index": lambda: _pd().RangeIndex(2, 40, 3, name="r"),
    "pd_multi_index": lambda: _pd().MultiIndex.from_arrays(
        [_pd().Index([1, 1, 2], dtype="int64"), _pd().Categorical(["x", "y", "x"], categories=_obj(["x", "y"]))],
        names=["n", "c"]),
    "pd_datetime_index_freq": lambda: _pd().date_range(
        "2024-01-01", periods=3, freq="D", tz=dt.timezone.utc, unit="ns"),
    "pd_timedelta_index": lambda: _pd().timedelta_range("1s", periods=3, freq="s", unit="ns"),
    "pd_period_index": lambda: _pd().period_range("2024Q1", periods=2, freq="Q"),
    "pd_interval_index": lambda: _pd().interval_range(0, 3, closed="left"),
    "pd_categorical_index": lambda: _pd().CategoricalIndex(
        ["b", "a"], categories=_obj(["a", "b", "c"]), ordered=True),
    "pd_categorical": lambda: _pd().Categorical(["a", "b", None], categories=_obj(["b", "a"])),
    "pd_datetime_array_tz": lambda: _pd().array(_pd().DatetimeIndex(
        ["2024-03-31 00:00", "2024-03-31 03:00"]).as_unit("ns").tz_localize(_zone("Europe/London"))),
    "pd_datetime_array_unit_s": lambda: _pd().array(_pd().to_datetime(["2024-01-01"]).as_unit("s")),
    "pd_timedelta_array": lambda: _pd().array(_ns(_pd().to_timedelta([1, None], unit="min"))),
    "pd_period_array": lambda: _pd().period_range("2024-01-01", periods=2, freq="W-SUN").array,
    "pd_interval_array": lambda: _pd().arrays.IntervalArray.from_breaks([0.0, 0.5, 1.0], closed="both"),
    "pd_int64_masked": lambda: _pd().array([1, None, 3], dtype="Int64"),
    "pd_uint8_masked": lambda: _pd().array([1, 255], dtype="UInt8"),
    "pd_float32_masked": lambda: _pd().array([0.5, None], dtype="Float32"),
    "pd_boolean_masked": lambda: _pd().array([True, None, False], dtype="boolean"),
    "pd_string_python": lambda: _pd().array(["a", None, "ç"], dtype="string[python]"),
    "pd_sparse": lambda: _pd().arrays.SparseArray([0, 0, 1, 2, 0], fill_value=0),
    "pd_numpy_extension_array": lambda: _pd().arrays.NumpyExtensionArray(_np().array([1.5, 2.5])),
    "pd_series_array_categorical_values": lambda: _pd().Series(
        _pd().Categorical(["x", "y", "x"], categories=_obj(["x", "y"]))).values,
    "pd_timestamp": lambda: _ns(_pd().Timestamp("2024-07-01 12:00:00.000000123")),
    "pd_timestamp_tz": lambda: _ns(_pd().Timestamp("2024-07-01 12:00", tz=_zone("America/New_York"))),
    "pd_timedelta": lambda: _ns(_pd().Timedelta("1 days 00:00:00.000000001")),
    "pd_period": lambda: _pd().Period("2024-07", freq="M"),
    "pd_interval": lambda: _pd().Interval(_ns(_pd().Timestamp("2024-01-01")), _ns(_pd().Timestamp("2024-02-01"))),
    "pd_nat": lambda: _pd().NaT,
    "pd_na": lambda: _pd().NA,
    "pd_offset_week": lambda: _pd().offsets.Week(weekday=2),
    "pd_offset_custom_business_day": lambda: _pd().offsets.CustomBusinessDay(
        n=2, holidays=["2024-01-01"], weekmask="Mon Tue Wed Thu"),
    "pd_dtype_categorical": lambda: _pd().CategoricalDtype(_obj(["a", "b"]), ordered=True),
    "pd_dtype_datetime_tz": lambda: _pd().DatetimeTZDtype("ms", "UTC"),
    "pd_dtype_int64": lambda: _pd().Int64Dtype(),
}, requires=_PD)
cases({
    "pd_string_pyarrow": lambda: _pd().array(["a", None], dtype="string[pyarrow]"),
    "pd_arrow_dtype_int": lambda: _pd().array([1, None, 3], dtype="int64[pyarrow]"),
    "pd_arrow_dtype_timestamp": lambda: _pd().array(
        _pd().to_datetime(["2024-01-01"]), dtype="timestamp[us, tz=UTC][pyarrow]"),
    "pd_series_nan_string": lambda: _pd().Series(["a", "b", None], dtype=_nan_string_dtype("pyarrow")),
}, requires=(*_PD, "pyarrow"))


def _series_with_attrs() -> Any:
    s = _pd().Series([1.0], name="m", dtype="float64")
    s.attrs["unit"] = "kg"
    return s


# ---------------------------------------------------------------- PIL

def _pil_image(mode: str, size: tuple[int, int] = (4, 3)) -> Any:
    from PIL import Image

    n = len(Image.new(mode, (1, 1)).tobytes())
    return Image.frombytes(mode, size, bytes((i * 37) % 256 for i in range(size[0] * size[1] * n)))


def _pil_palette() -> Any:
    im = _pil_image("P")
    im.putpalette(bytes(range(48)))
    im.info["transparency"] = 2
    return im


def _pil_rgb_parts() -> Any:
    """A 1920x1080 RGB image: keyed by parts (more than 4 MiB of XRGB)."""
    from PIL import Image

    n = 1920 * 1080 * 3
    return Image.frombytes("RGB", (1920, 1080), (bytes(range(251)) * (n // 251 + 1))[:n])


def _pil_with_info() -> Any:
    im = _pil_image("RGB", (64, 64))
    im.info["dpi"] = (72.0, 72.0)
    return im


cases({
    "pil_rgb": lambda: _pil_image("RGB"),
    "pil_rgba": lambda: _pil_image("RGBA"),
    "pil_l": lambda: _pil_image("L"),
    "pil_1": lambda: _pil_image("1", (8, 2)),
    "pil_i16": lambda: _pil_image("I;16"),
    "pil_f": lambda: _pil_image("F"),
    "pil_p_palette": _pil_palette,
    "pil_rgb_large_with_info": _pil_with_info,
    "pil_rgb_1080p_parts": _pil_rgb_parts,
}, requires=("PIL",))


# ---------------------------------------------------------------- torch

def _torch() -> Any:
    import torch

    return torch


def _parameter() -> Any:
    torch = _torch()
    return torch.nn.Parameter(torch.ones(2, 2))


def _tensor_with_names(name: str, names: tuple[str | None, ...]) -> Any:
    """A tensor whose dimensions have names (``Tensor.names``), keyed with them.

    torch before 2.13 gives every tensor ``names`` (named tensors, all ``None`` unless
    set); torch 2.13 dropped them. A subclass defining ``names`` reads the same on
    every version, so these rows pin how names are written wherever a tensor has them.
    """
    return _torch().zeros(2, 3).as_subclass(_app_class(name, _torch().Tensor, {"names": names}))


cases({
    "torch_float32": lambda: _torch().arange(12, dtype=_torch().float32).reshape(3, 4),
    "torch_int64_transposed": lambda: _torch().arange(6).reshape(2, 3).t(),
    "torch_bool": lambda: _torch().tensor([True, False]),
    "torch_bfloat16": lambda: _torch().tensor([0.5, -2.0], dtype=_torch().bfloat16),
    "torch_requires_grad": lambda: _torch().ones(3).requires_grad_(True),
    "torch_sparse": lambda: _torch().eye(3).to_sparse(),
    "torch_large": lambda: _torch().arange(4096, dtype=_torch().float64),
    "torch_parameter": _parameter,
    "torch_named_dimensions": lambda: _tensor_with_names("NamedDims", ("N", "C")),
    # All None is a tensor without names: written as such, not as a tuple of Nones.
    "torch_unnamed_dimensions": lambda: _tensor_with_names("UnnamedDims", (None, None)),
    "torch_dtype": lambda: _torch().float16,
    "torch_device": lambda: _torch().device("cpu"),
}, requires=("torch",))


# ---------------------------------------------------------------- pyarrow

def _pa() -> Any:
    import pyarrow as pa

    return pa


def _pa_compute() -> Any:
    import pyarrow.compute as pc

    return pc


class _GoldenUnits:
    """A pyarrow extension type with a parameter, made once per process."""

    made: Any = None

    @classmethod
    def array(cls) -> Any:
        pa = _pa()
        if cls.made is None:
            class Units(pa.ExtensionType):
                def __init__(self, unit: str) -> None:
                    self.unit = unit
                    super().__init__(pa.float64(), "infercache.golden.units")

                def __arrow_ext_serialize__(self) -> bytes:
                    return self.unit.encode()

                @classmethod
                def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> Any:
                    return cls(serialized.decode())
            cls.made = Units
        return pa.ExtensionArray.from_storage(cls.made("m"), pa.array([1.5, None]))


cases({
    "pa_array_int64_nulls": lambda: _pa().array([1, None, 3]),
    "pa_array_float_signed_zero": lambda: _pa().array([0.0, -0.0, float("nan")]),
    "pa_array_bool_sliced": lambda: _pa().array([True, False, None, True] * 3).slice(3),
    "pa_array_string_sliced": lambda: _pa().array(["a", None, "ccc", "dé"]).slice(1),
    "pa_array_large_binary": lambda: _pa().array([b"x", b"", None], _pa().large_binary()),
    "pa_array_string_view": lambda: _pa().array(["short", "a string longer than twelve"],
                                                _pa().string_view()),
    "pa_array_large": lambda: _pa().array([i / 7 for i in range(20_000)]),
    "pa_array_timestamp_tz": lambda: _pa().array([0, None, 86_400_000_000],
                                                 _pa().timestamp("us", tz="Europe/Paris")),
    "pa_array_decimal": lambda: _pa().array([decimal.Decimal("1.25"), None],
                                            _pa().decimal128(9, 2)),
    "pa_array_list": lambda: _pa().array([[1, 2], None, [], [None]]),
    "pa_array_fixed_size_list": lambda: _pa().array([[1, 2], [3, 4]], _pa().list_(_pa().int16(), 2)),
    "pa_array_struct": lambda: _pa().array([{"a": 1, "b": "x"}, None, {"a": None, "b": "z"}]),
    "pa_array_map": lambda: _pa().array([[("k", 1)], [], None],
                                        _pa().map_(_pa().string(), _pa().int32())),
    "pa_array_dictionary": lambda: _pa().array(["x", "y", None, "x"]).dictionary_encode(),
    "pa_array_run_end_encoded": lambda: _pa_compute().run_end_encode(_pa().array([1, 1, 2, None])),
    "pa_array_extension_uuid": lambda: _pa().ExtensionArray.from_storage(
        _pa().uuid(), _pa().array([bytes(range(16))], _pa().binary(16))),
    "pa_array_extension_python": _GoldenUnits.array,
    "pa_chunked_three_chunks": lambda: _pa().chunked_array([[1, 2], [], [3, None]]),
    "pa_table_with_metadata": lambda: _pa().table(
        {"i": [1, 2], "s": ["a", None]}, metadata={"source": "golden"}),
    "pa_record_batch": lambda: _pa().record_batch({"i": [1, 2], "f": [0.5, None]}),
    "pa_scalar_int": lambda: _pa().scalar(7, _pa().int16()),
    "pa_scalar_null": lambda: _pa().scalar(None, _pa().string()),
    "pa_type_timestamp_tz": lambda: _pa().timestamp("ns", tz="UTC"),
    "pa_type_fixed_shape_tensor": lambda: _pa().fixed_shape_tensor(_pa().float32(), (2, 2),
                                                                   dim_names=["h", "w"]),
    "pa_field_with_metadata": lambda: _pa().field("f", _pa().int8(), nullable=False,
                                                  metadata={"unit": "m"}),
    "pa_schema": lambda: _pa().schema([("a", _pa().int64()), ("b", _pa().list_(_pa().string()))],
                                      metadata={"v": "1"}),
}, requires=("pyarrow",))


# ---------------------------------------------------------------- polars

def _pl() -> Any:
    import polars as pl

    return pl


def _pl_frame_chunked() -> Any:
    pl = _pl()
    return pl.concat([pl.DataFrame({"a": [1, 2], "b": ["x", None]}),
                      pl.DataFrame({"a": [3], "b": ["z"]})], rechunk=False)


cases({
    "pl_series_int_nulls": lambda: _pl().Series("n", [1, None, 3]),
    "pl_series_str": lambda: _pl().Series("s", ["a", None, "ccc"]),
    "pl_series_bool": lambda: _pl().Series("b", [True, None, False]),
    "pl_series_categorical": lambda: _pl().Series("c", ["y", "x", None, "y"], dtype=_pl().Categorical),
    "pl_series_enum": lambda: _pl().Series("e", ["b", "a"], dtype=_pl().Enum(["a", "b", "c"])),
    "pl_series_datetime_tz": lambda: _pl().Series(
        "t", [dt.datetime(2024, 1, 1), None], dtype=_pl().Datetime("ms", "Asia/Tokyo")),
    "pl_series_duration": lambda: _pl().Series("d", [dt.timedelta(seconds=1)],
                                               dtype=_pl().Duration("us")),
    "pl_series_decimal": lambda: _pl().Series("d", [decimal.Decimal("1.50"), None],
                                              dtype=_pl().Decimal(10, 2)),
    "pl_series_list": lambda: _pl().Series("l", [[1, 2], None, []]),
    "pl_series_array": lambda: _pl().Series("a", [[1, 2], [3, 4]], dtype=_pl().Array(_pl().Int8, 2)),
    "pl_series_struct": lambda: _pl().Series("st", [{"a": 1, "b": "x"}, None]),
    "pl_series_int128": lambda: _pl().Series("i", [2**100, None], dtype=_pl().Int128),
    "pl_series_object": lambda: _pl().Series("o", [1, "a"], dtype=_pl().Object),
    "pl_series_large": lambda: _pl().Series("f", [i / 7 for i in range(20_000)]),
    "pl_frame_mixed": lambda: _pl().DataFrame({"i": [1, 2], "f": [0.5, -0.0], "s": ["a", None]}),
    "pl_frame_chunked": _pl_frame_chunked,
    "pl_dtype_datetime": lambda: _pl().Datetime("ns", "UTC"),
    "pl_dtype_enum": lambda: _pl().Enum(["lo", "hi"]),
}, requires=("polars",))


# ---------------------------------------------------------------- computing and writing

def keys_of(c: Case) -> dict[str, str]:
    """The case's keys (hex) for each digest; a call case also checks the fast path."""
    value = c.build()
    found = {alg: make_key(value, algorithm=alg).hex() for alg in ALGORITHMS}
    if c.call:
        names = tuple(f"p{i}" for i in range(len(value)))
        for alg in ALGORITHMS:
            fast = make_call_key(value, names, alg).hex()
            if fast != found[alg]:
                raise AssertionError(f"{c.name}: make_call_key differs from make_key ({alg})")
    return found


def compute_all() -> dict[str, dict[str, str]]:
    """Keys of every case this environment can build."""
    found = {}
    for name, c in CASES.items():
        if c.missing():
            continue
        try:
            found[name] = keys_of(c)
        except Unavailable:
            continue
    return found


def write(path: pathlib.Path = TABLE) -> None:
    """Rewrites the table. Every case must be computable: install all optional libraries first."""
    missing = {name: c.missing() for name, c in CASES.items() if c.missing()}
    if missing:
        raise SystemExit(f"cannot write the golden table without {sorted({m for v in missing.values() for m in v})}")
    table = {"key_format_version": KEY_FORMAT_VERSION,
             "cases": {name: keys_of(c) for name, c in CASES.items()}}
    path.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {len(table['cases'])} golden keys (format version {KEY_FORMAT_VERSION}) to {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The golden-key table of infercache.")
    parser.add_argument("--write", action="store_true", help="regenerate tests/golden_keys.json")
    parser.add_argument("--json", action="store_true", help="print every computable case's keys as JSON")
    args = parser.parse_args(argv)
    if args.write:
        write()
    elif args.json:
        print(json.dumps(compute_all(), sort_keys=True))
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
