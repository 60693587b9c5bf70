"""Prometheus exposition of every live cache's counters, read at scrape time.

:class:`InfercacheCollector` is a ``prometheus_client`` custom collector: its
:meth:`~InfercacheCollector.collect` calls :func:`infercache.stats` when
Prometheus scrapes, and nothing runs on a cache hit to make that possible
(the counters it reads are the ones every cache keeps anyway). Series are
labelled by ``cache`` (the cache's name, see ``name=``) and, where it
applies, ``tier``, ``result`` or ``reason``; never by key or session, so a
per-session cache is one set of series however many sessions use it.

Metric families (counters carry ``_total`` in the exposition):

============================================  =====================================================
``infercache_requests_total``                 calls by ``result``: ``hit`` (``tier`` = ``memory``,
                                              ``disk`` or ``redis``), ``miss``, ``join`` (waited for
                                              an identical call in this process) and
                                              ``remote_join`` (another process computed it);
                                              ``tier`` is empty except on hits
``infercache_evictions_total``                entries that left, by ``reason`` (``size``,
                                              ``memory``, ``ttl``, ``session``, ``cleared``,
                                              ``deleted``, ``oversized``)
``infercache_entries``                        entries held in memory (gauge)
``infercache_memory_bytes``                   bytes held in memory (gauge)
``infercache_max_entries``                    the ``max_size`` bound (gauge; only when bounded)
``infercache_max_memory_bytes``               the ``max_memory`` bound (gauge; only when bounded)
``infercache_saved_seconds_total``            compute time the hits saved (each hit credited
                                              with its entry's measured compute time)
``infercache_compute_seconds_total``          time spent computing
``infercache_computations_total``             computations run
``infercache_tier_errors_total``              store operations that failed (calls went on)
``infercache_verification_failures_total``    stored records dropped (failed authentication
                                              or did not decode)
============================================  =====================================================

The same module reads such a page back (:func:`parse`, used by
``infercache stats http://host/metrics``) and serves it from any ASGI
application (:class:`MetricsApp`, :func:`add_route`); see
:func:`infercache.metrics.mount`. Needs the ``prometheus`` extra
(``pip install "infercache[prometheus]"``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from ..registry import stats as live_stats
from .series import FAMILIES, RESULTS, Family, Stats

__all__ = ["InfercacheCollector", "MetricsApp", "add_route", "families", "parse", "prometheus_name", "render"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def prometheus_name(family: Family) -> str:
    """The family's Prometheus name, unit included, ``_total`` not (prometheus_client adds it to counters)."""
    name = f"infercache_{family.name}"
    return f"{name}_{family.unit}" if family.unit else name


def families(snapshot: Stats) -> list[Metric]:
    """The metric families of ``snapshot`` (:func:`infercache.stats`' shape), in exposition order."""
    out: list[Metric] = []
    for family in FAMILIES:
        kind = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
        metric = kind(prometheus_name(family), family.help, labels=("cache", *family.labels), unit=family.unit)
        for cache, data in snapshot.items():
            for labels, value in family.read(data):
                metric.add_metric((cache, *labels), value)
        out.append(metric)
    return out


class InfercacheCollector(Collector):
    """A collector of every live cache's counters, read when the registry is collected (a scrape).

    ``source`` is what it reads, :func:`infercache.stats` by default. Register
    it with :func:`infercache.metrics.register` (once per registry), or by
    hand: ``prometheus_client.REGISTRY.register(InfercacheCollector())``.
    """

    def __init__(self, source: Callable[[], Stats] = live_stats) -> None:
        self.source = source

    def describe(self) -> Iterable[Metric]:
        """The families without samples: lets a registry check names without reading the caches."""
        return families({})

    def collect(self) -> Iterable[Metric]:
        """The families with one sample set per live cache, from a fresh :func:`infercache.stats`."""
        return families(self.source())


# -- serving ----------------------------------------------------------------------


