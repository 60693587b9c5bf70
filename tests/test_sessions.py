"""Sessions: the current session follows threads and tasks; per-session entries
are private to their session; clearing one session touches that session only,
computations in flight included.

``Cache(per_session=True)`` has its own tests in ``test_manual.py``.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flight_fixtures import KINDS, Caller, call, gated, join_all, wait_until
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import infercache as ic
from infercache import hooks
from infercache.safety import release


def test_sessions_follow_threads_and_tasks() -> None:
    import asyncio

    c = ic.Cache(per_session=True)

    async def user(name):
        with ic.session(name):
            c.set("k", who=name)
            await asyncio.sleep(0)
            return c.get("k")["who"]

    async def main():
        return await asyncio.gather(*(user(f"u{i}") for i in range(10)))

    assert asyncio.run(main()) == [f"u{i}" for i in range(10)]
    with pytest.raises(ValueError), ic.session(""):
        pass


def test_per_session_function_results_are_private_and_cleared_per_session() -> None:
    runs = []

    @ic.cache(per_session=True)
    def gen(prompt):
        runs.append(ic.current_session())
        return prompt

    with ic.session("a"):
        gen("x")
        gen("x")
    with ic.session("b"):
        gen("x")
    assert runs == ["a", "b"]
    ic.clear_session("a")
    with ic.session("a"):
        gen("x")
    assert runs == ["a", "b", "a"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("clear", ["ic.clear_session", "fn.cache.clear_session"])
def test_clearing_one_session_keeps_other_sessions_results_in_flight(kind: str, clear: str) -> None:
    """One tab closing used to discard every other user's running computation."""
    gates = [threading.Event() for _ in range(3)]
    started: list = []
    f = gated(kind, gates, started, per_session=True)
    a = Caller(kind, f, 1, session="A")
    shared = Caller(kind, f, 1)  # outside any session: the anonymous namespace
    wait_until(lambda: len(started) == 2, "two computations")
    if clear == "ic.clear_session":
        ic.clear_session("B")
    else:
        f.cache.clear_session("B")
    for gate in gates:
        gate.set()
    assert sorted([a.result(), shared.result()]) == [[1, 0], [1, 1]]
    assert len(f.cache) == 2  # both results were stored
    assert call(kind, f, 1, session="A") == a.result()  # a hit: nothing computed again
    assert len(started) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_clearing_a_session_drops_its_own_results_in_flight_only(kind: str) -> None:
    gates = [threading.Event() for _ in range(2)]
    started: list = []
    f = gated(kind, gates, started, per_session=True)
    a = Caller(kind, f, 1, session="A")
    b = Caller(kind, f, 1, session="B")
    wait_until(lambda: len(started) == 2, "both sessions computing")
    ic.clear_session("A")
    for gate in gates:
        gate.set()
    a.result()
    b.result()
    assert len(f.cache) == 1
    assert call(kind, f, 1, session="B") == b.result()  # B's result was kept
    assert len(started) == 2


class SessionFlights(RuleBasedStateMachine):
    """Random interleavings of computations across sessions and invalidations, against a model.

    Real threads call a real per-session cached function whose computations
    block until the model finishes them. The model says, for every call, if it
    is a hit, joins a computation in flight, or starts one, and for every
    finished computation if its result may be stored: a ``clear_session(s)``
    covers the computations of session ``s`` in flight, ``clear()`` covers all
    of them, and a covered computation is neither stored nor joined by callers
    arriving after the invalidation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gates = [threading.Event() for _ in range(64)]
        self.started: list = []
        self.fn = gated("sync", self.gates, self.started, per_session=True, max_size=0)
        self.stored: dict[tuple[str, int], int] = {}  # (session, x) -> computation index
        self.flying: dict[int, dict[str, Any]] = {}  # computation index -> session, x, valid, callers

    sessions = st.sampled_from(["A", "B", "C"])

    def _joinable(self, session: str, x: int) -> int | None:
        for k, c in self.flying.items():
            if c["valid"] and (c["session"], c["x"]) == (session, x):
                return k
        return None

    @precondition(lambda self: len(self.started) < 60)
    @rule(session=sessions, x=st.integers(0, 1))
    def start_call(self, session: str, x: int) -> None:
        joins = self.fn.cache.stats().joins
        k = len(self.started)  # the index a new computation would get
        caller = Caller("sync", self.fn, x, session=session)
        if (session, x) in self.stored:
            assert caller.result() == [x, self.stored[(session, x)]]  # a hit
            return
        joined = self._joinable(session, x)
        if joined is not None:
            wait_until(lambda: self.fn.cache.stats().joins == joins + 1, "the caller joining")
            self.flying[joined]["callers"].append(caller)
            return
        wait_until(lambda: len(self.started) == k + 1, "a new computation")
        assert self.started[k] == (session, x, k)
        self.flying[k] = {"session": session, "x": x, "valid": True, "callers": [caller]}

    @precondition(lambda self: bool(self.flying))
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        k = data.draw(st.sampled_from(sorted(self.flying)))
        c = self.flying.pop(k)
        self.gates[k].set()
        for caller in c["callers"]:
            assert caller.result() == [c["x"], k]  # every caller gets the computation it joined
        if c["valid"]:
            self.stored[(c["session"], c["x"])] = k

    @rule(session=sessions)
    def clear_session(self, session: str) -> None:
        ic.clear_session(session)
        self.stored = {sk: k for sk, k in self.stored.items() if sk[0] != session}
        for c in self.flying.values():
            if c["session"] == session:
                c["valid"] = False

    @rule()
    def clear(self) -> None:
        self.fn.cache.clear()
        self.stored.clear()
        for c in self.flying.values():
            c["valid"] = False

    @invariant()
    def store_matches_the_model(self) -> None:
        store = self.fn.cache.engine.store
        held = [(ns, release(e.value)) for ns in ("", "A", "B", "C") for _, e in store.entries(ns)]
        assert sorted(held) == sorted((s, [x, k]) for (s, x), k in self.stored.items())

    def teardown(self) -> None:
        for gate in self.gates:
            gate.set()
        callers = [caller for c in self.flying.values() for caller in c["callers"]]
        join_all(*(caller.thread for caller in callers))  # one bound for all, not one each
        for caller in callers:
            caller.result()


TestSessionFlights = SessionFlights.TestCase
TestSessionFlights.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)


class _TabIntegration(hooks.Integration):
    """A framework reporting the session of the current call, as Gradio reports its session hash."""

    name = "test-tab-sessions"

    def __init__(self) -> None:
        self.tab: str | None = None

    def session_id(self) -> str | None:
        return self.tab


def test_the_session_a_framework_reports_is_current_unless_one_is_set_explicitly() -> None:
    tabs = _TabIntegration()
    hooks.register(tabs)
    try:
        c = ic.Cache(per_session=True)
        assert ic.current_session() is None  # the framework reports none outside a call
        tabs.tab = "tab-1"
        assert ic.current_session() == "tab-1"
        c.set("k", v=1)
        with ic.session("explicit"):
            assert ic.current_session() == "explicit"
            assert c.get("k") is None
        assert c.get("k") == {"v": 1}
        assert ic.clear_session("tab-1") == 1
        assert c.get("k") is None
    finally:
        hooks.unregister(tabs.name)


@pytest.mark.parametrize("bad", ["", None, 7])
def test_clearing_a_session_needs_a_non_empty_session_id(bad: Any) -> None:
    with pytest.raises(ValueError, match="session id must be a non-empty str"):
        ic.clear_session(bad)
