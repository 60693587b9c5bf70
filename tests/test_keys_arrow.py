"""Keys of pyarrow values: by logical content, whatever the slicing or chunking."""

from __future__ import annotations

import itertools
import json
import math
import struct
import subprocess
import sys
import textwrap
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keys_fixtures import all_distinct, k, keys_in_process, refusal_message

import infercache as ic
from infercache.keys import UnhashableError, make_key
from infercache.keys.encoder import enc_str
from infercache.keys.wire import T_PA_TYPE, new_sink

pa = pytest.importorskip("pyarrow")


def exact(v: Any) -> Any:
    """A value in which floats compare by their bits (so -0.0 != 0.0)."""
    if isinstance(v, float):
        return ("float", struct.pack("<d", v))
    if isinstance(v, (list, tuple)):
        return [exact(x) for x in v]
    if isinstance(v, dict):
        return sorted((a, exact(b)) for a, b in v.items())
    return v


# ---------------------------------------------------------------- strategies

_NAMES = st.text(alphabet="abxy_,:<> ", min_size=0, max_size=3)

_PRIMITIVES: list[tuple[Any, st.SearchStrategy]] = [
    (pa.int8(), st.integers(-128, 127)),
    (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    (pa.uint16(), st.integers(0, 2**16 - 1)),
    (pa.float32(), st.floats(allow_nan=False, width=32)),
    (pa.float64(), st.floats(allow_nan=False)),
    (pa.bool_(), st.booleans()),
    (pa.string(), st.text(max_size=5)),
    (pa.large_string(), st.text(max_size=5)),
    (pa.binary(), st.binary(max_size=5)),
    (pa.large_binary(), st.binary(max_size=5)),
    (pa.string_view(), st.text(max_size=14)),
    (pa.binary_view(), st.binary(max_size=14)),
    (pa.binary(3), st.binary(min_size=3, max_size=3)),
    (pa.date32(), st.integers(-10**5, 10**5)),
    (pa.timestamp("ms"), st.integers(-(10**12), 10**12)),
    (pa.timestamp("us", tz="UTC"), st.integers(-(10**12), 10**12)),
    (pa.timestamp("us", tz="Europe/Paris"), st.integers(-(10**12), 10**12)),
    (pa.duration("s"), st.integers(-(10**9), 10**9)),
    (pa.decimal128(7, 2), st.decimals(min_value=-10**4, max_value=10**4, places=2,
                                      allow_nan=False, allow_infinity=False)),
    (pa.dictionary(pa.int8(), pa.string()), st.sampled_from(["", "a", "bc", "déf"])),
]


def _nullable(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.none() | values


@st.composite
def arrow_types(draw: st.DrawFn, depth: int = 2) -> tuple[Any, st.SearchStrategy]:
    """An Arrow type with a strategy for its (possibly null) Python values."""
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(_PRIMITIVES))
    t, values = draw(arrow_types(depth - 1))
    kind = draw(st.sampled_from(["list", "large_list", "list_view", "large_list_view",
                                 "fixed_size_list", "struct", "map"]))
    if kind == "list":
        return pa.list_(t), st.lists(_nullable(values), max_size=3)
    if kind == "list_view":
        return pa.list_view(t), st.lists(_nullable(values), max_size=3)
    if kind == "large_list_view":
        return pa.large_list_view(t), st.lists(_nullable(values), max_size=3)
    if kind == "large_list":
        return pa.large_list(t), st.lists(_nullable(values), max_size=3)
    if kind == "fixed_size_list":
        return pa.list_(t, 2), st.lists(_nullable(values), min_size=2, max_size=2)
    if kind == "map":
        return pa.map_(pa.string(), t), st.lists(st.tuples(st.text(max_size=2), _nullable(values)),
                                                 max_size=3)
    t2, values2 = draw(arrow_types(depth - 1))
    names = draw(st.lists(_NAMES, min_size=2, max_size=2, unique=True))
    fields = [pa.field(names[0], t), pa.field(names[1], t2, nullable=draw(st.booleans()))]
    return pa.struct(fields), st.fixed_dictionaries({names[0]: _nullable(values),
                                                     names[1]: _nullable(values2)})


@st.composite
def arrays(draw: st.DrawFn) -> Any:
    t, values = draw(arrow_types())
    return pa.array(draw(st.lists(_nullable(values), max_size=12)), type=t)


@st.composite
def pieces(draw: st.DrawFn, arr: Any) -> list[Any]:
    """``arr`` cut into slices of itself (views sharing its buffers, at offsets)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(arr)), max_size=4)))
    bounds = [0, *cuts, len(arr)]
    return [arr.slice(a, b - a) for a, b in itertools.pairwise(bounds)]


SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_a_large_array_cut_at_its_start_keys_like_a_fresh_one() -> None:
    # Its end offsets are read straight from the shared buffer, which runs on past the cut.
    for t, rows in ((pa.large_string(), ["a", "bb", "ccc"]), (pa.large_binary(), [b"a", b"bb", b"ccc"]),
                    (pa.large_list(pa.int32()), [[1], [2, 3], [4, 5, 6]])):
        whole = pa.array(rows, t)
        assert k(whole.slice(0, 2)) == k(pa.array(rows[:2], t)) != k(whole)


def test_a_fixed_size_list_array_cut_short_keys_like_a_fresh_one() -> None:
    # Its values are one child array for every row; a cut keeps only its rows' part of it.
    t = pa.list_(pa.int32(), 2)
    rows = [[1, 2], [3, 4], [5, 6]]
    whole = pa.array(rows, t)
    assert k(whole.slice(0, 2)) == k(pa.array(rows[:2], t)) != k(whole)
    assert k(whole.slice(1, 1)) == k(pa.array(rows[1:2], t))


# ---------------------------------------------------------------- properties

@SETTINGS
@given(st.data())
def test_slices_and_chunks_key_like_a_fresh_array(data: st.DataObject) -> None:
    t, values = data.draw(arrow_types())
    rows = data.draw(st.lists(_nullable(values), max_size=12))
    before = data.draw(st.lists(_nullable(values), max_size=9))
    after = data.draw(st.lists(_nullable(values), max_size=9))
    fresh = pa.array(rows, type=t)
    sliced = pa.array(before + rows + after, type=t).slice(len(before), len(rows))
    assert sliced.offset == len(before)
    assert k(sliced) == k(fresh)
    one = pa.chunked_array([fresh], type=t)
    several = pa.chunked_array(data.draw(pieces(sliced)), type=t)
    assert k(several) == k(one)
    table = pa.table({"c": one})
    assert k(pa.table({"c": several})) == k(table)
    assert k(pa.Table.from_batches([pa.record_batch([sliced], names=["c"])])) == k(table)


@SETTINGS
@given(arrays(), arrays())
def test_arrays_share_a_key_only_when_type_and_values_are_equal(a: Any, b: Any) -> None:
    same = a.type.equals(b.type, check_metadata=True) and \
        exact(a.to_pylist()) == exact(b.to_pylist())
    assert (k(a) == k(b)) == same


@SETTINGS
@given(arrays(), st.data())
def test_changing_one_row_changes_the_key(a: Any, data: st.DataObject) -> None:
    if len(a) == 0:
        return
    i = data.draw(st.integers(0, len(a) - 1))
    j = data.draw(st.integers(0, len(a) - 1))
    rows = a.to_pylist()
    swapped = rows[:]
    swapped[i], swapped[j] = rows[j], rows[i]
    other = pa.array(swapped, type=a.type)
    assert (k(other) == k(a)) == (exact(swapped) == exact(rows))
    nulled = rows[:]
    nulled[i] = None
    assert (k(pa.array(nulled, type=a.type)) == k(a)) == (rows[i] is None)


@SETTINGS
@given(arrow_types(), arrow_types())
def test_types_share_a_key_only_when_equal_with_metadata(a: tuple, b: tuple) -> None:
    ta, tb = a[0], b[0]
    assert (k(ta) == k(tb)) == ta.equals(tb, check_metadata=True)
    assert (k(pa.array([], ta)) == k(pa.array([], tb))) == ta.equals(tb, check_metadata=True)


# ---------------------------------------------------------------- null slots

def test_dictionary_values_beside_a_null_slot_are_keyed_by_their_values() -> None:
    """Under a struct with a null slot, a dictionary child's rows outside it still key by value."""
    def under_struct(values: list[str]) -> Any:
        child = pa.array(values).dictionary_encode()
        return pa.StructArray.from_arrays([child], names=["d"], mask=pa.array([False, True, False]))

    base = under_struct(["x", "y", "z"])
    assert k(base) != k(under_struct(["x", "y", "w"]))  # a row outside the null slot
    assert k(base) == k(under_struct(["x", "q", "z"]))  # the row under it does not count


def test_values_under_null_slots_do_not_count() -> None:
    validity = pa.py_buffer(bytes([0b101]))
    ints = pa.Array.from_buffers(pa.int64(), 3, [validity, pa.py_buffer(
        struct.pack("<3q", 1, 999, 3))])
    assert ints.to_pylist() == [1, None, 3]
    assert k(ints) == k(pa.array([1, None, 3], pa.int64()))

    # A null string slot spanning bytes ("xyz" is under the null).
    strings = pa.Array.from_buffers(pa.string(), 3, [validity, pa.py_buffer(
        struct.pack("<4i", 0, 1, 4, 5)), pa.py_buffer(b"axyzc")])
    assert strings.to_pylist() == ["a", None, "c"]
    assert k(strings) == k(pa.array(["a", None, "c"]))

    lists = pa.ListArray.from_arrays(pa.array([0, 1, 3, 4], pa.int32()), pa.array([1, 7, 7, 3]),
                                     mask=pa.array([False, True, False]))
    assert lists.to_pylist() == [[1], None, [3]]
    assert k(lists) == k(pa.array([[1], None, [3]]))

    fixed = pa.FixedSizeListArray.from_arrays(pa.array([1, 2, 98, 99, 5, 6]), 2,
                                              mask=pa.array([False, True, False]))
    assert fixed.to_pylist() == [[1, 2], None, [5, 6]]
    assert k(fixed) == k(pa.array([[1, 2], None, [5, 6]], pa.list_(pa.int64(), 2)))

    structs = pa.StructArray.from_arrays([pa.array([1, 999, 3])], names=["x"],
                                         mask=pa.array([False, True, False]))
    assert k(structs) == k(pa.array([{"x": 1}, None, {"x": 3}]))

    # pyarrow itself leaves an out-of-range dictionary index under a null struct slot.
    coded = pa.struct([pa.field("d", pa.dictionary(pa.int8(), pa.string()))])
    built = pa.array([None, None], coded)
    with pytest.raises(pa.ArrowInvalid):
        built.validate(full=True)
    clean = pa.StructArray.from_arrays(
        [pa.DictionaryArray.from_arrays(pa.array([None, None], pa.int8()), pa.array(["x"]))],
        fields=list(coded), mask=pa.array([True, True]))
    assert k(built) == k(clean)


def test_nested_layouts_arrow_cannot_filter_are_keyed() -> None:
    rows = [["a", None], None, ["a string longer than twelve"], []]
    views = pa.array(rows, pa.list_(pa.string_view()))
    assert k(views.slice(1)) == k(pa.array(rows[1:], pa.list_(pa.string_view())))
    assert k(views) != k(pa.array(rows, pa.list_(pa.large_string())))
    inner = pa.array([{"v": [1, 2]}, None, {"v": None}],
                     pa.struct([pa.field("v", pa.list_view(pa.int8()))]))
    assert k(inner.slice(1)) == k(pa.array([None, {"v": None}], inner.type))


def test_fixed_size_lists_of_size_zero_with_nulls_are_keyed() -> None:
    t = pa.list_(pa.int8(), 0)
    rows = [[], None, []]
    assert k(pa.array([None, *rows], t).slice(1)) == k(pa.array(rows, t))
    assert all_distinct([pa.array(rows, t), pa.array([[], [], []], t), pa.array([None, [], []], t),
                         pa.array([[None], None, [None]], pa.list_(pa.int8(), 1))])
    parent = pa.struct([("a", t)])
    assert all_distinct([pa.array([{"a": []}, None], parent), pa.array([{"a": []}, {"a": None}], parent),
                         pa.array([{"a": []}, {"a": []}], parent)])
    assert all_distinct([pa.scalar(None, t), pa.scalar([], t)])


def test_fixed_size_binaries_of_width_zero_are_keyed() -> None:
    t = pa.binary(0)
    rows = [b"", None, b""]
    assert k(pa.array([None, *rows], t).slice(1)) == k(pa.array(rows, t))
    assert all_distinct([pa.array(rows, t), pa.array([b"", b"", b""], t), pa.array([b"", b""], t),
                         pa.array([b"\0", None, b"\0"], pa.binary(1)), pa.array(rows)])
    assert k(pa.table({"z": pa.array(rows, t)})) == k(pa.table({"z": pa.chunked_array(
        [pa.array(rows[:1], t), pa.array(rows[1:], t)])}))


def test_booleans_at_any_bit_offset() -> None:
    rows = [True, False, None, True, True, False, False, True, None, True, False]
    base = pa.array([False] * 5 + rows + [True] * 3)
    for start in range(6):
        view = base.slice(start, len(rows))
        assert k(view) == k(pa.array(base.to_pylist()[start:start + len(rows)]))
    assert k(base.slice(5, len(rows))) == k(pa.array(rows))
    dense = pa.array([True, False, True] * 7)
    for start in range(1, 9):
        assert k(dense.slice(start, 11)) == k(pa.array(dense.to_pylist()[start:start + 11]))


# ---------------------------------------------------------------- chunking

def test_a_table_of_one_chunk_and_of_three_hit_each_other() -> None:
    t = pa.table({"x": list(range(10)), "s": [str(i) if i % 3 else None for i in range(10)],
                  "l": [[i] * (i % 3) for i in range(10)]})
    three = pa.concat_tables([t.slice(0, 3), t.slice(3, 4), t.slice(7)])
    assert three.column("x").num_chunks == 3
    assert k(three) == k(t) == k(three.combine_chunks())
    empty_chunks = pa.chunked_array([pa.array([], pa.int64()), pa.array([1, 2]),
                                     pa.array([], pa.int64())])
    assert k(empty_chunks) == k(pa.chunked_array([[1, 2]]))
    assert k(pa.chunked_array([], pa.int64())) == k(pa.chunked_array([pa.array([], pa.int64())]))


def test_containers_of_equal_rows_keep_their_own_keys() -> None:
    arr = pa.array([1, 2, 3])
    t = pa.table({"a": arr})
    assert all_distinct([arr, pa.chunked_array([arr]), t, pa.record_batch([arr], names=["a"]),
                         arr.to_pylist()])


# ---------------------------------------------------------------- types and schemas

def test_type_parameters_are_in_the_key() -> None:
    ints = [0, 1, 2]
    assert all_distinct([
        pa.array(ints, pa.timestamp("us", tz="UTC")),
        pa.array(ints, pa.timestamp("us", tz="Europe/Paris")),
        pa.array(ints, pa.timestamp("ns", tz="UTC")),
        pa.array(ints, pa.timestamp("us")),
        pa.array(ints, pa.duration("us")),
        pa.array(ints, pa.int64()),
        pa.array(ints, pa.uint64()),
        pa.array(ints, pa.int32()),
        pa.array(ints, pa.float64()),
        pa.array(ints, pa.decimal128(5, 0)),
        pa.array(ints, pa.decimal128(6, 0)),
        pa.array(ints, pa.decimal256(5, 0)),
        pa.array(ints, pa.time64("us")),
        pa.array(ints, pa.date32()),
        pa.array([str(i) for i in ints]),
        pa.array([str(i) for i in ints], pa.large_string()),
        pa.array([str(i) for i in ints], pa.string_view()),
        pa.array([str(i) for i in ints]).dictionary_encode(),
    ])
    fields = [pa.field("i", pa.int64()), pa.field("s", pa.string())]
    assert all_distinct([pa.sparse_union(fields), pa.sparse_union(fields, type_codes=[5, 7]),
                         pa.dense_union(fields), pa.dense_union(fields, type_codes=[5, 7])])


@pytest.mark.parametrize(("t", "kind"), [
    (pa.list_(pa.list_(pa.int8())), "list"),
    (pa.large_list(pa.list_(pa.int8())), "large_list"),
    (pa.list_view(pa.list_(pa.int8())), "list_view"),
    (pa.large_list_view(pa.list_(pa.int8())), "large_list_view"),
    (pa.sparse_union([pa.field("a", pa.list_(pa.int8()))]), "sparse_union"),
    (pa.dense_union([pa.field("a", pa.list_(pa.int8()))]), "dense_union"),
    (pa.time32("s"), "time32"),
    (pa.duration("ms"), "duration"),
    (pa.decimal128(9, 2), "decimal128"),
], ids=str)
def test_a_parameterised_type_is_written_under_the_name_of_its_kind(t: Any, kind: str) -> None:
    """A key format detail: ``list<item: list<item: int8>>`` is written as a ``list``, as
    ``list<item: int8>`` is (the golden table has flat types only)."""
    head = new_sink("blake3")
    head += T_PA_TYPE + b"("
    enc_str(kind, head)
    assert k(t).startswith(b"\x00" + bytes(head))


def test_field_names_nullability_and_metadata_are_in_the_key() -> None:
    rows = [{"a": 1}, {"a": 2}]
    assert all_distinct([
        pa.array(rows, pa.struct([pa.field("a", pa.int64())])),
        pa.array(rows, pa.struct([pa.field("a", pa.int64(), nullable=False)])),
        pa.array(rows, pa.struct([pa.field("a", pa.int64(), metadata={"unit": "m"})])),
        pa.array([{"b": 1}, {"b": 2}]),
    ])
    assert all_distinct([pa.list_(pa.int8()), pa.list_(pa.field("x", pa.int8())),
                         pa.large_list(pa.int8()), pa.list_(pa.int8(), 2),
                         pa.list_view(pa.int8()), pa.map_(pa.int8(), pa.int8()),
                         pa.map_(pa.int8(), pa.int8(), keys_sorted=True),
                         pa.dictionary(pa.int8(), pa.string()),
                         pa.dictionary(pa.int8(), pa.string(), ordered=True),
                         pa.dictionary(pa.int16(), pa.string())])
    f = pa.field("a", pa.int8())
    assert all_distinct([f, f.with_name("b"), f.with_nullable(False),
                         f.with_metadata({"k": "v"}), f.with_metadata({"k": "w"}),
                         f.with_type(pa.int16())])
    assert k(f.with_metadata({"a": "1", "b": "2"})) == k(pa.field("a", pa.int8(),
                                                                 metadata={"b": "2", "a": "1"}))


def test_schema_column_names_order_and_metadata_are_in_the_key() -> None:
    t = pa.table({"a": [1, 2], "b": [3.0, 4.0]})
    assert all_distinct([
        t,
        t.select(["b", "a"]),
        t.rename_columns(["a", "c"]),
        t.replace_schema_metadata({"source": "x"}),
        t.cast(pa.schema([pa.field("a", pa.int64(), nullable=False), pa.field("b", pa.float64())])),
        t.slice(1),
    ])
    assert all_distinct([t.schema, t.schema.with_metadata({"v": "1"}),
                         t.select(["b", "a"]).schema])


class _Units(pa.ExtensionType):
    """An extension type with a parameter (its unit), serialized into its metadata."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        super().__init__(pa.float64(), "infercache.test.units")

    def __arrow_ext_serialize__(self) -> bytes:
        return self.unit.encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> _Units:
        return cls(serialized.decode())


def test_extension_types_are_keyed_by_name_parameters_and_storage() -> None:
    storage = pa.array([1.5, None, 2.5])
    metres = pa.ExtensionArray.from_storage(_Units("m"), storage)
    assert k(metres) == k(pa.ExtensionArray.from_storage(_Units("m"), pa.array([1.5, None, 2.5])))
    assert all_distinct([metres, pa.ExtensionArray.from_storage(_Units("s"), storage), storage,
                         pa.ExtensionArray.from_storage(_Units("m"), pa.array([1.5, None, 3.0]))])
    ids = pa.array([b"0123456789abcdef", b"fedcba9876543210"], pa.binary(16))
    assert all_distinct([ids, pa.ExtensionArray.from_storage(pa.uuid(), ids)])
    assert all_distinct([
        pa.fixed_shape_tensor(pa.float32(), (2, 2)),
        pa.fixed_shape_tensor(pa.float32(), (2, 2), dim_names=["a,b", "c"]),
        pa.fixed_shape_tensor(pa.float32(), (2, 2), dim_names=["a", "b,c"]),
        pa.fixed_shape_tensor(pa.float32(), (2, 2), permutation=[1, 0]),
        pa.fixed_shape_tensor(pa.float32(), (4,)),
        pa.opaque(pa.int8(), "t", "v"),
        pa.opaque(pa.int8(), "t", "w"),
    ])


def test_dictionaries_are_keyed_by_their_values() -> None:
    a = pa.DictionaryArray.from_arrays(pa.array([0, 1, None, 0], pa.int32()), pa.array(["x", "y"]))
    b = pa.DictionaryArray.from_arrays(pa.array([1, 0, None, 1], pa.int32()),
                                       pa.array(["y", "x", "z"]))
    assert a.to_pylist() == b.to_pylist() == ["x", "y", None, "x"]
    assert k(a) == k(b)
    assert all_distinct([a, a.dictionary_decode(),
                         pa.array(["x", "y", None, "y"]).dictionary_encode()])


def test_run_end_encoded_and_view_layouts_are_keyed_by_their_values() -> None:
    pc = pytest.importorskip("pyarrow.compute")
    rows = [1, 1, 2, 2, 2, None, 3]
    ree = pc.run_end_encode(pa.array(rows))
    assert k(ree.slice(1, 4)) == k(pc.run_end_encode(pa.array(rows[1:5])))
    assert k(ree) != k(pc.run_end_encode(pa.array([1, 1, 2, 2, 3, None, 3])))
    views = pa.array(["a", None, "a long string past twelve bytes"], pa.string_view())
    assert k(views.slice(1)) == k(pa.array([None, "a long string past twelve bytes"],
                                           pa.string_view()))
    assert k(views) != k(views.cast(pa.large_string()))
    for view in (pa.list_view, pa.large_list_view):
        lv = pa.array([[1], [2, 3], None, [4]], view(pa.int32()))
        assert k(lv.slice(1)) == k(pa.array([[2, 3], None, [4]], view(pa.int32())))
        assert k(lv.slice(1, 2)) != k(pa.array([[2, 3], [4]], view(pa.int32())))


_UNIONS = {
    "sparse": lambda: pa.UnionArray.from_sparse(pa.array([0, 1], pa.int8()),
                                                [pa.array([1, 2]), pa.array(["a", "b"])]),
    "dense": lambda: pa.UnionArray.from_dense(pa.array([0, 1], pa.int8()),
                                              pa.array([0, 0], pa.int32()),
                                              [pa.array([1, 2]), pa.array(["a", "b"])]),
}
# Each value that can hold a union, and the path to the union inside it.
_HOLDING_A_UNION = {
    "array": (lambda u: u, ""),
    "chunked": (lambda u: pa.chunked_array([u]), ""),
    "scalar": (lambda u: u[1], ""),
    "table": (lambda u: pa.table({"u": u}), "['u']"),
    "batch": (lambda u: pa.record_batch([u], names=["u"]), "['u']"),
    "struct": (lambda u: pa.StructArray.from_arrays([u], names=["u"]), ""),
    "list": (lambda u: pa.ListArray.from_arrays(pa.array([0, 2], pa.int32()), u), ""),
    "fixed_size_list": (lambda u: pa.FixedSizeListArray.from_arrays(u, 2), ""),
}


@pytest.mark.parametrize("holder", _HOLDING_A_UNION)
@pytest.mark.parametrize("kind", _UNIONS)
def test_unions_are_refused_naming_the_value_and_the_column(kind: str, holder: str) -> None:
    union = _UNIONS[kind]()
    make, path = _HOLDING_A_UNION[holder]
    value = make(union)
    with pytest.raises(UnhashableError) as e:
        k(value)
    name = type(value).__name__
    reason = (f"its Arrow type {union.type} is a union, whose content infercache does not "
              f"key; cast it to a struct or pass key=")
    at = f"value{path}" if path else ""
    assert str(e.value) == refusal_message(f"pyarrow.lib.{name}", reason, name, at=at)
    assert (e.value.type, e.value.reason, e.value.path) == (type(value), reason, path)
    assert all_distinct([union.type, _UNIONS["dense" if kind == "sparse" else "sparse"]().type])


def _array_of(t: Any, rows: list[Any]) -> Any:
    if pa.types.is_run_end_encoded(t):
        pc = pytest.importorskip("pyarrow.compute")
        return pc.run_end_encode(pa.array(rows, t.value_type), run_end_type=t.run_end_type)
    return pa.array(rows, t)


# Types of every layout with three rows: a value, a null and another value (an empty
# one where the type has it, which a null must not be confused with).
_SCALAR_ROWS: list[tuple[Any, list[Any]]] = [
    (pa.list_(pa.int64()), [[1, 2], None, []]),
    (pa.large_list(pa.int64()), [[1, 2], None, []]),
    (pa.list_view(pa.int8()), [[1, None], None, []]),
    (pa.large_list_view(pa.int8()), [[1, None], None, []]),
    (pa.list_(pa.int8(), 2), [[1, 2], None, [None, 2]]),
    (pa.map_(pa.int8(), pa.int8()), [[(1, 2)], None, []]),
    (pa.struct([("a", pa.int8())]), [{"a": 1}, None, {"a": None}]),
    (pa.dictionary(pa.int8(), pa.string()), ["x", None, "y"]),
    (pa.string_view(), ["a long string past twelve bytes", None, ""]),
    (pa.run_end_encoded(pa.int32(), pa.int64()), [1, None, 2]),
    (pa.int64(), [1, None, 0]),
]


@pytest.mark.parametrize(("t", "rows"), _SCALAR_ROWS, ids=str)
def test_scalars_of_every_layout_key_like_the_same_row_of_another_array(t: Any,
                                                                       rows: list[Any]) -> None:
    forward, backward = _array_of(t, rows), _array_of(t, rows[::-1])
    n = len(rows)
    for i in range(n):
        assert k(forward[i]) == k(backward[n - 1 - i])
    assert all_distinct([forward[i] for i in range(n)])


@pytest.mark.parametrize("t", [pa.list_(pa.int8()), pa.large_list(pa.int8()),
                               pa.list_view(pa.int8()), pa.large_list_view(pa.int8()),
                               pa.map_(pa.int8(), pa.int8())], ids=str)
def test_a_null_list_and_an_empty_one_have_different_keys(t: Any) -> None:
    null, empty = pa.array([[], None, [], None], t), pa.array([None, [], None, []], t)
    assert all_distinct([null.slice(1, 1), empty.slice(1, 1), null, empty])
    assert k(null.slice(1)) == k(empty.slice(0, 3))


def test_scalars_by_type_and_value() -> None:
    assert k(pa.scalar(1)) == k(pa.scalar(1))
    assert k(pa.scalar([1, None])) == k(pa.array([[1, None], [2]])[0])
    assert all_distinct([pa.scalar(1), pa.scalar(2), pa.scalar(1, pa.int32()),
                         pa.scalar(None, pa.int64()), pa.scalar(None, pa.int32()),
                         pa.scalar("1"), pa.scalar(1.0), pa.scalar(-0.0), pa.scalar(0.0),
                         pa.array([1]), 1])


def test_nan_and_signed_zero_by_bits() -> None:
    assert k(pa.array([math.nan, 1.0])) == k(pa.array([float("nan"), 1.0]))
    assert all_distinct([pa.array([0.0]), pa.array([-0.0]), pa.array([math.nan]),
                         pa.array([None], pa.float64())])


# ---------------------------------------------------------------- process independence

_SCRIPT = textwrap.dedent(
    """
    import json
    import pyarrow as pa
    from infercache.keys import make_key
    t = pa.table({"i": [1, None, 3], "s": ["a", None, "ccc"], "l": [[1, 2], None, []],
                  "d": pa.array(["x", "y", "x"]).dictionary_encode(),
                  "ts": pa.array([0, 1, None], pa.timestamp("us", tz="Asia/Tokyo")),
                  "st": [{"a": 1.5}, None, {"a": -0.0}]},
                 metadata={"source": "test"})
    values = [t, t.column("s"), t.column("l").chunk(0).slice(1), pa.scalar(3),
              pa.ExtensionArray.from_storage(pa.uuid(), pa.array([b"0" * 16], pa.binary(16))),
              t.schema, pa.array(list(range(3000)))]
    print(json.dumps([make_key(v).hex() for v in values]))
    """
)


def test_keys_are_the_same_in_every_process() -> None:
    a = keys_in_process(_SCRIPT, "1")
    b = keys_in_process(_SCRIPT, "4242")
    here: dict[str, Any] = {}
    exec(_SCRIPT.replace("print(", "result = ("), here)  # noqa: S102 - the same values here
    assert a == b == json.loads(here["result"])


def test_arrow_values_are_keyed_in_a_process_that_never_imported_pyarrow_compute() -> None:
    """``import pyarrow`` does not load ``pyarrow.compute``, which the keys need; an array
    made from buffers does not load it either (``pa.array`` of Python values does)."""
    code = textwrap.dedent(
        """
        import json, struct, sys
        import pyarrow as pa
        from infercache.keys import make_key
        arr = pa.Array.from_buffers(pa.int64(), 3, [pa.py_buffer(bytes([0b101])),
                                                    pa.py_buffer(struct.pack("=3q", 1, 2, 3))])
        assert "pyarrow.compute" not in sys.modules
        print(json.dumps([make_key(arr).hex()]))
        """
    )
    assert keys_in_process(code, "0") == [k(pa.array([1, None, 3])).hex()]


def test_pyarrow_is_not_imported_to_key_other_values() -> None:
    code = textwrap.dedent(
        """
        import sys
        from infercache.keys import make_key
        make_key([1, "a", {"b": 2.0}])
        print(",".join(m for m in ("pyarrow", "polars") if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == ""


# ---------------------------------------------------------------- in a cache

def test_cached_function_tells_tables_apart_and_hits_on_equal_ones() -> None:
    calls: list[int] = []

    def total(table: Any) -> int:
        calls.append(1)
        return sum(v for v in table.column("x").to_pylist() if v is not None)

    f = ic.cache(total)
    assert f(pa.table({"x": [1, 2, 3]})) == 6
    assert f(pa.table({"x": [1, 2, 4]})) == 7
    assert f(pa.table({"x": [1, None, 4]})) == 5
    assert f(pa.concat_tables([pa.table({"x": [1, 2]}), pa.table({"x": [4]})])) == 7
    assert f(pa.table({"x": [0, 1, 2, 3]}).slice(1)) == 6
    assert len(calls) == 3
    assert f.cache.stats().hits == 2


# ---------------------------------------------------------------- no copy

def test_keying_a_large_numeric_table_copies_nothing() -> None:
    n = 1_000_000
    t = pa.table({"a": pa.array(range(n), pa.int64()), "b": pa.array(range(n), pa.float64()),
                  "c": pa.array(range(n), pa.int32())})
    data = sum(c.nbytes for c in t.columns)
    make_key(t)  # warm up: first-time resolution of types
    arrow_before = pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        make_key(t)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pa.total_allocated_bytes() == arrow_before
    assert peak < data / 100
