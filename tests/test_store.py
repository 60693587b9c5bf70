"""The LRU store: bounds, LRU order, TTL, namespaces, against a simple model."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from infercache.store import Store, Ticket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("kwargs", [{"max_size": -1}, {"max_size": 1.5}, {"ttl": -1}, {"ttl": 0}, {"ttl": "1"}])
def test_store_rejects_bad_settings(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Store(**kwargs)


def test_lru_order_and_size_bound() -> None:
    s = Store(max_size=2)
    s.set("", "a", 1, 1)
    s.set("", "b", 2, 1)
    assert s.get("", "a").value == 1  # a is now most recent
    s.set("", "c", 3, 1)
    assert s.peek("", "b") is None
    assert [k for k, _ in s.entries()] == ["a", "c"]
    assert s.stats().evictions == 1


def test_memory_bound_is_hard() -> None:
    s = Store(max_size=0, max_memory=100)
    for i in range(10):
        s.set("", i, i, 30)
        assert s.memory <= 100
    assert len(s) == 3


def test_entry_larger_than_bound_is_refused_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    s = Store(max_memory=100)
    s.set("", "k", "old", 10)
    with caplog.at_level(logging.WARNING, logger="infercache"):
        assert s.set("", "k", "huge", 101) is False
        assert s.set("", "j", "huge", 500) is False
    assert len([r for r in caplog.records if "larger than max_memory" in r.getMessage()]) == 1
    assert s.peek("", "k") is None  # the older value is gone: no stale value survives
    assert s.memory == 0


def test_ttl_expiry() -> None:
    clock = FakeClock()
    s = Store(ttl=10, clock=clock)
    s.set("", "a", 1, 1)
    clock.now += 9.9
    assert s.get("", "a") is not None
    clock.now += 0.2
    assert s.get("", "a") is None
    assert s.stats().expirations == 1
    assert len(s) == 0


@pytest.mark.parametrize(
    "count",
    [len, lambda s: len(s.entries()), lambda s: len(s.entries("u")), lambda s: len(s.values("u")),
     lambda s: s.stats().size],
    ids=["len", "entries", "entries-of-namespace", "values", "stats"],
)
def test_expired_entries_are_not_counted_by_any_view(count: Callable[[Store], int]) -> None:
    """Each view on its own, first after expiry, with no lookup removing the entry before it."""
    clock = FakeClock()
    s = Store(ttl=10, clock=clock)
    s.set("u", "a", 1, 5)
    clock.now += 5
    s.set("u", "b", 2, 7)
    clock.now += 5  # "a" expires exactly now
    assert count(s) == 1
    assert s.memory == 7
    assert s.stats().evicted["ttl"] == 1
    clock.now += 5
    assert count(s) == 0
    assert s.memory == 0
    assert s.stats().evicted["ttl"] == 2


def test_expired_entries_are_evicted_before_live_ones() -> None:
    clock = FakeClock()
    s = Store(max_size=2, ttl=5, clock=clock)
    s.set("", "old", 1, 1)
    clock.now += 2
    s.set("", "live", 2, 1)
    assert s.get("", "old") is not None  # "old" is now the most recently used ...
    clock.now += 3  # ... and expired
    s.set("", "new", 3, 1)
    assert s.peek("", "live") is not None  # a live entry was not evicted for an expired one
    assert [k for k, _ in s.entries()] == ["live", "new"]
    assert s.stats().evictions == 0 and s.stats().expirations == 1


def test_namespaces_share_bounds_and_clear_separately() -> None:
    s = Store(max_size=3)
    s.set("u1", "k", 1, 1)
    s.set("u2", "k", 2, 1)
    s.set("u1", "j", 3, 1)
    assert s.get("u1", "k").value == 1
    assert s.get("u2", "k").value == 2
    s.set("u3", "k", 4, 1)  # one bound for all sessions: the LRU entry (u1, j) goes
    assert s.peek("u1", "j") is None
    assert s.clear_namespace("u1") == 1
    assert [k for k, _ in s.entries("u3")] == ["k"]
    assert len(s) == 2


def test_ticket_guards_results_computed_before_a_clear() -> None:
    s = Store()
    before = s.begin("", "k")
    s.clear()
    assert before.stale
    assert s.set("", "k", 1, 1, ticket=before) is False
    assert s.set("", "k", 1, 1, ticket=s.begin("", "k")) is True


def test_clear_namespace_invalidates_only_that_sessions_results_in_flight() -> None:
    s = Store()
    mine, theirs, shared = s.begin("A", "k"), s.begin("B", "k"), s.begin("", "k")
    s.clear_namespace("A")
    assert (mine.stale, theirs.stale, shared.stale) == (True, False, False)
    assert s.set("A", "k", 1, 1, ticket=mine) is False
    assert s.set("B", "k", 2, 1, ticket=theirs) is True
    assert s.set("", "k", 3, 1, ticket=shared) is True


def test_delete_invalidates_only_that_keys_result_in_flight_even_when_absent() -> None:
    s = Store()
    k, j, other_ns = s.begin("", "k"), s.begin("", "j"), s.begin("B", "k")
    assert s.delete("", "k") is False  # nothing stored yet, but its computation is covered
    assert s.set("", "k", 1, 1, ticket=k) is False
    assert s.set("", "j", 2, 1, ticket=j) is True
    assert s.set("B", "k", 3, 1, ticket=other_ns) is True


def test_a_ticket_is_used_once_and_ended_tickets_are_forgotten() -> None:
    s = Store()
    t = s.begin("", "k")
    assert s.set("", "k", 1, 1, ticket=t) is True
    assert s.set("", "k", 2, 1, ticket=t) is False  # already used: not a licence to overwrite
    assert s.peek("", "k").value == 1
    ended = s.begin("", "j")
    s.end(ended)
    assert s.set("", "j", 1, 1, ticket=ended) is False
    assert not s._inflight


class StoreModel(RuleBasedStateMachine):
    """The store against a list-based model of LRU order, bounds and TTL."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.max_size = 4
        self.max_memory = 50
        self.ttl = 5.0
        self.store = Store(max_size=self.max_size, max_memory=self.max_memory, ttl=self.ttl, clock=self.clock)
        # model: list of (full_key, value, size, expires), least recent first
        self.model: list[tuple[tuple[str, int], int, int, float]] = []

    def _expire(self) -> None:
        self.model = [m for m in self.model if m[3] > self.clock.now]

    def _find(self, full: tuple[str, int]) -> int | None:
        for i, m in enumerate(self.model):
            if m[0] == full:
                return i
        return None

    keys = st.tuples(st.sampled_from(["", "s1", "s2"]), st.integers(0, 6))

    @rule(full=keys, value=st.integers(), size=st.integers(0, 60))
    def set(self, full: tuple[str, int], value: int, size: int) -> None:
        stored = self.store.set(full[0], full[1], value, size, raw_key=full)
        i = self._find(full)
        if i is not None:
            self.model.pop(i)
        assert stored == (size <= self.max_memory)
        if stored:
            self.model.append((full, value, size, self.clock.now + self.ttl))
            while len(self.model) > self.max_size or sum(m[2] for m in self.model) > self.max_memory:
                self.model.pop(0)

    @rule(full=keys)
    def get(self, full: tuple[str, int]) -> None:
        self._expire()
        entry = self.store.get(*full)
        i = self._find(full)
        if i is None:
            assert entry is None
        else:
            assert entry is not None and entry.value == self.model[i][1]
            self.model.append(self.model.pop(i))

    @rule(full=keys)
    def delete(self, full: tuple[str, int]) -> None:
        self._expire()
        i = self._find(full)
        assert self.store.delete(*full) == (i is not None)
        if i is not None:
            self.model.pop(i)

    @rule(ns=st.sampled_from(["s1", "s2"]))
    def clear_namespace(self, ns: str) -> None:
        self.store.clear_namespace(ns)
        self.model = [m for m in self.model if m[0][0] != ns]

    @precondition(lambda self: True)
    @rule(dt=st.floats(0, 3))
    def tick(self, dt: float) -> None:
        self.clock.now += dt

    @invariant()
    def bounds_hold(self) -> None:
        assert self.store.memory <= self.max_memory
        assert len(self.store) <= self.max_size
        assert self.store.memory == sum(e.size for _, e in self.store.entries())

    @invariant()
    def same_live_entries_in_lru_order(self) -> None:
        """Through the public views only: expired entries must be gone from every one of them."""
        self._expire()
        live = [m[0] for m in self.model]
        assert [e.raw_key for _, e in self.store.entries()] == live
        assert len(self.store) == len(live)
        stats = self.store.stats()
        assert (stats.size, stats.memory) == (len(live), sum(m[2] for m in self.model))
        for ns in ("", "s1", "s2"):
            assert [k for k, _ in self.store.entries(ns)] == [full[1] for full in live if full[0] == ns]


