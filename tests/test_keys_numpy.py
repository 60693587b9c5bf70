"""Tests for infercache.keys.numpy beyond plain arrays: dtype parameters, array
subclasses made outside numpy, business-day calendars."""

from __future__ import annotations

from typing import Any

import pytest

from infercache.keys import make_key

np = pytest.importorskip("numpy")


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
