"""polars adapter: DataFrames, Series and data types, keyed by content;
LazyFrames and expressions refused.

A Series is keyed by its name, its polars data type (written structurally:
time unit and zone, precision and scale, an Enum's categories, a Categorical's
category set, nested fields and sizes) and its content. The content goes
through Arrow, chunk by chunk, in polars' oldest export layout (stable across
polars versions), and is keyed by the pyarrow adapter's canonical layout, so
the way polars happens to chunk a frame never changes its key. Numeric and
temporal chunks are exported and hashed without copying; strings and
categoricals are converted by the export, booleans by the Arrow adapter. Columns polars cannot export to
Arrow (``Object``, 128-bit integers) are keyed by their Python values instead.
A DataFrame is its height and width, then each column in order (name, data
type, content).

A ``LazyFrame`` is refused with :class:`UnhashableError`: it is a query, and
what it returns depends on the sources it reads when collected (files,
databases, scans), which its plan names but does not hold. Keying its plan
would hand out a stale result after a file changed; collect it and pass the
DataFrame, or pass ``key=``. An expression (``pl.Expr``) is refused too: it is
code, and may call Python functions.

polars is never imported here: a value's type is checked against it only once
it is imported (:func:`infercache.libraries.module_for`).
"""

from __future__ import annotations

from typing import Any

from ..libraries import module, module_for
from .arrow import structured, write_column, write_type
from .encoder import (
    Encoder,
    Unencodable,
    enc_int,
    enc_list,
    enc_str,
    encode,
    register_adapter,
    unhashable,
)
from .wire import T_PL_DTYPE, T_PL_FRAME, T_PL_SERIES, Sink, varint

_LAZY_REASON = (
    "it is a query, not data: what it returns depends on the files or other sources "
    "it reads when collected, which its plan does not hold. Collect it first "
    "(lf.collect()) and pass the DataFrame"
)
_EXPR_REASON = (
    "it is a computation, not data (it may call Python functions); pass key= with what "
    "identifies it, for example str(expr)"
)
# How a column's content is written: through Arrow, or by its Python values.
_VIA_ARROW = b"A"
_VIA_VALUES = b"L"


@register_adapter
def _polars_builder(t: type) -> Encoder | None:
    pl = module_for(t, "polars")
    if pl is None:
        return None
    if issubclass(t, pl.DataFrame):
        return _enc_frame
    if issubclass(t, pl.Series):
        return _enc_series
    if issubclass(t, pl.LazyFrame):
        return unhashable(t, _LAZY_REASON)
    if issubclass(t, pl.Expr):
        return unhashable(t, _EXPR_REASON)
    if issubclass(t, pl.DataType):
        return _enc_dtype
    return None


def _enc_series(s: Any, out: Sink) -> None:
    out += T_PL_SERIES
    _write_series(s, out)


def _enc_frame(df: Any, out: Sink) -> None:
    out += T_PL_FRAME
    out += varint(df.height)
    out += varint(df.width)
    for s in df.get_columns():
        try:
            _write_series(s, out)
        except Unencodable as e:
            e.path.append(f"[{s.name!r}]")
            raise


def _enc_dtype(d: Any, out: Sink) -> None:
    out += T_PL_DTYPE
    _write_dtype(d, out)


def _write_series(s: Any, out: Sink) -> None:
    enc_str(s.name, out)
    _write_dtype(s.dtype, out)
    pl = module("polars")
    chunks = None
    if s.dtype != pl.Object:
        try:
            chunks = [c.to_arrow(**_compat(pl)) for c in s.get_chunks()]
            if any(not c.type.equals(chunks[0].type) for c in chunks[1:]):
                chunks = [s.to_arrow(**_compat(pl))]  # one layout for the whole column
        except Exception:  # noqa: BLE001 - any type polars cannot export is keyed by value
            chunks = None
    if chunks:
        out += _VIA_ARROW
        t = chunks[0].type
        write_type(t, out)
        write_column(chunks, t, type(s), out)
    else:
        out += _VIA_VALUES
        enc_list(s.to_list(), out)


def _compat(pl: Any) -> dict[str, Any]:
    """Arrow export in polars' oldest (most stable) layout, so a polars upgrade that
    changes its default export does not change keys."""
    level = getattr(pl, "CompatLevel", None)
    return {"compat_level": level.oldest()} if level is not None else {}


def _write_dtype(d: Any, out: Sink) -> None:
    """A polars data type with every parameter; a plain one by its repr."""
    pl = module("polars")
    if isinstance(d, pl.Datetime):
        structured("Datetime", out)
        enc_str(d.time_unit, out)
        encode(d.time_zone, out)
    elif isinstance(d, pl.Duration):
        structured("Duration", out)
        enc_str(d.time_unit, out)
    elif isinstance(d, pl.Decimal):
        structured("Decimal", out)
        encode(d.precision, out)
        enc_int(d.scale, out)
    elif isinstance(d, pl.List):
        structured("List", out)
        _write_dtype(d.inner, out)
    elif isinstance(d, pl.Array):
        structured("Array", out)
        enc_int(d.size, out)
        _write_dtype(d.inner, out)
    elif isinstance(d, pl.Struct):
        structured("Struct", out)
        out += varint(len(d.fields))
        for f in d.fields:
            enc_str(f.name, out)
            _write_dtype(f.dtype, out)
    elif isinstance(d, pl.Enum):
        structured("Enum", out)
        enc_list(d.categories.to_list(), out)
    elif isinstance(d, pl.Categorical):
        structured("Categorical", out)
        cats = getattr(d, "categories", None)
        if cats is None:  # polars before categories objects: the repr holds the ordering
            enc_str(repr(d), out)
        else:
            enc_str(cats.name(), out)
            enc_str(cats.namespace(), out)
            enc_str(repr(cats.physical()), out)
    else:
        enc_str(repr(d), out)
