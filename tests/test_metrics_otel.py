"""OpenTelemetry export: observable instruments read ``ic.stats()`` when the SDK's reader collects.

The SDK (a test dependency only) with its ``InMemoryMetricReader`` stands
for an app's configured pipeline; every data point of a cache must equal
``ic.stats()`` for that cache exactly.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View

import infercache as ic
from infercache.metrics import otel

Points = dict[tuple[str, frozenset[tuple[str, str]]], float]


def collect(reader: InMemoryMetricReader, caches: set[str]) -> tuple[Points, dict[str, tuple[str, bool | None]]]:
    """Data points of ``caches`` by (instrument, attributes); and each instrument's (unit, monotonic)."""
    points: Points = {}
    kinds: dict[str, tuple[str, bool | None]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "infercache" and scope.scope.version == ic.__version__
            for metric in scope.metrics:
                kinds[metric.name] = (metric.unit or "", getattr(metric.data, "is_monotonic", None))
                for point in metric.data.data_points:
                    attributes = {k: str(v) for k, v in (point.attributes or {}).items()}
                    if attributes.get("cache") in caches:
                        points[metric.name, frozenset(attributes.items())] = point.value  # type: ignore[union-attr]
    return points, kinds


def expected_points(name: str, data: dict[str, Any]) -> Points:
    """Every data point one cache must have, written from ``ic.stats()[name]`` by hand."""

    def key(instrument: str, **attributes: str) -> tuple[str, frozenset[tuple[str, str]]]:
        return instrument, frozenset({"cache": name, **attributes}.items())

    out: Points = {}
    for tier in ["memory", *data["tiers"]]:
        out[key("infercache.requests", tier=tier, result="hit")] = data["hits_by_tier"].get(tier, 0)
    out[key("infercache.requests", tier="", result="miss")] = data["misses"]
    out[key("infercache.requests", tier="", result="join")] = data["joins"]
    out[key("infercache.requests", tier="", result="remote_join")] = data["remote_joins"]
    for reason, count in data["evicted"].items():
        out[key("infercache.evictions", reason=reason)] = count
    out[key("infercache.entries")] = data["size"]
    out[key("infercache.memory")] = data["memory"]
    if data["max_size"]:
        out[key("infercache.max_entries")] = data["max_size"]
    if data["max_memory"] is not None:
        out[key("infercache.max_memory")] = data["max_memory"]
    out[key("infercache.saved")] = data["saved_seconds"]
    out[key("infercache.compute")] = data["compute_seconds"]
    out[key("infercache.computations")] = data["computations"]
    out[key("infercache.tier_errors")] = data["tier_errors"]
    out[key("infercache.verification_failures")] = data["verification_failures"]
    return out


@pytest.fixture
def reader() -> InMemoryMetricReader:
    reader = InMemoryMetricReader()
    # Earlier tests leave hundreds of live caches (7 eviction series each): past the SDK's default
    # limit of 2000 series per instrument the rest would fold into one overflow series.
    views = [View(instrument_name="infercache.*", aggregation_cardinality_limit=1_000_000)]
    otel.instrument(MeterProvider(metric_readers=[reader], views=views))
    return reader


def test_the_in_memory_reader_sees_exactly_what_ic_stats_says(reader: InMemoryMetricReader) -> None:
    plain, bounded, manual = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("plain", "bounded", "manual"))

    @ic.cache(name=plain, max_size=0)
    def double(x: int) -> int:
        return 2 * x

    @ic.cache(name=bounded, max_size=2, max_memory="1mb")
    def triple(x: int) -> int:
        return 3 * x

    c = ic.Cache(name=manual, per_session=True)
    for x in (1, 1, 2, 1):
        double(x)
    for x in (1, 2, 3, 1, 3):
        triple(x)
    for session in ("alice", "bob"):
        with ic.session(session):
            c.set("k", v=1)
            assert c.get("k") == {"v": 1}
    ic.clear_session("alice")

    stats = ic.stats()
    points, kinds = collect(reader, {plain, bounded, manual})
    assert stats[bounded]["evicted"]["size"] == 2 and stats[manual]["evicted"]["session"] == 1
    expected = {**expected_points(plain, stats[plain]), **expected_points(bounded, stats[bounded])}
    expected.update(expected_points(manual, stats[manual]))
    assert points == expected
    assert kinds["infercache.requests"] == ("{request}", True)
    assert kinds["infercache.saved"] == ("s", True)
    assert kinds["infercache.memory"] == ("By", False)
    assert kinds["infercache.entries"] == ("{entry}", False)


def test_values_are_read_at_each_collection(reader: InMemoryMetricReader) -> None:
    name = f"live-{uuid.uuid4().hex[:8]}"

    @ic.cache(name=name)
    def f(x: int) -> int:
        return x

    f(1)
    first, _ = collect(reader, {name})
    f(1)
    f(2)
    second, _ = collect(reader, {name})
    hit = ("infercache.requests", frozenset({"cache": name, "tier": "memory", "result": "hit"}.items()))
    assert (first[hit], second[hit]) == (0, 1)
    assert second == expected_points(name, ic.stats()[name])


def test_instrument_is_once_per_provider() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    made = otel.instrument(provider)
    assert otel.instrument(provider) is made
    assert len(made) == 11
    name = f"once-{uuid.uuid4().hex[:8]}"

    @ic.cache(name=name)
    def f(x: int) -> int:
        return x

    f(1)
    data = reader.get_metrics_data()
    assert data is not None
    names = [m.name for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics]
    assert len(names) == len(set(names))  # one instrument each, not one per call of instrument()
