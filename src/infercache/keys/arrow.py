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
  way; the rows under a null parent slot are left out of them by a row mask
  (no nested array is ever filtered, which Arrow cannot do for every type).

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
it is imported (:func:`infercache.libraries.module_for`).
"""

from __future__ import annotations

import functools
import importlib
import struct
from collections.abc import Callable, Sequence
from typing import Any

from ..libraries import loaded, module, module_for
from .encoder import (
    Encoder,
    Unencodable,
    enc_bool,
    enc_dict,
    enc_int,
    enc_str,
    encode,
    register_adapter,
)
from .wire import (
    BIG,
    NATIVE_BIG_ENDIAN,
    T_PA_ARRAY,
    T_PA_BATCH,
    T_PA_CHUNKED,
    T_PA_FIELD,
    T_PA_SCALAR,
    T_PA_SCHEMA,
    T_PA_TABLE,
    T_PA_TYPE,
    Sink,
    feed,
    varint,
)

_BYTE_ORDER = b">" if NATIVE_BIG_ENDIAN else b"<"
# A type written by its parameters, not by its name alone.
_STRUCTURED = b"("


@register_adapter
def _arrow_builder(t: type) -> Encoder | None:
    pa = module_for(t, "pyarrow")
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

def _enc_array(arr: Any, out: Sink) -> None:
    out += T_PA_ARRAY
    write_type(arr.type, out)
    write_column([arr], arr.type, type(arr), out)


def _enc_chunked(arr: Any, out: Sink) -> None:
    out += T_PA_CHUNKED
    write_type(arr.type, out)
    write_column(arr.chunks, arr.type, type(arr), out)


def _write_columns(data: Any, chunks_of: Callable[[Any], Sequence[Any]], out: Sink) -> None:
    _write_schema(data.schema, out)
    out += varint(data.num_rows)
    for field, column in zip(data.schema, data.columns):
        try:
            write_column(chunks_of(column), field.type, type(data), out)
        except Unencodable as e:
            e.path.append(f"[{field.name!r}]")
            raise


def _enc_table(table: Any, out: Sink) -> None:
    out += T_PA_TABLE
    _write_columns(table, _chunks, out)


def _enc_batch(batch: Any, out: Sink) -> None:
    out += T_PA_BATCH
    _write_columns(batch, _one_chunk, out)


def _chunks(column: Any) -> Sequence[Any]:
    chunks: Sequence[Any] = column.chunks
    return chunks


def _one_chunk(column: Any) -> Sequence[Any]:
    return [column]


def _enc_scalar(s: Any, out: Sink) -> None:
    pa = module("pyarrow")
    out += T_PA_SCALAR
    write_type(s.type, out)
    # An array of the one value: pa.array([s]) fails for a union or run-end encoded
    # scalar and for a null list view, map or fixed-size list; pa.repeat does not.
    write_column([pa.repeat(s, 1)], s.type, type(s), out)


def _enc_datatype(t: Any, out: Sink) -> None:
    out += T_PA_TYPE
    write_type(t, out)


def _enc_field(f: Any, out: Sink) -> None:
    out += T_PA_FIELD
    _write_field(f, out)


def _enc_schema(s: Any, out: Sink) -> None:
    out += T_PA_SCHEMA
    _write_schema(s, out)


# ---------------------------------------------------------------- types

def _write_metadata(md: Any, out: Sink) -> None:
    enc_dict(dict(md) if md else {}, out)


def _write_field(f: Any, out: Sink) -> None:
    enc_str(f.name, out)
    enc_bool(bool(f.nullable), out)
    _write_metadata(f.metadata, out)
    write_type(f.type, out)


def _write_schema(s: Any, out: Sink) -> None:
    out += varint(len(s))
    for f in s:
        _write_field(f, out)
    _write_metadata(s.metadata, out)


def write_type(t: Any, out: Sink) -> None:
    """The type with all its parameters; a parameterless type by its name."""
    pa = module("pyarrow")
    ty = pa.types
    if isinstance(t, pa.BaseExtensionType):
        structured("extension", out)
        _write_metadata(_c_schema_metadata(t), out)
        write_type(t.storage_type, out)
    elif ty.is_dictionary(t):
        structured("dictionary", out)
        write_type(t.index_type, out)
        write_type(t.value_type, out)
        enc_bool(bool(t.ordered), out)
    elif ty.is_struct(t):
        structured("struct", out)
        out += varint(t.num_fields)
        for i in range(t.num_fields):
            _write_field(t.field(i), out)
    elif ty.is_map(t):
        structured("map", out)
        _write_field(t.key_field, out)
        _write_field(t.item_field, out)
        enc_bool(bool(t.keys_sorted), out)
    elif ty.is_fixed_size_list(t):
        structured("fixed_size_list", out)
        enc_int(t.list_size, out)
        _write_field(t.value_field, out)
    elif ty.is_list(t) or ty.is_large_list(t) or ty.is_list_view(t) or ty.is_large_list_view(t):
        structured(_kind(t), out)
        _write_field(t.value_field, out)
    elif ty.is_union(t):
        structured(_kind(t), out)
        encode(list(t.type_codes), out)
        out += varint(t.num_fields)
        for i in range(t.num_fields):
            _write_field(t.field(i), out)
    elif ty.is_run_end_encoded(t):
        structured("run_end_encoded", out)
        write_type(t.run_end_type, out)
        write_type(t.value_type, out)
    elif ty.is_timestamp(t):
        structured("timestamp", out)
        enc_str(t.unit, out)
        encode(t.tz, out)
    elif ty.is_time(t) or ty.is_duration(t):
        structured(_kind(t), out)
        enc_str(t.unit, out)
    elif ty.is_decimal(t):
        structured(_kind(t), out)
        enc_int(t.precision, out)
        enc_int(t.scale, out)
    elif ty.is_fixed_size_binary(t):
        structured("fixed_size_binary", out)
        enc_int(t.byte_width, out)
    else:
        # Parameterless (int32, string, date32[day], ...): Arrow's name says it all.
        enc_str(str(t), out)


def structured(kind: str, out: Sink) -> None:
    out += _STRUCTURED
    enc_str(kind, out)


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

def write_column(chunks: Sequence[Any], t: Any, owner: type, out: Sink) -> None:
    """The logical content of ``chunks`` (arrays of type ``t``), independent of
    how it is sliced and split into chunks."""
    out += _BYTE_ORDER
    _write_content([(c, None) for c in chunks], t, owner, out)


# A part of a column: a chunk, and the mask of its rows that belong to the
# column (None: all of them). Rows a parent leaves out (the children of a null
# list or struct slot) are masked out instead of filtered away, so no kernel ever
# runs on a nested array: Arrow cannot filter some nested types.
_Part = tuple[Any, Any]


def _write_content(parts: Sequence[_Part], t: Any, owner: type, out: Sink) -> None:
    pa = module("pyarrow")
    pc = _compute()
    # Empty chunks hold nothing, and may lack buffers.
    parts = [(c, m) for c, m in parts if len(c)]
    parts, t = _plain(parts, t, owner)
    out += varint(sum(len(c) if m is None else m.true_count for c, m in parts))
    if pa.types.is_null(t):
        return
    parts = _write_nulls(parts, out)
    ty = pa.types
    if ty.is_boolean(t):
        for c, keep in parts:
            v = c if keep is None else c.filter(keep)
            b = pc.cast(v, pa.uint8())
            _piece(memoryview(b.buffers()[1])[b.offset:b.offset + len(b)], out)
    elif ty.is_struct(t):
        for i in range(t.num_fields):
            _write_content([(c.field(i), keep) for c, keep in parts], t.field(i).type, owner, out)
    elif ty.is_fixed_size_list(t):
        size = t.list_size
        children = []
        for c, keep in parts:
            child = c.values.slice(c.offset * size, len(c) * size)
            if keep is not None and size:  # lists of size 0 have no child rows to mask
                rows = pa.FixedSizeListArray.from_arrays(pa.nulls(len(child)), size)
                keep = keep.take(pc.list_parent_indices(rows))
            children.append((child, keep))
        _write_content(children, t.value_type, owner, out)
    elif ty.is_list(t) or ty.is_large_list(t) or ty.is_map(t):
        spans = _write_ends(parts, t, out)
        children = [(c.values.slice(a, b - a), child_keep)
                    for (c, _), (a, b, child_keep) in zip(parts, spans)]
        child_type = pa.struct([t.key_field, t.item_field]) if ty.is_map(t) else t.value_type
        _write_content(children, child_type, owner, out)
    elif ty.is_binary(t) or ty.is_string(t) or ty.is_large_binary(t) or ty.is_large_string(t):
        parts = [(c if keep is None else c.filter(keep), None) for c, keep in parts]
        for (c, _), (a, b, _) in zip(parts, _write_ends(parts, t, out)):
            data = c.buffers()[2]
            if data is not None and b > a:
                _piece(memoryview(data)[a:b], out)
    else:
        try:
            width = t.bit_width
        except ValueError:
            width = -1
        # Width 0 (fixed_size_binary[0]) is a layout too: no value bytes at all.
        if width < 0 or width % 8:
            raise Unencodable(owner, f"its Arrow type {t} has a layout infercache does not know")
        w = width // 8
        for c, keep in parts:
            if keep is not None:
                # The values as opaque fixed-size binaries: one filter kernel for every type.
                c = pa.Array.from_buffers(pa.binary(w), len(c), [None, c.buffers()[1]],
                                          offset=c.offset).filter(keep)
            _piece(memoryview(c.buffers()[1])[c.offset * w:(c.offset + len(c)) * w], out)


def _plain(parts: list[_Part], t: Any, owner: type) -> tuple[list[_Part], Any]:
    """Parts and type in their plain layout: extension arrays by their
    storage, dictionaries decoded, run-end encoded arrays and views expanded.
    Rows stay where they are, so masks still apply. The original type is in
    the key already, so this loses nothing."""
    pa = module("pyarrow")
    ty = pa.types
    while True:
        convert: Callable[[Any, Any], Any]
        if isinstance(t, pa.BaseExtensionType):
            convert, t = _storage, t.storage_type
        elif ty.is_dictionary(t):
            convert, t = _decoded, t.value_type
        elif ty.is_run_end_encoded(t):
            convert, t = _run_end_decoded, t.value_type
        elif ty.is_string_view(t) or ty.is_binary_view(t):
            t = pa.large_string() if ty.is_string_view(t) else pa.large_binary()
            convert = _cast_to(t)
        elif ty.is_list_view(t) or ty.is_large_list_view(t):
            t = pa.large_list(t.value_field)
            convert = _list_view_as_list(t)
        elif ty.is_union(t):
            raise Unencodable(owner, f"its Arrow type {t} is a union, whose content infercache does "
                               f"not key; cast it to a struct or pass key=")
        else:
            return parts, t
        parts = [(convert(c, m), m) for c, m in parts]


def _storage(c: Any, mask: Any) -> Any:
    return c.storage


def _decoded(c: Any, mask: Any) -> Any:
    """The dictionary's values at the indices of the rows in ``mask``.

    Indices of rows outside it (under a null parent) may point anywhere, even
    in arrays pyarrow builds itself, so they are not looked up."""
    pa = module("pyarrow")
    indices = c.indices
    if mask is not None:
        indices = _compute().if_else(mask, indices, pa.scalar(None, indices.type))
    return c.dictionary.take(indices)


def _run_end_decoded(c: Any, mask: Any) -> Any:
    return _compute().run_end_decode(c)


def _cast_to(t: Any) -> Callable[[Any, Any], Any]:
    def cast(c: Any, mask: Any) -> Any:
        return c.cast(t)
    return cast


def _list_view_as_list(t: Any) -> Callable[[Any, Any], Any]:
    """Converts a list view to the list array of type ``t`` with the same rows.

    Built from the view's lengths and flattened values: pyarrow's own cast
    of a sliced view returns an invalid array (negative offsets)."""
    pa = module("pyarrow")
    pc = _compute()

    def convert(c: Any, mask: Any) -> Any:
        lengths = pc.fill_null(pc.list_value_length(c), 0).cast(pa.int64())
        offsets = pa.concat_arrays([pa.array([0], pa.int64()), pc.cumulative_sum(lengths)])
        return pa.LargeListArray.from_arrays(offsets, pc.list_flatten(c), type=t,
                                             mask=c.is_null())
    return convert


def _write_nulls(parts: list[_Part], out: Sink) -> list[_Part]:
    """Writes the number of nulls among the column's rows and their row numbers
    (uint64, counted from the start of the column); returns the parts with
    masks of their non-null rows, which are all the rest of the key reads."""
    pa = module("pyarrow")
    pc = _compute()
    positions = []
    kept = []
    base = 0
    for c, m in parts:
        rows = len(c) if m is None else m.true_count
        if c.null_count:
            valid = c.is_valid()
            among = pc.invert(valid if m is None else valid.filter(m))
            pos = pc.add(pc.indices_nonzero(among), pa.scalar(base, pa.uint64()))
            if len(pos):
                positions.append(pos)
            m = valid if m is None else pc.and_(valid, m)
        kept.append((c, m))
        base += rows
    out += varint(sum(len(p) for p in positions))
    for pos in positions:
        _piece(memoryview(pos.buffers()[1])[pos.offset * 8:(pos.offset + len(pos)) * 8], out)
    return kept


def _write_ends(parts: list[_Part], t: Any, out: Sink) -> list[tuple[int, int, Any]]:
    """Writes the end offset of each kept value, counted from the start of the
    column's kept values (int64), and returns each chunk's span in its own data
    or child array with the mask of the span's rows that are kept."""
    pa = module("pyarrow")
    pc = _compute()
    wide = pa.types.is_large_list(t) or pa.types.is_large_binary(t) \
        or pa.types.is_large_string(t)
    fmt, w = ("=q", 8) if wide else ("=i", 4)
    spans = []
    base = 0
    for c, keep in parts:
        buf = c.buffers()[1]
        off, n = c.offset, len(c)
        first = struct.unpack_from(fmt, buf, off * w)[0]
        last = struct.unpack_from(fmt, buf, (off + n) * w)[0]
        child_keep = None
        if keep is None and wide and first == base:
            _piece(memoryview(buf)[(off + 1) * 8:(off + 1 + n) * 8], out)
            base = last
        else:
            offsets = pa.Array.from_buffers(pa.int64() if wide else pa.int32(), n + 1,
                                            [None, buf], offset=off)
            offsets = pc.subtract(pc.cast(offsets, pa.int64()), pa.scalar(first, pa.int64()))
            if keep is None:
                ends = pc.add(offsets.slice(1), pa.scalar(base, pa.int64()))
            else:
                lengths = pc.subtract(offsets.slice(1), offsets.slice(0, n)).filter(keep)
                ends = pc.add(pc.cumulative_sum(lengths), pa.scalar(base, pa.int64()))
                rows = pa.LargeListArray.from_arrays(offsets, pa.nulls(last - first))
                child_keep = keep.take(pc.list_parent_indices(rows))
            if len(ends):
                _piece(memoryview(ends.buffers()[1])[ends.offset * 8:(ends.offset + len(ends)) * 8],
                       out)
                base = ends[-1].as_py()
        spans.append((first, last, child_keep))
    return spans


def _compute() -> Any:
    """``pyarrow.compute``, which ``import pyarrow`` does not load by itself."""
    pc = loaded("pyarrow.compute")
    if pc is None:  # pyarrow itself is loaded: it made the value
        pc = importlib.import_module("pyarrow.compute")
    return pc


def _piece(mv: memoryview, out: Sink) -> None:
    """Raw bytes of a canonical stream; large pieces go straight to the hasher."""
    if mv.nbytes <= BIG:
        out += mv
    else:
        feed(out, mv)

