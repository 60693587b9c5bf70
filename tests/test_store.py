"""The LRU store: bounds, LRU order, TTL, namespaces, against a simple model."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from infercache.store import Store, parse_memory


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512mb", 512_000_000),
        ("2gb", 2_000_000_000),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("10 MB", 10_000_000),
        ("100", 100),
        ("64kib", 65536),
        (4096, 4096),
        (2e9, 2_000_000_000),
        (None, None),
    ],
)
def test_parse_memory(text: object, expected: int | None) -> None:
    assert parse_memory(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["lots", "12 parsecs", "mb", "-5mb", 0, -1, "0gb", True, 0.5, float("nan"), float("inf"), "nan gb", "infgb"])
def test_parse_memory_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_memory(bad)  # type: ignore[arg-type]


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


def test_entry_larger_than_bound_is_refused_and_warns_once() -> None:
    s = Store(max_memory=100)
    s.set("", "k", "old", 10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert s.set("", "k", "huge", 101) is False
        assert s.set("", "j", "huge", 500) is False
    assert len([w for w in caught if "larger than max_memory" in str(w.message)]) == 1
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


def test_generation_guards_results_computed_before_a_clear() -> None:
    s = Store()
    g = s.generation
    s.clear()
    assert s.set("", "k", 1, 1, generation=g) is False
    assert s.set("", "k", 1, 1, generation=s.generation) is True


def test_remove_listener_sees_every_departure() -> None:
    s = Store(max_size=1)
    gone: list = []
    s.add_listener(lambda ns, k, e: gone.append((ns, k)))
    s.set("", "a", 1, 1)
    s.set("", "b", 1, 1)  # evicts a
    s.delete("", "b")
    s.set("x", "c", 1, 1)
    s.clear_namespace("x")
    assert gone == [("", "a"), ("", "b"), ("x", "c")]


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
        stored = self.store.set(full[0], full[1], value, size)
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
        assert len(self.store._data) <= self.max_size
        assert self.store.memory == sum(e.size for e in self.store._data.values())

    @invariant()
    def same_live_entries_in_lru_order(self) -> None:
        self._expire()
        assert [(ns, k) for (ns, k), e in self.store._data.items() if e.expires > self.clock.now] == [
            m[0] for m in self.model
        ]


TestStoreModel = pytest.mark.filterwarnings("ignore:infercache.*larger than max_memory")(StoreModel.TestCase)
TestStoreModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