TestStoreModel = pytest.mark.filterwarnings("ignore:infercache.*larger than max_memory")(StoreModel.TestCase)
TestStoreModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


class InvalidationModel(RuleBasedStateMachine):
    """Values computed in flight against a model of which invalidations cover them.

    The rule: ``delete(ns, k)`` covers the computations of that key,
    ``clear_namespace(ns)`` those of that namespace, ``clear()`` all of them; a
    covered computation is never stored, an uncovered one always is (once).
    """

    tickets = Bundle("tickets")
    keys = st.tuples(st.sampled_from(["", "A", "B"]), st.sampled_from([b"k", b"j"]))

    def __init__(self) -> None:
        super().__init__()
        self.store = Store(max_size=0)
        self.entries: dict[tuple[str, bytes], int] = {}
        self.live: dict[int, tuple[str, bytes]] = {}  # computations neither stored nor covered
        self.serial = 0

    @rule(target=tickets, full=keys)
    def start(self, full: tuple[str, bytes]) -> tuple[int, tuple[str, bytes], Ticket]:
        self.serial += 1
        self.live[self.serial] = full
        return self.serial, full, self.store.begin(*full)

    @rule(t=tickets)
    def finish(self, t: tuple[int, tuple[str, bytes], Ticket]) -> None:
        serial, full, ticket = t
        expected = self.live.pop(serial, None) is not None
        assert self.store.set(full[0], full[1], serial, 1, ticket=ticket, raw_key=full) == expected
        if expected:
            self.entries[full] = serial

    def _cover(self, covers: Callable[[tuple[str, bytes]], bool]) -> None:
        self.live = {s: f for s, f in self.live.items() if not covers(f)}

    @rule(full=keys)
    def delete(self, full: tuple[str, bytes]) -> None:
        self.store.delete(*full)
        self.entries.pop(full, None)
        self._cover(lambda f: f == full)

    @rule(ns=st.sampled_from(["", "A", "B"]))
    def clear_namespace(self, ns: str) -> None:
        self.store.clear_namespace(ns)
        self.entries = {f: v for f, v in self.entries.items() if f[0] != ns}
        self._cover(lambda f: f[0] == ns)

    @rule()
    def clear(self) -> None:
        self.store.clear()
        self.entries.clear()
        self._cover(lambda f: True)

    @invariant()
    def stored_values_match(self) -> None:
        assert {e.raw_key: e.value for _, e in self.store.entries()} == self.entries

    @invariant()
    def tickets_in_flight_are_exactly_the_live_ones(self) -> None:
        assert len(self.store._inflight) == len(self.live)
        assert all(not t.stale for t in self.store._inflight)


