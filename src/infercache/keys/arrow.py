"""pyarrow adapter: arrays, chunked arrays, tables, record batches, scalars,
data types, fields and schemas, keyed by their logical content.

What a key covers:

* the Arrow type, written structurally (parameters such as unit, time zone,
  precision and byte width; every nested field's name, nullability and
  metadata; an extension type's name and serialized metadata); a table's or
  batch's schema, schema metadata included;
* the logical content of each column, read from the buffers without copying
  them: the values of a null-free fixed-width column (numbers, dates,
  timestamps, decimals, fixed-size binaries) and the data bytes of strings and
  binaries are streamed into the hasher straight from Arrow memory.

The content is keyed by a canonical layout, so that equal logical content gives
equal keys whatever the slicing or chunking, and values under null slots (which
Arrow leaves undefined) never count:

* a column is its length, the positions of its nulls, then its non-null
  values only;
* variable-width values (strings, binaries, lists, maps) are the int64 end
  offsets of each value counted from the start of the column, then the data
  bytes or child values they cover;
* struct fields and list children are columns of their own, written the same
  way.

Chunking is therefore invisible: a ``ChunkedArray`` or ``Table`` of one chunk
and one of three chunks with the same rows hit each other (an ``Array`` and a
``ChunkedArray``, or a ``Table`` and a ``RecordBatch``, are different types and
keep different keys). Copies are made only where the canonical layout is not
the stored one: null positions and the non-null values of a column with nulls,
rebased offsets of a slice or of a later chunk, booleans (one byte per value),
and columns whose stored form is an encoding of the logical one (dictionary
arrays are keyed by their decoded values, run-end encoded arrays by their
decoded runs, string/binary/list views by their non-view form).

Floats are keyed by their bits, as everywhere in infercache (``-0.0`` and
``0.0`` differ). Union arrays are refused with :class:`UnhashableError`; a
union *type* can still be part of a key. Buffers are read in the machine's
byte order, which is therefore part of the key: a big-endian machine never
shares keys with a little-endian one.

pyarrow is never imported here: a value's type is checked against it only once
it is in ``sys.modules``.
"""

from __future__ import annotations

import functools
import importlib
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .encoder import (
    Encoder,
    _enc,
    _enc_bool,
    _enc_dict,
    _enc_int,
    _enc_str,
    _Fail,
    register_adapter,
)
from .wire import (
    _BIG,
    _NATIVE_BIG_ENDIAN,
    T_PA_ARRAY,
    T_PA_BATCH,
    T_PA_CHUNKED,
    T_PA_FIELD,
    T_PA_SCALAR,
    T_PA_SCHEMA,
    T_PA_TABLE,
    T_PA_TYPE,
    _feed,
    _Sink,
    _varint,
)

_BYTE_ORDER = b">" if _NATIVE_BIG_ENDIAN else b"<"
# A type written by its parameters, not by its name alone.
_STRUCTURED = b"("


@register_adapter
def _arrow_builder(t: type) -> Encoder | None:
    pa = sys.modules.get("pyarrow")
    if pa is None:
        return None
    if issubclass(t, pa.Array):
        return _enc_array
    if issubclass(t, pa.ChunkedArray):
        return _enc_chunked
    if issubclass(t, pa.Table):
        return _enc_table
    if issubclass(t, pa.RecordBatch):
        return _enc_batch
    if issubclass(t, pa.Scalar):
        return _enc_scalar
    if issubclass(t, pa.DataType):
        return _enc_datatype
    if issubclass(t, pa.Field):
        return _enc_field
    if issubclass(t, pa.Schema):
        return _enc_schema
    return None


# ---------------------------------------------------------------- containers

def _enc_array(arr: Any, out: _Sink) -> None:
    out += T_PA_ARRAY
    _write_type(arr.type, out)
    _write_column([arr], arr.type, type(arr), out)


def _enc_chunked(arr: Any, out: _Sink) -> None:
    out += T_PA_CHUNKED
    _write_type(arr.type, out)
    _write_column(arr.chunks, arr.type, type(arr), out)


def _write_columns(data: Any, chunks_of: Callable[[Any], Sequence[Any]], out: _Sink) -> None:
    _write_schema(data.schema, out)
    out += _varint(data.num_rows)
    for field, column in zip(data.schema, data.columns):
        try:
            _write_column(chunks_of(column), field.type, type(data), out)
        except _Fail as e:
            e.path.append(f"[{field.name!r}]")
            raise


