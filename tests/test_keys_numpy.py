"""Tests for infercache.keys.numpy: arrays of any layout by dtype, shape and
values (equal bytes under another dtype are another key); scalars, dtypes,
object and masked arrays; dtype parameters, array subclasses made outside
numpy, business-day calendars."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keys_fixtures import all_distinct, k

from infercache.keys import UnhashableError, make_key

np = pytest.importorskip("numpy")


# ---------------------------------------------------------------- plain arrays, scalars and dtypes


def test_arrays_are_keyed_by_dtype_shape_and_values() -> None:
    a = np.arange(6, dtype=np.int64)
    assert k(a) == k(np.arange(6, dtype=np.int64))
    assert all_distinct([a, a.reshape(2, 3), a.reshape(3, 2), a.astype(np.int32),
                         a.astype(np.float64), a + 1, a.tolist(), a[:5]])


# One dtype of every kind (and both byte orders) with a 4- or 8-byte item: 16 bytes read as each.
EVERY_KIND = ["i1", "u1", "<i2", "<u2", "<f2", "<i4", ">i4", "<u4", "<f4", ">f4", "<i8", "<u8", "<f8",
              "<c8", "<c16", "<M8[ns]", "<m8[s]", "<m8[ns]", "S4", "S8", "V4", "V8"]


def test_equal_bytes_under_different_dtypes_key_differently() -> None:
    ints, floats = np.zeros(4, np.int32), np.zeros(4, np.float32)
    assert ints.tobytes() == floats.tobytes()
    assert k(ints) != k(floats)
    zeros = bytes(16)  # zero bytes are a valid value of every dtype, booleans and unicode included
    views = [np.frombuffer(zeros, dtype=d) for d in [*EVERY_KIND, "?", "<U1", ">U1"]]
    assert len({v.tobytes() for v in views}) == 1
    assert all_distinct(views)


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=16, max_size=16))
def test_prop_any_bytes_key_by_dtype_and_content(raw: bytes) -> None:
    """The same bytes read as each dtype: as many keys as dtypes, each equal to its copy's."""
    views = [np.frombuffer(raw, dtype=d) for d in EVERY_KIND]
    keys = [k(v) for v in views]
    assert len(set(keys)) == len(views)
    assert keys == [k(np.frombuffer(bytearray(raw), dtype=d).copy()) for d in EVERY_KIND]


def test_a_non_contiguous_view_keys_like_its_copy() -> None:
    base = np.arange(10_000, dtype=np.float32).reshape(100, 100)
    view = base[::2, 1::3]
    assert not view.flags.c_contiguous
    assert k(view) == k(np.ascontiguousarray(view))
    assert k(base.T) == k(base.T.copy())
    assert k(base.T) != k(base)
    big = np.arange(1_000_000, dtype=np.float64).reshape(1000, 1000)
    assert k(big[:, ::2]) == k(big[:, ::2].copy())


def test_one_changed_pixel_changes_an_images_key() -> None:
    img = np.random.default_rng(1).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    copy = img.copy()
    assert k(img) == k(copy)
    copy[500, 500, 1] ^= 1
    assert k(img) != k(copy)
    assert k(img, algorithm="xxh3") != k(copy, algorithm="xxh3")
    assert k(img)[:1] == b"\x01" and k(img, algorithm="xxh3")[:1] == b"\x02"


class Req:
    """A plain object for object arrays (module level: a local class cannot be keyed by content)."""

    def __init__(self, text: str) -> None:
        self.text = text


def test_object_arrays_are_keyed_by_content() -> None:
    a = np.array([Req("a"), "x", 1], dtype=object)
    b = np.array([Req("a"), "x", 1], dtype=object)
    c = np.array([Req("b"), "x", 1], dtype=object)
    assert k(a) == k(b)
    assert k(a) != k(c)
    with pytest.raises(UnhashableError):
        make_key(np.array([object()], dtype=object))


def test_scalars_are_tagged_by_dtype() -> None:
    assert all_distinct([np.float64(1.0), 1.0, np.float32(1.0), np.int64(1), 1, np.int32(1),
                         np.bool_(True), True, np.str_("a"), "a", np.array(1.0)])
    assert k(np.float64(2.5)) == k(np.float64(2.5))


def test_structured_and_datetime_dtypes_are_keyed() -> None:
    dt1 = np.dtype([("a", "<i4"), ("b", "<f8")])
    dt2 = np.dtype([("x", "<i4"), ("y", "<f8")])
    a = np.array([(1, 2.0), (3, 4.0)], dtype=dt1)
    b = np.array([(1, 2.0), (3, 4.0)], dtype=dt2)
    assert k(a) == k(a.copy())
    assert k(a) != k(b)
    dates = np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]")
    assert k(dates) == k(dates.copy())
    assert k(dates) != k(dates.astype("datetime64[s]"))
    assert all_distinct([np.dtype("float32"), np.dtype("float64"), dt1, dt2, np.float32])


def test_masked_arrays_key_their_mask() -> None:
    a = np.ma.array([1, 2, 3], mask=[0, 1, 0])
    b = np.ma.array([1, 2, 3], mask=[0, 0, 0])
    assert k(a) != k(b)
    assert k(a) == k(np.ma.array([1, 2, 3], mask=[0, 1, 0]))


# ---------------------------------------------------------------- subclasses, dtype parameters, calendars


class Quantity(np.ndarray):
    """An array subclass from outside numpy whose unit is instance state (as astropy's)."""

    def __new__(cls, values: Any, unit: str) -> Quantity:  # noqa: PYI034
        self = np.asarray(values).view(cls)
        self.unit = unit
        return self

    def __array_finalize__(self, obj: Any) -> None:
        self.unit = getattr(obj, "unit", None)


