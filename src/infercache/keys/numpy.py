"""numpy adapter: arrays (any layout), array subclasses, scalars and dtypes.

Arrays are keyed by dtype, shape and their C-order bytes; object and string
(``StringDType``) arrays element by element through the generic encoder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..libraries import module, module_for
from .encoder import (
    Encoder,
    Unencodable,
    enc_list,
    enc_str,
    enc_tuple,
    encode,
    register_adapter,
    tagged,
)
from .objects import extra_state_writer
from .wire import (
    BIG,
    T_NDARRAY,
    T_NDARRAY_SUB,
    T_NONE,
    T_NPBUSDAYCAL,
    T_NPDTYPE,
    T_NPSCALAR,
    Sink,
    varint,
    write_buffer,
)

if TYPE_CHECKING:
    import numpy as np


@register_adapter
def _numpy_builder(t: type) -> Encoder | None:
    np = module_for(t, "numpy")
    if np is None:
        return None
    if t is np.ndarray:
        return enc_ndarray
    if issubclass(t, np.ndarray):
        head = tagged(T_NDARRAY_SUB, t)
        ma = getattr(np, "ma", None)
        masked = ma is not None and issubclass(t, ma.MaskedArray)
        # A subclass from outside numpy (astropy's Quantity and its unit, ...) adds state.
        extra = extra_state_writer(t, "numpy")

        def enc_sub(obj: Any, out: Sink) -> None:
            out += head
            enc_ndarray(np.asarray(obj).view(np.ndarray), out)
            if masked:
                enc_ndarray(np.ma.getmaskarray(obj), out)
            if extra is not None:
                extra(obj, out)
        return enc_sub
    if t is np.busdaycalendar:
        return _enc_busdaycalendar
    if issubclass(t, np.generic):
        return _enc_npscalar
    if issubclass(t, np.dtype):
        return _enc_npdtype
    return None


def _write_dtype(dt: Any, out: Sink) -> None:
    """``dt.str`` (kind, item size, byte order, datetime unit), then the fields
    of structured and sub-array dtypes; for ``StringDType`` its missing-value
    object (by content) and coercion."""
    if dt.kind == "T":  # StringDType: its .str is its repr, which may show an address
        enc_str("StringDType", out)
        na = getattr(dt, "na_object", _NO_NA)
        encode((na is not _NO_NA, None if na is _NO_NA else na, bool(getattr(dt, "coerce", True))), out)
        return
    enc_str(dt.str, out)
    if dt.names is not None or dt.subdtype is not None:
        encode(dt.descr, out)
    else:
        out += T_NONE


_NO_NA = object()


def _enc_npdtype(obj: Any, out: Sink) -> None:
    out += T_NPDTYPE
    _write_dtype(obj, out)


def _by_elements(dt: np.dtype[Any]) -> bool:
    return dt.hasobject or dt.kind == "T"


def enc_ndarray(a: Any, out: Sink) -> None:
    dt = a.dtype
    out += T_NDARRAY
    _write_dtype(dt, out)
    enc_tuple(a.shape, out)
    if _by_elements(dt):
        stack = out.stack
        oid = id(a)
        if oid in stack:
            raise Unencodable(type(a), "it contains itself (a reference cycle)")
        stack.add(oid)
        enc_list(a.ravel().tolist(), out)
        stack.discard(oid)
        return
    if not a.flags.c_contiguous:
        a = a.copy(order="C")
    n = a.nbytes
    if n <= BIG:
        out += varint(n)
        out += a.tobytes()
    else:
        np = module("numpy")
        write_buffer(b"", memoryview(a.reshape(-1).view(np.uint8)), out)


def _enc_npscalar(x: Any, out: Sink) -> None:
    dt = x.dtype
    out += T_NPSCALAR
    _write_dtype(dt, out)
    if _by_elements(dt):
        encode(x.item(), out)
    else:
        b = x.tobytes()
        out += varint(len(b))
        out += b



def _enc_busdaycalendar(cal: Any, out: Sink) -> None:
    """A business-day calendar by its week mask and holidays (pandas' custom
    business-day offsets hold one)."""
    out += T_NPBUSDAYCAL
    enc_ndarray(cal.weekmask, out)
    enc_ndarray(cal.holidays, out)
