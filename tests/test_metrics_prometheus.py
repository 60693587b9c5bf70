"""Prometheus export: ``ic.metrics.mount`` on a launched Gradio app, FastAPI and plain ASGI apps.

Pages are fetched over real HTTP (a Gradio server on 127.0.0.1) or real
ASGI calls (Starlette's TestClient) and parsed with prometheus_client's own
parser; every sample of a cache must equal ``ic.stats()`` for that cache
exactly, and no label may carry a key or a session id.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
import pytest
from fastapi import FastAPI
from gradio_fixtures import client, serve
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

import infercache as ic
from infercache.metrics.prometheus import InfercacheCollector, parse

LABELS = {"cache", "tier", "result", "reason"}

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def expected_series(name: str, data: dict[str, Any]) -> Series:
    """Every sample one cache must show, written from ``ic.stats()[name]`` by hand."""

    def key(metric: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
        return metric, frozenset({"cache": name, **labels}.items())

    out: Series = {}
    for tier in ["memory", *data["tiers"]]:
        out[key("infercache_requests_total", tier=tier, result="hit")] = data["hits_by_tier"].get(tier, 0)
    out[key("infercache_requests_total", tier="", result="miss")] = data["misses"]
    out[key("infercache_requests_total", tier="", result="join")] = data["joins"]
    out[key("infercache_requests_total", tier="", result="remote_join")] = data["remote_joins"]
    for reason, count in data["evicted"].items():
        out[key("infercache_evictions_total", reason=reason)] = count
    out[key("infercache_entries")] = data["size"]
    out[key("infercache_memory_bytes")] = data["memory"]
    if data["max_size"]:
        out[key("infercache_max_entries")] = data["max_size"]
    if data["max_memory"] is not None:
        out[key("infercache_max_memory_bytes")] = data["max_memory"]
    out[key("infercache_saved_seconds_total")] = data["saved_seconds"]
    out[key("infercache_compute_seconds_total")] = data["compute_seconds"]
    out[key("infercache_computations_total")] = data["computations"]
    out[key("infercache_tier_errors_total")] = data["tier_errors"]
    out[key("infercache_verification_failures_total")] = data["verification_failures"]
    return out


def scraped_series(text: str, caches: set[str]) -> Series:
    """The infercache samples of ``caches`` on a scraped page, parsed with prometheus_client's parser."""
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("infercache_") and sample.labels.get("cache") in caches:
                out[sample.name, frozenset(sample.labels.items())] = sample.value
    return out