TestInvalidationModel = InvalidationModel.TestCase
TestInvalidationModel.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)


# -- counters and boundaries, each checked exactly (mutation testing found them unchecked) --


def test_counters_add_up_over_repeated_events() -> None:
    clock = FakeClock()
    s = Store(ttl=10, clock=clock)
    for key in ("a", "b", "c", "d"):
        s.set("", key, key, 1)
    assert s.delete("", "a") and s.delete("", "b")
    s.set("A", "k", 1, 1)
    s.set("B", "k", 1, 1)
    assert s.clear_namespace("A") == 1 and s.clear_namespace("B") == 1
    s.clear()
    s.set("", "e", 1, 1)
    s.clear()
    clock.now += 10
    s.set("", "x", 1, 1)
    s.set("", "y", 1, 1)
    clock.now += 10  # both expired, neither swept yet
    assert s.delete("", "x") is False and s.delete("", "y") is False  # gone by expiry, not deleted
    assert s.stats().evicted == {
        "size": 0, "memory": 0, "ttl": 2, "session": 2, "cleared": 3, "deleted": 2, "oversized": 0,
    }
    assert s.stats().expirations == 2


def test_an_entry_expires_at_its_expiry_time_exactly() -> None:
    clock = FakeClock()
    s = Store(ttl=10, clock=clock)
    s.set("", "k", 1, 1)
    clock.now += 10  # 1010.0, the entry's expiry, exactly
    assert s.peek("", "k") is None
    assert s.touch("", "k") is None
    assert s.delete("", "k") is False  # not live: counted as expired, not deleted
    assert s.stats().evicted["deleted"] == 0 and s.stats().expirations == 1


