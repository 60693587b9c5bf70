"""The engine: one miss path for every entry point, and the tier stack behind memory."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flight_fixtures import HANG_BOUND, join_all, run_bounded, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import infercache as ic
from infercache import hooks
from infercache.codec import Codec, CorruptEntry
from infercache.config import Settings
from infercache.engine import LEASE_SECONDS, Engine
from infercache.keyspace import Keyspace
from infercache.registry import caches
from infercache.safety import protect, release
from infercache.sizes import sizeof
from infercache.tiers import DiskTier, Lease, MemoryTier, Tier

SECRET = b"k" * 32


def tiered(tier: Tier | None = None) -> Engine:
    tiers = [tier if tier is not None else MemoryTier()]
    return Engine(Settings.of(), "tests.engine.f", tiers=tiers, codec=Codec(SECRET))


def compute_through(engine: Engine, key: bytes, value: object) -> object:
    full = ("", key)
    entry = engine.lookup(full)
    if entry is not None:
        return engine.serve(entry)
    return engine.call(full, lambda: value, (), {}, ())


kept_values = st.one_of(
    st.integers(),
    st.text(),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=4), st.floats(allow_nan=False), max_size=4),
    hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(max_dims=3, max_side=4)),
    st.builds(lambda n: pd.DataFrame({"a": list(range(n)), "b": [str(i) for i in range(n)]}), st.integers(0, 5)),
    st.builds(lambda b: memoryview(b), st.binary(max_size=16)),
)


def same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):  # by bytes: NaN and NaT are not equal to themselves
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, pd.DataFrame):
        return isinstance(b, pd.DataFrame) and a.equals(b)
    if isinstance(a, memoryview):
        return isinstance(b, memoryview) and a.tobytes() == b.tobytes() and a.format == b.format
    return bool(a == b)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(kept_values)
def test_every_kept_value_round_trips_through_the_codec(value: object) -> None:
    """What the in-memory store holds survives the seam to the tiers unchanged."""
    codec = Codec(SECRET)
    kept = protect(value)
    back = codec.loads(b"name", codec.dumps(b"name", kept))
    assert same(release(back), value)


def test_a_miss_is_written_through_and_a_tier_hit_is_promoted_into_memory() -> None:
    tier = MemoryTier()
    engine = tiered(tier)
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert compute_through(engine, b"k", {"image": image}) is not None
    assert len(tier) == 1  # written through
    engine.store.clear()  # memory forgets; the tier does not
    got = compute_through(engine, b"k", "not computed again")
    assert isinstance(got, dict) and np.array_equal(got["image"], image)
    assert engine.store.peek("", b"k") is not None  # promoted
    assert not got["image"].flags.writeable


def test_a_corrupted_tier_record_is_a_miss_deleted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    tier = MemoryTier()
    engine = tiered(tier)
    compute_through(engine, b"k", "right")
    (name,) = list(tier._records)  # test reaches the reference tier's dict to flip a byte
    good = tier.get(name) or b""
    for n in (1, 2):
        engine.store.clear()
        record = bytearray(good)
        record[len(record) // 2] ^= 0xFF
        tier.set(name, bytes(record))
        with pytest.raises(CorruptEntry) as why:
            Codec(SECRET).loads(name, bytes(record))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="infercache"):
            assert engine.lookup(("", b"k")) is None
        assert [r.getMessage() for r in caplog.records] == [
            f"infercache: dropped a memory entry of 'tests.engine.f': {why.value}"
        ]
        assert tier.get(name) is None  # deleted
        assert engine.stats().verification_failures == n
    assert compute_through(engine, b"k", "recomputed") == "recomputed"
    engine.store.clear()
    assert compute_through(engine, b"k", "unused") == "recomputed"  # the fresh record replaced it


class BrokenTier(Tier):
    """A tier whose backend is down: every verb fails."""

    name = "broken"

    def get(self, name: bytes) -> bytes | None:
        raise OSError("backend down")

    def set(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        raise OSError("backend down")

    def delete(self, name: bytes) -> bool:
        raise OSError("backend down")

    def clear(self, prefix: bytes = b"") -> int:
        raise OSError("backend down")


def test_a_failing_tier_never_fails_a_call(caplog: pytest.LogCaptureFixture) -> None:
    engine = tiered(BrokenTier())
    with caplog.at_level(logging.WARNING, logger="infercache"):
        assert compute_through(engine, b"k", 41) == 41
        assert compute_through(engine, b"k", 0) == 41  # memory still serves
        engine.clear()
        assert engine.delete(("", b"k")) is False
    assert any("broken tier failed" in r.getMessage() for r in caplog.records)


def test_each_failure_of_a_tier_without_a_breaker_is_counted_and_logged_with_its_verb(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = tiered(BrokenTier())
    with caplog.at_level(logging.WARNING, logger="infercache"):
        assert compute_through(engine, b"k", 41) == 41  # the lookup's get, the leader's get, the set: all fail
        engine.clear()
    assert [r.getMessage() for r in caplog.records] == [
        f"infercache: broken tier failed on {verb} (OSError: backend down)" for verb in ("get", "get", "set", "clear")
    ]
    assert engine.tier_errors == 4


async def test_each_failure_of_a_tier_is_counted_and_logged_on_the_async_path_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = tiered(BrokenTier())

    async def compute() -> int:
        return 41

    with caplog.at_level(logging.WARNING, logger="infercache"):
        assert await engine.acall(("", b"k"), compute, (), {}, ()) == 41
    messages = [r.getMessage() for r in caplog.records]
    assert messages and all(
        m.startswith("infercache: broken tier failed on a") and m.endswith(" (OSError: backend down)") for m in messages
    ), messages
    assert engine.tier_errors == len(messages)


async def test_an_async_lookup_with_tiers_serves_memory_first(tmp_path: Path) -> None:
    engine = tiered(DiskTier(tmp_path / "d"))

    async def compute() -> str:
        return "v"

    assert await engine.acall(("", b"a"), compute, (), {}, ()) == "v"
    entry = await engine.alookup(("", b"a"))
    assert entry is not None and entry.value == "v"
    assert engine.store.stats().hits == 1 and engine.tier_hits == {}  # not read back from the disk


def test_a_result_that_cannot_be_kept_is_reported_once_with_why(caplog: pytest.LogCaptureFixture) -> None:
    @ic.cache
    def make_lock(x: int) -> Any:
        return threading.Lock()

    with caplog.at_level(logging.WARNING, logger="infercache"):
        for x in range(3):
            make_lock(x)
    with pytest.raises(TypeError) as why:
        protect(threading.Lock())
    assert len(caplog.records) == 1
    assert caplog.records[0].getMessage() == (
        f"infercache: the result of {make_lock.cache.engine.label!r} could not be copied safely and was not cached"
        f" (TypeError: {why.value})"
    )


def test_tiers_need_a_codec() -> None:
    with pytest.raises(ic.ConfigError):
        Engine(Settings(), "x", tiers=[MemoryTier()])


def test_every_entry_point_goes_through_an_engine() -> None:
    @ic.cache
    def f(x: int) -> int:
        return x

    @ic.cache
    async def g(x: int) -> int:
        return x

    @ic.cache
    def h(x: int):  # type: ignore[no-untyped-def]
        yield x

    c = ic.Cache()
    for engine in (f.cache.engine, g.cache.engine, h.cache.engine, c.engine):
        assert isinstance(engine, Engine)
        assert caches.get(engine.name) is engine


def test_caches_are_named_after_their_function_or_name() -> None:
    @ic.cache
    def classify(x: int) -> int:
        return x

    @ic.cache(name="translator")
    def translate(x: int) -> int:
        return x

    assert classify.cache.name.endswith("test_caches_are_named_after_their_function_or_name.<locals>.classify")
    assert translate.cache.name.startswith("translator")
    assert ic.Cache(name="cities").name.startswith("cities")


def test_two_live_caches_never_share_a_name() -> None:
    a = ic.Cache(name="same")
    b = ic.Cache(name="same")
    assert a.name != b.name
    assert {caches.get(a.name), caches.get(b.name)} == {a.engine, b.engine}


def test_the_registry_does_not_keep_a_cache_alive() -> None:
    c = ic.Cache(name="short-lived")
    name = c.name
    del c
    gc.collect()
    assert caches.get(name) is None


def test_clear_session_reaches_per_session_caches_through_the_registry() -> None:
    @ic.cache(per_session=True)
    def f(x: int) -> int:
        return x

    shared = ic.Cache()
    sid = f"engine-{id(shared)}"  # other tests' caches may still hold a session "A"
    with ic.session(sid):
        f(1)
        shared.set("k", v=1)
    assert ic.clear_session(sid) == 1
    assert len(f.cache) == 0
    assert shared.get("k") == {"v": 1}  # not per-session: untouched


def test_registering_while_the_collector_frees_another_cache_does_not_deadlock() -> None:
    """The collector may free a cache inside Registry.add, on the thread holding its lock."""
    import threading

    from infercache.registry import Registry

    class Item:
        pass

    class CollectingName(str):
        """A name whose hashing runs the cyclic collector: inside add(), under its lock."""

        __slots__ = ()

        def __hash__(self) -> int:
            gc.collect()
            return str.__hash__(self)

    registry: Registry[Item] = Registry()
    doomed = Item()
    registry.add(doomed, "doomed")
    cycle: list[object] = [doomed]
    cycle.append(cycle)  # only the cyclic collector can free it now
    del doomed, cycle
    done = threading.Event()

    def register() -> None:
        registry.add(Item(), CollectingName("new"))
        done.set()

    worker = threading.Thread(target=register, daemon=True)
    worker.start()
    worker.join(30)
    assert done.is_set(), "Registry.add deadlocked while the collector freed another object"
    assert [name for name, _ in registry.items()] == []  # "new" was collected too; "doomed" is gone


# -- tiers: sessions, leases, async ------------------------------------------------


class RecordingTier(MemoryTier):
    """The reference tier, remembering the expiry each record was written with."""

    def __init__(self) -> None:
        super().__init__()
        self.ttls: dict[bytes, float | None] = {}

    def set(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        self.ttls[name] = ttl
        super().set(name, record, ttl)


def test_session_entries_reach_the_tier_under_their_session_with_a_backstop_expiry() -> None:
    from infercache.engine import SESSION_TTL

    tier = RecordingTier()
    engine = Engine(Settings.of(per_session=True), "tests.engine.s", tiers=[tier], codec=Codec(SECRET))
    shared = tiered(tier)
    for sid in ("alice", "bob"):
        with ic.session(sid):
            engine.call(engine.address("q", where="test"), lambda s=sid: f"for {s}", (), {}, ())
    compute_through(shared, b"k", "shared")
    by_session = {Keyspace.parse(n).namespace: ttl for n, ttl in tier.ttls.items()}
    assert by_session == {"alice": SESSION_TTL, "bob": SESSION_TTL, "": None}
    engine.clear_session("alice")  # what a closed Gradio session does
    assert sorted(Keyspace.parse(n).namespace for n in tier._records) == ["", "bob"]  # reads the reference dict


def test_a_cache_ttl_is_the_tier_expiry_of_every_entry() -> None:
    tier = RecordingTier()
    engine = Engine(Settings.of(ttl=30, per_session=True), "tests.engine.t", tiers=[tier], codec=Codec(SECRET))
    with ic.session("s"):
        engine.call(engine.address("q", where="test"), lambda: 1, (), {}, ())
    assert list(tier.ttls.values()) == [30.0]


def _two_processes(tmp_path: Path) -> tuple[Engine, Engine]:
    """Two engines of one function over one directory: two processes, as far as the tier can tell."""
    tier = DiskTier(tmp_path / "d")
    return tiered(tier), tiered(DiskTier(tmp_path / "d"))


def test_delete_and_clear_reach_the_tier_for_this_cache_only(tmp_path: Path) -> None:
    first, second = _two_processes(tmp_path)
    neighbour = Engine(Settings.of(), "tests.engine.other", tiers=[DiskTier(tmp_path / "d")], codec=Codec(SECRET))
    for key in (b"a", b"b"):
        compute_through(first, key, key.decode())
    compute_through(neighbour, b"a", "the neighbour's")
    assert first.delete(("", b"a")) is True
    assert second.lookup(("", b"a")) is None and second.lookup(("", b"b")) is not None
    first.clear()
    second.store.clear()
    assert second.lookup(("", b"b")) is None
    neighbour.store.clear()
    entry = neighbour.lookup(("", b"a"))
    assert entry is not None and release(entry.value) == "the neighbour's"


def test_a_miss_waits_for_the_process_computing_it_instead_of_computing_again(tmp_path: Path) -> None:
    first, second = _two_processes(tmp_path)
    started, release_it = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow() -> str:
        calls.append("first")
        started.set()
        release_it.wait(30)
        return "computed once"

    def never() -> str:
        calls.append("second")
        return "computed twice"

    holder = threading.Thread(target=first.call, args=(("", b"k"), slow, (), {}, ()))
    holder.start()
    assert started.wait(30)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(second.call(("", b"k"), never, (), {}, ())))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive()  # waiting on the lease, not computing
    release_it.set()
    holder.join(30)
    waiter.join(30)
    assert got == ["computed once"]
    assert calls == ["first"]
    assert second.store.peek("", b"k") is not None  # adopted into its memory


def test_a_waiter_computes_when_the_holder_fails(tmp_path: Path) -> None:
    first, second = _two_processes(tmp_path)
    started, fail_now = threading.Event(), threading.Event()

    def failing() -> str:
        started.set()
        fail_now.wait(30)
        raise RuntimeError("model crashed")

    errors: list[BaseException] = []

    def hold() -> None:
        try:
            first.call(("", b"k"), failing, (), {}, ())
        except RuntimeError as exc:
            errors.append(exc)

    holder = threading.Thread(target=hold)
    holder.start()
    assert started.wait(30)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(second.call(("", b"k"), lambda: "second try", (), {}, ())))
    waiter.start()
    fail_now.set()
    holder.join(30)
    waiter.join(30)
    assert len(errors) == 1
    assert got == ["second try"]


async def test_async_calls_read_and_write_the_tier_with_its_async_verbs(tmp_path: Path) -> None:
    first, second = _two_processes(tmp_path)

    async def compute() -> dict[str, int]:
        return {"answer": 42}

    assert await first.acall(("", b"a"), compute, (), {}, ()) == {"answer": 42}
    entry = await second.alookup(("", b"a"))
    assert entry is not None and release(entry.value) == {"answer": 42}

    async def never() -> dict[str, int]:
        raise AssertionError("served from the tier, not computed")

    third = tiered(DiskTier(tmp_path / "d"))
    assert await third.acall(("", b"a"), never, (), {}, ()) == {"answer": 42}


async def test_an_async_leader_passes_keywords_counts_its_time_and_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    engine = tiered(DiskTier(tmp_path / "d"))

    async def compute(x: int, *, scale: int) -> int:
        return x * scale

    with caplog.at_level(logging.WARNING, logger="infercache"):
        before = time.perf_counter()
        assert await engine.acall(("", b"a"), compute, (2,), {"scale": 3}, ()) == 6  # keywords reach it
        elapsed = time.perf_counter() - before
    assert not caplog.records  # nothing failed
    plain = Engine(Settings.of(), "tests.engine.g")
    with caplog.at_level(logging.WARNING, logger="infercache"):
        assert await plain.acall(("", b"a"), compute, (2,), {"scale": 4}, ()) == 8
    assert not caplog.records  # without a tier there is no lease to release
    other = DiskTier(tmp_path / "d")
    lease = other.lease(engine.keyspace.name("", b"a"), 10.0)
    assert lease is not None
    lease.release()
    assert 0 <= engine.stats().compute_seconds <= elapsed


async def test_an_async_result_that_cannot_be_kept_is_not_written_to_the_tier(tmp_path: Path) -> None:
    first, second = _two_processes(tmp_path)

    async def make_lock() -> Any:
        return threading.Lock()

    await first.acall(("", b"a"), make_lock, (), {}, ())
    assert list(DiskTier(tmp_path / "d").entries()) == []
    assert await second.alookup(("", b"a")) is None


def test_a_finished_generator_run_is_replayed_from_the_tier_and_a_running_one_is_not_waited_for(
    tmp_path: Path,
) -> None:
    """Generators take no lease: another process computes too while a run is under way, and replays it after."""
    first, second = _two_processes(tmp_path)
    calls: list[str] = []
    in_first = threading.Event()
    go_on = threading.Event()

    def numbers(who: str) -> Any:
        calls.append(who)
        yield 1
        if who == "first":
            in_first.set()
            go_on.wait(30)
        yield 2

    full = ("", b"g")
    done: list[list[int]] = []
    runner = threading.Thread(target=lambda: done.append(list(first.stream(full, lambda: numbers("first"), ()))))
    runner.start()
    assert in_first.wait(30)
    assert list(second.stream(full, lambda: numbers("second"), ())) == [1, 2]  # did not wait for the first
    go_on.set()
    runner.join(30)
    assert done == [[1, 2]]
    assert calls == ["first", "second"]
    third = tiered(DiskTier(tmp_path / "d"))
    assert list(third.stream(full, lambda: numbers("third"), ())) == [1, 2]
    assert calls == ["first", "second"]  # replayed from the tier


# -- the written-out miss of a sync leader -------------------------------------------------

_results = st.one_of(
    st.text(max_size=30),
    st.binary(max_size=30),
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    st.tuples(st.text(max_size=5), st.floats(allow_nan=False)),
)


@settings(max_examples=200, deadline=None)
@given(results=st.lists(_results, min_size=1, max_size=6))
def test_a_miss_keeps_and_sizes_its_result_as_protect_and_sizeof_do(results: list[Any]) -> None:
    """The sync leader keeps plain results without protect() and sizes leaves inline: same entry either way."""
    from infercache.sizes import sizeof

    engine = Engine(Settings.of(max_size=3), "tests.engine.sized")
    for i, result in enumerate(results):
        key = b"\x00key %d" % i
        assert engine.call(("", key), lambda result=result: result, (), {}, ()) is result  # the caller's own
        entry = engine.store.peek("", key)
        assert entry is not None
        kept = protect(result)
        assert entry.size == sizeof(kept) + sizeof(key)
        assert release(entry.value) == result and type(release(entry.value)) is type(result)
    stats = engine.stats()
    n = len(results)
    assert (stats.computations, stats.size, stats.evictions) == (n, min(3, n), max(0, n - 3))
    assert stats.memory == sum(e.size for _, e in engine.store.entries())


# -- leases and adoption: a process waiting for another's computation ----------------------------

HANG = HANG_BOUND  # seconds before a wait for another thread is called a hang (a failure, never a timing claim)


class Interrupted(BaseException):
    """Not an Exception: what interrupts a caller (as KeyboardInterrupt would) rather than failing it."""


class LeasingTier(MemoryTier):
    """The reference tier with leases that one holder at a time gets, as a coordinating backend grants them.

    The test plays the other process with :meth:`hold` and :meth:`free`. It records the leases
    asked for (name and ttl) and, in order, the records written and the leases taken and released.
    ``lease_error`` makes asking for a lease fail, ``release_error`` releasing one; ``on_get`` runs
    before each read.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: set[bytes] = set()
        self.asked: list[tuple[bytes, float]] = []
        self.events: list[tuple[str, bytes]] = []
        self.lease_error: BaseException | None = None
        self.release_error: Exception | None = None
        self.on_get: Callable[[], None] | None = None

    def get(self, name: bytes) -> bytes | None:
        if self.on_get is not None:
            self.on_get()
        return super().get(name)

    def hold(self, name: bytes) -> None:
        with self._lock:
            self.held.add(name)

    def free(self, name: bytes) -> None:
        with self._lock:
            self.held.discard(name)

    def lease(self, name: bytes, ttl: float) -> Lease | None:
        self.asked.append((name, ttl))
        if self.lease_error is not None:
            raise self.lease_error
        with self._lock:
            if name in self.held:
                return None
            self.held.add(name)
            self.events.append(("lease", name))
        return _RecordedLease(self, name)

    def set(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        super().set(name, record, ttl)
        with self._lock:
            self.events.append(("set", name))


class _RecordedLease(Lease):
    def __init__(self, tier: LeasingTier, name: bytes) -> None:
        self.tier, self.name = tier, name

    def release(self) -> None:
        if self.tier.release_error is not None:
            raise self.tier.release_error
        with self.tier._lock:  # the test's own tier
            self.tier.held.discard(self.name)
            self.tier.events.append(("release", self.name))


class WaitingCaller:
    """A caller of ``b"k"`` (``mode`` "sync" or "async") on a thread of its own, started while
    another process, ``holder``, holds the key's lease in ``tier``: it waits for that process."""

    def __init__(self, mode: str) -> None:
        self.tier = LeasingTier()
        self.engine, self.holder = tiered(self.tier), tiered(self.tier)
        self.tier.hold(self.engine.keyspace.name("", b"k"))
        self.got: list[Any] = []
        self.caller = threading.Thread(
            target=lambda: self.got.append(missed(self.engine, mode, b"k", never)), daemon=True
        )
        self.caller.start()

    def finish(self, value: Any) -> None:
        """The other process stores ``value`` and frees the lease; the caller ends."""
        full = ("", b"k")
        self.holder.save(full, value, self.holder.store.begin(*full))
        self.tier.free(self.engine.keyspace.name(*full))
        join_all(self.caller)


def missed(engine: Engine, mode: str, key: bytes, compute: Any, namespace: str = "") -> Any:
    """What a cached function's wrapper does with ``compute`` (a plain callable): look up, then the miss path.

    ``mode`` "async" takes the async path, with ``compute`` wrapped in a coroutine function;
    ``namespace``: a session's, for a per-session cache.
    """
    full = (namespace, key)
    if mode == "sync":
        entry = engine.lookup(full)
        return engine.serve(entry) if entry is not None else engine.call(full, compute, (), {}, ())

    async def acompute() -> Any:
        return compute()

    async def main() -> Any:
        entry = await engine.alookup(full)
        return engine.serve(entry) if entry is not None else await engine.acall(full, acompute, (), {}, ())

    return run_bounded(main())


def never() -> Any:
    raise AssertionError("computed, though another process holds or stored the value")


ABSENT = object()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("own", "asked"),
    [(0.5, 0.5), (2, 2.0), (ABSENT, LEASE_SECONDS), (None, LEASE_SECONDS), (0, LEASE_SECONDS), (-1.0, LEASE_SECONDS)],
)
def test_a_lease_is_asked_for_the_tiers_own_positive_lease_ttl_else_the_default(
    mode: str, own: object, asked: float
) -> None:
    tier = LeasingTier()
    if own is not ABSENT:
        tier.lease_ttl = own  # type: ignore[attr-defined]
    engine = tiered(tier)
    assert missed(engine, mode, b"k", lambda: "v") == "v"
    assert tier.asked == [(engine.keyspace.name("", b"k"), asked)]
    assert type(tier.asked[0][1]) is float


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_lease_is_released_after_the_result_is_written_and_after_a_failed_computation(mode: str) -> None:
    tier = LeasingTier()
    engine = tiered(tier)
    name = engine.keyspace.name("", b"ok")
    assert missed(engine, mode, b"ok", lambda: [1]) == [1]
    assert tier.events == [("lease", name), ("set", name), ("release", name)]  # waiters find it written

    def crash() -> Any:
        raise RuntimeError("model crashed")

    tier.events.clear()
    failed = engine.keyspace.name("", b"bad")
    with pytest.raises(RuntimeError, match="model crashed"):
        missed(engine, mode, b"bad", crash)
    assert tier.events == [("lease", failed), ("release", failed)]
    assert engine.store.in_flight() == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_lease_taken_just_as_its_holder_finished_is_released_and_the_stored_value_adopted(mode: str) -> None:
    """The holder wrote the value and released between this caller's lookup and its lease."""
    tier = LeasingTier()
    holder, engine = tiered(tier), tiered(tier)

    async def anever() -> Any:
        return never()

    fulls = [("", b"k"), ("", b"other"), ("session", b"k")]
    for n, full in enumerate(fulls):
        name = engine.keyspace.name(*full)
        assert engine.lookup(full) is None  # a miss, counted
        holder.call(full, lambda n=n: {"v": n}, (), {}, ())  # meanwhile, in another process
        tier.events.clear()
        got = (
            engine.call(full, never, (), {}, ())
            if mode == "sync"
            else run_bounded(engine.acall(full, anever, (), {}, ()))
        )
        assert got == {"v": n}
        assert tier.events == [("lease", name), ("release", name)]
    s = engine.stats()
    assert (s.remote_joins, s.misses, s.hits, s.computations) == (3, 0, 0, 0)
    for n, full in enumerate(fulls):  # adopted into memory, each under its own address
        entry = engine.store.peek(*full)
        assert entry is not None and release(entry.value) == {"v": n}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_value_adopted_after_memory_was_cleared_is_served_but_not_stored(mode: str) -> None:
    """A clear while a caller waits for another process covers that caller's call, as one during a computation."""
    waiting = WaitingCaller(mode)
    wait_until(lambda: len(waiting.tier.asked) >= 1, "the caller to ask for the lease", timeout=HANG)
    engine = waiting.engine
    engine.store.clear()
    waiting.finish("theirs")
    assert waiting.got == ["theirs"]
    assert engine.store.peek("", b"k") is None
    assert engine.store.in_flight() == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_caller_that_finds_the_entry_stored_since_its_lookup_is_served_it_as_a_hit(mode: str) -> None:
    """Another caller stored it between this caller's lookup and its registration as the leader."""
    for engine in (Engine(Settings.of(), "tests.engine.found"), tiered()):
        full = ("", b"k")
        assert engine.lookup(full) is None
        engine.call(full, lambda: [1, 2], (), {}, ())  # the other caller

        async def anever() -> Any:
            return never()

        got = (
            engine.call(full, never, (), {}, ())
            if mode == "sync"
            else run_bounded(engine.acall(full, anever, (), {}, ()))
        )
        assert got == [1, 2]
        assert engine.stats().computations == 1  # not computed again (its lookup's miss stays counted)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("kind", ["plain", "tiered"])
