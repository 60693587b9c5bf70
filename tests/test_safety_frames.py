"""Mutation safety of frames, images and tensors: data, cells and metadata per caller."""

from __future__ import annotations

import datetime

import pytest

import infercache as ic
from infercache.safety import protect, release

np = pytest.importorskip("numpy")


# --------------------------------------------------------------------------- pandas


@pytest.fixture(scope="module")
def pd():
    return pytest.importorskip("pandas")


def test_series_array_writes_do_not_reach_the_cache(pd):
    # Series.array exposes the block's own numpy array, bypassing copy-on-write:
    # a shallow copy per hit let one caller's write reach every later caller.
    kept = protect(pd.Series([1.0, 2.0, 3.0]))
    release(kept).array[0] = 99.0
    assert release(kept).tolist() == [1.0, 2.0, 3.0]
    kept_df = protect(pd.DataFrame({0: [1.0, 2.0], 1: [3.0, 4.0]}))  # non-string labels
    release(kept_df)[0].array[0] = 99.0
    assert release(kept_df)[0].tolist() == [1.0, 2.0]


def test_writing_to_a_nullable_series_hit_does_not_reach_the_cache(pd):
    @ic.cache
    def counts(k):
        return pd.Series([1, 2], dtype="Int64")

    counts(1)
    hit = counts(1)
    hit.values[0] = 99
    assert counts(1).tolist() == [1, 2]


def test_writing_to_a_nullable_frame_column_hit_does_not_reach_the_cache(pd):
    @ic.cache
    def frame(k):
        return pd.DataFrame({"a": pd.array([1, 2], dtype="Int64")})

    frame(1)
    frame(1)["a"].values[0] = 99
    assert frame(1)["a"].tolist() == [1, 2]


def test_object_cells_are_copied_per_caller(pd):
    big = np.arange(100.0)
    value = pd.DataFrame(
        {"n": [1, 2], "o": [[1, 2], {"k": [3]}], "v": [big[:10], big[10:20]]},
        index=pd.Index(["a", "b"], name="I"),
    )
    kept = protect(value)
    hit = release(kept)
    hit.loc["a", "o"].append(99)
    hit.loc["b", "o"]["k"].append(99)
    hit.loc["a", "v"].shape = (2, 5)
    again = release(kept)
    assert again.loc["a", "o"] == [1, 2] and again.loc["b", "o"] == {"k": [3]}
    assert again.loc["a", "v"].shape == (10,)
    assert list(again.columns) == ["n", "o", "v"] and again.dtypes["o"] == np.dtype(object)
    # the producer's objects are not the kept ones either
    value.loc["a", "o"].append(-1)
    assert release(kept).loc["a", "o"] == [1, 2]


def test_object_series_and_index_cells(pd):
    s = pd.Series([[1], [2]], index=pd.Index([("x", 1), ("y", 2)], tupleize_cols=False), name="s")
    kept = protect(s)
    release(kept).iloc[0].append(9)
    again = release(kept)
    assert again.iloc[0] == [1] and again.name == "s" and list(again.index) == [("x", 1), ("y", 2)]


def test_cached_function_frame_cells_and_index_name(pd):
    @ic.cache
    def table(n):
        return pd.DataFrame({"tags": [["a"] for _ in range(n)]}, index=pd.Index(range(n), name="row"))

    table(2)  # the miss
    hit = table(2)
    hit.iloc[0, 0].append("leaked")
    hit.index.name = "renamed"
    hit.columns.name = "renamed"
    hit.attrs["note"] = "leaked"
    again = table(2)
    assert again.iloc[0, 0] == ["a"]
    assert again.index.name == "row" and again.columns.name is None
    assert again.attrs == {}


def test_index_hits_have_their_own_metadata(pd):
    kept = protect(pd.Index([1, 2, 3], name="n"))
    hit = release(kept)
    hit.name = "changed"
    assert release(kept).name == "n"
    mi = protect(pd.MultiIndex.from_arrays([[1, 2], ["a", "b"]], names=["x", "y"]))
    release(mi).names = ["p", "q"]
    assert list(release(mi).names) == ["x", "y"]


def test_lookups_on_hits_do_not_grow_the_kept_frame(pd):
    # pandas builds an index's hash-table engine on first lookup and keeps it
    # in a cache dict that its copies share: the kept frame must not grow
    # (past its charged size) because callers look things up.
    from infercache.sizes import sizeof

    kept = protect(pd.DataFrame({"a": np.arange(10_000.0)}, index=np.arange(10_000) * 2))
    before = sizeof(kept)
    for _ in range(3):
        hit = release(kept)
        hit.loc[4]
        hit.index.get_loc(6)
    assert sizeof(kept) <= before


