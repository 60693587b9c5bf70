"""What every exporter publishes: metric families read from :func:`infercache.stats`.

One table, :data:`FAMILIES`, says which counter of a cache's stats each
family reads, whether it only grows (``counter``) or is a current value
(``gauge``), its unit and its labels besides ``cache``. The Prometheus
collector and the OpenTelemetry instruments are both built from it, so the
two always publish the same numbers under matching names:
``infercache_<name>[_<unit>][_total]`` for Prometheus and
``infercache.<name>`` with the unit as metadata for OpenTelemetry (which an
OpenTelemetry-to-Prometheus exporter turns back into the Prometheus name).

Labels are the cache's name (``cache``) and, where it applies, ``tier``,
``result`` or ``reason``; never a key or a session, so the number of series
is bounded by the number of caches. This module imports no exporter library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..store import EVICTION_REASONS

__all__ = ["FAMILIES", "RESULTS", "Family", "Stats", "hit_tiers"]

Stats = Mapping[str, Mapping[str, Any]]
"""What :func:`infercache.stats` returns: each cache's counters by its name."""

Reader = Callable[[Mapping[str, Any]], Iterator[tuple[tuple[str, ...], float]]]

RESULTS = {"misses": "miss", "joins": "join", "remote_joins": "remote_join"}
"""The ``result`` label of each counter of a cache's stats that is not a hit, by its key there."""


@dataclass(frozen=True)
class Family:
    """One metric family: its name, kind, unit and labels, and how it reads one cache's stats."""

    name: str
    """Base name: ``infercache_<name>`` (Prometheus, plus unit and ``_total``), ``infercache.<name>`` (OTel)."""
    kind: str
    """``"counter"`` (only grows while the cache lives) or ``"gauge"`` (a current value)."""
    unit: str
    """``""``, ``"seconds"`` or ``"bytes"``."""
    labels: tuple[str, ...]
    """Labels besides ``cache``."""
    help: str
    read: Reader
    """``(label values, value)`` pairs of one cache's stats."""
    key: str = ""
    """The stats key a single-valued family reads (``""`` for the labelled ones)."""


def hit_tiers(data: Mapping[str, Any]) -> list[str]:
    """Tiers a cache's hits can come from, memory first; each gets a series, at 0 until its first hit."""
    by_tier: Mapping[str, int] = data.get("hits_by_tier") or {}
    tiers = ["memory", *(str(t) for t in data.get("tiers") or ())]
    return tiers + sorted(t for t in by_tier if t not in tiers)


def _requests(data: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], float]]:
    by_tier: Mapping[str, int] = data.get("hits_by_tier") or {}
    for tier in hit_tiers(data):
        yield (tier, "hit"), by_tier.get(tier, 0)
    for key, result in RESULTS.items():
        yield ("", result), data.get(key, 0)


def _evictions(data: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], float]]:
    evicted: Mapping[str, int] = data.get("evicted") or {}
    for reason in (*EVICTION_REASONS, *sorted(set(evicted) - set(EVICTION_REASONS))):
        yield (reason,), evicted.get(reason, 0)


def _single(key: str, *, bounded_only: bool = False) -> Reader:
    """A reader of one stats key (skipped when ``bounded_only`` and the cache has no such bound)."""

    def read(data: Mapping[str, Any]) -> Iterator[tuple[tuple[str, ...], float]]:
        value = data.get(key) or 0  # max_memory is None when unbounded
        if bounded_only and not value:
            return
        yield (), value

    return read


def _family(name: str, kind: str, unit: str, key: str, help: str, *, bounded_only: bool = False) -> Family:
    return Family(name, kind, unit, (), help, _single(key, bounded_only=bounded_only), key)


FAMILIES: tuple[Family, ...] = (
    Family(
        "requests",
        "counter",
        "",
        ("tier", "result"),
        "Calls by result: hit (tier memory, disk or redis), miss, join (waited for an identical "
        "call in this process), remote_join (another process computed it); tier is empty except on hits.",
        _requests,
    ),
    Family("evictions", "counter", "", ("reason",), "Entries that left the cache, by reason.", _evictions),
    _family("entries", "gauge", "", "size", "Entries held in memory."),
    _family("memory", "gauge", "bytes", "memory", "Bytes held in memory (real bytes, measured deeply)."),
    _family("max_entries", "gauge", "", "max_size", "The max_size bound (only when bounded).", bounded_only=True),
    _family("max_memory", "gauge", "bytes", "max_memory", "The max_memory bound (only when set).", bounded_only=True),
    _family(
        "saved",
        "counter",
        "seconds",
        "saved_seconds",
        "Compute time saved by hits (each hit credited with its entry's measured compute time).",
    ),
    _family("compute", "counter", "seconds", "compute_seconds", "Time spent computing."),
    _family("computations", "counter", "", "computations", "Computations run."),
    _family("tier_errors", "counter", "", "tier_errors", "Store operations that failed (the call went on)."),
    _family(
        "verification_failures",
        "counter",
        "",
        "verification_failures",
        "Stored records dropped: failed authentication or did not decode.",
    ),
)
"""Every family exported per cache, in exposition order."""