def test_array_subclass_from_outside_numpy_keys_its_attributes() -> None:
    assert make_key(Quantity([1.0], "m")) != make_key(Quantity([1.0], "km"))
    assert make_key(Quantity([1.0], "m")) == make_key(Quantity([1.0], "m"))
    assert make_key(Quantity([1.0], "m")) != make_key(np.array([1.0]))


def test_string_dtype_keys_its_missing_value_object() -> None:
    string_dtype = getattr(getattr(np, "dtypes", None), "StringDType", None)
    if string_dtype is None:
        pytest.skip("numpy < 2 has no StringDType")
    a = np.array(["a", "b"], dtype=string_dtype())
    b = np.array(["a", "b"], dtype=string_dtype(na_object=None))
    assert make_key(a) != make_key(b)
    assert make_key(a.dtype) != make_key(b.dtype)
    assert make_key(a) == make_key(np.array(["a", "b"], dtype=string_dtype()))


def test_datetime_units_and_structured_fields_are_keyed() -> None:
    assert make_key(np.array([1], dtype="M8[s]")) != make_key(np.array([1], dtype="M8[ms]"))
    a = np.zeros(1, dtype=[("x", "<i4"), ("y", "<i4")])
    b = np.zeros(1, dtype=[("x", "<i4"), ("z", "<i4")])
    assert make_key(a) != make_key(b)


def test_business_day_calendars_are_keyed_by_weekmask_and_holidays() -> None:
    a = np.busdaycalendar(weekmask="1111100", holidays=["2024-01-01"])
    assert make_key(a) == make_key(np.busdaycalendar(weekmask="1111100", holidays=["2024-01-01"]))
    assert make_key(a) != make_key(np.busdaycalendar(weekmask="1111110", holidays=["2024-01-01"]))
    assert make_key(a) != make_key(np.busdaycalendar(weekmask="1111100", holidays=["2024-01-02"]))


class Sentinel:
    """A missing-value marker whose repr shows its address."""


def test_string_dtype_is_keyed_by_content_not_by_its_repr() -> None:
    string_dtype = getattr(getattr(np, "dtypes", None), "StringDType", None)
    if string_dtype is None:
        pytest.skip("numpy < 2 has no StringDType")
    assert "0x" in repr(string_dtype(na_object=Sentinel()))
    assert make_key(string_dtype(na_object=Sentinel())) == make_key(string_dtype(na_object=Sentinel()))


def test_scalars_holding_objects_are_keyed_by_those_objects() -> None:
    # A record of a structured array with an object field: its bytes are pointers, so it is
    # keyed by its items.
    records = np.array([("a", 1), ("b", 1), ("a", 1), ("a", 2)], dtype=[("f", object), ("n", "<i4")])
    assert records[0].dtype.hasobject
    assert k(records[0]) == k(records[2]) == k(records[2:3].copy()[0])
    assert all_distinct([records[0], records[1], records[3]])


def test_an_object_array_that_contains_itself_is_refused_as_a_cycle() -> None:
    looped = np.empty(2, dtype=object)
    looped[0] = 1
    looped[1] = looped
    with pytest.raises(UnhashableError) as info:
        make_key(looped, where="batch")
    err = info.value
    assert (err.where, err.path, err.type) == ("batch", "[1]", np.ndarray)
    assert err.reason == "it contains itself (a reference cycle)"


def test_object_arrays_inside_object_arrays_are_not_cycles() -> None:
    inner = np.array([1, "a"], dtype=object)
    outer = np.empty(3, dtype=object)
    outer[:] = [inner, inner, np.array([2], dtype=object)]
    again = np.empty(3, dtype=object)
    again[:] = [inner.copy(), inner.copy(), np.array([2], dtype=object)]
    assert k(outer) == k(again)
    assert k(outer) != k(np.array([None, None, None], dtype=object))


def test_a_large_zero_dimensional_array_is_keyed_by_its_bytes() -> None:
    # One element of more than 4 KiB: streamed into the hasher as a flat run of bytes.
    big = np.array(b"x" * 5000)
    assert big.ndim == 0 and big.nbytes > 4096
    assert k(big) == k(np.array(b"x" * 5000))
    assert all_distinct([big, np.array(b"x" * 4999 + b"y"), np.array([b"x" * 5000]), b"x" * 5000])


def _string_dtype() -> Any:
    string_dtype = getattr(getattr(np, "dtypes", None), "StringDType", None)
    if string_dtype is None:
        pytest.skip("numpy < 2 has no StringDType")
    return string_dtype


def test_string_dtype_arrays_are_keyed_by_their_strings() -> None:
    # Strings longer than 15 bytes live outside the array's buffer, which holds where they
    # are: keyed by those bytes, arrays of other strings of the same lengths would collide.
    string_dtype = _string_dtype()
    long_x = np.array(["x" * 100, "short"], dtype=string_dtype())
    assert k(long_x) == k(np.array(["x" * 100, "short"], dtype=string_dtype()))
    assert all_distinct([long_x, np.array(["y" * 100, "short"], dtype=string_dtype()), long_x.astype(object)])
    assert k(long_x[0]) == k("x" * 100)  # a scalar of the array is a str


def test_string_dtype_keys_its_missing_value_and_coercion() -> None:
    string_dtype = _string_dtype()
    dtypes = [string_dtype(), string_dtype(coerce=False), string_dtype(na_object="a"),
              string_dtype(na_object="b"), string_dtype(na_object=None)]
    assert all_distinct(dtypes)
    assert all_distinct([np.array(["v"], dtype=d) for d in dtypes])
    assert k(string_dtype(coerce=False)) == k(string_dtype(coerce=False))
    assert k(string_dtype(na_object="a")) == k(string_dtype(na_object="a"))