def test_lookups_on_multiindex_hits_do_not_grow_the_kept_frame(pd):
    # A MultiIndex's levels are indexes with lookup caches of their own.
    from infercache.sizes import sizeof

    index = pd.MultiIndex.from_arrays([np.arange(5_000) * 2, np.arange(5_000) % 7], names=["a", "b"])
    produced = pd.DataFrame({"x": np.arange(5_000.0)}, index=index)
    kept = protect(produced)
    before = sizeof(kept)
    for frame in (release(kept), release(kept), produced):
        frame.loc[(4, 2)]
        frame.index.levels[0].get_loc(6)
        frame.index.levels[1].get_loc(3)
        frame.index.get_locs([[8, 10], slice(None)])
    assert sizeof(kept) <= before


def test_mutable_objects_in_index_levels_and_categories_are_refused(pd):
    class Tag:
        def __init__(self, name):
            self.name = name

    mi = pd.MultiIndex.from_arrays([[Tag("a"), Tag("b")], [1, 2]])
    with pytest.raises(TypeError, match="MultiIndex level"):
        protect(pd.Series([1, 2], index=mi))
    cat = pd.Series(pd.Categorical([Tag("a"), Tag("b")]))
    with pytest.raises(TypeError, match="categories"):
        protect(cat)


def test_index_levels_of_immutable_objects_are_kept(pd):
    # Object-dtype levels (pandas 3 makes str levels of plain strings: these are asked for):
    # all strings, and a mix of values shared as they are, one of them falsy.
    for level in (["a", "b"], [datetime.datetime(2020, 1, 1), ""]):
        mi = pd.MultiIndex.from_arrays([pd.Index(level, dtype=object), [1, 2]])
        hit = release(protect(pd.Series([1.0, 2.0], index=mi)))
        assert list(hit.index) == list(mi) and hit.index.levels[0].dtype == object


def test_refusing_a_multiindex_level_of_mutable_objects_says_why(pd):
    class Tag:
        def __init__(self, name):
            self.name = name

    mi = pd.MultiIndex.from_arrays([[Tag("a"), Tag("b")], [1, 2]])
    with pytest.raises(TypeError) as refused:
        protect(pd.Series([1, 2], index=mi))
    assert str(refused.value) == (
        "a pandas MultiIndex level holding mutable Python objects cannot be cached "
        "(its elements cannot be copied per caller)"
    )


def test_a_categorical_index_is_kept_unless_its_categories_are_mutable_objects(pd):
    class Tag:
        def __init__(self, name):
            self.name = name

    kept = protect(pd.Series([1.0, 2.0], index=pd.CategoricalIndex(["a", "b"], name="k")))
    hit = release(kept)
    assert list(hit.index) == ["a", "b"] and hit.index.name == "k"
    assert isinstance(hit.index.dtype, pd.CategoricalDtype)
    with pytest.raises(TypeError, match="categories holding mutable Python objects"):
        protect(pd.Series([1.0, 2.0], index=pd.CategoricalIndex([Tag("a"), Tag("b")])))


def test_the_producers_lookups_do_not_grow_the_kept_frame(pd):
    # The kept copy's index must not share the producer's lookup cache either.
    from infercache.sizes import sizeof

    produced = pd.DataFrame({"a": np.arange(10_000.0)}, index=np.arange(10_000) * 2)
    kept = protect(produced)
    before = sizeof(kept)
    produced.loc[4]
    produced.index.get_loc(6)
    assert sizeof(kept) <= before


def test_refusing_mutable_categories_says_why(pd):
    class Tag:
        def __init__(self, name):
            self.name = name

    cat = pd.Series(pd.Categorical([Tag("a"), Tag("b")]))
    with pytest.raises(TypeError) as refused:
        protect(cat)
    assert str(refused.value) == (
        "pandas categories holding mutable Python objects cannot be cached "
        "(they cannot be copied per caller)"
    )


def test_extension_dtypes_round_trip(pd):
    frame = pd.DataFrame(
        {
            "i": pd.array([1, None, 3], dtype="Int64"),
            "c": pd.Categorical(["x", "y", "x"]),
            "t": pd.date_range("2024", periods=3, tz="UTC"),
            "s": pd.array(["a", None, "c"], dtype="string"),
        }
    )
    kept = protect(frame)
    hit = release(kept)
    hit.iloc[0, 0] = 100
    hit["c"] = hit["c"].cat.add_categories(["z"])
    pd.testing.assert_frame_equal(release(kept), frame)


# --------------------------------------------------------------------------- polars and pyarrow


def test_polars_frame_built_from_numpy_is_kept_in_its_own_buffers():
    pl = pytest.importorskip("polars")
    data = np.arange(5.0)
    series = pl.Series("x", data)  # zero copy: shares the numpy memory
    kept = protect(series)
    data[0] = 100.0  # the producer keeps writing to its array
    assert release(kept).to_list() == [0.0, 1.0, 2.0, 3.0, 4.0]
    frame_kept = protect(pl.DataFrame({"a": [1, 2]}))
    hit = release(frame_kept)
    hit.columns = ["renamed"]
    hit[0, "renamed"] = 99
    assert release(frame_kept).to_dict(as_series=False) == {"a": [1, 2]}