def test_one_sweep_drops_every_expired_entry_and_counts_each() -> None:
    clock = FakeClock()
    s = Store(ttl=10, clock=clock)
    assert Store().purge_expired() == 0  # nothing expires without a ttl
    for key in range(3):
        s.set("", key, key, 1)
    clock.now += 10
    assert s.purge_expired() == 3
    assert s.stats().expirations == 3 and len(s) == 0


def test_expired_entries_met_by_a_clear_count_as_expired() -> None:
    clock = FakeClock()
    s = Store(ttl=10, clock=clock)
    s.set("", "old", 1, 1)
    s.set("A", "old", 1, 1)
    clock.now += 5
    s.set("", "new", 1, 1)
    s.set("A", "new", 1, 1)
    clock.now += 5  # the two "old" entries expire
    assert s.clear_namespace("A") == 1
    s.clear()
    assert s.stats().evicted == {
        "size": 0, "memory": 0, "ttl": 2, "session": 1, "cleared": 1, "deleted": 0, "oversized": 0,
    }


def test_touch_counts_each_hit_and_the_time_it_saved() -> None:
    s = Store()
    s.set("", "k", 1, 1, cost=2.0)
    assert s.touch("", "k").value == 1
    assert s.touch("", "k").value == 1
    assert s.touch("", "absent") is None  # no miss: the caller decided on a hit
    stats = s.stats()
    assert (stats.hits, stats.misses, stats.saved_seconds) == (2, 0, 4.0)
    assert stats.hits_by_tier == {"memory": 2}


def test_a_join_takes_back_the_miss_it_was_counted_as() -> None:
    s = Store()
    for _ in range(3):
        assert s.get("", "k") is None
    s.count_join()
    assert (s.stats().misses, s.stats().joins) == (2, 1)
    s.uncount_join(as_miss=True)
    assert (s.stats().misses, s.stats().joins) == (3, 0)


def test_search_serves_only_a_live_chosen_key_and_counts_each_miss() -> None:
    clock = FakeClock()
    s = Store(ttl=10, clock=clock)
    s.set("", "old", 1, 1)
    clock.now += 5
    s.set("", "new", 2, 1)
    seen: dict = {}

    def choose(key: str) -> Callable[[Callable[[object], bool]], object]:
        def pick(is_live: Callable[[object], bool]) -> object:
            seen[key] = is_live(key)
            return key

        return pick

    clock.now += 5  # "old" expires now, exactly
    assert s.search("", choose("absent")) is None
    assert s.search("", choose("old")) is None
    assert s.search("", choose("new")).value == 2
    assert s.search("", lambda is_live: None) is None
    assert seen == {"absent": False, "old": False, "new": True}
    assert (s.stats().hits, s.stats().misses) == (1, 3)


def test_listeners_hear_the_namespace_and_key_of_each_entry_that_leaves() -> None:
    s = Store(max_size=1)
    heard: list = []
    s.add_listener(lambda ns, key, entry: heard.append((ns, key, entry.value)))
    s.set("A", "k", 1, 1)
    s.set("B", "j", 2, 1)  # evicts A/k
    s.delete("B", "j")
    assert heard == [("A", "k", 1), ("B", "j", 2)]


def test_stats_report_the_bounds_and_the_hit_ratio() -> None:
    s = Store(max_size=5, max_memory=100)
    assert s.stats().hit_ratio == 0.0 and s.stats().as_dict()["hit_ratio"] == 0.0
    s.set("", "k", 1, 1)
    s.get("", "k")
    s.get("", "j")
    s.get("", "k")
    s.get("", "j")
    stats = s.stats()
    assert (stats.max_size, stats.max_memory) == (5, 100)
    assert stats.hit_ratio == 0.5
    out = stats.as_dict()
    assert out["hit_ratio"] == 0.5 and out["max_size"] == 5 and out["max_memory"] == 100


def test_a_ticket_names_its_key_and_says_if_it_is_stale() -> None:
    assert repr(Ticket()) == "<Ticket ''/None live>"  # the anonymous namespace until claimed
    s = Store()
    ticket = s.begin("A", "k")
    assert repr(ticket) == "<Ticket 'A'/'k' live>"
    s.clear_namespace("A")
    assert repr(ticket) == "<Ticket 'A'/'k' stale>"


