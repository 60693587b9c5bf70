"""Tests for infercache.keys.pandas: every built-in extension dtype, index and
scalar keyed by content with its dtype parameters.

Two values that compare unequal or differ in dtype never share a key; equal
content built separately gives the same key.
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from keys_fixtures import all_distinct, k, refusal_message

import infercache as ic
from infercache.keys import UnhashableError, make_key

pd = pytest.importorskip("pandas")
np = pytest.importorskip("numpy")


# ---------------------------------------------------------------- through the cache


def test_cached_function_tells_periods_apart() -> None:
    f = ic.cache(str)
    assert f(pd.Period("2020-01", "M")) == "2020-01"
    assert f(pd.Period("2024-07", "M")) == "2024-07"


@pytest.mark.parametrize("make", [
    lambda y: pd.period_range(f"{y}-01", periods=2, freq="M"),
    lambda y: pd.Series([1.0], index=pd.period_range(f"{y}-01", periods=1, freq="M")),
    lambda y: pd.DataFrame({"v": [1]}, index=pd.period_range(f"{y}-01", periods=1, freq="M")),
    lambda y: pd.Categorical([str(y)]),
    lambda y: pd.Series([str(y)], dtype="category").values,
    lambda y: pd.Series([y]).array,
    lambda y: pd.array(pd.date_range(f"{y}-01-01", periods=2)),
    lambda y: pd.array(pd.to_timedelta([y], unit="s")),
    lambda y: pd.array([str(y)], dtype="string[python]"),
    lambda y: pd.Interval(0, y),
    lambda y: pd.interval_range(0, y),
], ids=["PeriodIndex", "period-indexed Series", "period-indexed DataFrame", "Categorical",
        "category values", "Series.array", "DatetimeArray", "TimedeltaArray", "StringArray",
        "Interval", "IntervalIndex"])
def test_cached_function_tells_pandas_values_apart(make: Any) -> None:
    f = ic.cache(lambda v: repr(v))
    assert f(make(2020)) == repr(make(2020))
    assert f(make(2024)) == repr(make(2024))


# ---------------------------------------------------------------- extension arrays


def test_categorical_keys_codes_categories_and_order() -> None:
    base = pd.Categorical(["a", "b", "a"])
    assert k(base) == k(pd.Categorical(["a", "b", "a"]))
    assert all_distinct([
        base,
        pd.Categorical(["a", "b", "b"]),
        pd.Categorical(["a", "b", "a"], categories=["b", "a"]),
        pd.Categorical(["a", "b", "a"], ordered=True),
        pd.Categorical(["a", "b", "a"], categories=["a", "b", "c"]),
        pd.Categorical([1, 2, 1]),
        pd.Categorical(["a", "b", None]),
    ])


def test_datetime_arrays_key_unit_zone_and_values() -> None:
    idx = pd.date_range("2024-04-01", periods=3, freq="h")
    assert k(pd.array(idx)) == k(pd.array(pd.date_range("2024-04-01", periods=3, freq="h")))
    assert all_distinct([
        pd.array(idx),
        pd.array(idx.as_unit("s")),
        pd.array(idx.tz_localize("UTC")),
        pd.array(idx.tz_localize("Europe/London")),
        pd.array(idx.tz_localize("UTC").tz_convert("Europe/London")),
        pd.array(idx + pd.Timedelta(1)),
    ])


@pytest.mark.parametrize(("make", "index_type"), [
    (lambda freq: pd.date_range("2024-01-01", periods=3, freq=freq), "DatetimeIndex"),
    (lambda freq: pd.timedelta_range("1D", periods=3, freq=freq), "TimedeltaIndex"),
], ids=["DatetimeIndex", "TimedeltaIndex"])
def test_datetime_and_timedelta_indexes_key_their_freq(make: Any, index_type: str) -> None:
    with_freq = make("D")
    without = getattr(pd, index_type)(list(with_freq))
    assert without.freq is None and with_freq.equals(without)
    assert k(with_freq) == k(make("D"))
    assert k(with_freq) != k(without)


def test_timedelta_and_period_arrays() -> None:
    assert all_distinct([
        pd.array(pd.to_timedelta([1, 2], unit="s")),
        pd.array(pd.to_timedelta([1, 2], unit="s").as_unit("ms")),
        pd.array(pd.to_timedelta([1, 3], unit="s")),
        pd.period_range("2024-01", periods=2, freq="M").array,
        pd.period_range("2024-01", periods=2, freq="Q").array,
        pd.period_range("2024-01-01", periods=2, freq="W-SUN").array,
        pd.period_range("2024-01-01", periods=2, freq="W-MON").array,
    ])


def test_interval_arrays_key_closed_and_bounds() -> None:
    breaks = [0, 1, 2]
    assert all_distinct([
        pd.arrays.IntervalArray.from_breaks(breaks),
        pd.arrays.IntervalArray.from_breaks(breaks, closed="left"),
        pd.arrays.IntervalArray.from_breaks([0.0, 1.0, 2.0]),
        pd.arrays.IntervalArray.from_breaks([0, 1, 3]),
    ])


@pytest.mark.parametrize("dtype", ["Int8", "Int64", "UInt16", "Float32", "Float64", "boolean"])
def test_nullable_arrays_key_values_and_mask(dtype: str) -> None:
    values = [1, None, 0] if dtype != "boolean" else [True, None, False]
    a = pd.array(values, dtype=dtype)
    assert k(a) == k(pd.array(values, dtype=dtype))
    filled = pd.array([v if v is not None else values[0] for v in values], dtype=dtype)
    assert k(a) != k(filled)


def test_nullable_arrays_ignore_the_values_under_the_mask() -> None:
    a = pd.arrays.IntegerArray(np.array([1, 7, 3]), np.array([False, True, False]))
    b = pd.arrays.IntegerArray(np.array([1, 9, 3]), np.array([False, True, False]))
    assert a.equals(b)
    assert k(a) == k(b)


def test_nullable_dtypes_differ() -> None:
    assert all_distinct([pd.array([1], dtype=d) for d in ("Int8", "Int16", "Int32", "Int64", "UInt8",
                                                          "Float32", "Float64")]
                        + [pd.array([True], dtype="boolean"), np.array([1])])


def test_string_arrays_key_storage_and_missing_marker() -> None:
    values = ["a", None, "ç"]
    variants = [pd.array(values, dtype="string[python]")]
    pytest.importorskip("pyarrow")
    variants += [
        pd.array(values, dtype="string[pyarrow]"),
        pd.array(values, dtype=pd.StringDtype("python", na_value=np.nan)),
        pd.array(values, dtype=pd.StringDtype("pyarrow", na_value=np.nan)),
        pd.array(["a", None, "c"], dtype="string[python]"),
    ]
    assert all_distinct(variants)
    assert k(variants[1]) == k(pd.array(values, dtype="string[pyarrow]"))


@pytest.mark.parametrize("na", [pd.NA, np.nan], ids=["NA", "NaN"])
def test_a_string_array_keys_apart_from_an_object_array_of_the_same_strings(na: Any) -> None:
    # pandas' StringArray is a NumpyExtensionArray holding the same object array.
    strings = pd.array(["a", None], dtype=pd.StringDtype("python", na_value=na))
    objects = pd.arrays.NumpyExtensionArray(np.array(["a", na], dtype=object))
    assert isinstance(strings, pd.arrays.NumpyExtensionArray)
    assert k(strings) != k(objects)
    assert k(pd.Series(strings)) != k(pd.Series(objects, dtype=object))
    dtype_of = ic.cache(lambda s: str(s.dtype))
    assert dtype_of(pd.Series(strings)) == str(strings.dtype)
    assert dtype_of(pd.Series(objects, dtype=object)) == "object"


def test_sparse_arrays_key_fill_value_and_values() -> None:
    assert all_distinct([
        pd.arrays.SparseArray([0, 0, 1]),
        pd.arrays.SparseArray([0, 0, 1], fill_value=1),
        pd.arrays.SparseArray([0, 1, 0]),
        pd.arrays.SparseArray([0.0, 0.0, 1.0]),
        pd.arrays.SparseArray([0, 0, 1], kind="block"),
    ])
    assert k(pd.arrays.SparseArray([0, 0, 1])) == k(pd.arrays.SparseArray([0, 0, 1]))


def test_arrow_backed_arrays() -> None:
    pytest.importorskip("pyarrow")
    a = pd.array([1, None, 3], dtype="int64[pyarrow]")
    assert k(a) == k(pd.array([1, None, 3], dtype="int64[pyarrow]"))
    assert all_distinct([a, pd.array([1, None, 4], dtype="int64[pyarrow]"),
                         pd.array([1, None, 3], dtype="int32[pyarrow]"),
                         pd.array([1, None, 3], dtype="Int64")])


def test_unknown_extension_arrays_are_refused_naming_the_type() -> None:
    with pytest.raises(UnhashableError, match="ThirdPartyArray"):
        make_key(ThirdPartyArray())
    with pytest.raises(UnhashableError) as err:
        make_key([ThirdPartyArray()])
    assert err.value.path == "[0]"
    assert err.value.type is ThirdPartyArray
    assert str(err.value) == refusal_message(
        f"{__name__}.ThirdPartyArray",
        f"it is a pandas extension array of a dtype infercache has no adapter for ({__name__}.ThirdPartyArray)",
        "ThirdPartyArray",
        at="value[0]",
    )


class ThirdPartyArray(pd.api.extensions.ExtensionArray):
    """An extension array of a dtype infercache does not know."""


# ---------------------------------------------------------------- containers and indexes


def test_series_and_frames_key_their_index_kind() -> None:
    values = [1.0, 2.0]
    indexes = [
        pd.RangeIndex(2), pd.Index([0, 1]), pd.Index([0, 1], dtype="int32"), pd.Index(["0", "1"]),
        pd.period_range("2024-01", periods=2, freq="M"), pd.interval_range(0, 2),
        pd.CategoricalIndex(["a", "b"]), pd.MultiIndex.from_tuples([(0, "a"), (1, "b")]),
        pd.date_range("2024", periods=2), pd.date_range("2024", periods=2, tz="UTC"),
    ]
    assert all_distinct([pd.Series(values, index=i) for i in indexes])
    assert all_distinct([pd.DataFrame({"v": values}, index=i) for i in indexes])


@pytest.mark.parametrize("make", [
    lambda name: pd.RangeIndex(3, name=name),
    lambda name: pd.date_range("2024-01-01", periods=2, name=name),
    lambda name: pd.timedelta_range("1D", periods=2, name=name),
    lambda name: pd.Index([1, 2], name=name),
    lambda name: pd.period_range("2024-01", periods=2, freq="M", name=name),
    lambda name: pd.CategoricalIndex(["a"], name=name),
    lambda name: pd.interval_range(0, 2, name=name),
    lambda name: pd.MultiIndex.from_arrays([[1, 2]], names=[name]),
], ids=["RangeIndex", "DatetimeIndex", "TimedeltaIndex", "Index", "PeriodIndex", "CategoricalIndex",
        "IntervalIndex", "MultiIndex"])
def test_every_kind_of_index_keys_its_name(make: Any) -> None:
    assert all_distinct([make(None), make("t"), make("u")])
    assert k(make("t")) == k(make("t"))


def test_a_multi_index_keys_its_declared_sort_order() -> None:
    def make(sortorder: int | None) -> Any:
        return pd.MultiIndex(levels=[[1, 2], ["x", "y"]], codes=[[0, 1], [0, 1]], sortorder=sortorder)

    assert make(None).equals(make(1))  # the same labels: only the sort order they declare differs
    assert all_distinct([make(None), make(1), make(2)])
    assert k(make(1)) == k(make(1))


def test_multi_index_keys_level_dtypes_names_and_codes() -> None:
    a = pd.MultiIndex.from_arrays([[1, 2], ["x", "y"]], names=["n", "s"])
    assert k(a) == k(pd.MultiIndex.from_arrays([[1, 2], ["x", "y"]], names=["n", "s"]))
    assert all_distinct([
        a,
        pd.MultiIndex.from_arrays([[1, 2], ["x", "y"]], names=["n", "t"]),
        pd.MultiIndex.from_arrays([np.array([1, 2], dtype="int32"), ["x", "y"]], names=["n", "s"]),
        pd.MultiIndex.from_arrays([[1, 2], pd.Categorical(["x", "y"])], names=["n", "s"]),
        pd.MultiIndex.from_arrays([[2, 1], ["x", "y"]], names=["n", "s"]),
    ])


def test_series_keys_name_attrs_flags_and_user_attributes() -> None:
    s = pd.Series([1, 2], name="a")
    assert k(s) == k(pd.Series([1, 2], name="a"))
    with_attrs = pd.Series([1, 2], name="a")
    with_attrs.attrs["unit"] = "kg"
    strict = pd.Series([1, 2], name="a").set_flags(allows_duplicate_labels=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tagged = pd.Series([1, 2], name="a")
        tagged.source = "sensor-1"
    assert all_distinct([s, pd.Series([1, 2], name="b"), with_attrs, strict, tagged])


def _unkeyable() -> None:
    """A function: code, which no key can be made of."""


def test_a_refused_frame_names_the_column_and_row_of_the_unkeyable_cell() -> None:
    frame = pd.DataFrame({"a": [1, 2], "f": [0, _unkeyable]})
    with pytest.raises(UnhashableError) as err:
        make_key(frame)
    assert err.value.path == "['f'][1]"
    assert str(err.value) == refusal_message(
        "builtins.function",
        "functions and methods are code, not data: their content cannot be compared",
        "function",
        at="value['f'][1]",
    )


def test_frames_key_columns_dtypes_and_order() -> None:
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert k(df) == k(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    assert all_distinct([
        df,
        df[["b", "a"]],
        df.astype({"a": "int32"}),
        df.astype({"a": "Int64"}),
        df.astype({"b": "category"}),
        df.rename(columns={"a": "c"}),
        df.set_axis(pd.RangeIndex(1, 3)),
    ])


def test_scalars() -> None:
    ts = pd.Timestamp("2024-01-01 00:00:00").as_unit("ns")
    assert all_distinct([
        ts, ts.as_unit("s"), ts.tz_localize("UTC"), ts.tz_localize("Asia/Tokyo"),
        ts + pd.Timedelta(1), dt.datetime(2024, 1, 1),
        pd.Timedelta(1, unit="s"), pd.Timedelta(1, unit="s").as_unit("s"), dt.timedelta(seconds=1),
        pd.Period("2024-01", "M"), pd.Period("2024-01", "D"), pd.Period("2024-02", "M"),
        pd.Interval(0, 1), pd.Interval(0, 1, closed="left"), pd.Interval(0.0, 1.0),
        pd.NaT, pd.NA, None, float("nan"),
        pd.offsets.MonthEnd(), pd.offsets.MonthEnd(2), pd.offsets.MonthBegin(),
        pd.offsets.Week(weekday=0), pd.offsets.Week(weekday=1), pd.DateOffset(months=1),
        pd.DateOffset(days=1),
    ])
    assert k(pd.Timestamp("2024-01-01", tz="UTC")) == k(pd.Timestamp("2024-01-01", tz="UTC"))
    assert k(pd.Period("2024-01", "M")) == k(pd.Period("2024-01", "M"))


@pytest.mark.parametrize("make", [
    lambda: pd.Timestamp("2024-01-01"),
    lambda: pd.Timedelta(1, unit="s"),
    lambda: pd.Period("2024-01", "M"),
    lambda: pd.Index([1, 2]),
    lambda: pd.Series([1, 2]),
    lambda: pd.DataFrame({"a": [1, 2]}),
    lambda: pd.Categorical(["x", "y"]),
    lambda: pd.array([1, None], dtype="Int64"),
    lambda: pd.array(["x", None], dtype="string"),
    lambda: pd.array(pd.to_datetime(["2024-01-01"])),
    lambda: pd.arrays.IntervalArray.from_breaks([0, 1, 2]),
    lambda: pd.arrays.SparseArray([0, 0, 1]),
    lambda: pd.array([1, 2], dtype="int64[pyarrow]"),
], ids=["Timestamp", "Timedelta", "Period", "Index", "Series", "DataFrame", "Categorical", "IntegerArray",
        "StringArray", "DatetimeArray", "IntervalArray", "SparseArray", "ArrowExtensionArray"])
def test_attributes_a_user_sets_on_a_pandas_value_are_keyed(make: Any) -> None:
    plain, a, b, a_again = make(), make(), make(), make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns that a column is not made this way
        a.source, b.source, a_again.source = "sensor-1", "sensor-2", "sensor-1"
    assert all_distinct([plain, a, b])
    assert k(a) == k(a_again)


def test_a_categorical_dtype_without_categories_is_not_one_with_no_categories() -> None:
    # The first takes its categories from the data it is applied to; the second has none.
    infer, none = pd.CategoricalDtype(), pd.CategoricalDtype([])
    assert k(infer) != k(none)
    assert k(infer) == k(pd.CategoricalDtype())
    categories_of = ic.cache(lambda dtype: None if dtype.categories is None else list(dtype.categories))
    assert categories_of(infer) is None
    assert categories_of(none) == []


@pytest.mark.parametrize("make", [
    lambda **kw: pd.offsets.MonthEnd(**kw),
    lambda **kw: pd.offsets.Week(weekday=0, **kw),
    lambda **kw: pd.DateOffset(months=1, **kw),
], ids=["MonthEnd", "Week", "DateOffset"])
def test_a_normalizing_date_offset_keys_apart_from_one_that_keeps_the_time(make: Any) -> None:
    # normalize=True moves a Timestamp to midnight as well: the two give different dates.
    at_noon = pd.Timestamp("2024-01-31 12:00")
    assert at_noon + make(normalize=True) != at_noon + make()
    assert k(make(normalize=True)) != k(make())
    assert k(make(normalize=True)) == k(make(normalize=True))


def test_dtypes_as_values() -> None:
    assert all_distinct([
        pd.CategoricalDtype(["a", "b"]), pd.CategoricalDtype(["b", "a"]),
        pd.CategoricalDtype(["a", "b"], ordered=True), pd.CategoricalDtype(),
        pd.DatetimeTZDtype("ns", "UTC"), pd.DatetimeTZDtype("ms", "UTC"),
        pd.PeriodDtype("M"), pd.PeriodDtype("D"), pd.IntervalDtype("int64", "right"),
        pd.IntervalDtype("int64", "left"), pd.Int64Dtype(), pd.Int32Dtype(), pd.BooleanDtype(),
        pd.StringDtype("python"), pd.SparseDtype("int64", 0), pd.SparseDtype("int64", 1),
        np.dtype("int64"),
    ])




def test_frames_key_values_labels_dtypes_and_zones() -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [1.5, float("nan"), 2.0]})
    assert k(df) == k(df.copy())
    changed = df.copy()
    changed.loc[1, "a"] = 5
    renamed = df.rename(columns={"a": "z"})
    reindexed = df.set_axis([10, 11, 12])
    retyped = df.astype({"a": "int32"})
    assert all_distinct([df, changed, renamed, reindexed, retyped, df[["b", "a", "c"]]])
    cat = pd.DataFrame({"c": pd.Categorical(["a", "b", "a"])})
    cat2 = pd.DataFrame({"c": pd.Categorical(["a", "b", "b"])})
    assert k(cat) == k(cat.copy()) and k(cat) != k(cat2)
    nullable = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64")})
    assert k(nullable) == k(nullable.copy())
    assert k(nullable) != k(pd.DataFrame({"n": pd.array([1, 2, 3], dtype="Int64")}))
    tz = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3, tz="UTC")})
    assert k(tz) == k(tz.copy())
    assert k(tz) != k(pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3, tz="Europe/Paris")}))


def test_series_and_indexes_key_name_values_and_labels() -> None:
    s = pd.Series([1, 2, 3], name="s")
    assert k(s) == k(s.copy())
    assert all_distinct([s, s.rename("t"), s.astype(float), pd.Series([1, 2, 4], name="s"),
                         s.set_axis(["a", "b", "c"]), pd.Index([1, 2, 3]), pd.Index([1, 2, 3], name="s")])
    assert k(pd.Index(["a", "b"])) == k(pd.Index(["a", "b"]))
    assert k(pd.Timestamp("2024-01-01")) != k(pd.Timestamp("2024-01-02"))


# ---------------------------------------------------------------- a property over extension dtypes


def _array(dtype: str, values: list[int | None]) -> Any:
    if dtype in ("Int64", "Float64", "Int8"):
        return pd.array(values, dtype=dtype)
    if dtype == "category":
        return pd.Categorical([None if v is None else f"c{v}" for v in values])
    if dtype == "period":
        return pd.arrays.PeriodArray._from_sequence(
            [pd.NaT if v is None else pd.Period(ordinal=v, freq="D") for v in values],
            dtype=pd.PeriodDtype("D"))
    if dtype == "datetime":
        return pd.array(pd.to_datetime([None if v is None else v for v in values], unit="s"))
    if dtype == "string":
        return pd.array([None if v is None else str(v) for v in values], dtype="string[python]")
    if dtype == "sparse":
        return pd.arrays.SparseArray([0 if v is None else v for v in values], fill_value=0)
    raise AssertionError(dtype)


DTYPES = ("Int64", "Float64", "Int8", "category", "period", "datetime", "string", "sparse")


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(DTYPES), st.lists(st.one_of(st.none(), st.integers(-3, 3)), max_size=5),
       st.sampled_from(DTYPES), st.lists(st.one_of(st.none(), st.integers(-3, 3)), max_size=5))
def test_unequal_arrays_or_dtypes_never_share_a_key(d1: str, v1: list, d2: str, v2: list) -> None:
    a, b = _array(d1, v1), _array(d2, v2)
    assert k(a) == k(_array(d1, v1))
    same = d1 == d2 and a.dtype == b.dtype and len(a) == len(b) and bool(
        np.all(np.asarray(pd.isna(a)) == np.asarray(pd.isna(b)))
        and (a[~pd.isna(a)] == b[~pd.isna(b)]).all())
    if not same:
        assert k(a) != k(b)
    else:
        assert k(a) == k(b)


class UnitFrame(pd.DataFrame):
    """A DataFrame subclass with state of its own (pandas' _metadata mechanism)."""

    _metadata = ["unit"]  # noqa: RUF012 (pandas reads this class attribute)

    @property
    def _constructor(self) -> type:
        return UnitFrame


def test_dataframe_subclass_state_is_keyed() -> None:
    a, b = UnitFrame({"x": [1]}), UnitFrame({"x": [1]})
    a.unit, b.unit = "m", "km"
    assert k(a) != k(b)
    b.unit = "m"
    assert k(a) == k(b)
    assert k(a) != k(pd.DataFrame({"x": [1]}))


class FrameWithSlots(pd.DataFrame):
    """Keeps a unit in a slot, where pandas' own copies and the key's reading of __dict__ do not look."""

    __slots__ = ("unit",)


class FrameOverSlots(FrameWithSlots):
    pass


@pytest.mark.parametrize("cls", [FrameWithSlots, FrameOverSlots])
def test_a_subclass_adding_slots_to_a_pandas_type_is_refused_naming_the_class_that_adds_them(cls: type) -> None:
    frame = cls({"x": [1]})
    frame.unit = "m"
    with pytest.raises(UnhashableError) as err:
        make_key(frame)
    assert err.value.type is cls
    assert str(err.value) == refusal_message(
        f"{__name__}.{cls.__name__}", "its class FrameWithSlots adds __slots__ to a pandas type", cls.__name__
    )


def test_local_subclass_of_a_pandas_type_is_refused() -> None:
    class LocalFrame(pd.DataFrame):
        pass

    with pytest.raises(UnhashableError, match="local class"):
        make_key(LocalFrame({"x": [1]}))
