"""Keys of polars values: DataFrames and Series by content, LazyFrames refused."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import struct
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keys_fixtures import all_distinct, k, keys_in_process, refusal_message

import infercache as ic
from infercache.keys import UnhashableError, make_key

pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")
parametric = pytest.importorskip("polars.testing.parametric")


def exact(v: Any) -> Any:
    """A value in which floats compare by their bits (so -0.0 != 0.0, NaN == NaN)."""
    if isinstance(v, float):
        return ("float", struct.pack("<d", v))
    if isinstance(v, (list, tuple)):
        return [exact(x) for x in v]
    if isinstance(v, dict):
        return [(a, exact(b)) for a, b in v.items()]
    return v


def same_series(a: Any, b: Any) -> bool:
    return a.name == b.name and a.dtype == b.dtype and exact(a.to_list()) == exact(b.to_list())


def same_frame(a: Any, b: Any) -> bool:
    return a.shape == b.shape and all(
        same_series(x, y) for x, y in zip(a.get_columns(), b.get_columns()))


def rechunked(s: Any, cuts: list[int]) -> Any:
    """``s`` as several chunks, cut at ``cuts``."""
    bounds = [0, *sorted(cuts), len(s)]
    parts = [s.slice(a, b - a) for a, b in itertools.pairwise(bounds)]
    return pl.concat(parts, rechunk=False)


# Object columns are keyed by their elements' own rules, tested separately.
_EXCLUDED = [pl.Object]
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------- properties

@SETTINGS
@given(parametric.series(max_size=8, excluded_dtypes=_EXCLUDED), st.data())
def test_series_key_does_not_depend_on_chunks_or_slices(s: Any, data: st.DataObject) -> None:
    key = k(s)
    assert key == k(s.rechunk()) == k(s.clone())
    cuts = data.draw(st.lists(st.integers(0, len(s)), max_size=3))
    assert key == k(rechunked(s, cuts))
    if len(s) >= 2:
        view = s.slice(1, len(s) - 2)
        rebuilt = pl.Series(view.name, view.to_list(), dtype=view.dtype)
        if same_series(view, rebuilt):
            assert k(view) == k(rebuilt)


@SETTINGS
@given(parametric.series(max_size=6, excluded_dtypes=_EXCLUDED),
       parametric.series(max_size=6, excluded_dtypes=_EXCLUDED))
def test_series_share_a_key_only_when_name_dtype_and_values_are_equal(a: Any, b: Any) -> None:
    assert (k(a) == k(b)) == same_series(a, b)


@SETTINGS
@given(parametric.series(min_size=1, max_size=6, excluded_dtypes=_EXCLUDED), st.data())
def test_changing_a_series_changes_its_key(s: Any, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(s) - 1))
    null = pl.Series(s.name, [None], dtype=s.dtype)
    nulled = pl.concat([s.slice(0, i), null, s.slice(i + 1)], rechunk=False)
    assert (k(nulled) == k(s)) == same_series(nulled, s)
    assert (k(s.reverse()) == k(s)) == same_series(s.reverse(), s)
    assert k(s.rename(s.name + "_")) != k(s)


@SETTINGS
@given(parametric.dataframes(max_cols=4, max_size=6, excluded_dtypes=_EXCLUDED), st.data())
def test_frame_key_does_not_depend_on_chunks(df: Any, data: st.DataObject) -> None:
    key = k(df)
    assert key == k(df.rechunk()) == k(df.clone())
    cuts = sorted(data.draw(st.lists(st.integers(0, df.height), max_size=3)))
    bounds = [0, *cuts, df.height]
    parts = [df.slice(a, b - a) for a, b in itertools.pairwise(bounds)]
    assert key == k(pl.concat(parts, rechunk=False))


@SETTINGS
@given(parametric.dataframes(max_cols=3, max_size=4, excluded_dtypes=_EXCLUDED),
       parametric.dataframes(max_cols=3, max_size=4, excluded_dtypes=_EXCLUDED))
def test_frames_share_a_key_only_when_equal(a: Any, b: Any) -> None:
    assert (k(a) == k(b)) == same_frame(a, b)


# ---------------------------------------------------------------- data types

def test_dtype_parameters_are_in_the_key() -> None:
    assert all_distinct([
        pl.Series("x", ["a", "b", "a"]),
        pl.Series("x", ["a", "b", "a"], dtype=pl.Categorical),
        pl.Series("x", ["a", "b", "a"], dtype=pl.Enum(["a", "b"])),
        pl.Series("x", ["a", "b", "a"], dtype=pl.Enum(["b", "a"])),
        pl.Series("x", ["a", "b", "a"], dtype=pl.Enum(["a", "b", "c"])),
        pl.Series("x", [b"a", b"b", b"a"]),
    ])
    when = [dt.datetime(2024, 1, 1), dt.datetime(2024, 6, 1)]
    assert all_distinct([
        pl.Series("t", when, dtype=pl.Datetime("us")),
        pl.Series("t", when, dtype=pl.Datetime("ns")),
        pl.Series("t", when, dtype=pl.Datetime("ms")),
        pl.Series("t", when, dtype=pl.Datetime("us", "UTC")),
        pl.Series("t", when, dtype=pl.Datetime("us", "Europe/Paris")),
        pl.Series("t", when).dt.replace_time_zone("America/New_York"),
        pl.Series("t", [d.date() for d in when]),
    ])
    numbers = [decimal.Decimal("1.50"), decimal.Decimal("2.25")]
    assert all_distinct([
        pl.Series("d", numbers, dtype=pl.Decimal(10, 2)),
        pl.Series("d", numbers, dtype=pl.Decimal(10, 3)),
        pl.Series("d", numbers, dtype=pl.Decimal(12, 2)),
        pl.Series("d", [1.5, 2.25]),
        pl.Series("d", [1.5, 2.25], dtype=pl.Float32),
    ])
    assert all_distinct([
        pl.Series("l", [[1, 2], [3, 4]]),
        pl.Series("l", [[1, 2], [3, 4]], dtype=pl.Array(pl.Int64, 2)),
        pl.Series("l", [[1, 2], [3, 4]], dtype=pl.List(pl.Int32)),
        pl.Series("l", [{"a": 1, "b": 2}, {"a": 3, "b": 4}]),
        pl.Series("l", [{"b": 1, "a": 2}, {"b": 3, "a": 4}]),
        pl.Series("l", [{"a": 1, "c": 2}, {"a": 3, "c": 4}]),
    ])
    assert all_distinct([pl.Datetime("us"), pl.Datetime("us", "UTC"), pl.Datetime("ns"),
                         pl.Enum(["a"]), pl.Enum(["a", "b"]), pl.Categorical(),
                         pl.List(pl.Int8), pl.Array(pl.Int8, 2), pl.Array(pl.Int8, 3),
                         pl.Decimal(5, 2), pl.Struct({"a": pl.Int8}), pl.Int8(), pl.Int8])


def test_arrays_of_width_zero_with_nulls_are_keyed() -> None:
    s = pl.Series("a", [[], None, []], dtype=pl.Array(pl.Int8, 0))
    assert k(s) == k(pl.Series("a", [[], None, []], dtype=pl.Array(pl.Int8, 0)))
    assert all_distinct([s, pl.Series("a", [[], [], []], dtype=pl.Array(pl.Int8, 0)),
                         pl.Series("a", [None, [], []], dtype=pl.Array(pl.Int8, 0))])


def test_nulls_names_and_column_order_are_in_the_key() -> None:
    df = pl.DataFrame({"a": [1, 2, 3], "b": ["x", None, "z"]})
    assert all_distinct([
        df,
        df.select("b", "a"),
        df.rename({"a": "c"}),
        df.with_columns(pl.col("a").cast(pl.Int32)),
        df.with_columns(pl.lit(None, pl.Int64).alias("a")),
        df.with_columns(pl.Series("b", ["x", "", "z"])),
        df.head(2),
        df["a"],
        df.to_arrow(),
    ])
    s = pl.Series("a", [1, None, 3])
    assert all_distinct([s, s.rename("b"), pl.Series("a", [1, 0, 3]), pl.Series("a", [None, 1, 3]),
                         s.fill_null(strategy="forward")])


def test_categoricals_are_keyed_by_their_strings() -> None:
    # Physical codes depend on the order strings were first seen; keys must not.
    pl.Series(["zebra", "yak"], dtype=pl.Categorical)
    late = pl.Series("c", ["yak", None, "apple", "zebra"], dtype=pl.Categorical)
    assert k(late) == k(pl.Series("c", ["yak", None, "apple", "zebra"], dtype=pl.Categorical))
    assert k(late) != k(pl.Series("c", ["zebra", None, "apple", "yak"], dtype=pl.Categorical))


def test_columns_polars_cannot_export_are_keyed_by_value() -> None:
    big = pl.Series("i", [2**100, -1], dtype=pl.Int128)
    assert k(big) == k(pl.Series("i", [2**100, -1], dtype=pl.Int128))
    assert all_distinct([big, pl.Series("i", [2**100 + 1, -1], dtype=pl.Int128),
                         pl.Series("i", [2**100, 1], dtype=pl.Int128),
                         pl.Series("i", [2**100, None], dtype=pl.Int128)])
    objects = pl.Series("o", [1, "a", (2, 3)], dtype=pl.Object)
    assert k(objects) == k(pl.Series("o", [1, "a", (2, 3)], dtype=pl.Object))
    assert k(objects) != k(pl.Series("o", [1, "a", (2, 4)], dtype=pl.Object))
    with pytest.raises(UnhashableError, match=r"\[1\]"):
        k(pl.Series("o", [1, threading.Lock()], dtype=pl.Object))


# ---------------------------------------------------------------- refusals

def _refusal(t: type, reason: str, path: str = "") -> str:
    """The whole message of the ``UnhashableError`` for a value (not a parameter)."""
    return refusal_message(f"{t.__module__}.{t.__qualname__}", reason, t.__qualname__,
                           at=f"value{path}" if path else "")


def test_lazy_frames_are_refused_with_how_to_key_them() -> None:
    lazy = pl.DataFrame({"a": [1, 2]}).lazy().filter(pl.col("a") > 1)
    with pytest.raises(UnhashableError) as err:
        k(lazy)
    reason = ("it is a query, not data: what it returns depends on the files or other sources it "
              "reads when collected, which its plan does not hold. Collect it first "
              "(lf.collect()) and pass the DataFrame")
    assert str(err.value) == _refusal(pl.LazyFrame, reason)
    assert (err.value.type, err.value.reason, err.value.path) == (pl.LazyFrame, reason, "")
    with pytest.raises(UnhashableError, match="collect"):
        ic.cache(lambda lf: lf.collect())(lazy)


def test_expressions_are_refused() -> None:
    expr = pl.col("a") + 1
    with pytest.raises(UnhashableError) as err:
        k(expr)
    reason = ("it is a computation, not data (it may call Python functions); pass key= with what "
              "identifies it, for example str(expr)")
    assert str(err.value) == _refusal(pl.Expr, reason)
    assert (err.value.type, err.value.reason, err.value.path) == (pl.Expr, reason, "")


def test_a_frame_with_a_value_that_cannot_be_keyed_is_refused_naming_column_and_row() -> None:
    lock = threading.Lock()
    df = pl.DataFrame({"a": [1, 2], "o": pl.Series("o", [1, lock], dtype=pl.Object)})
    with pytest.raises(UnhashableError) as err:
        k(df)
    reason = "locks are synchronisation objects, not data"
    assert str(err.value) == _refusal(type(lock), reason, "['o'][1]")
    assert (err.value.type, err.value.reason, err.value.path) == (type(lock), reason, "['o'][1]")


# ---------------------------------------------------------------- process independence

_SCRIPT = textwrap.dedent(
    """
    import datetime, decimal, json
    import polars as pl
    from infercache.keys import make_key
    pl.Series(["shifts", "the", "category", "codes"], dtype=pl.Categorical)
    df = pl.DataFrame({
        "i": [1, None, 3],
        "s": ["a", None, "ccc"],
        "c": pl.Series(["x", "y", "x"], dtype=pl.Categorical),
        "e": pl.Series(["x", "y", None], dtype=pl.Enum(["y", "x"])),
        "t": pl.Series([datetime.datetime(2024, 1, 1)] * 3, dtype=pl.Datetime("ns", "Asia/Tokyo")),
        "d": pl.Series([decimal.Decimal("1.5")] * 3, dtype=pl.Decimal(9, 2)),
        "l": [[1, 2], None, []],
        "st": [{"a": 1.5}, None, {"a": -0.0}],
        "a": pl.Series([[1, 2], [3, 4], None], dtype=pl.Array(pl.Int16, 2)),
    })
    values = [df, df["c"], pl.concat([df, df], rechunk=False), pl.Series(range(5000)),
              df.schema, pl.Datetime("us", "UTC")]
    print(json.dumps([make_key(v).hex() for v in values]))
    """
)


def test_keys_are_the_same_in_every_process() -> None:
    a = keys_in_process(_SCRIPT, "3")
    b = keys_in_process(_SCRIPT, "271828")
    here: dict[str, Any] = {}
    exec(_SCRIPT.replace("print(", "result = ("), here)  # noqa: S102 - the same values here
    assert a == b == json.loads(here["result"])


def test_polars_is_not_imported_to_key_arrow_values() -> None:
    code = textwrap.dedent(
        """
        import sys
        import pyarrow as pa
        from infercache.keys import make_key
        make_key(pa.table({"a": [1]}))
        print("polars" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == "False"


# ---------------------------------------------------------------- in a cache

def test_cached_function_tells_frames_apart_and_hits_on_equal_ones() -> None:
    calls: list[int] = []

    def total(df: Any) -> int:
        calls.append(1)
        return int(df["x"].sum())

    f = ic.cache(total)
    assert f(pl.DataFrame({"x": [1, 2, 3]})) == 6
    assert f(pl.DataFrame({"x": [1, 2, 4]})) == 7
    assert f(pl.DataFrame({"x": [1, 2, 4]}, schema={"x": pl.Int32})) == 7
    assert f(pl.DataFrame({"y": [1, 2, 4]}).rename({"y": "x"})) == 7
    assert f(pl.concat([pl.DataFrame({"x": [1]}), pl.DataFrame({"x": [2, 3]})],
                       rechunk=False)) == 6
    assert len(calls) == 3
    assert f.cache.stats().hits == 2

    g = ic.cache(lambda s: s.to_list())
    assert g(pl.Series("s", ["b", "a"], dtype=pl.Categorical)) == ["b", "a"]
    assert g(pl.Series("s", ["a", "b"], dtype=pl.Categorical)) == ["a", "b"]
    assert g(pl.Series("s", ["b", "a"], dtype=pl.Categorical)) == ["b", "a"]
    assert g.cache.stats().hits == 1


# ---------------------------------------------------------------- no copy

def test_keying_a_large_numeric_frame_copies_nothing() -> None:
    """polars hands its buffers to Arrow without copying; keying them then
    allocates nothing in Arrow's pool and nothing sizeable in Python."""
    n = 1_000_000
    df = pl.DataFrame({"a": pl.int_range(n, eager=True), "b": pl.int_range(n, eager=True) * 0.5,
                       "c": pl.int_range(n, eager=True).cast(pl.Int32)})
    make_key(df)  # warm up: first-time resolution of types
    arrow_before = pa.total_allocated_bytes()
    tracemalloc.start()
    try:
        make_key(df)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pa.total_allocated_bytes() == arrow_before
    assert peak < df.estimated_size() / 100
