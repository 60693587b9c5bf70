"""Export every live cache's counters to Prometheus or OpenTelemetry, read at collection time.

Nothing here adds work to a cache hit: the exporters read the counters every
cache keeps (:func:`infercache.stats`) when they are scraped or collected.

Prometheus (``pip install "infercache[prometheus]"``)::

    import infercache as ic
    ic.metrics.mount(demo)          # a gr.Blocks, before or after launch(): GET /metrics on its own port
    ic.metrics.mount(fastapi_app)   # a FastAPI or Starlette app: a route added in place
    app = ic.metrics.mount(asgi)    # any other ASGI app: wrapped, use the returned app

or, to serve it your own way, ``ic.metrics.register()`` (installs the
collector in prometheus_client's default registry, once). The metric
families are listed in :mod:`infercache.metrics.prometheus`.

OpenTelemetry (``pip install "infercache[otel]"``; the API only, for apps that
configured an SDK)::

    from infercache.metrics import otel
    otel.instrument()               # observable instruments on the global meter provider

This package imports neither library until one of these is called.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from .prometheus import InfercacheCollector

__all__ = ["collector", "mount", "register"]

_lock = threading.Lock()
_collector: InfercacheCollector | None = None
_registered: weakref.WeakSet[CollectorRegistry] = weakref.WeakSet()


def collector() -> InfercacheCollector:
    """The process's one Prometheus collector of every live cache (made on first use)."""
    global _collector
    with _lock:
        if _collector is None:
            from .prometheus import InfercacheCollector

            _collector = InfercacheCollector()
        return _collector


def register(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """Install :func:`collector` in ``registry`` (prometheus_client's default ``REGISTRY`` when None), once.

    Calling it again with the same registry does nothing, so libraries and
    apps may each call it. Returns the registry.
    """
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    found = collector()
    with _lock:
        if registry not in _registered:
            registry.register(found)
            _registered.add(registry)
    return registry


def mount(app: Any, path: str = "/metrics", *, registry: CollectorRegistry | None = None) -> Any:
    """Serve the Prometheus exposition at ``path`` of ``app``, on the port it already serves; returns the app to serve.

    ``registry`` (default: prometheus_client's ``REGISTRY``, which then also
    carries the process and the app's own metrics) gets the collector
    (:func:`register`). What ``app`` may be:

    - a Gradio ``gr.Blocks`` (or ``gr.Interface``, ``gr.ChatInterface``),
      before or after ``launch()``: Gradio makes a new FastAPI app at every
      launch, so the route is added by a startup event of the Blocks (Gradio
      runs them each time the server starts, before ``launch()`` returns)
      and, if the Blocks is already running, at once. Returns ``app``. A
      Blocks served inside your own FastAPI app by ``gr.mount_gradio_app``:
      mount on that FastAPI app instead.
    - a FastAPI or Starlette app: a route is inserted in place, first, so
      no catch-all shadows it (also while it serves). Returns ``app``.
    - any other ASGI application: returns a :class:`~infercache.metrics.prometheus.MetricsApp`
      that answers ``path`` and passes everything else on; serve that.

    The route answers ``GET``/``HEAD`` without the app's authentication
    (Gradio's login included): Prometheus scrapes without a session. It
    shows cache names and counts, never keys or sessions. Mounting again at
    the same path does nothing; a route of the app's own at ``path`` is a
    ``ValueError``.
    """
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', got {path!r}")
    from . import prometheus

    target = register(registry)
    if _is_blocks(app):
        _mount_blocks(app, path, target)
        return app
    if _is_starlette(app):
        prometheus.add_route(app, path, target)
        return app
    if callable(app):
        return prometheus.MetricsApp(app, path, target)
    raise TypeError(
        f"cannot mount metrics on {type(app).__name__}: expected a gr.Blocks, a Starlette app or an ASGI app"
    )


def _is_blocks(app: Any) -> bool:
    blocks = sys.modules.get("gradio.blocks")  # not imported: app cannot be a Blocks
    return blocks is not None and isinstance(app, blocks.Blocks)


def _is_starlette(app: Any) -> bool:
    applications = sys.modules.get("starlette.applications")
    return applications is not None and isinstance(app, applications.Starlette)


def _mount_blocks(blocks: Any, path: str, registry: CollectorRegistry) -> None:
    """Add the route to every FastAPI app the Blocks is served by: the running one, and each next launch's."""
    from .prometheus import add_route

    mark = ("infercache.metrics", path, id(registry))
    events: list[Any] = blocks.extra_startup_events  # public Gradio API: Gradio's example caching uses it too
    if not any(getattr(event, "infercache_mount", None) == mark for event in events):
        ref = weakref.ref(blocks)

        async def serve_metrics() -> None:
            """Add the /metrics route to the app this launch serves (a startup event of the Blocks)."""
            current = ref()
            if current is not None:
                add_route(_served_app(current), path, registry)

        serve_metrics.infercache_mount = mark  # type: ignore[attr-defined]
        events.append(serve_metrics)
    app = _served_app(blocks)
    if getattr(blocks, "is_running", False) and app is not None:
        add_route(app, path, registry)
    elif app is not None:
        _check_free(app, path)


def _served_app(blocks: Any) -> Any:
    """The FastAPI app ``launch()`` made (``server_app``), or the one the Blocks made for itself."""
    return getattr(blocks, "server_app", None) or getattr(blocks, "app", None)


def _check_free(app: Any, path: str) -> None:
    """Raise ``ValueError`` now, not at launch, if Gradio itself serves ``path``."""
    for route in getattr(getattr(app, "router", None), "routes", ()):
        if getattr(route, "path", None) == path and getattr(route.endpoint, "infercache_metrics", None) is None:
            raise ValueError(f"Gradio already serves {path!r}; mount metrics at another path")