def render(registry: Collector, accept: str | None = None) -> tuple[bytes, str]:
    """``(body, content type)`` of ``registry``'s exposition in the format ``accept`` asks for.

    Prometheus' text format unless the scraper asks for OpenMetrics
    (prometheus_client's own content negotiation).
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


_MARK = "infercache_metrics"  # set on our endpoints, so mounting twice is recognised


def add_route(app: Any, path: str, registry: Collector) -> bool:
    """Serve ``registry`` at ``path`` on a Starlette or FastAPI ``app`` (Gradio's is one); False if already there.

    The route goes first in the app's routes, so a catch-all mount cannot
    shadow it; routes are read per request, so this works on an app that is
    already serving. A route of the app's own at ``path`` is a ``ValueError``.
    """
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    routes: list[Any] = app.router.routes
    for route in routes:
        if getattr(route, "path", None) == path:
            if getattr(getattr(route, "endpoint", None), _MARK, None) is registry:
                return False
            raise ValueError(f"{type(app).__name__} already has a route at {path!r}; mount metrics at another path")

    async def metrics(request: Request) -> Response:
        body, content_type = render(registry, request.headers.get("accept"))
        return Response(body, headers={"Content-Type": content_type})

    setattr(metrics, _MARK, registry)
    routes.insert(0, Route(path, metrics, methods=["GET"], include_in_schema=False))
    return True


class MetricsApp:
    """An ASGI application answering ``path`` with ``registry``'s exposition and passing everything else to ``app``.

    For ASGI applications that have no routes to add to. ``path`` is matched
    with and without the scope's ``root_path``; ``GET`` and ``HEAD`` are
    answered, other methods get 405. Lifespan and WebSocket scopes go to
    ``app`` untouched.
    """

    def __init__(self, app: ASGIApp, path: str, registry: Collector) -> None:
        self.app = app
        self.path = path
        self.registry = registry

    def _matches(self, scope: Scope) -> bool:
        if scope.get("type") != "http":
            return False
        path = str(scope.get("path", ""))
        root = str(scope.get("root_path", "") or "")
        return path == self.path or bool(root and path.startswith(root) and path[len(root) :] == self.path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._matches(scope):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"Method Not Allowed", "text/plain; charset=utf-8", allow=b"GET, HEAD")
            return
        accept = _header(scope, b"accept")
        body, content_type = render(self.registry, accept)
        await _respond(send, 200, b"" if method == "HEAD" else body, content_type, length=len(body))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if bytes(key).lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _respond(
    send: Send, status: int, body: bytes, content_type: str, *, length: int | None = None, allow: bytes | None = None
) -> None:
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body) if length is None else length).encode()),
    ]
    if allow is not None:
        headers.append((b"allow", allow))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- reading a scraped page back -------------------------------------------------------


def parse(text: str) -> dict[str, dict[str, Any]]:
    """The infercache counters of a scraped page, by cache, keyed as in :func:`infercache.stats`.

    Each cache gets ``hits`` (summed over tiers), ``hits_by_tier``,
    ``misses``, ``joins``, ``remote_joins``, ``evicted`` (by reason) and
    the key of every single-valued family it has a sample of (``size``,
    ``memory``, ``max_size``, ``max_memory``, ``saved_seconds``, ...).
    Counts come back as ``int``, times as ``float``; other libraries'
    families on the page are ignored. Parsed with prometheus_client's parser
    (Prometheus' text format).
    """
    by_name = {prometheus_name(f): f for f in FAMILIES}
    result_keys = {result: key for key, result in RESULTS.items()}
    out: dict[str, dict[str, Any]] = {}

    def cache(labels: Mapping[str, str]) -> dict[str, Any]:
        empty: dict[str, Any] = {"hits": 0, "hits_by_tier": {}, "evicted": {}, **dict.fromkeys(RESULTS, 0)}
        return out.setdefault(labels.get("cache", ""), empty)

    for metric in text_string_to_metric_families(text):
        family = by_name.get(metric.name)
        if family is None:
            continue
        for labels, value in _values(metric):
            data = cache(labels)
            if family.name == "requests":
                result = labels.get("result", "")
                if result == "hit":
                    tier = labels.get("tier", "")
                    data["hits_by_tier"][tier] = data["hits_by_tier"].get(tier, 0) + int(value)
                    data["hits"] += int(value)
                elif result in result_keys:
                    data[result_keys[result]] += int(value)
            elif family.name == "evictions":
                data["evicted"][labels.get("reason", "")] = int(value)
            else:
                data[family.key] = value if family.unit == "seconds" else int(value)
    return out


def _values(metric: Metric) -> Iterator[tuple[dict[str, str], float]]:
    """The value samples of ``metric`` (a counter's ``_created`` timestamps left out)."""
    for sample in metric.samples:
        if not sample.name.endswith("_created"):
            yield dict(sample.labels), float(sample.value)
