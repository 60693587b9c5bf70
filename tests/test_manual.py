"""``Cache``: get/set/keys/delete/clear, bounds and ttl, per-session entries,
prefix lookups, thread safety, and a ``set`` in progress across invalidations."""

from __future__ import annotations

import functools
import logging
import threading
from contextlib import nullcontext
from typing import Any

import numpy as np
import pytest
from flight_fixtures import join_all
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from keys_fixtures import refusal_message

import infercache as ic
from infercache import engine as engine_module
from infercache.store import Store


def test_get_set_keys_delete_clear() -> None:
    c = ic.Cache()
    assert c.get("a") is None
    c.set("a", result=1, extra=[1, 2])
    c.set(("b", 2), result=2)
    assert c.get("a") == {"result": 1, "extra": [1, 2]}
    assert "a" in c and ("b", 2) in c and "z" not in c
    assert c.keys() == [("b", 2), "a"]  # least recently used first
    assert len(c) == 2
    assert c.delete("a") is True
    assert c.delete("a") is False
    c.clear()
    assert len(c) == 0 and c.keys() == []


def test_keys_are_by_content() -> None:
    c = ic.Cache()
    img = np.arange(6).reshape(2, 3)
    c.set(img, label="cat")
    assert c.get(img.copy()) == {"label": "cat"}
    assert c.get(img.astype(np.float64)) is None
    c.set(1, v="int")
    assert c.get(1.0) is None and c.get(True) is None and c.get("1") is None


def test_returned_data_can_be_mutated_freely() -> None:
    c = ic.Cache()
    data = {"tokens": [1, 2]}
    c.set("k", state=data)
    data["tokens"].append(3)  # the producer's copy
    got = c.get("k")
    got["state"]["tokens"].append(99)
    got["new"] = 1
    assert c.get("k") == {"state": {"tokens": [1, 2]}}


def test_works_as_a_default_parameter_shared_across_calls() -> None:
    computed = []

    def lookup(city, c=ic.Cache()):  # a Cache() default: the guide's pattern
        key = city.strip().lower()
        hit = c.get(key)
        if hit is not None:
            return hit["result"]
        computed.append(key)
        result = f"weather in {key}"
        c.set(key, result=result)
        return result

    assert lookup("Paris") == lookup(" paris ") == "weather in paris"
    assert computed == ["paris"]


def test_bounds_evict_least_recently_used() -> None:
    c = ic.Cache(max_size=2)
    c.set("a", v=1)
    c.set("b", v=2)
    c.get("a")
    c.set("c", v=3)
    assert c.keys() == ["a", "c"]
    m = ic.Cache(max_memory="1mb", max_size=0)
    for i in range(10):
        m.set(i, v=np.zeros(200_000, dtype=np.uint8))
        assert m.stats().memory <= 1_000_000
    assert len(m) == 4


def test_max_memory_counts_the_keys_of_set() -> None:
    c = ic.Cache(max_memory="100kb", max_size=0)
    for i in range(50):
        c.set("k" * 30_000 + str(i), v=1)
        assert c.stats().memory <= 100_000
    assert 1 <= len(c) <= 3


def test_data_too_big_for_max_memory_is_logged_and_drops_the_older_data(caplog: pytest.LogCaptureFixture) -> None:
    c = ic.Cache(max_memory=1000)
    c.set("a", v=1)
    with caplog.at_level(logging.WARNING, logger="infercache"):
        c.set("a", v=np.zeros(10_000))
    assert any("larger than max_memory" in r.getMessage() for r in caplog.records)
    assert c.get("a") is None and len(c) == 0