def test_each_expired_entry_a_lookup_meets_is_counted() -> None:
    clock = FakeClock()
    s = Store(ttl=10, clock=clock)
    s.set("", "a", 1, 1)
    s.set("", "b", 1, 1)
    clock.now += 10
    assert s.get("", "a") is None and s.get("", "b") is None
    assert s.expirations == 2  # counted as met, before any sweep


def test_an_entry_stored_without_a_cost_saves_no_time_when_hit() -> None:
    s = Store()
    s.set("", "k", 1, 1)
    assert s.get("", "k") is not None
    assert s.stats().saved_seconds == 0.0


def test_expired_entries_stay_until_a_bound_is_exceeded() -> None:
    """Below or at the bounds a ``set`` leaves expired entries to the next sweep (they are never served)."""
    clock = FakeClock()
    s = Store(max_size=2, max_memory=10, ttl=10, clock=clock)
    s.set("", "old", 1, 5)
    clock.now += 10  # "old" expires
    s.set("", "new", 2, 5)  # at both bounds (2 entries, 10 bytes), not over either
    assert s.purge_expired() == 1  # "old" was still there to purge


def test_evictions_are_told_apart_by_the_bound_that_caused_them() -> None:
    s = Store(max_size=2, max_memory=10)
    s.set("", "a", 1, 5)
    s.set("", "b", 1, 6)  # 2 entries (at max_size), 11 bytes: a goes for memory
    s.set("", "c", 1, 1)
    s.set("", "d", 1, 1)  # 3 entries: b goes for size
    s.set("", "e", 1, 1)  # 3 entries: c goes for size
    assert [k for k, _ in s.entries()] == ["d", "e"]
    evicted = s.stats().evicted
    assert (evicted["memory"], evicted["size"]) == (1, 2)


def test_an_eviction_wave_is_logged_once_with_its_size(caplog: pytest.LogCaptureFixture) -> None:
    s = Store(max_size=0, max_memory=10)
    with caplog.at_level(logging.DEBUG, logger="infercache"):
        s.set("", "a", 1, 4)
        s.set("", "b", 1, 4)  # within the bounds: nothing logged
        assert not caplog.records
        s.set("", "c", 1, 10)  # a and b go in one wave
    assert [r.getMessage() for r in caplog.records] == [
        "infercache: evicted 2 entries to stay within the cache's bounds"
    ]


def test_a_store_holds_128_entries_unless_told_otherwise() -> None:
    s = Store()
    for i in range(129):
        s.set("", i, i, 1)
    assert len(s) == 128 and s.peek("", 0) is None


def test_a_negative_size_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="entry size must be >= 0, got -1"):
        Store().set("", "k", 1, -1)


def test_the_warning_for_an_entry_larger_than_max_memory_says_what_happened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="infercache"):
        assert Store(max_memory=100).set("", "k", 1, 101) is False
    assert [r.getMessage() for r in caplog.records] == [
        "infercache: an entry of 101 bytes is larger than max_memory=100 bytes "
        "and was not cached (logged once per cache)"
    ]


@pytest.mark.parametrize("shared_key", [("s1", "k"), ("x", "s1", "k"), ("s1", "k", None)])
def test_a_shared_key_shaped_like_a_session_address_is_its_own_entry(shared_key: tuple) -> None:
    # Shared entries sit under the key itself and session entries under a marked tuple:
    # no shared key, whatever its shape, may reach (or replace, or clear) a session's entry.
    s = Store()
    s.set("s1", "k", "session value", 1)
    s.set("", shared_key, "shared value", 1)
    assert s.get("s1", "k").value == "session value"
    assert s.get("", shared_key).value == "shared value"
    assert s.peek("", shared_key).value == "shared value"
    assert sorted(map(repr, (k for k, _ in s.entries("")))) == [repr(shared_key)]
    assert [k for k, _ in s.entries("s1")] == ["k"]
    assert s.delete("", shared_key) and s.get("s1", "k").value == "session value"
    s.set("", shared_key, "shared value", 1)
    assert s.clear_namespace("s1") == 1
    assert s.get("", shared_key).value == "shared value" and s.values("s1") == []
    assert s.clear_namespace("") == 1 and len(s) == 0


# -- every counter, every namespace form of each lookup ----------------------------------