def test_polars_object_columns_are_refused():
    pl = pytest.importorskip("polars")
    with pytest.raises(TypeError, match="Object column"):
        protect(pl.Series("o", [[1], [2]], dtype=pl.Object))


def test_refusing_a_polars_object_column_says_why():
    pl = pytest.importorskip("polars")
    with pytest.raises(TypeError) as refused:
        protect(pl.DataFrame({"o": pl.Series("o", [[1], [2]], dtype=pl.Object)}))
    assert str(refused.value).endswith(
        "a polars object with an Object column cannot be cached "
        "(its Python objects cannot be copied per caller)"
    )


def test_an_empty_arrow_table_is_kept_with_its_schema():
    pa = pytest.importorskip("pyarrow")
    empty = pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.string())})
    assert empty.to_batches() == []  # no batch carries the schema
    out = release(protect(empty))
    assert out.schema == empty.schema and out.num_rows == 0


def test_arrow_array_over_numpy_is_kept_in_immutable_buffers():
    pa = pytest.importorskip("pyarrow")
    data = np.arange(5)
    arr = pa.array(data)  # zero copy
    kept = protect({"arr": arr, "table": pa.table({"x": arr}), "chunks": pa.chunked_array([arr, arr])})
    data[0] = 100
    hit = release(kept)
    assert hit["arr"].to_pylist() == [0, 1, 2, 3, 4]
    assert hit["table"].column("x").to_pylist() == [0, 1, 2, 3, 4]
    assert hit["chunks"].num_chunks == 2
    for buf in hit["arr"].buffers():
        if buf is not None:
            assert not buf.is_mutable
            assert memoryview(buf).readonly  # no caller can write through it


def test_arrow_record_batch_and_slices():
    pa = pytest.importorskip("pyarrow")
    batch = pa.record_batch({"x": pa.array(range(100))})
    kept = protect(batch.slice(10, 5))
    hit = release(kept)
    assert isinstance(hit, pa.RecordBatch) and hit.column(0).to_pylist() == list(range(10, 15))


# --------------------------------------------------------------------------- PIL and torch


def test_pil_info_values_are_per_caller():
    Image = pytest.importorskip("PIL.Image")
    im = Image.new("RGB", (2, 2))
    im.info["meta"] = {"tags": ["a"]}
    kept = protect(im)
    hit = release(kept)
    hit.info["meta"]["tags"].append("leaked")
    hit.info["new"] = 1
    im.info["meta"]["tags"].append("producer")
    assert release(kept).info == {"meta": {"tags": ["a"]}}


def test_tensor_autograd_metadata_is_per_caller():
    torch = pytest.importorskip("torch")
    kept = protect({"t": torch.ones(3)})
    hit = release(kept)
    hit["t"].requires_grad_(True)
    hit["t"].grad = torch.zeros(3)
    again = release(kept)
    assert not again["t"].requires_grad and again["t"].grad is None


def test_an_index_of_mutable_objects_comes_back_an_object_index_with_its_name_and_copies(pd):
    class Tag:
        def __init__(self, name):
            self.name = name

    index = pd.Index([Tag("a"), Tag("b")], dtype=object, name="tags")
    out = release(protect(index))
    assert type(out) is pd.Index and out.dtype == object and out.name == "tags"
    assert [t.name for t in out] == ["a", "b"] and out[0] is not index[0]
    series = pd.Series([1, 2], index=pd.Index([Tag("x"), Tag("y")], dtype=object, name="who"))
    hit = release(protect(series))
    assert hit.index.dtype == object and hit.index.name == "who"
    assert [t.name for t in hit.index] == ["x", "y"] and hit.index[0] is not series.index[0]
    assert hit.to_list() == [1, 2]


class _Stamp(datetime.datetime):
    """A datetime with a ``__dict__``: state of its own, so copied per caller."""


def test_object_axes_of_mutable_datetimes_come_back_object_axes_with_their_names(pd):
    # pandas would read such elements as datetimes: rebuilt, they stay objects.
    stamps = [_Stamp(2020, 1, 1), _Stamp(2021, 6, 1)]

    def axis(name):
        return pd.Index(stamps, dtype=object, name=name)

    index = release(protect(axis("when")))
    frame = release(protect(pd.DataFrame([[1, 2], [3, 4]], index=axis("rows"), columns=axis("cols"))))
    series = release(protect(pd.Series([1, 2], index=axis("at"))))
    for out, name in ((index, "when"), (frame.index, "rows"), (frame.columns, "cols"), (series.index, "at")):
        assert type(out) is pd.Index and out.dtype == object and out.name == name
        assert list(out) == stamps and all(type(x) is _Stamp for x in out) and out[0] is not stamps[0]
    assert frame.to_numpy().tolist() == [[1, 2], [3, 4]] and series.to_list() == [1, 2]