@pytest.mark.parametrize("outcome", ["result", "error"])
def test_a_computation_is_counted_with_the_time_it_took(mode: str, kind: str, outcome: str) -> None:
    engine = tiered() if kind == "tiered" else Engine(Settings.of(), "tests.engine.timed")

    def compute() -> Any:
        if outcome == "error":
            raise RuntimeError("model crashed")
        return "done"

    before = time.perf_counter()
    if outcome == "error":
        with pytest.raises(RuntimeError, match="model crashed"):
            missed(engine, mode, b"k", compute)
    else:
        assert missed(engine, mode, b"k", compute) == "done"
    elapsed = time.perf_counter() - before
    s = engine.stats()
    assert s.computations == 1
    assert 0 < s.compute_seconds <= elapsed


class InterruptedLeader:
    """A computation of ``b"k"`` whose first run, the leader's (:meth:`lead`, on a thread of its
    own), is interrupted once the test sets ``go``; every later run returns ``then()``."""

    def __init__(self, engine: Engine, runs: list[str], then: Callable[[], Any]) -> None:
        self.engine, self.runs, self.then = engine, runs, then
        self.entered, self.go = threading.Event(), threading.Event()

    def work(self) -> Any:
        self.runs.append(threading.current_thread().name)
        if len(self.runs) == 1:
            self.entered.set()
            self.go.wait(HANG)
            raise Interrupted
        return self.then()

    def lead(self) -> None:
        with pytest.raises(Interrupted):
            missed(self.engine, "sync", b"k", self.work)