def _enc_table(table: Any, out: _Sink) -> None:
    out += T_PA_TABLE
    _write_columns(table, _chunks, out)


def _enc_batch(batch: Any, out: _Sink) -> None:
    out += T_PA_BATCH
    _write_columns(batch, _one_chunk, out)


def _chunks(column: Any) -> Sequence[Any]:
    chunks: Sequence[Any] = column.chunks
    return chunks


def _one_chunk(column: Any) -> Sequence[Any]:
    return [column]


def _enc_scalar(s: Any, out: _Sink) -> None:
    pa = sys.modules["pyarrow"]
    out += T_PA_SCALAR
    _write_type(s.type, out)
    _write_column([pa.array([s], type=s.type)], s.type, type(s), out)


def _enc_datatype(t: Any, out: _Sink) -> None:
    out += T_PA_TYPE
    _write_type(t, out)


def _enc_field(f: Any, out: _Sink) -> None:
    out += T_PA_FIELD
    _write_field(f, out)


def _enc_schema(s: Any, out: _Sink) -> None:
    out += T_PA_SCHEMA
    _write_schema(s, out)


# ---------------------------------------------------------------- types

def _write_metadata(md: Any, out: _Sink) -> None:
    _enc_dict(dict(md) if md else {}, out)


def _write_field(f: Any, out: _Sink) -> None:
    _enc_str(f.name, out)
    _enc_bool(bool(f.nullable), out)
    _write_metadata(f.metadata, out)
    _write_type(f.type, out)


def _write_schema(s: Any, out: _Sink) -> None:
    out += _varint(len(s))
    for f in s:
        _write_field(f, out)
    _write_metadata(s.metadata, out)


def _write_type(t: Any, out: _Sink) -> None:
    """The type with all its parameters; a parameterless type by its name."""
    pa = sys.modules["pyarrow"]
    ty = pa.types
    if isinstance(t, pa.BaseExtensionType):
        _structured("extension", out)
        _write_metadata(_c_schema_metadata(t), out)
        _write_type(t.storage_type, out)
    elif ty.is_dictionary(t):
        _structured("dictionary", out)
        _write_type(t.index_type, out)
        _write_type(t.value_type, out)
        _enc_bool(bool(t.ordered), out)
    elif ty.is_struct(t):
        _structured("struct", out)
        out += _varint(t.num_fields)
        for i in range(t.num_fields):
            _write_field(t.field(i), out)
    elif ty.is_map(t):
        _structured("map", out)
        _write_field(t.key_field, out)
        _write_field(t.item_field, out)
        _enc_bool(bool(t.keys_sorted), out)
    elif ty.is_fixed_size_list(t):
        _structured("fixed_size_list", out)
        _enc_int(t.list_size, out)
        _write_field(t.value_field, out)
    elif ty.is_list(t) or ty.is_large_list(t) or ty.is_list_view(t) or ty.is_large_list_view(t):
        _structured(_kind(t), out)
        _write_field(t.value_field, out)
    elif ty.is_union(t):
        _structured(_kind(t), out)
        _enc(list(t.type_codes), out)
        out += _varint(t.num_fields)
        for i in range(t.num_fields):
            _write_field(t.field(i), out)
    elif ty.is_run_end_encoded(t):
        _structured("run_end_encoded", out)
        _write_type(t.run_end_type, out)
        _write_type(t.value_type, out)
    elif ty.is_timestamp(t):
        _structured("timestamp", out)
        _enc_str(t.unit, out)
        _enc(t.tz, out)
    elif ty.is_time(t) or ty.is_duration(t):
        _structured(_kind(t), out)
        _enc_str(t.unit, out)
    elif ty.is_decimal(t):
        _structured(_kind(t), out)
        _enc_int(t.precision, out)
        _enc_int(t.scale, out)
    elif ty.is_fixed_size_binary(t):
        _structured("fixed_size_binary", out)
        _enc_int(t.byte_width, out)
    else:
        # Parameterless (int32, string, date32[day], ...): Arrow's name says it all.
        _enc_str(str(t), out)


def _structured(kind: str, out: _Sink) -> None:
    out += _STRUCTURED
    _enc_str(kind, out)