def test_each_lookup_form_finds_shared_and_session_entries_alike() -> None:
    """``get``, ``lookup``, ``touch``, ``peek``, ``search`` and ``values`` address a shared
    entry (namespace ``""``) and a session's entry each under its own slot."""
    s = Store()
    s.set("", "k", "shared", 1)
    s.set("A", "j", "session A", 1)
    for ns, key, value in (("", "k", "shared"), ("A", "j", "session A")):
        assert s.get(ns, key).value == value
        assert s.lookup((ns, key)).value == value
        assert s.touch(ns, key).value == value
        assert s.peek(ns, key).value == value
        assert s.search(ns, lambda is_live, key=key: key if is_live(key) else None).value == value
        other = "j" if key == "k" else "k"  # the other namespace's key
        assert s.get(ns, other) is None and s.touch(ns, other) is None
    assert [e.value for e in s.values("")] == ["shared"]
    assert [e.value for e in s.values("A")] == ["session A"]
    only_shared = Store()
    only_shared.set("", "k", "v", 1)
    assert [e.value for e in only_shared.values("")] == ["v"] and only_shared.values("A") == []


def test_hits_add_the_time_each_saved_and_an_expired_lookup_counts_one_miss() -> None:
    clock = FakeClock()
    s = Store(ttl=10, clock=clock)
    s.set("", "k", 1, 1, cost=1.5)
    assert s.get("", "k") is not None and s.lookup(("", "k")) is not None
    parts = s.lookup_parts()
    assert parts.clock is clock  # the inlined lookup compares expiry with the store's own clock
    assert s.stats().saved_seconds == 3.0
    for _ in range(3):
        assert s.get("", "absent") is None
    clock.now += 10
    assert s.get("", "k") is None  # expired: one miss, one expiration
    stats = s.stats()
    assert (stats.hits, stats.misses, stats.expirations, stats.saved_seconds) == (2, 4, 1, 3.0)


def test_oversized_entries_are_counted_each_time() -> None:
    s = Store(max_memory=10)
    for key in ("a", "b", "c"):
        assert s.set("", key, 1, 11) is False
    assert s.stats().evicted["oversized"] == 3


def test_on_stored_runs_only_when_the_value_was_stored() -> None:
    s = Store(max_memory=10)
    stored: list = []
    assert s.set("", "a", 1, 5, on_stored=lambda: stored.append("a")) is True
    assert s.set("", "b", 1, 11, on_stored=lambda: stored.append("b")) is False
    assert stored == ["a"]


def test_clearing_the_shared_namespace_leaves_the_sessions() -> None:
    s = Store()
    s.set("", "k", 1, 1)
    s.set("A", "k", 2, 1)
    assert s.clear_namespace("") == 1
    assert s.peek("", "k") is None and s.peek("A", "k").value == 2


def test_listeners_hear_shared_entries_leave_too() -> None:
    s = Store(max_size=1)
    heard: list = []
    s.add_listener(lambda ns, key, entry: heard.append((ns, key)))
    s.set("", "a", 1, 1)
    s.set("", "b", 1, 1)  # evicts a
    s.delete("", "b")
    assert heard == [("", "a"), ("", "b")]


def test_an_expired_entry_goes_before_a_live_one_when_memory_overflows(caplog: pytest.LogCaptureFixture) -> None:
    """With a ttl, an entry over ``max_memory`` first sweeps what expired, even when the least
    recently used entry is live; nothing is evicted (or logged as evicted) if that suffices."""
    clock = FakeClock()
    s = Store(max_size=10, max_memory=10, ttl=100, clock=clock)
    s.set("", "a", 1, 4)  # expires at 1100
    clock.now += 50
    s.set("", "b", 2, 4)  # expires at 1150
    clock.now += 10
    assert s.get("", "a") is not None  # a is now most recently used, b least
    clock.now += 45  # 1105: a expired, b live
    with caplog.at_level(logging.DEBUG, logger="infercache"):
        s.set("", "c", 3, 4)  # 12 bytes with a: over max_memory
    assert [k for k, _ in s.entries()] == ["b", "c"]
    assert s.stats().evicted["memory"] == 0 and s.stats().expirations == 1
    assert not [r for r in caplog.records if "evicted" in r.getMessage()]


def test_memory_evictions_are_counted_each_time() -> None:
    s = Store(max_memory=10)
    for key in ("a", "b", "c"):
        s.set("", key, 1, 6)  # each evicts the one before
    assert s.stats().evicted["memory"] == 2 and s.stats().evictions == 2


def test_the_session_marker_names_itself() -> None:
    from infercache.store import SESSION

    assert repr(SESSION) == "SESSION"  # what a session slot shows in a debugger or a log