def test_a_follower_whose_leader_was_interrupted_computes_in_its_place_and_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = Engine(Settings.of(), "tests.engine.takeover")
    runs: list[str] = []
    leader = InterruptedLeader(engine, runs, lambda: "computed by the follower")
    work = leader.work

    got: list[Any] = []
    with caplog.at_level(logging.DEBUG, logger="infercache"):
        follow = lambda: got.append(missed(engine, "sync", b"k", work))  # noqa: E731
        lead_then_follow(engine, leader.lead, follow, leader.entered, leader.go)
    assert got == ["computed by the follower"] and runs == ["leader", "follower"]
    assert not caplog.records


def test_followers_of_an_interrupted_leader_follow_the_one_that_took_over() -> None:
    """After the leader is gone, the first follower back computes and the second joins its call."""
    engine = Engine(Settings.of(), "tests.engine.takeover.two")
    runs: list[str] = []

    def again() -> str:
        # In flight until the other follower has joined this call (a future made for it).
        calls = engine.store.calls_table()
        wait_until(lambda: calls[b"k"].future is not None, "the other follower to join the new call", timeout=HANG)
        return "computed once more"

    leader = InterruptedLeader(engine, runs, again)
    work = leader.work

    got: list[Any] = []
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            got.append(missed(engine, "sync", b"k", work))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    second = threading.Thread(target=follow, name="second follower", daemon=True)

    def second_joins() -> None:
        second.start()
        wait_until(lambda: engine.stats().joins == 2, "the second follower to join", timeout=HANG)

    lead_then_follow(engine, leader.lead, follow, leader.entered, leader.go, meanwhile=second_joins)
    join_all(second)
    assert errors == [] and got == ["computed once more"] * 2
    assert len(runs) == 2 and runs[1] in ("follower", "second follower")
    s = engine.stats()
    assert (s.computations, s.joins) == (2, 1)  # the interrupted computation counts too


