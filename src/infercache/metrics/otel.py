"""OpenTelemetry instruments for every live cache, observed at collection time.

:func:`instrument` creates one observable instrument per family of
:data:`infercache.metrics.series.FAMILIES`; their callbacks read
:func:`infercache.stats` when the app's metric reader collects, so nothing
runs on a cache hit. Only ``opentelemetry-api`` is needed (the ``otel`` extra):
the SDK, its readers and exporters are the app's own choice.

========================================  ===========================  ====================================
instrument                                kind, unit                   attributes
========================================  ===========================  ====================================
``infercache.requests``                   counter, ``{request}``       ``cache``, ``tier``, ``result``
``infercache.evictions``                  counter, ``{entry}``         ``cache``, ``reason``
``infercache.entries``                    up-down counter, ``{entry}``  ``cache``
``infercache.memory``                     up-down counter, ``By``      ``cache``
``infercache.max_entries``                up-down counter, ``{entry}``  ``cache`` (bounded caches only)
``infercache.max_memory``                 up-down counter, ``By``      ``cache`` (bounded caches only)
``infercache.saved``                      counter, ``s``               ``cache``
``infercache.compute``                    counter, ``s``               ``cache``
``infercache.computations``               counter, ``{computation}``   ``cache``
``infercache.tier_errors``                counter, ``{error}``         ``cache``
``infercache.verification_failures``      counter, ``{record}``        ``cache``
========================================  ===========================  ====================================

The meanings and attribute values are those of the Prometheus families
(:mod:`infercache.metrics.prometheus`), and the names are chosen so that an
OpenTelemetry-to-Prometheus exporter, which appends the unit and
``_total``, yields the same Prometheus names (``infercache.saved`` in
seconds becomes ``infercache_saved_seconds_total``). Current values
(entries, bytes, bounds) are observable up-down counters: they add up
across caches.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..registry import stats as live_stats
from .series import FAMILIES, Family, Stats

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

__all__ = ["METER_NAME", "instrument", "otel_name", "otel_unit"]

METER_NAME = "infercache"
"""The instrumentation scope of every instrument (``get_meter("infercache", version)``)."""

_COUNT_UNITS = {
    "requests": "{request}",
    "evictions": "{entry}",
    "entries": "{entry}",
    "max_entries": "{entry}",
    "computations": "{computation}",
    "tier_errors": "{error}",
    "verification_failures": "{record}",
}

_lock = threading.Lock()
_done: weakref.WeakKeyDictionary[Any, tuple[Any, ...]] = weakref.WeakKeyDictionary()


def otel_name(family: Family) -> str:
    """The family's instrument name, ``infercache.<name>``."""
    return f"{METER_NAME}.{family.name}"


def otel_unit(family: Family) -> str:
    """The family's unit in UCUM, as OpenTelemetry's conventions write it (``s``, ``By``, ``{request}``)."""
    if family.unit == "seconds":
        return "s"
    if family.unit == "bytes":
        return "By"
    return _COUNT_UNITS.get(family.name, "1")


def _callback(family: Family, source: Callable[[], Stats]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    from opentelemetry.metrics import Observation

    names = ("cache", *family.labels)

    def observe(options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(value, dict(zip(names, (cache, *labels))))
            for cache, data in source().items()
            for labels, value in family.read(data)
        ]

    return observe


def instrument(
    meter_provider: MeterProvider | None = None, *, source: Callable[[], Stats] = live_stats
) -> tuple[Any, ...]:
    """Create the observable instruments on ``meter_provider`` (the global one when None); returns them.

    Once per provider: calling it again with the same provider returns the
    instruments made the first time. With the global provider not yet set,
    the instruments follow it once the app sets it (the API's proxy).
    ``source`` is what the callbacks read, :func:`infercache.stats` by default.
    """
    from opentelemetry import metrics

    from .. import __version__

    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    with _lock:
        made = _done.get(provider)
        if made is not None:
            return made
        meter = provider.get_meter(METER_NAME, __version__)
        created: list[Any] = []
        for family in FAMILIES:
            if family.kind == "counter":
                create: Callable[..., Any] = meter.create_observable_counter
            else:
                create = meter.create_observable_up_down_counter
            created.append(
                create(
                    otel_name(family),
                    callbacks=[_callback(family, source)],
                    unit=otel_unit(family),
                    description=family.help,
                )
            )
        made = tuple(created)
        _done[provider] = made
        return made
