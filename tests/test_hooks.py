"""The framework seam, exercised by a small integration defined here."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

import pytest
from flight_fixtures import KINDS, Caller, call, gated, wait_until

import infercache as ic
from infercache import hooks

probing: ContextVar[bool] = ContextVar("probing", default=False)
request_session: ContextVar[str | None] = ContextVar("request_session", default=None)


class Miss(Exception):
    pass


class Injected:
    """A value the framework passes in (like a progress tracker)."""


class Marker:
    """A base class the framework recognises caches by."""


class Framework(hooks.Integration):
    name = "test-framework"

    def __init__(self) -> None:
        self.manual_hits = 0

    def session_id(self):
        return request_session.get()

    def probing(self):
        return probing.get()

    def miss_error(self):
        return Miss()

    def manual_hit(self):
        self.manual_hits += 1

    def injected_types(self):
        return (Injected,)

    def store_output(self, value):
        return ("stored", value) if isinstance(value, str) else value

    def load_output(self, value):
        return value[1] + "!" if isinstance(value, tuple) and value[:1] == ("stored",) else value

    def cache_bases(self):
        return (Marker,)


@pytest.fixture
def framework():
    fw = Framework()
    hooks.register(fw)
    yield fw
    hooks.unregister(fw.name)


def test_probe_mode_raises_the_frameworks_miss_and_serves_hits(framework) -> None:
    runs = []

    @ic.cache
    def f(x):
        runs.append(x)
        return f"out{x}"

    token = probing.set(True)
    try:
        with pytest.raises(Miss):
            f(1)
    finally:
        probing.reset(token)
    assert runs == []
    assert f.cache.stats().misses == 0  # the probe's miss is not counted: the real call's is
    assert f(1) == "out1"  # the computing caller gets its own value
    assert f.cache.stats().misses == 1
    token = probing.set(True)
    try:
        assert f(1) == "out1!"
    finally:
        probing.reset(token)
    assert runs == [1]


def test_a_bad_argument_is_a_miss_while_probing_and_an_error_for_real(framework) -> None:
    import threading

    @ic.cache
    def f(x):
        return 1

    @ic.cache
    def g(x):
        yield x

    token = probing.set(True)
    try:
        with pytest.raises(Miss):
            f(threading.Lock())
        with pytest.raises(Miss):
            list(g(threading.Lock()))
    finally:
        probing.reset(token)
    with pytest.raises(TypeError):
        f(threading.Lock())


def test_probe_mode_for_generators_and_async(framework) -> None:
    @ic.cache
    def g(x):
        yield x

    @ic.cache
    async def a(x):
        return x

    token = probing.set(True)
    try:
        with pytest.raises(Miss):
            list(g(1))
        with pytest.raises(Miss):
            asyncio.run(a(1))
    finally:
        probing.reset(token)


def test_injected_values_are_left_out_of_keys(framework) -> None:
    runs = []

    @ic.cache
    def f(x, progress=Injected()):
        runs.append(x)
        return x

    @ic.cache
    def g(x, request: Injected | None = None):
        runs.append(x)
        return x

    @ic.cache
    def h(history: list[dict[str, int]], request: Injected | None = None, n: int | None = None):
        runs.append(len(history))
        return history

    f(1, Injected())
    f(1, Injected())
    g(2, Injected())
    g(2, Injected())
    h([{"a": 1}], Injected())
    h([{"a": 1}], Injected())
    assert runs == [1, 2, 1]


def test_framework_session_is_used_after_explicit_sessions(framework) -> None:
    c = ic.Cache(per_session=True)
    token = request_session.set("tab-1")
    try:
        c.set("k", v=1)
        assert ic.current_session() == "tab-1"
        with ic.session("explicit"):
            assert c.get("k") is None
    finally:
        request_session.reset(token)
    assert c.get("k") is None
    ic.clear_session("tab-1")
    assert len(c) == 0


def test_manual_hits_are_reported(framework) -> None:
    c = ic.Cache()
    c.set("abc", v=1)
    assert c.get("zzz") is None
    assert framework.manual_hits == 0
    c.get("abc")
    c.longest_prefix("abcd")
    assert framework.manual_hits == 2


def test_cache_gets_the_frameworks_bases(framework) -> None:
    c = ic.Cache(per_session=True)
    assert isinstance(c, Marker) and isinstance(c, ic.Cache)
    assert c.per_session is True


def test_core_imports_no_framework_and_adds_no_bases() -> None:
    import subprocess
    import sys

    code = (
        "import sys, infercache as ic\n"
        "c = ic.Cache(per_session=True)\n"
        "@ic.cache\n"
        "def f(x): return x\n"
        "f(1)\n"
        "assert type(c) is ic.Cache\n"
        "heavy = {'gradio', 'numpy', 'torch', 'pandas', 'PIL'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class HitCounter(hooks.Integration):
    """An integration counting the hit hook's calls (Gradio shows its 'used cache' badge there)."""

    name = "hit-counter"

    def __init__(self) -> None:
        self.hits = 0

    def hit_hook(self):
        return self.count

    def count(self) -> None:
        self.hits += 1