class FakeClock:
    """A monotonic clock the test moves by hand (no sleeping, no timing)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """A fake clock read by the store of every cache made during the test.

    Each cache's engine builds its store as ``Store(max_size, max_memory, ttl)``;
    here it is built with the store's own ``clock=`` parameter set to the fake.
    """
    fake = FakeClock()
    monkeypatch.setattr(engine_module, "Store", functools.partial(Store, clock=fake))
    return fake


@pytest.mark.parametrize(
    "gone",
    [
        lambda c: c.get("hello") is None,
        lambda c: c.longest_prefix("hello world") is None,
        lambda c: "hello" not in c,
        lambda c: c.keys() == [],
        lambda c: len(c) == 0,
        lambda c: (c.stats().size, c.stats().memory, c.stats().evicted["ttl"]) == (0, 0, 1),
    ],
    ids=["get", "longest_prefix", "in", "keys", "len", "stats"],
)
def test_expired_entries_are_gone_from_every_lookup_and_view(gone: Any, clock: FakeClock) -> None:
    """Each lookup or view on its own, first after expiry (each one alone must not see the entry)."""
    c = ic.Cache(ttl=10)
    c.set("hello", v=1)
    clock.now = 9.9
    assert c.keys() == ["hello"] and len(c) == 1
    clock.now = 10.0
    assert gone(c)


def test_mutating_a_list_key_after_set_or_from_keys_changes_no_key() -> None:
    c = ic.Cache()
    key = [1, 2]
    c.set(key, v=[1])
    key.append(3)
    assert c.keys() == [[1, 2]] and c.get([1, 2]) == {"v": [1]}
    c.keys()[0].append(4)
    assert c.keys() == [[1, 2]]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        ic.Cache(max_memory="2 bananas")
    with pytest.raises(ValueError):
        ic.Cache(max_size=-5)
    with pytest.raises(ValueError):
        ic.Cache(ttl=0)
    with pytest.raises(ValueError):
        ic.Cache(digest="sha1")
    with pytest.raises(ic.ConfigError, match="name must be a non-empty str"):
        ic.Cache(name=" ")
    with pytest.raises(TypeError):
        ic.Cache(128)  # type: ignore[misc]
    c = ic.Cache()
    with pytest.raises(TypeError) as refused:
        c.set(threading.Lock(), v=1)
    reason = "locks are synchronisation objects, not data"
    assert str(refused.value) == refusal_message("_thread.lock", reason, "lock", subject="parameter 'key'")
    with pytest.raises(TypeError) as info:
        c.longest_prefix(3.5)
    assert str(info.value) == "longest_prefix takes a str, bytes or a sequence of ints (token ids), not float"


def test_the_defaults_keep_128_entries_shared_by_every_session_under_the_name_cache() -> None:
    c = ic.Cache()
    assert not c.per_session and c.name.partition("#")[0] == "Cache"
    for i in range(129):
        with ic.session(f"user {i % 2}"):
            c.set(i, v=i)
    assert len(c) == 128 and c.get(0) is None and c.get(1) == {"v": 1}


def test_repr_shows_the_entries_their_memory_and_per_session() -> None:
    c = ic.Cache()
    assert repr(c) == "<infercache.Cache 0 entries, 0 bytes>"
    c.set("prompt", kv=[1.0] * 100)
    memory = c.stats().memory
    assert memory > 0
    assert repr(c) == f"<infercache.Cache 1 entries, {memory} bytes>"
    assert repr(ic.Cache(per_session=True)) == "<infercache.Cache 0 entries, 0 bytes, per_session>"


def test_per_session_isolation_and_clear_session() -> None:
    c = ic.Cache(per_session=True, max_size=3)
    with ic.session("alice"):
        c.set("prompt", kv="alice-state")
    with ic.session("bob"):
        assert c.get("prompt") is None
        c.set("prompt", kv="bob-state")
        assert c.keys() == ["prompt"]
    assert c.get("prompt") is None  # the anonymous namespace is its own
    c.set("prompt", kv="anon")
    with ic.session("alice"):
        assert c.get("prompt") == {"kv": "alice-state"}
    assert len(c) == 3
    assert ic.clear_session("alice") >= 1
    with ic.session("alice"):
        assert c.get("prompt") is None
    with ic.session("bob"):
        assert c.get("prompt") == {"kv": "bob-state"}


def test_clear_session_of_one_cache_drops_that_session_only() -> None:
    c = ic.Cache(per_session=True)
    other = ic.Cache(per_session=True)
    for sid in ("alice", "bob"):
        with ic.session(sid):
            c.set("p", v=sid)
            c.set("q", v=sid)
            other.set("p", v=sid)
    c.set("p", v="anon")
    assert c.clear_session("alice") == 2
    assert len(c) == 3
    with ic.session("alice"):
        assert c.keys() == [] and c.get("p") is None
        assert other.get("p") == {"v": "alice"}  # another cache's entries of that session stay
    with ic.session("bob"):
        assert c.keys() == ["p", "q"] and c.get("q") == {"v": "bob"}
    assert c.get("p") == {"v": "anon"}
    assert c.clear_session("nobody") == 0


def test_per_session_bounds_are_shared_by_all_sessions() -> None:
    c = ic.Cache(max_size=3, per_session=True)
    for sid in "abcd":
        with ic.session(sid):
            c.set("x", v=sid)
    assert len(c) == 3
    with ic.session("a"):
        assert c.get("x") is None
    with ic.session("d"):
        assert c.get("x") == {"v": "d"} and c.keys() == ["x"]
    assert c.keys() == []  # the anonymous namespace holds nothing


def test_longest_prefix_kinds_and_strict() -> None:
    c = ic.Cache(max_size=0)
    c.set("The cat", kv=1)
    c.set("The cat sat", kv=2)
    c.set(b"The", kv=3)
    c.set((1, 2, 3), kv=4)
    assert c.longest_prefix("The cat sat on the mat") == ("The cat sat", {"kv": 2})
    assert c.longest_prefix("The cat sat", strict=True) == ("The cat", {"kv": 1})
    assert c.longest_prefix("The dog") is None
    assert c.longest_prefix(b"The cat") == (b"The", {"kv": 3})
    assert c.longest_prefix([1, 2, 3, 4])[1] == {"kv": 4}
    assert c.longest_prefix(np.array([1, 2, 3, 9]))[1] == {"kv": 4}
    c.delete("The cat sat")
    assert c.longest_prefix("The cat sat on")[0] == "The cat"


def test_longest_prefix_respects_eviction_ttl_and_sessions() -> None:
    c = ic.Cache(max_size=2, per_session=True)
    with ic.session("s1"):
        c.set("ab", v=1)
        c.set("abc", v=2)
    with ic.session("s2"):
        assert c.longest_prefix("abcd") is None
        c.set("a", v=3)  # evicts s1's "ab" (the least recently used)
    with ic.session("s1"):
        assert c.longest_prefix("abcd")[0] == "abc"
        assert c.longest_prefix("abcd", strict=True)[0] == "abc"
        assert c.longest_prefix("abc", strict=True) is None  # "ab", its only shorter prefix, was evicted
        assert c.longest_prefix("abx") is None


def test_the_prefix_index_forgets_keys_evicted_deleted_or_cleared() -> None:
    # Only live keys stay in the index: it is bounded by the cache's own bounds.
    c = ic.Cache(max_size=3, per_session=True)

    def indexed() -> int:
        return sum(len(index) for index in c._prefixes.values())

    with ic.session("s1"):
        for i in range(50):
            c.set(f"prompt {i}", kv=i)
        c.set(("not", "searchable"), kv=0)
        assert indexed() == 2
        c.set(b"bytes", kv=1)
        c.set([1, 2, 3], kv=2)
        assert indexed() == 2  # the prompts were evicted
        c.delete([1, 2, 3])
        assert indexed() == 1
    with ic.session("s2"):
        c.set("another user's prompt", kv=3)
    ic.clear_session("s1")
    with ic.session("s2"):
        assert indexed() == 1 and list(c._prefixes) == [c.engine.namespace()]
    c.clear()
    assert indexed() == 0 and not c._prefixes


def test_longest_prefix_counts_as_a_hit_and_refreshes_lru() -> None:
    c = ic.Cache(max_size=2)
    c.set("sys", v=1)
    c.set("other", v=2)
    assert c.longest_prefix("sys: hello")[0] == "sys"
    c.set("third", v=3)  # evicts "other", not the just-used "sys"
    assert "sys" in c and "other" not in c
    assert c.stats().hits == 1


def test_longest_prefix_keeps_a_list_key_when_the_equal_tuple_key_is_deleted() -> None:
    """A list and a tuple are two keys but one token sequence in the prefix index."""
    c = ic.Cache()
    c.set([1, 2], a=1)
    c.set((1, 2), b=2)
    c.delete((1, 2))
    assert [1, 2] in c
    hit = c.longest_prefix([1, 2, 3])
    assert hit is not None and hit[1] == {"a": 1}
    # The other way round: the key set second stays when the first is deleted.
    c.set((1, 2), b=2)
    c.delete([1, 2])
    assert c.longest_prefix([1, 2, 3]) == ((1, 2), {"b": 2})


def test_a_set_whose_data_cannot_be_kept_leaves_nothing_in_flight() -> None:
    c = ic.Cache()
    for _ in range(3):
        with pytest.raises(TypeError):
            c.set("k", v=iter([1]))
    assert not c.engine.store._inflight  # a refused set is not left registered for later clears to walk
    c.set("k", v=1)
    assert c.get("k") == {"v": 1}


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["set", "delete", "lookup"]), st.text(alphabet="ab", max_size=5)),
        max_size=40,
    )
)
def test_longest_prefix_matches_a_brute_force_scan(ops) -> None:
    c = ic.Cache(max_size=6)
    for op, key in ops:
        if op == "set":
            c.set(key, v=key)
        elif op == "delete":
            c.delete(key)
        else:
            live = c.keys()
            best = max((k for k in live if key.startswith(k)), key=len, default=None)
            found = c.longest_prefix(key)
            assert (found[0] if found else None) == best


def test_thread_safety_under_concurrent_set_get() -> None:
    c = ic.Cache(max_size=50)
    errors = []

    def worker(n):
        try:
            for i in range(300):
                c.set((n, i % 20), v=i)
                got = c.get((n, i % 20))
                if got is not None and got["v"] % 20 != i % 20:
                    errors.append((n, i, got))
        except Exception as e:  # noqa: BLE001 # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    join_all(*threads)
    assert not errors
    assert len(c) <= 50


class PrefixCacheModel(RuleBasedStateMachine):
    """``Cache.longest_prefix`` against a brute-force scan of a model of the cache.

    All three key kinds in one cache, two sessions plus the anonymous one,
    LRU eviction (lookups refresh the entry they return), deletes and clears.
    """

    MAX = 5

    def __init__(self) -> None:
        super().__init__()
        self.cache = ic.Cache(max_size=self.MAX, per_session=True)
        self.model: list[tuple[str | None, object]] = []  # (session, key), least recent first

    def _in(self, session):
        return ic.session(session) if session else nullcontext()

    keys = st.one_of(
        st.text(alphabet="ab", max_size=4),
        st.binary(max_size=3).map(lambda b: bytes(x % 2 for x in b)),
        st.lists(st.integers(0, 1), max_size=4).map(tuple),
    )
    sessions = st.sampled_from([None, "s1", "s2"])

    @rule(session=sessions, key=keys)
    def set(self, session, key) -> None:
        with self._in(session):
            self.cache.set(key, v=repr(key))
        self.model = [m for m in self.model if m != (session, key)] + [(session, key)]
        del self.model[: max(0, len(self.model) - self.MAX)]

    @rule(session=sessions, key=keys)
    def delete(self, session, key) -> None:
        with self._in(session):
            assert self.cache.delete(key) == ((session, key) in self.model)
        self.model = [m for m in self.model if m != (session, key)]

    @rule(session=st.sampled_from(["s1", "s2"]))
    def end_session(self, session) -> None:
        ic.clear_session(session)
        self.model = [m for m in self.model if m[0] != session]

    @rule(session=sessions, query=keys, strict=st.booleans(), as_list=st.booleans())
    def lookup(self, session, query, strict, as_list) -> None:
        def kind(k):
            return type(k)

        candidates = [
            k
            for s, k in self.model
            if s == session
            and kind(k) is kind(query)
            and query[: len(k)] == k
            and not (strict and len(k) == len(query))
        ]
        best = max(candidates, key=len, default=None)
        asked = list(query) if as_list and isinstance(query, tuple) else query
        with self._in(session):
            found = self.cache.longest_prefix(asked, strict=strict)
        if best is None:
            assert found is None
        else:
            assert found is not None
            assert found[0] == best and found[1] == {"v": repr(best)}
            self.model.remove((session, best))
            self.model.append((session, best))

    @invariant()
    def same_entries(self) -> None:
        assert len(self.cache) == len(self.model)


TestPrefixCacheModel = PrefixCacheModel.TestCase
TestPrefixCacheModel.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)


class SlowCopy:
    """A value whose first copy (the one ``Cache.set`` makes) waits until the test lets it go."""

    def __init__(self, entered: threading.Event, go: threading.Event) -> None:
        self.entered, self.go = entered, go

    def __deepcopy__(self, memo: dict) -> Any:
        if not self.go.is_set():
            self.entered.set()
            self.go.wait(10)
        return SlowCopy(self.entered, self.go)


@pytest.mark.parametrize(
    ("invalidate", "stored"),
    [
        (lambda c: c.clear_session("B"), True),
        (lambda c: c.delete("other key"), True),
        (lambda c: c.clear_session("A"), False),
        (lambda c: c.delete("k"), False),
        (lambda c: c.clear(), False),
    ],
    ids=["other-session", "other-key", "own-session", "own-key", "clear"],
)
def test_manual_cache_set_in_progress_is_dropped_only_by_invalidations_covering_it(
    invalidate: Any, stored: bool
) -> None:
    c = ic.Cache(per_session=True)
    entered, go = threading.Event(), threading.Event()

    def writer() -> None:
        with ic.session("A"):
            c.set("k", v=SlowCopy(entered, go))

    t = threading.Thread(target=writer)
    t.start()
    assert entered.wait(10)
    with ic.session("A"):
        invalidate(c)
    go.set()
    join_all(t)
    with ic.session("A"):
        assert ("k" in c) is stored