def test_a_follower_that_took_over_and_calls_itself_from_a_fresh_context_gets_a_recursion_error() -> None:
    """The retaking caller is registered with its thread: a fresh context on that thread is still itself."""
    import contextvars

    engine = Engine(Settings.of(), "tests.engine.retake")
    runs: list[str] = []
    leader = InterruptedLeader(engine, runs, lambda: contextvars.Context().run(missed, engine, "sync", b"k", work))
    work = leader.work

    errors: list[BaseException] = []

    def follow() -> None:
        try:
            missed(engine, "sync", b"k", work)
        except RecursionError as exc:
            errors.append(exc)

    lead_then_follow(engine, leader.lead, follow, leader.entered, leader.go)
    assert len(errors) == 1 and runs == ["leader", "follower"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_lease_that_cannot_be_released_is_logged_and_the_call_still_answers(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    tier = LeasingTier()
    tier.release_error = OSError("backend gone")
    engine = tiered(tier)
    with caplog.at_level(logging.WARNING, logger="infercache"):
        assert missed(engine, mode, b"k", lambda: 7) == 7
    assert [r.getMessage() for r in caplog.records] == ["infercache: a lease was not released (OSError: backend gone)"]
    assert missed(engine, mode, b"k", never) == 7  # stored all the same


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_tier_failing_to_grant_a_lease_lets_the_call_compute_here(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    tier = LeasingTier()
    tier.lease_error = OSError("backend down")
    engine = tiered(tier)
    with caplog.at_level(logging.WARNING, logger="infercache"):
        assert missed(engine, mode, b"k", lambda: "here") == "here"
    assert engine.stats().computations == 1
    tier.lease_error = None
    assert missed(tiered(tier), mode, b"k", never) == "here"  # written through as usual


def lead_then_follow(
    engine: Engine,
    lead: Callable[[], Any],
    follow: Callable[[], Any],
    entered: threading.Event,
    go: threading.Event,
    meanwhile: Callable[[], Any] | None = None,
) -> None:
    """``lead`` on a thread named "leader" until its computation sets ``entered``, then ``follow`` on
    one named "follower" until it joins that call; ``meanwhile``, then ``go`` lets the leader finish."""
    leader = threading.Thread(target=lead, name="leader", daemon=True)
    leader.start()
    assert entered.wait(HANG)
    follower = threading.Thread(target=follow, name="follower", daemon=True)
    follower.start()
    wait_until(lambda: engine.stats().joins == 1, "the follower to join", timeout=HANG)
    if meanwhile is not None:
        meanwhile()
    go.set()
    join_all(leader, follower)


async def _await(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + HANG
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.002)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_miss_waiting_for_another_process_adopts_its_value_for_itself_and_its_followers(
    mode: str, tmp_path: Path
) -> None:
    first, second = _two_processes(tmp_path)
    full = ("", b"k")
    started, go = threading.Event(), threading.Event()

    def slow() -> list[int]:
        started.set()
        go.wait(HANG)
        return [1, 2]

    holder = threading.Thread(target=first.call, args=(full, slow, (), {}, ()), daemon=True)
    holder.start()
    assert started.wait(HANG)
    got: list[Any] = []
    if mode == "sync":
        callers = [threading.Thread(target=lambda: got.append(missed(second, "sync", b"k", never))) for _ in range(2)]
        callers[0].start()
        wait_until(lambda: second.store.in_flight() == 1, "the leader to wait on the lease", timeout=HANG)
        callers[1].start()
        wait_until(lambda: second.stats().joins == 1, "the follower to join", timeout=HANG)
        go.set()
        join_all(holder, *callers)
    else:

        async def anever() -> Any:
            return never()

        async def main() -> list[Any]:
            async def through() -> Any:
                assert await second.alookup(full) is None
                return await second.acall(full, anever, (), {}, ())

            leader = asyncio.ensure_future(through())
            await _await(lambda: second.store.in_flight() == 1, "the leader to wait on the lease")
            follower = asyncio.ensure_future(through())
            await _await(lambda: second.stats().joins == 1, "the follower to join")
            go.set()
            return list(await asyncio.gather(leader, follower))

        got = run_bounded(main())
        join_all(holder)
    assert got == [[1, 2], [1, 2]]
    assert got[0] is not got[1]  # each caller its own copy
    s = second.stats()
    assert (s.remote_joins, s.joins, s.misses, s.hits, s.computations) == (1, 1, 0, 0, 0)
    entry, computed = second.store.peek(*full), first.store.peek(*full)
    assert entry is not None and computed is not None
    assert entry.cost == computed.cost > 0  # the holder's compute time, credited on hits here
    assert entry.size == sizeof(entry.value) + sizeof(b"k")
    assert missed(second, "sync", b"k", never) == [1, 2]
    assert second.stats().saved_seconds == pytest.approx(entry.cost)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_caller_interrupted_while_another_process_computes_hands_its_call_to_a_follower(mode: str) -> None:
    tier = LeasingTier()
    engine, holder = tiered(tier), tiered(tier)
    full = ("", b"k")
    name = engine.keyspace.name(*full)
    tier.hold(name)  # another process computes it
    if mode == "sync":
        interrupt, polled = threading.Event(), threading.Event()

        def interrupt_the_leader() -> None:
            # In the look at the tier after the lease was refused (not in the lookup before it).
            if threading.current_thread().name == "leader" and tier.asked and not polled.is_set():
                polled.set()
                interrupt.wait(HANG)
                raise Interrupted

        tier.on_get = interrupt_the_leader
        errors: list[BaseException] = []
        got: list[Any] = []

        def lead() -> None:
            try:
                missed(engine, "sync", b"k", never)
            except Interrupted as exc:
                errors.append(exc)

        leader = threading.Thread(target=lead, name="leader", daemon=True)
        leader.start()
        assert polled.wait(HANG)
        follower = threading.Thread(target=lambda: got.append(missed(engine, "sync", b"k", never)), daemon=True)
        follower.start()
        wait_until(lambda: engine.stats().joins == 1, "the follower to join", timeout=HANG)
        interrupt.set()
        join_all(leader)
        assert errors and not got
        holder.save(full, "theirs", holder.store.begin(*full))  # the holder finishes: written through
        tier.free(name)
        join_all(follower)
    else:

        async def anever() -> Any:
            return never()

        async def main() -> list[Any]:
            async def through() -> Any:
                assert await engine.alookup(full) is None
                return await engine.acall(full, anever, (), {}, ())

            leader = asyncio.ensure_future(through())
            await _await(lambda: len(tier.asked) >= 1, "the leader to ask for the lease")
            follower = asyncio.ensure_future(through())
            await _await(lambda: engine.stats().joins == 1, "the follower to join")
            leader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await leader
            assert not follower.done()  # it took the call over, and waits for the holder in turn
            holder.save(full, "theirs", holder.store.begin(*full))
            tier.free(name)
            return [await follower]

        got = run_bounded(main())
    assert got == ["theirs"]
    assert engine.store.in_flight() == 0
    s = engine.stats()
    # The interrupted caller's miss, and the follower's call: a join that became a remote join.
    assert (s.remote_joins, s.joins, s.computations) == (1, 0, 0)


def test_a_result_the_codec_cannot_encode_stays_in_memory_only_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Local:  # a class pickle cannot find by name
        def __eq__(self, other: object) -> bool:
            return type(other) is Local

        __hash__ = object.__hash__

    tier = LeasingTier()
    engine = tiered(tier)
    with caplog.at_level(logging.INFO, logger="infercache"):
        missed(engine, "sync", b"k", Local)
    assert len(tier) == 0
    assert engine.store.peek("", b"k") is not None
    import pickle

    with pytest.raises(Exception) as why:  # what pickling the kept copy raises
        pickle.dumps(protect(Local()), protocol=5)
    assert [r.getMessage() for r in caplog.records] == [
        f"infercache: an entry of 'tests.engine.f' stays in memory only ({type(why.value).__name__}: {why.value})"
    ]


class Framing(hooks.Integration):
    """A framework that keeps its own form of string outputs (as Gradio keeps a copy of an output file)."""

    name = "tests.engine.framing"

    def store_output(self, value: Any) -> Any:
        return ["stored", value] if isinstance(value, str) else value

    def load_output(self, value: Any) -> Any:
        return ("loaded", value)


@pytest.mark.parametrize("kind", ["plain", "tiered"])
def test_a_framework_keeps_its_stored_form_of_an_output_and_a_hit_returns_its_loaded_form(kind: str) -> None:
    framing = Framing()
    hooks.register(framing)
    try:
        engine = tiered() if kind == "tiered" else Engine(Settings.of(), "tests.engine.framed")
        full, other = ("", b"k"), ("", b"n")
        assert engine.call(full, lambda: "out", (), {}, [framing]) == "out"  # the caller's own result
        assert engine.call(other, lambda: 5, (), {}, [framing]) == 5  # left as it is: not framed
        for _ in range(2):
            entry, number = engine.lookup(full), engine.lookup(other)
            assert entry is not None and number is not None
            assert engine.serve(entry) == ("loaded", ["stored", "out"])
            assert engine.serve(number) == 5
            if kind == "plain":
                break
            engine.store.clear()  # read back from the tier, framed form and all
    finally:
        hooks.unregister(framing.name)


def test_a_follower_whose_leader_was_abandoned_is_served_an_entry_stored_meanwhile_as_a_hit() -> None:
    engine = Engine(Settings.of(), "tests.engine.abandoned")
    full = ("", b"k")
    entered, go = threading.Event(), threading.Event()

    def interrupted() -> Any:
        entered.set()
        go.wait(HANG)
        raise Interrupted

    errors: list[BaseException] = []

    def lead() -> None:
        try:
            missed(engine, "sync", b"k", interrupted)
        except Interrupted as exc:
            errors.append(exc)

    got: list[Any] = []

    def meanwhile() -> None:  # as Cache.set would
        assert engine.save(full, ["set", "meanwhile"], engine.store.begin(*full))

    lead_then_follow(engine, lead, lambda: got.append(missed(engine, "sync", b"k", never)), entered, go, meanwhile)
    assert len(errors) == 1
    assert got == [["set", "meanwhile"]]
    s = engine.stats()
    assert (s.hits, s.joins, s.misses, s.computations) == (1, 0, 1, 1)  # the follower: a hit, not a join


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_generator_run_is_stored_with_its_compute_time_and_credits_it_on_replay(mode: str) -> None:
    engine = Engine(Settings.of(), "tests.engine.gen")
    full = ("", b"g")

    def numbers() -> Any:
        yield 1
        yield 2

    async def anumbers() -> Any:
        yield 1
        yield 2

    async def acollect() -> list[Any]:
        return [x async for x in engine.astream(full, anumbers, ())]

    def collect() -> list[Any]:
        return list(engine.stream(full, numbers, ())) if mode == "sync" else run_bounded(acollect())

    before = time.perf_counter()
    assert collect() == [1, 2]
    elapsed = time.perf_counter() - before
    entry = engine.store.peek(*full)
    assert entry is not None
    s = engine.stats()
    assert s.computations == 1
    assert 0 < entry.cost == s.compute_seconds <= elapsed
    assert collect() == [1, 2]  # replayed
    assert engine.stats().saved_seconds == pytest.approx(entry.cost)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_generator_run_that_fails_leaves_nothing_in_flight(mode: str) -> None:
    engine = Engine(Settings.of(), "tests.engine.genfail")
    full = ("", b"g")

    def failing() -> Any:
        yield 1
        raise RuntimeError("model crashed")

    async def afailing() -> Any:
        yield 1
        raise RuntimeError("model crashed")

    async def acollect() -> list[Any]:
        return [x async for x in engine.astream(full, afailing, ())]

    with pytest.raises(RuntimeError, match="model crashed"):
        list(engine.stream(full, failing, ())) if mode == "sync" else run_bounded(acollect())
    assert engine.store.peek(*full) is None
    assert engine.store._inflight == set()  # the run's ticket ended: reads the store's own set


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_generator_item_that_cannot_be_kept_is_reported_with_why(mode: str, caplog: pytest.LogCaptureFixture) -> None:
    engine = Engine(Settings.of(), "tests.engine.genlock", label="make_locks")
    lock = threading.Lock()

    def locks() -> Any:
        yield lock

    async def alocks() -> Any:
        yield lock

    async def acollect() -> list[Any]:
        return [x async for x in engine.astream(("", b"g"), alocks, ())]

    with pytest.raises(TypeError) as why:
        protect(threading.Lock())
    with caplog.at_level(logging.WARNING, logger="infercache"):
        got = list(engine.stream(("", b"g"), locks, ())) if mode == "sync" else run_bounded(acollect())
    assert got == [lock]  # streamed uncopied
    assert [r.getMessage() for r in caplog.records] == [
        "infercache: an item yielded by this run of 'make_locks' could not be copied safely and was not cached"
        f" (TypeError: {why.value})"
    ]


@pytest.mark.parametrize("namespace", ["", "alice"])
def test_tier_hits_are_promoted_under_their_address_and_each_credits_its_compute_time(
    namespace: str, tmp_path: Path
) -> None:
    writer, reader = _two_processes(tmp_path)
    fulls = [(namespace, b"a"), (namespace, b"b")]
    for n, full in enumerate(fulls):
        writer.call(full, lambda n=n: [n, "x" * 100], (), {}, ())
    costs = [writer.store.peek(*full).cost for full in fulls]  # type: ignore[union-attr]
    for n, full in enumerate(fulls):
        assert reader.lookup((namespace, b"absent %d" % n)) is None
        entry = reader.lookup(full)
        assert entry is not None and entry is reader.store.peek(*full)  # the entry memory now holds
        assert release(entry.value) == [n, "x" * 100]
        assert entry.cost == costs[n] > 0
        assert entry.size == sizeof(entry.value) + sizeof(full[1])
    s = reader.stats()
    assert (s.hits, s.hits_by_tier["disk"], s.misses) == (2, 2, 2)  # the two absent keys: misses
    assert s.saved_seconds == pytest.approx(sum(costs))


def test_a_tier_hit_too_large_for_memory_is_still_served_with_its_accounting(tmp_path: Path) -> None:
    writer = tiered(DiskTier(tmp_path / "d"))
    small = Engine(
        Settings.of(max_memory=1000), "tests.engine.f", tiers=[DiskTier(tmp_path / "d")], codec=Codec(SECRET)
    )
    full = ("", b"k")
    large = b"x" * 10_000
    writer.call(full, lambda: large, (), {}, ())
    computed = writer.store.peek(*full)
    assert computed is not None
    entry = small.lookup(full)
    assert small.store.peek(*full) is None  # refused by memory
    assert entry is not None
    assert (entry.value, entry.size, entry.expires, entry.cost) == (
        large,
        sizeof(large) + sizeof(b"k"),
        None,
        computed.cost,
    )
    assert small.serve(entry) == large


def test_save_sizes_and_credits_an_entry_as_told_and_writes_the_tiers_only_when_stored_and_asked() -> None:
    tier = MemoryTier()
    engine = tiered(tier)
    kept = protect([1, 2, 3])
    full = ("", b"k")
    assert engine.save(full, kept, engine.store.begin(*full), cost=0.25, extra_size=7)
    entry = engine.store.peek(*full)
    assert entry is not None and (entry.size, entry.cost) == (sizeof(kept) + sizeof(b"k") + 7, 0.25)
    assert len(tier) == 1  # written through
    plain = ("", b"plain")
    assert engine.save(plain, kept, engine.store.begin(*plain))  # no cost, no extra size
    entry = engine.store.peek(*plain)
    assert entry is not None and (entry.size, entry.cost) == (sizeof(kept) + sizeof(b"plain"), 0.0)
    assert len(tier) == 2
    held = ("", b"held")
    assert engine.save(held, kept, engine.store.begin(*held), through=False)  # the caller writes the tiers
    assert len(tier) == 2
    stale = ("", b"stale")
    ticket = engine.store.begin(*stale)
    engine.store.clear()  # covers the ticket: the value is refused, in memory and in the tiers
    assert not engine.save(stale, kept, ticket)
    assert engine.store.peek(*stale) is None and len(tier) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_result_computed_across_a_clear_reaches_neither_memory_nor_the_tier(mode: str) -> None:
    tier = MemoryTier()
    engine = tiered(tier)
    entered, go = threading.Event(), threading.Event()

    def slow() -> list[int]:
        entered.set()
        go.wait(HANG)
        return [1]

    got: list[Any] = []
    caller = threading.Thread(target=lambda: got.append(missed(engine, mode, b"k", slow)), daemon=True)
    caller.start()
    assert entered.wait(HANG)
    engine.store.clear()
    go.set()
    join_all(caller)
    assert got == [[1]]  # the caller still gets its result
    assert engine.store.peek("", b"k") is None
    assert len(tier) == 0


def test_stats_name_the_cache() -> None:
    engine = Engine(Settings.of(name="named-for-stats"), "tests.engine.stats")
    assert engine.stats().name == engine.name
    assert engine.name.startswith("named-for-stats")


def test_only_content_keys_reach_the_tiers() -> None:
    engine = tiered()
    with pytest.raises(TypeError, match=r"^only content keys \(bytes\) reach the tiers, not str$"):
        engine.delete(("", "a str key"))


@pytest.mark.parametrize("digest", ["blake3", "xxh3"])
def test_an_address_is_made_with_the_caches_digest(digest: str) -> None:
    from infercache.keys import make_key

    engine = Engine(Settings.of(digest=digest), "tests.engine.digest")
    long = "q" * 100  # longer than a key kept as its encoding: hashed
    assert engine.address(long, where="test") == ("", make_key(long, algorithm=digest, where="test"))


class Miss(Exception):
    """The framework's signal for "not cached" while it only probes."""


class Probing(hooks.Integration):
    """A framework asking only whether a call is a hit (as Gradio does when it fills its examples' cache)."""

    name = "tests.engine.probing"

    def probing(self) -> bool:
        return True

    def miss_error(self) -> BaseException:
        return Miss()


@pytest.mark.parametrize("how", ["call", "stream", "astream"])
def test_a_framework_probing_for_a_hit_gets_its_miss_signal_and_no_miss_is_counted(how: str) -> None:
    engine = Engine(Settings.of(), "tests.engine.probed")
    full = ("", b"k")

    def numbers() -> Any:
        yield never()

    async def anumbers() -> Any:
        yield never()

    async def acollect() -> list[Any]:
        return [x async for x in engine.astream(full, anumbers, [Probing()])]

    with pytest.raises(Miss):
        if how == "call":
            assert engine.lookup(full) is None
            engine.call(full, never, (), {}, [Probing()])
        elif how == "stream":
            list(engine.stream(full, numbers, [Probing()]))
        else:
            run_bounded(acollect())
    s = engine.stats()
    assert (s.misses, s.computations, s.hits) == (0, 0, 0)  # the framework calls again for real
    assert engine.store.in_flight() == 0
    assert engine.call(full, lambda: "real", (), {}, ()) == "real"  # nothing left registered


def test_tiers_need_a_codec_and_say_so() -> None:
    with pytest.raises(ic.ConfigError, match=r"^a cache with storage tiers needs a codec to write them$"):
        Engine(Settings(), "x", tiers=[MemoryTier()])


def test_a_caches_tier_names_carry_its_identity_and_code_version() -> None:
    from infercache.keys import KEY_FORMAT_VERSION

    versioned = Engine(Settings.of(), "tests.engine.named", tiers=[MemoryTier()], codec=Codec(SECRET), version="v2")
    parsed = Keyspace.parse(versioned.keyspace.name("alice", b"k"))
    assert (parsed.function, parsed.version, parsed.namespace, parsed.key, parsed.key_format) == (
        "tests.engine.named",
        "v2",
        "alice",
        b"k",
        KEY_FORMAT_VERSION,
    )
    unversioned = Engine(Settings.of(), "tests.engine.named", tiers=[MemoryTier()], codec=Codec(SECRET))
    assert Keyspace.parse(unversioned.keyspace.name("", b"k")).version == ""


@pytest.mark.parametrize("kind", ["plain", "tiered"])
def test_a_leader_passes_positional_and_keyword_arguments(kind: str) -> None:
    engine = tiered() if kind == "tiered" else Engine(Settings.of(), "tests.engine.kwargs")

    def compute(x: int, *, scale: int = 1) -> int:
        return x * scale

    assert engine.call(("", b"a"), compute, (2,), {"scale": 3}, ()) == 6
    assert engine.call(("", b"b"), compute, (5,), {}, ()) == 5


def test_a_leader_calling_itself_from_a_fresh_context_on_its_thread_gets_a_recursion_error() -> None:
    """Only the thread tells this one apart: a fresh context does not inherit the call in flight."""
    import contextvars

    engine = Engine(Settings.of(), "tests.engine.fresh")
    errors: list[BaseException] = []

    def work() -> Any:
        return contextvars.Context().run(engine.call, ("", b"k"), work, (), {}, ())

    def lead() -> None:
        try:
            engine.call(("", b"k"), work, (), {}, ())
        except RecursionError as exc:
            errors.append(exc)

    leader = threading.Thread(target=lead, daemon=True)
    leader.start()
    join_all(leader)
    assert len(errors) == 1
    assert engine.store.in_flight() == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_caller_keeps_looking_at_the_tier_until_the_holder_is_done(mode: str) -> None:
    waiting = WaitingCaller(mode)
    wait_until(lambda: len(waiting.tier.asked) >= 3, "the caller to look three times", timeout=HANG)
    assert waiting.caller.is_alive() and not waiting.got  # still waiting: neither computing nor failed
    waiting.finish("theirs")
    assert waiting.got == ["theirs"]
    s = waiting.engine.stats()
    assert (s.remote_joins, s.computations) == (1, 0)


@pytest.mark.parametrize("kind", ["plain", "tiered"])
def test_a_follower_of_a_result_that_cannot_be_kept_computes_its_own(kind: str) -> None:
    """An object that cannot be copied safely is never shared: not with a follower, not with a later call."""
    engine = tiered() if kind == "tiered" else Engine(Settings.of(), "tests.engine.unkept")
    entered, go = threading.Event(), threading.Event()
    made: list[Any] = []

    def make_lock() -> Any:
        lock = threading.Lock()
        made.append(lock)
        if len(made) == 1:
            entered.set()
            go.wait(HANG)
        return lock

    got: list[Any] = []

    def call() -> None:
        got.append(missed(engine, "sync", b"k", make_lock))

    lead_then_follow(engine, call, call, entered, go)
    assert len(made) == 2 and sorted(map(id, got)) == sorted(map(id, made))  # each caller its own lock
    assert missed(engine, "sync", b"k", make_lock) is made[2]  # not cached: computed again
    assert engine.store.peek("", b"k") is None


PATHS = [("sync", "tiered"), ("async", "plain"), ("async", "tiered")]


@pytest.mark.parametrize(("mode", "kind"), PATHS)
def test_a_leader_on_every_path_stores_its_result_sized_as_protect_and_sizeof_do(mode: str, kind: str) -> None:
    engine = tiered() if kind == "tiered" else Engine(Settings.of(), "tests.engine.sizes")
    for n, result in enumerate(["text", b"bytes", 7, 2.5, None, [1, 2], {"a": 1.5}, ("t", 1)]):
        key = b"key %d" % n
        assert missed(engine, mode, key, lambda result=result: result) == result
        entry = engine.store.peek("", key)
        assert entry is not None
        assert entry.size == sizeof(protect(result)) + sizeof(key), result


@pytest.mark.parametrize(("mode", "kind"), PATHS)
def test_a_result_that_cannot_be_kept_is_reported_with_why_on_every_path(
    mode: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = tiered() if kind == "tiered" else Engine(Settings.of(), "tests.engine.unkept_paths")
    with pytest.raises(TypeError) as why:
        protect(threading.Lock())
    with caplog.at_level(logging.WARNING, logger="infercache"):
        missed(engine, mode, b"k", threading.Lock)
    assert [r.getMessage() for r in caplog.records] == [
        f"infercache: the result of {engine.label!r} could not be copied safely and was not cached"
        f" (TypeError: {why.value})"
    ]


@pytest.mark.parametrize(("mode", "kind"), [("sync", "plain"), *PATHS])
def test_a_sessions_entry_is_sized_as_protect_and_sizeof_do_on_every_path(mode: str, kind: str) -> None:
    """A session's slot is not the key itself: the key's size is still what is charged."""
    engine = tiered() if kind == "tiered" else Engine(Settings.of(), "tests.engine.session_sizes")
    for n, result in enumerate(["text", [1, 2]]):
        full = ("session-1", b"key %d" % n)
        assert missed(engine, mode, full[1], lambda result=result: result, namespace=full[0]) == result
        entry = engine.store.peek(*full)
        assert entry is not None and entry.size == sizeof(protect(result)) + sizeof(full[1]), result


def test_followers_get_a_tiered_leaders_exception_and_nothing_is_cached() -> None:
    engine = tiered()
    entered, go = threading.Event(), threading.Event()
    runs: list[str] = []

    def fails() -> Any:
        runs.append(threading.current_thread().name)
        entered.set()
        go.wait(HANG)
        raise ValueError("the model failed")

    errors: list[BaseException] = []

    def call() -> None:
        try:
            engine.call(("", b"k"), fails, (), {}, ())
        except ValueError as exc:
            errors.append(exc)

    lead_then_follow(engine, call, call, entered, go)
    assert runs == ["leader"] and len(errors) == 2 and errors[0] is errors[1]
    assert engine.store.peek("", b"k") is None and engine.store.in_flight() == 0


def test_a_tiered_leader_calling_itself_through_a_thread_with_its_context_gets_a_recursion_error() -> None:
    import contextvars

    engine = tiered()
    outcome: list[Any] = []

    def work() -> Any:
        context = contextvars.copy_context()

        def again() -> None:
            try:
                outcome.append(context.run(engine.call, ("", b"k"), work, (), {}, ()))
            except RecursionError as exc:
                outcome.append(exc)

        inner = threading.Thread(target=again, daemon=True)
        inner.start()
        join_all(inner)
        return "done"

    assert engine.call(("", b"k"), work, (), {}, ()) == "done"
    assert len(outcome) == 1 and isinstance(outcome[0], RecursionError)