@pytest.fixture
def hit_counter():
    counter = HitCounter()
    hooks.register(counter)
    yield counter
    hooks.unregister(counter.name)


@pytest.mark.parametrize("kind", KINDS)
def test_hit_hook_fires_for_store_hits_only_never_for_a_miss_or_its_followers(hit_counter, kind) -> None:
    """A miss's own items (and a follower's share of them) are not hits: no badge on a first run."""
    import threading

    gates = [threading.Event() for _ in range(2)]
    started: list = []
    f = gated(kind, gates, started)
    leader = Caller(kind, f, 1)
    wait_until(lambda: len(started) == 1, "the computation")
    follower = Caller(kind, f, 1)
    wait_until(lambda: f.cache.stats().joins == 1, "a follower")
    gates[0].set()
    assert leader.result() == follower.result() == [1, 0]
    assert hit_counter.hits == 0
    assert call(kind, f, 1) == [1, 0]  # served from the store
    assert hit_counter.hits == 1


event: ContextVar[dict[str, bool] | None] = ContextVar("event", default=None)


class EventHits(HitCounter):
    """A hit hook that only matters inside the framework's events (Gradio's badge is per event)."""

    name = "event-hits"

    def hit_event(self) -> ContextVar[dict[str, bool] | None]:
        return event


def cached_plus_one(kind: str):
    """A new cached ``x + 1`` of ``kind``: a sync or async function, or a sync or async generator."""

    @ic.cache
    def f(x):
        return x + 1

    @ic.cache
    async def af(x):
        return x + 1

    @ic.cache
    def gen(x):
        yield x + 1

    @ic.cache
    async def agen(x):
        yield x + 1

    return {"sync": f, "async": af, "gen": gen, "asyncgen": agen}[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_a_hit_hook_with_an_event_variable_fires_only_while_an_event_runs(kind) -> None:
    events = EventHits()
    hooks.register(events)
    try:
        fn = cached_plus_one(kind)
        call(kind, fn, 1)  # the miss
        call(kind, fn, 1)  # a hit outside any event
        assert events.hits == 0
        token = event.set({"used": False})
        try:
            call(kind, fn, 1)
            call(kind, fn, 2)  # a miss inside the event
        finally:
            event.reset(token)
        assert events.hits == 1
    finally:
        hooks.unregister(events.name)


def test_a_hit_hook_without_an_event_variable_fires_on_every_hit_beside_a_gated_one() -> None:
    events, counter = EventHits(), HitCounter()
    hooks.register(events)
    hooks.register(counter)
    try:

        @ic.cache
        def f(x):
            return x

        f(1)
        f(1)
        # the hook without a variable is called; the gated one only while its event runs
        assert (counter.hits, events.hits) == (1, 0)
    finally:
        hooks.unregister(counter.name)
        hooks.unregister(events.name)


other_event: ContextVar[dict[str, bool] | None] = ContextVar("other_event", default=None)


class OtherEventHits(HitCounter):
    """A second framework's hit hook with its own event variable."""

    name = "other-event-hits"

    def hit_event(self) -> ContextVar[dict[str, bool] | None]:
        return other_event


@pytest.mark.parametrize("kind", KINDS)
def test_beside_another_gated_hook_each_fires_only_while_its_own_event_runs(kind) -> None:
    events, others = EventHits(), OtherEventHits()
    hooks.register(events)
    hooks.register(others)
    try:
        fn = cached_plus_one(kind)
        call(kind, fn, 1)  # the miss
        call(kind, fn, 1)  # a hit outside any event
        assert (events.hits, others.hits) == (0, 0)
        token = event.set({"used": False})
        try:
            call(kind, fn, 1)
        finally:
            event.reset(token)
        assert (events.hits, others.hits) == (1, 0)
    finally:
        hooks.unregister(events.name)
        hooks.unregister(others.name)