def _kind(t: Any) -> str:
    """Arrow's name of a type's kind: ``list`` for ``list<item: int32>``."""
    s = str(t)
    ends = [i for i in (s.find("<"), s.find("["), s.find("(")) if i >= 0]
    return s[:min(ends)] if ends else s


def _c_schema_metadata(t: Any) -> dict[bytes, bytes]:
    """The metadata of a type's Arrow C data interface schema.

    For an extension type this is ``ARROW:extension:name`` and
    ``ARROW:extension:metadata``: the name and parameters exactly as the Arrow
    specification serializes them, for extension types defined in Python and
    in C++ alike (pyarrow exposes the latter's parameters in no other way).
    """
    import ctypes

    struct_type, capsule_pointer = _c_schema_api()
    capsule = t.__arrow_c_schema__()
    schema = struct_type.from_address(capsule_pointer(capsule, b"arrow_schema"))
    if not schema.metadata:
        return {}
    # Layout (native byte order): int32 count, then per pair int32 length + bytes, twice.
    at = schema.metadata
    (count,) = struct.unpack("=i", ctypes.string_at(at, 4))
    at += 4
    pairs: list[bytes] = []
    for _ in range(2 * count):
        (n,) = struct.unpack("=i", ctypes.string_at(at, 4))
        pairs.append(ctypes.string_at(at + 4, n))
        at += 4 + n
    return dict(zip(pairs[::2], pairs[1::2]))


@functools.cache
def _c_schema_api() -> tuple[Any, Callable[[Any, bytes], int]]:
    """The C ``ArrowSchema`` struct and ``PyCapsule_GetPointer``, set up on first
    use (only extension types need them)."""
    import ctypes

    class ArrowSchema(ctypes.Structure):
        _fields_ = [("format", ctypes.c_char_p), ("name", ctypes.c_char_p),
                    ("metadata", ctypes.c_void_p), ("flags", ctypes.c_int64),
                    ("n_children", ctypes.c_int64), ("children", ctypes.c_void_p),
                    ("dictionary", ctypes.c_void_p), ("release", ctypes.c_void_p),
                    ("private_data", ctypes.c_void_p)]

    pointer = ctypes.pythonapi.PyCapsule_GetPointer
    pointer.restype = ctypes.c_void_p
    pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    return ArrowSchema, pointer


# ---------------------------------------------------------------- content

def _write_column(chunks: Sequence[Any], t: Any, owner: type, out: _Sink) -> None:
    """The logical content of ``chunks`` (arrays of type ``t``), independent of
    how it is sliced and split into chunks."""
    out += _BYTE_ORDER
    _write_content(chunks, t, owner, out)


def _write_content(chunks: Sequence[Any], t: Any, owner: type, out: _Sink) -> None:
    pa = sys.modules["pyarrow"]
    # Empty chunks hold nothing, and may lack buffers.
    chunks, t = _plain([c for c in chunks if len(c)], t, owner)
    n = sum(len(c) for c in chunks)
    out += _varint(n)
    if pa.types.is_null(t):
        return
    nulls = sum(c.null_count for c in chunks)
    out += _varint(nulls)
    if nulls:
        _write_null_positions(chunks, out)
        chunks = [c.drop_null() if c.null_count else c for c in chunks]
        chunks = [c for c in chunks if len(c)]
    ty = pa.types
    if ty.is_boolean(t):
        for c in chunks:
            b = _compute().cast(c, pa.uint8())
            _piece(memoryview(b.buffers()[1])[b.offset:b.offset + len(b)], out)
    elif ty.is_struct(t):
        for i in range(t.num_fields):
            _write_content([c.field(i) for c in chunks], t.field(i).type, owner, out)
    elif ty.is_fixed_size_list(t):
        size = t.list_size
        children = [c.values.slice(c.offset * size, len(c) * size) for c in chunks]
        _write_content(children, t.value_type, owner, out)
    elif ty.is_list(t) or ty.is_large_list(t) or ty.is_map(t):
        spans = _write_ends(chunks, t, out)
        children = [c.values.slice(a, b - a) for c, (a, b) in zip(chunks, spans)]
        child_type = pa.struct([t.key_field, t.item_field]) if ty.is_map(t) else t.value_type
        _write_content(children, child_type, owner, out)
    elif ty.is_binary(t) or ty.is_string(t) or ty.is_large_binary(t) or ty.is_large_string(t):
        spans = _write_ends(chunks, t, out)
        for c, (a, b) in zip(chunks, spans):
            data = c.buffers()[2]
            if data is not None and b > a:
                _piece(memoryview(data)[a:b], out)
    else:
        try:
            width = t.bit_width
        except ValueError:
            width = 0
        if width <= 0 or width % 8:
            raise _Fail(owner, f"its Arrow type {t} has a layout infercache does not know")
        w = width // 8
        for c in chunks:
            _piece(memoryview(c.buffers()[1])[c.offset * w:(c.offset + len(c)) * w], out)