def all_infercache_labels(text: str) -> list[dict[str, str]]:
    return [
        dict(sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("infercache_")
    ]


def assert_page_equals_stats(text: str, names: list[str], stats: dict[str, dict[str, Any]]) -> None:
    expected: Series = {}
    for name in names:
        expected.update(expected_series(name, stats[name]))
    assert scraped_series(text, set(names)) == expected


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- a launched Gradio app ----------------------------------------------------------------------


@pytest.mark.server
@pytest.mark.timeout(120)
def test_a_launched_gradio_apps_metrics_equal_ic_stats_with_one_series_set_per_cache() -> None:
    up_name, seen_name = unique("upper"), unique("seen")

    @ic.cache(name=up_name, max_size=2)
    def upper(text: str) -> str:
        return text.upper()

    def remember(text: str, c: Any = ic.Cache(per_session=True, name=seen_name)) -> str:
        seen = c.get(text)
        c.set(text, n=1)
        return "again" if seen is not None else "new"

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(upper, box, out, api_name="upper")
        gr.Button().click(remember, box, out, api_name="remember")
    assert ic.metrics.mount(demo) is demo  # before launch: added when the server starts

    with serve(demo) as url:
        alice, bob = client(url), client(url)
        for text in ("secret-a", "secret-a", "secret-b", "secret-c", "secret-a"):  # 4 misses, 1 hit, size evictions
            assert alice.predict(text, api_name="/upper") == text.upper()
        assert bob.predict("secret-c", api_name="/upper") == "SECRET-C"  # a hit, from another session
        assert alice.predict("secret-k", api_name="/remember") == "new"
        assert alice.predict("secret-k", api_name="/remember") == "again"
        assert bob.predict("secret-k", api_name="/remember") == "new"  # bob's own session

        before = ic.stats()
        response = httpx.get(f"{url}metrics", timeout=30)
        after = ic.stats()
        assert before[up_name] == after[up_name] and before[seen_name] == after[seen_name]  # nothing moved

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    stats = after
    assert stats[up_name]["hits"] == 2 and stats[up_name]["misses"] == 4 and stats[up_name]["evicted"]["size"] == 2
    assert stats[seen_name]["hits"] == 1 and stats[seen_name]["size"] == 2
    assert_page_equals_stats(text, [up_name, seen_name], stats)

    labels = all_infercache_labels(text)
    assert {key for sample in labels for key in sample} <= LABELS
    values = {value for sample in labels for value in sample.values()}
    for private in ("secret-a", "secret-b", "secret-c", "secret-k", alice.session_hash, bob.session_hash):
        assert not any(private in value for value in values), private
    # Two sessions used the per-session cache: still one set of series for the cache.
    series = [
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("cache") == seen_name
    ]
    assert len(series) == len(set(series)) == len(expected_series(seen_name, stats[seen_name]))


@pytest.mark.server
@pytest.mark.timeout(120)
def test_mounting_a_running_gradio_app_serves_metrics_at_once_and_after_a_relaunch() -> None:
    name = unique("running")

    @ic.cache(name=name)
    def echo(text: str) -> str:
        return text

    with gr.Blocks() as demo:
        box, out = gr.Textbox(), gr.Textbox()
        gr.Button().click(echo, box, out, api_name="echo")

    with serve(demo) as url:
        assert httpx.get(f"{url}metrics", timeout=30).status_code == 404
        ic.metrics.mount(demo, path="/internal/metrics")
        ic.metrics.mount(demo, path="/internal/metrics")  # again: nothing more
        echo("x")
        page = httpx.get(f"{url}internal/metrics", timeout=30)
        assert page.status_code == 200
        assert_page_equals_stats(page.text, [name], ic.stats())
        routes = [r for r in demo.server_app.router.routes if getattr(r, "path", None) == "/internal/metrics"]
        assert len(routes) == 1
    with serve(demo) as url:  # a new launch makes a new FastAPI app: the startup event adds the route again
        assert httpx.get(f"{url}internal/metrics", timeout=30).status_code == 200


def test_a_path_gradio_serves_itself_is_refused_before_launch() -> None:
    with gr.Blocks() as demo:
        gr.Textbox()
    with pytest.raises(ValueError, match="/config"):
        ic.metrics.mount(demo, path="/config")


# -- FastAPI and plain ASGI apps -------------------------------------------------------------------


@pytest.fixture
def registry() -> CollectorRegistry:
    """A registry of this test's own (the default one also carries the process's metrics)."""
    return CollectorRegistry()


def test_a_fastapi_app_gets_a_metrics_route_and_keeps_its_own(registry: CollectorRegistry) -> None:
    name = unique("api")

    @ic.cache(name=name, max_memory="1mb")
    def square(n: int) -> int:
        return n * n

    app = FastAPI()

    @app.get("/square/{n}")
    def route(n: int) -> dict[str, int]:
        return {"value": square(n)}

    assert ic.metrics.mount(app, registry=registry) is app
    with TestClient(app) as http:
        assert [http.get(f"/square/{n}").json()["value"] for n in (3, 3, 4, 3)] == [9, 9, 16, 9]
        page = http.get("/metrics")
        head = http.head("/metrics")
    assert page.status_code == 200 and head.status_code == 200 and head.content == b""
    stats = ic.stats()
    assert stats[name]["hits"] == 2 and stats[name]["misses"] == 2
    assert_page_equals_stats(page.text, [name], stats)
    assert parse(page.text)[name]["max_memory"] == 1_000_000


def test_an_app_with_its_own_metrics_route_is_refused(registry: CollectorRegistry) -> None:
    app = FastAPI()

    @app.get("/metrics")
    def mine() -> str:
        return "mine"

    with pytest.raises(ValueError, match="/metrics"):
        ic.metrics.mount(app, registry=registry)


def test_a_plain_asgi_app_is_wrapped_and_everything_else_passes_through(registry: CollectorRegistry) -> None:
    name = unique("asgi")

    @ic.cache(name=name)
    def greet(who: str) -> str:
        return f"hello {who}"

    lifespans: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # reaches the app through the wrapper
            while (message := await receive())["type"] != "lifespan.shutdown":
                lifespans.append(message["type"])
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = greet(scope["path"].strip("/")).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})

    wrapped = ic.metrics.mount(app, path="/stats/metrics", registry=registry)
    assert wrapped is not app
    with TestClient(wrapped) as http:
        assert http.get("/ann").text == "hello ann"
        assert http.get("/ann").text == "hello ann"
        assert http.get("/metrics").text == "hello metrics"  # not the metrics path: passed on
        page = http.get("/stats/metrics")
        assert http.post("/stats/metrics").status_code == 405
        openmetrics = http.get("/stats/metrics", headers={"Accept": "application/openmetrics-text"})
    assert lifespans == ["lifespan.startup"]
    assert page.status_code == 200
    assert_page_equals_stats(page.text, [name], ic.stats())
    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_mount_refuses_a_relative_path_and_a_non_app(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="start with"):
        ic.metrics.mount(FastAPI(), path="metrics", registry=registry)
    with pytest.raises(TypeError, match="cannot mount"):
        ic.metrics.mount(42, registry=registry)


