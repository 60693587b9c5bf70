"""pandas adapter: DataFrames, Series, Indexes and pandas scalars."""

from __future__ import annotations

import sys
from typing import Any

from .encoder import (
    Encoder,
    _enc,
    _enc_bool,
    _enc_int,
    _enc_list,
    _enc_str,
    _Fail,
    register_adapter,
)
from .numpy import _by_elements, _enc_ndarray
from .wire import (
    T_PD_COLUMN,
    T_PD_FRAME,
    T_PD_INDEX,
    T_PD_NA,
    T_PD_NAT,
    T_PD_SERIES,
    T_PD_TIMEDELTA,
    T_PD_TIMESTAMP,
    _Sink,
    _varint,
)


@register_adapter
def _pandas_builder(t: type) -> Encoder | None:
    pd = sys.modules.get("pandas")
    if pd is None:
        return None
    if issubclass(t, pd.DataFrame):
        return _enc_frame
    if issubclass(t, pd.Series):
        return _enc_series
    if issubclass(t, pd.Index):
        return _enc_index
    if t is type(pd.NA):
        return lambda obj, out: out.__iadd__(T_PD_NA)
    if t is type(pd.NaT):
        return lambda obj, out: out.__iadd__(T_PD_NAT)
    if issubclass(t, pd.Timestamp):
        def enc_ts(obj: Any, out: _Sink) -> None:
            out += T_PD_TIMESTAMP
            _enc_int(obj.value, out)
            _enc_str(str(obj.tz), out)
        return enc_ts
    if issubclass(t, pd.Timedelta):
        def enc_td(obj: Any, out: _Sink) -> None:
            out += T_PD_TIMEDELTA
            _enc_int(obj.value, out)
        return enc_td
    return None


def _write_column(values: Any, out: _Sink) -> None:
    """A Series' or Index's values: dtype name, then exact content."""
    np = sys.modules["numpy"]
    pd = sys.modules["pandas"]
    dtype = values.dtype
    out += T_PD_COLUMN
    _enc_str(str(dtype), out)
    if isinstance(dtype, np.dtype) and not _by_elements(dtype):
        _enc_ndarray(np.asarray(values.to_numpy()), out)
    elif isinstance(dtype, pd.CategoricalDtype):
        cat = values.array if not isinstance(values, pd.Categorical) else values
        _enc_ndarray(np.asarray(cat.codes), out)
        _enc_index(cat.categories, out)
        _enc_bool(bool(dtype.ordered), out)
    elif isinstance(dtype, pd.DatetimeTZDtype):
        _enc_ndarray(np.asarray(values.array.asi8), out)
    else:
        _enc_list(values.to_numpy(dtype=object).tolist(), out)


def _enc_index(idx: Any, out: _Sink) -> None:
    out += T_PD_INDEX
    _enc(list(idx.names), out)
    _write_column(idx, out)


def _enc_series(s: Any, out: _Sink) -> None:
    out += T_PD_SERIES
    _enc(s.name, out)
    _enc_index(s.index, out)
    _write_column(s, out)


def _enc_frame(df: Any, out: _Sink) -> None:
    out += T_PD_FRAME
    _enc_index(df.columns, out)
    _enc_index(df.index, out)
    out += _varint(df.shape[1])
    for i, (name, col) in enumerate(df.items()):
        try:
            _write_column(col, out)
        except _Fail as e:
            e.path.append(f"[{name!r}]")
            raise

