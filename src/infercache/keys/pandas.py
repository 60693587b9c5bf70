"""pandas adapter: DataFrames, Series, Indexes, extension arrays, dtypes and scalars.

Every value is keyed by its content bytes with explicit dtype parameters, never
through ``str(dtype)`` or ``repr``. pandas' own ``hash_pandas_object`` /
``hash_array`` are not used: they give one 64-bit hash per row (collisions are
possible by construction, and they fold categoricals to their values and
ignore index/column names unless asked), where a key must be injective.

* extension arrays by kind: categorical (codes, categories, ordered),
  datetime (``M8[unit]`` values, time zone, freq), timedelta, period
  (ordinals, freq), interval (closed, left and right arrays), nullable
  Int/UInt/Float/boolean (values with masked slots zeroed, mask), string
  (storage, missing-value marker, values), sparse (fill value, kind,
  indices, values, length), Arrow-backed (the ``pyarrow`` array, through
  the pyarrow adapter) and numpy-backed;
* scalars: ``Timestamp``/``Timedelta`` (value in their own unit, unit, zone),
  ``Period`` (ordinal, freq), ``Interval``, ``NaT``, ``NA``, date offsets
  (class, ``n``, ``normalize``, parameters);
* Series/DataFrame/Index with their labels, names, ``attrs``, flags and any
  attribute a user set on them; ``RangeIndex`` by its range, ``MultiIndex``
  by levels, codes, names and sort order; ``freq`` of datetime-like indexes.

A pandas type subclassed outside pandas carries its verified class name.
An extension array of a dtype not listed (third-party) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..libraries import module, module_for
from ..reflect import own_slot_names, package_of
from .encoder import (
    Encoder,
    Unencodable,
    enc_bool,
    enc_dict,
    enc_int,
    enc_str,
    enc_tzinfo,
    encode,
    register_adapter,
    type_name_bytes,
)
from .numpy import enc_ndarray
from .wire import (
    T_NONE,
    T_PD_COLUMN,
    T_PD_DTYPE,
    T_PD_FRAME,
    T_PD_INDEX,
    T_PD_INTERVAL,
    T_PD_NA,
    T_PD_NAT,
    T_PD_OFFSET,
    T_PD_PERIOD,
    T_PD_SERIES,
    T_PD_TIMEDELTA,
    T_PD_TIMESTAMP,
    Sink,
    varint,
)

# Instance attributes pandas itself keeps (content, caches, references); any
# other attribute of a pandas object was set by its user and is keyed.
_PD_INTERNAL = frozenset({
    "_mgr", "_attrs", "_flags", "_name", "_item_cache", "_cacher", "_is_copy", "_cache",
    "_data", "_id", "_references", "_freq", "_codes", "_levels", "_names", "_range",
    "sortorder", "_dtype", "_ndarray", "_mask", "_pa_array", "_left", "_right", "_closed",
    "_sparse_index", "_sparse_values", "_readonly", "__module__",
})


@register_adapter
def _pandas_builder(t: type) -> Encoder | None:
    pd = module_for(t, "pandas")
    if pd is None:
        return None
    if issubclass(t, pd.DataFrame):
        return _with_head(T_PD_FRAME, t, _write_frame)
    if issubclass(t, pd.Series):
        return _with_head(T_PD_SERIES, t, _write_series)
    if issubclass(t, pd.Index):
        return _with_head(T_PD_INDEX, t, _write_index)
    if issubclass(t, pd.api.extensions.ExtensionArray):
        return _with_head(T_PD_COLUMN, t, _write_array_whole)
    if issubclass(t, pd.api.extensions.ExtensionDtype):
        return _with_head(T_PD_DTYPE, t, _write_dtype)
    if t is type(pd.NA):
        return _fixed(T_PD_NA)
    if t is type(pd.NaT):
        return _fixed(T_PD_NAT)
    if issubclass(t, pd.Timestamp):
        return _with_head(T_PD_TIMESTAMP, t, _write_timestamp)
    if issubclass(t, pd.Timedelta):
        return _with_head(T_PD_TIMEDELTA, t, _write_timedelta)
    if issubclass(t, pd.Period):
        return _with_head(T_PD_PERIOD, t, _write_period)
    if issubclass(t, pd.Interval):
        return _with_head(T_PD_INTERVAL, t, _write_interval)
    if issubclass(t, pd.offsets.BaseOffset):
        return _with_head(T_PD_OFFSET, t, _write_offset)
    return None


def _fixed(tag: bytes) -> Encoder:
    def enc(obj: Any, out: Sink) -> None:
        out += tag
    return enc


def _class_marker(t: type) -> bytes:
    """Empty for pandas' own classes (their kind is in the content), the verified
    name of a subclass made outside pandas (which may behave differently)."""
    if package_of(t) == "pandas":
        return varint(0)
    for c in t.__mro__:
        if package_of(c) != "pandas" and own_slot_names(c):
            raise Unencodable(t, f"its class {c.__qualname__} adds __slots__ to a pandas type")
    return type_name_bytes(t)


def _with_head(tag: bytes, t: type, body: Callable[[Any, Sink], None]) -> Encoder:
    head = tag + _class_marker(t)

    def enc(obj: Any, out: Sink) -> None:
        out += head
        body(obj, out)
    return enc


def _write_user_attrs(obj: Any, out: Sink) -> None:
    d = getattr(obj, "__dict__", None) or {}
    enc_dict({k: v for k, v in d.items() if k not in _PD_INTERNAL}, out)


# ---------------------------------------------------------------- containers

def _write_frame(df: Any, out: Sink) -> None:
    _enc_index(df.columns, out)
    _enc_index(df.index, out)
    out += varint(df.shape[1])
    for name, col in df.items():
        try:
            _write_array(col.array, out)
        except Unencodable as e:
            e.path.append(f"[{name!r}]")
            raise
    _write_meta(df, out)


def _write_series(s: Any, out: Sink) -> None:
    encode(s.name, out)
    _enc_index(s.index, out)
    _write_array(s.array, out)
    _write_meta(s, out)


def _write_meta(obj: Any, out: Sink) -> None:
    enc_dict(dict(obj.attrs), out)
    enc_bool(bool(obj.flags.allows_duplicate_labels), out)
    _write_user_attrs(obj, out)


def _enc_index(idx: Any, out: Sink) -> None:
    out += T_PD_INDEX + _class_marker(type(idx))
    _write_index(idx, out)


def _write_index(idx: Any, out: Sink) -> None:
    pd = module("pandas")
    if isinstance(idx, pd.RangeIndex):
        out += b"r"
        encode(idx.name, out)
        enc_int(idx.start, out)
        enc_int(idx.stop, out)
        enc_int(idx.step, out)
    elif isinstance(idx, pd.MultiIndex):
        out += b"M"
        encode(list(idx.names), out)
        encode(idx.sortorder, out)
        out += varint(idx.nlevels)
        for level, codes in zip(idx.levels, idx.codes):
            _enc_index(level, out)
            enc_ndarray(codes, out)
    elif isinstance(idx, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        # freq lives on the index (pandas 3) or on its array too (pandas 2): written
        # once, in the array's place, so both give one key.
        out += b"i"
        encode(idx.name, out)
        out += T_PD_COLUMN
        if isinstance(idx, pd.DatetimeIndex):
            out += b"d"
            _write_datetime_values(idx.array, idx.freq, out)
        else:
            out += b"t"
            _write_timedelta_values(idx.array, idx.freq, out)
    else:
        out += b"i"
        encode(idx.name, out)
        _write_array(idx.array, out)
    _write_user_attrs(idx, out)


# ---------------------------------------------------------------- arrays

_ARRAY_WRITERS: dict[type, Callable[[Any, Sink], None]] = {}


def _write_array(arr: Any, out: Sink) -> None:
    """``T_PD_COLUMN`` and :func:`_write_array_whole`."""
    out += T_PD_COLUMN
    _write_array_whole(arr, out)


def _write_array_whole(arr: Any, out: Sink) -> None:
    """The kind of array, its dtype parameters, its content and the attributes a user
    set on it (a function may read them, as on a frame)."""
    _write_array_body(arr, out)
    _write_user_attrs(arr, out)


def _write_array_body(arr: Any, out: Sink) -> None:
    t = type(arr)
    w = _ARRAY_WRITERS.get(t)
    if w is None:
        w = _ARRAY_WRITERS[t] = _array_writer(t)
    w(arr, out)


def _array_writer(t: type) -> Callable[[Any, Sink], None]:
    np = module("numpy")
    pd = module("pandas")
    arrays = pd.arrays
    string_types = tuple(c for c in (getattr(arrays, "StringArray", None),
                                     getattr(arrays, "ArrowStringArray", None)) if c is not None)
    # Before NumpyExtensionArray: pandas' StringArray is one, and an object array of
    # the same strings must not share its key.
    if issubclass(t, string_types):
        return _kind(b"s", _write_strings)
    if issubclass(t, arrays.NumpyExtensionArray):
        return _kind(b"n", lambda a, out: enc_ndarray(np.asarray(a), out))
    if issubclass(t, pd.Categorical):
        return _kind(b"c", _write_categorical)
    if issubclass(t, arrays.DatetimeArray):
        return _kind(b"d", _write_datetimes)
    if issubclass(t, arrays.TimedeltaArray):
        return _kind(b"t", _write_timedeltas)
    if issubclass(t, arrays.PeriodArray):
        return _kind(b"p", _write_periods)
    if issubclass(t, arrays.IntervalArray):
        return _kind(b"i", _write_intervals)
    if issubclass(t, (arrays.IntegerArray, arrays.FloatingArray, arrays.BooleanArray)):
        return _kind(b"m", _write_masked)
    if issubclass(t, arrays.SparseArray):
        return _kind(b"S", _write_sparse)
    if issubclass(t, arrays.ArrowExtensionArray):
        return _kind(b"a", _write_arrow)
    reason = (f"it is a pandas extension array of a dtype infercache has no adapter for "
              f"({t.__module__}.{t.__qualname__})")

    def refuse(arr: Any, out: Sink) -> None:
        raise Unencodable(t, reason)
    return refuse


def _kind(kind: bytes, write: Callable[[Any, Sink], None]) -> Callable[[Any, Sink], None]:
    def w(arr: Any, out: Sink) -> None:
        out += kind
        write(arr, out)
    return w


def _write_strings(arr: Any, out: Sink) -> None:
    np = module("numpy")
    dtype = arr.dtype
    enc_str(dtype.storage, out)
    encode(dtype.na_value, out)
    enc_ndarray(np.asarray(arr.to_numpy(dtype=object), dtype=object), out)


def _write_categorical(arr: Any, out: Sink) -> None:
    enc_bool(bool(arr.ordered), out)
    _enc_index(arr.categories, out)
    enc_ndarray(arr.codes, out)


def _write_datetimes(arr: Any, out: Sink) -> None:
    _write_datetime_values(arr, getattr(arr, "freq", None), out)


def _write_datetime_values(arr: Any, freq: Any, out: Sink) -> None:
    enc_ndarray(arr._ndarray, out)  # M8[unit] values (UTC when tz-aware)
    enc_tzinfo(arr.tz, out)
    _enc_freq(freq, out)


def _write_timedeltas(arr: Any, out: Sink) -> None:
    _write_timedelta_values(arr, getattr(arr, "freq", None), out)


def _write_timedelta_values(arr: Any, freq: Any, out: Sink) -> None:
    enc_ndarray(arr._ndarray, out)  # m8[unit] values
    _enc_freq(freq, out)


def _write_periods(arr: Any, out: Sink) -> None:
    _write_offset_value(arr.freq, out)
    enc_ndarray(arr.asi8, out)


def _write_intervals(arr: Any, out: Sink) -> None:
    enc_str(arr.closed, out)
    _write_array(arr.left.array, out)
    _write_array(arr.right.array, out)


def _write_masked(arr: Any, out: Sink) -> None:
    data, mask = arr._data, arr._mask
    if mask.any():  # values under the mask are arbitrary: equal arrays must key equal
        data = data.copy()
        data[mask] = 0
    enc_ndarray(data, out)
    enc_ndarray(mask, out)


def _write_sparse(arr: Any, out: Sink) -> None:
    encode(arr.fill_value, out)
    enc_str(arr.kind, out)
    index = arr.sp_index.to_int_index()
    out += varint(index.length)
    enc_ndarray(index.indices, out)
    enc_ndarray(arr.sp_values, out)


def _write_arrow(arr: Any, out: Sink) -> None:
    encode(arr.__arrow_array__(), out)  # a pyarrow ChunkedArray: the pyarrow adapter keys it


# ---------------------------------------------------------------- dtypes and scalars

def _write_dtype(dtype: Any, out: Sink) -> None:
    """An extension dtype: its class and an empty array of it (which carries
    every dtype parameter: categories, zone, unit, freq, storage, ...)."""
    pd = module("pandas")
    enc_str(_pandas_class_name(type(dtype)), out)
    if isinstance(dtype, pd.CategoricalDtype):
        enc_bool(dtype.categories is None, out)
    _write_array(pd.array([], dtype=dtype), out)


def _pandas_class_name(t: type) -> str:
    return next(c.__name__ for c in t.__mro__ if package_of(c) == "pandas")


def _write_timestamp(ts: Any, out: Sink) -> None:
    enc_int(ts._value, out)  # in the Timestamp's own unit
    enc_str(ts.unit, out)
    enc_tzinfo(ts.tzinfo, out)
    _write_user_attrs(ts, out)


def _write_timedelta(td: Any, out: Sink) -> None:
    enc_int(td._value, out)
    enc_str(td.unit, out)
    _write_user_attrs(td, out)


def _write_period(p: Any, out: Sink) -> None:
    enc_int(p.ordinal, out)
    _write_offset_value(p.freq, out)
    _write_user_attrs(p, out)


def _write_interval(iv: Any, out: Sink) -> None:
    enc_str(iv.closed, out)
    encode(iv.left, out)
    encode(iv.right, out)


def _write_offset(off: Any, out: Sink) -> None:
    _write_offset_value(off, out)


def _write_offset_value(off: Any, out: Sink) -> None:
    """A date offset by its pandas class, ``n``, ``normalize`` and parameters
    (``kwds``: weekday, months, holidays and calendar, ...)."""
    enc_str(_pandas_class_name(type(off)), out)
    enc_int(off.n, out)
    enc_bool(bool(off.normalize), out)
    enc_dict(dict(off.kwds), out)


def _enc_freq(freq: Any, out: Sink) -> None:
    if freq is None:
        out += T_NONE
    else:
        out += T_PD_OFFSET
        _write_offset_value(freq, out)