def _plain(chunks: list[Any], t: Any, owner: type) -> tuple[list[Any], Any]:
    """Chunks and type in their plain layout: extension arrays by their
    storage, dictionaries decoded, run-end encoded arrays and views expanded.
    The original type is in the key already, so this loses nothing."""
    pa = sys.modules["pyarrow"]
    ty = pa.types
    while True:
        if isinstance(t, pa.BaseExtensionType):
            chunks, t = [c.storage for c in chunks], t.storage_type
        elif ty.is_dictionary(t):
            chunks, t = [c.dictionary_decode() for c in chunks], t.value_type
        elif ty.is_run_end_encoded(t):
            chunks, t = [_compute().run_end_decode(c) for c in chunks], t.value_type
        elif ty.is_string_view(t) or ty.is_binary_view(t) or ty.is_list_view(t) \
                or ty.is_large_list_view(t):
            if ty.is_string_view(t):
                t = pa.large_string()
            elif ty.is_binary_view(t):
                t = pa.large_binary()
            else:
                t = pa.large_list(t.value_field)
            chunks = [c.cast(t) for c in chunks]
        elif ty.is_union(t):
            raise _Fail(owner, f"its Arrow type {t} is a union, whose content infercache does "
                               f"not key; cast it to a struct or pass key=")
        else:
            return chunks, t


def _write_null_positions(chunks: list[Any], out: _Sink) -> None:
    """Row numbers of the nulls, counted from the start of the column (uint64)."""
    pa = sys.modules["pyarrow"]
    pc = _compute()
    base = 0
    for c in chunks:
        if c.null_count:
            pos = pc.add(pc.indices_nonzero(c.is_null()), pa.scalar(base, pa.uint64()))
            _piece(memoryview(pos.buffers()[1])[pos.offset * 8:(pos.offset + len(pos)) * 8], out)
        base += len(c)


def _write_ends(chunks: list[Any], t: Any, out: _Sink) -> list[tuple[int, int]]:
    """Writes each value's end offset counted from the start of the column
    (int64), and returns each chunk's span in its own data or child array."""
    pa = sys.modules["pyarrow"]
    pc = _compute()
    wide = pa.types.is_large_list(t) or pa.types.is_large_binary(t) \
        or pa.types.is_large_string(t)
    fmt, w = ("=q", 8) if wide else ("=i", 4)
    spans = []
    base = 0
    for c in chunks:
        buf = c.buffers()[1]
        off, n = c.offset, len(c)
        first = struct.unpack_from(fmt, buf, off * w)[0]
        last = struct.unpack_from(fmt, buf, (off + n) * w)[0]
        if wide and first == base:
            _piece(memoryview(buf)[(off + 1) * 8:(off + 1 + n) * 8], out)
        else:
            ends = pa.Array.from_buffers(pa.int64() if wide else pa.int32(), n, [None, buf],
                                         offset=off + 1)
            ends = pc.add(pc.cast(ends, pa.int64()), pa.scalar(base - first, pa.int64()))
            _piece(memoryview(ends.buffers()[1])[ends.offset * 8:(ends.offset + n) * 8], out)
        spans.append((first, last))
        base += last - first
    return spans


def _compute() -> Any:
    """``pyarrow.compute``, which ``import pyarrow`` does not load by itself."""
    pc = sys.modules.get("pyarrow.compute")
    if pc is None:  # pyarrow itself is loaded: it made the value
        pc = importlib.import_module("pyarrow.compute")
    return pc


def _piece(mv: memoryview, out: _Sink) -> None:
    """Raw bytes of a canonical stream; large pieces go straight to the hasher."""
    if mv.nbytes <= _BIG:
        out += mv
    else:
        _feed(out, mv)