# -- the collector ---------------------------------------------------------------------------------


def test_register_installs_the_collector_once_per_registry(registry: CollectorRegistry) -> None:
    name = unique("once")

    @ic.cache(name=name)
    def f(x: int) -> int:
        return x

    f(1)
    assert ic.metrics.register(registry) is registry
    ic.metrics.register(registry)  # a second registration would raise: duplicated timeseries
    text = generate_latest(registry).decode()
    assert text.count(f'infercache_entries{{cache="{name}"}}') == 1
    assert ic.metrics.collector() is ic.metrics.collector()


def test_the_collector_reads_the_caches_only_when_collected(registry: CollectorRegistry) -> None:
    reads: list[int] = []

    def source() -> dict[str, dict[str, Any]]:
        reads.append(1)
        return ic.stats()

    registry.register(InfercacheCollector(source))
    assert reads == []  # registering describes the families without reading the caches

    @ic.cache(name=unique("quiet"))
    def f(x: int) -> int:
        return x

    for _ in range(100):
        f(1)
    assert reads == []
    generate_latest(registry)
    assert reads == [1]


def test_a_disk_store_hit_is_exported_under_its_tier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFERCACHE_SECRET", "a secret of the metrics tests")
    name = unique("tiered")

    @ic.cache(name=name, store=str(tmp_path / "store"))
    def f(x: int) -> int:
        return x + 1

    registry = CollectorRegistry()
    ic.metrics.register(registry)
    f(1)
    text = generate_latest(registry).decode()
    assert f'infercache_requests_total{{cache="{name}",result="hit",tier="disk"}} 0.0' in text  # before any
    assert_page_equals_stats(text, [name], ic.stats())
    f.cache.engine.store.clear()  # memory only: the next call reads the disk tier
    assert f(1) == 2
    text = generate_latest(registry).decode()
    stats = ic.stats()
    assert stats[name]["hits_by_tier"]["disk"] == 1 and stats[name]["tiers"] == ["disk"]
    assert_page_equals_stats(text, [name], stats)


def test_import_infercache_imports_no_exporter_library() -> None:
    code = (
        "import sys, infercache as ic\n"
        "assert 'prometheus_client' not in sys.modules and 'opentelemetry' not in sys.modules\n"
        "ic.metrics\n"
        "assert 'prometheus_client' not in sys.modules and 'opentelemetry' not in sys.modules\n"
        "ic.metrics.register()\n"
        "assert 'prometheus_client' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
