"""Exact counters: a scripted sequence of calls, and every counter checked against what happened."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flight_fixtures import wait_until

import infercache as ic
from infercache.codec import Codec
from infercache.config import Settings
from infercache.engine import Engine
from infercache.store import EVICTION_REASONS
from infercache.tiers import DiskTier

SECRET = b"s" * 32


def only(**nonzero: int) -> dict[str, int]:
    """Evictions by reason: the given ones, every other reason zero."""
    return {reason: nonzero.get(reason, 0) for reason in EVICTION_REASONS}


def test_hits_misses_computations_and_time_saved_add_up_exactly() -> None:
    @ic.cache(max_size=2)
    def square(x: int) -> int:
        time.sleep(0.001)
        return x * x

    for x in (1, 1, 2, 1, 3, 3):  # miss, hit, miss, hit, miss (evicts 2), hit
        square(x)
    s = square.cache.stats()
    assert (s.hits, s.misses, s.computations, s.size) == (3, 3, 3, 2)
    assert s.hits_by_tier == {"memory": 3}
    assert s.evicted == only(size=1)
    assert s.evictions == 1
    (_, one), (_, three) = square.cache.engine.store.entries()  # least recently used first: 1, then 3
    assert s.saved_seconds == pytest.approx(2 * one.cost + three.cost, rel=1e-12)  # two hits of 1, one of 3
    assert s.compute_seconds > one.cost + three.cost > 0  # and the evicted 2 took time too
    assert s.hit_ratio == pytest.approx(0.5)


def test_every_eviction_reason_is_counted_once_per_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = ic.Cache(max_memory=2000, name="by-memory")
    for i in range(10):
        memory.set(i, blob=bytes(600))  # each ~700 bytes: a third entry pushes the first out
    oversized = ic.Cache(max_memory=1000, name="oversized")
    oversized.set("big", blob=bytes(5000))
    oversized.set("big", blob=bytes(6000))
    sessions = ic.Cache(per_session=True, name="sessions")
    for sid in ("a", "b"):
        with ic.session(sid):
            sessions.set("k1", v=1)
            sessions.set("k2", v=2)
    sessions.clear_session("a")
    manual = ic.Cache(name="manual")
    for k in "abc":
        manual.set(k, v=k)
    manual.delete("a")
    manual.delete("zz")  # not there: nothing counted
    manual.clear()
    expiring = ic.Cache(ttl=0.05, name="expiring")
    expiring.set("x", v=1)
    expiring.set("y", v=2)
    time.sleep(0.1)
    assert expiring.get("x") is None  # met expired: dropped
    assert len(expiring) == 0  # swept

    m = memory.stats()
    assert m.evicted == only(memory=m.evictions) and m.evictions == 10 - m.size > 0
    assert oversized.stats().evicted == only(oversized=2)
    assert sessions.stats().evicted == only(session=2)
    assert manual.stats().evicted == only(deleted=1, cleared=2)
    assert expiring.stats().evicted == only(ttl=2)
    assert expiring.stats().expirations == 2


def test_concurrent_identical_calls_count_one_computation_and_the_rest_as_joins() -> None:
    release = threading.Event()
    calls: list[int] = []

    @ic.cache
    def slow(x: int) -> int:
        calls.append(x)
        release.wait(30)
        return x

    threads = [threading.Thread(target=slow, args=(7,)) for _ in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while slow.cache.stats().joins < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    release.set()
    for t in threads:
        t.join(30)
    s = slow.cache.stats()
    assert calls == [7]
    # One caller computed; three were served by its computation: each call counted once.
    assert (s.misses, s.joins, s.hits, s.computations) == (1, 3, 0, 1)


def test_a_hit_read_from_a_store_counts_for_that_tier_and_credits_the_time_it_saved(tmp_path: Path) -> None:
    def work(x: int) -> int:
        time.sleep(0.01)
        return x + 1

    first = ic.cache(store=tmp_path / "s", max_size=10)(work)
    first(1)
    cost = next(e.cost for _, e in first.cache.engine.store.entries())
    second = ic.cache(store=tmp_path / "s", max_size=11)(work)  # another process, in effect
    assert second(1) == 2
    assert second(1) == 2
    s = second.cache.stats()
    assert s.hits_by_tier == {"memory": 1, "disk": 1}
    assert (s.hits, s.misses, s.computations) == (2, 0, 0)
    assert s.saved_seconds == pytest.approx(2 * cost)
    assert ic.stats()[second.cache.name]["tiers"] == ["disk"]


def test_a_computation_in_another_process_counts_as_a_remote_join(tmp_path: Path) -> None:
    first = Engine(Settings.of(), "tests.stats.f", tiers=[DiskTier(tmp_path / "d")], codec=Codec(SECRET))
    second = Engine(Settings.of(), "tests.stats.f", tiers=[DiskTier(tmp_path / "d")], codec=Codec(SECRET))
    started, go = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        go.wait(30)
        return "once"

    def through(engine: Engine, compute: Any) -> Any:
        """What a cached function's wrapper does: look up (a miss here), then the miss path."""
        assert engine.lookup(("", b"k")) is None
        return engine.call(("", b"k"), compute, (), {}, ())

    holder = threading.Thread(target=through, args=(first, slow))
    holder.start()
    assert started.wait(30)
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(through(second, lambda: "twice")))
    waiter.start()
    # Its lookup must miss before the holder stores the value (else it is a plain tier hit).
    wait_until(lambda: second.stats().misses == 1, "the second process's lookup to miss")
    go.set()
    holder.join(30)
    waiter.join(30)
    assert got == ["once"]
    s = second.stats()
    assert (s.remote_joins, s.computations, s.joins, s.misses, s.hits) == (1, 0, 0, 0, 0)
    assert first.stats().computations == 1


def test_tier_errors_and_verification_failures_are_counted_per_cache(tmp_path: Path) -> None:
    path = tmp_path / "s"

    @ic.cache(store=path)
    def f(x: int) -> int:
        return x

    @ic.cache(store=path)
    def g(x: int) -> int:
        return -x

    f(1)
    with sqlite3.connect(path / "index.sqlite3") as db:  # a stored record damaged in place
        (record,) = db.execute("SELECT value FROM entries").fetchone()
        db.execute("UPDATE entries SET value = ?", (bytes(record[:-1]) + bytes([record[-1] ^ 1]),))
    f.cache.engine.store.clear()
    assert f(1) == 1
    assert f.cache.stats().verification_failures == 1
    shutil.rmtree(path)
    path.write_text("not a directory")  # every operation of the store fails from now on
    assert g(5) == -5
    assert g.cache.stats().tier_errors == 1  # the breaker then skips the store: one failure counted
    assert f.cache.stats().tier_errors == 0  # the same store, another cache's calls


def test_ic_stats_lists_every_live_cache_as_json() -> None:
    @ic.cache(name="listed-one")
    def one(x: int) -> int:
        return x

    listed = ic.Cache(name="listed-two")
    one(1)
    one(1)
    listed.set("k", v=1)
    data = ic.stats()
    json.dumps(data)  # serializable as it is
    assert data["listed-one"]["hits"] == 1 and data["listed-one"]["misses"] == 1
    assert data["listed-one"]["function"].endswith("one")
    assert data["listed-two"]["size"] == 1
    assert set(data["listed-one"]["evicted"]) == set(EVICTION_REASONS)


def test_logging_says_what_happened_once_and_nothing_per_hit(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="infercache")

    @ic.cache(max_size=1)
    def ident(x: object) -> object:
        return x

    ident(1)
    caplog.clear()
    for _ in range(50):
        ident(1)  # hits
    assert caplog.records == []
    ident(2)  # evicts 1: one line for the wave
    waves = [r for r in caplog.records if "evicted" in r.getMessage()]
    assert len(waves) == 1 and waves[0].levelno == logging.DEBUG

    @ic.cache
    def make_lock(x: int) -> Any:
        return threading.Lock()

    caplog.clear()
    for x in range(3):
        make_lock(x)  # a result that cannot be copied safely: not cached, said once
    assert [r.levelno for r in caplog.records if "not cached" in r.getMessage()] == [logging.WARNING]


class Interrupted(BaseException):
    """Not an Exception: the leader's computation is abandoned, not failed."""


def test_a_follower_whose_leader_was_abandoned_counts_as_the_miss_it_became() -> None:
    entered, go = threading.Event(), threading.Event()
    runs: list[str] = []

    @ic.cache
    def work(x: int) -> int:
        runs.append(threading.current_thread().name)
        if len(runs) == 1:
            entered.set()
            go.wait(30)
            raise Interrupted
        return x

    def lead() -> None:
        with pytest.raises(Interrupted):
            work(1)

    leader = threading.Thread(target=lead, name="leader")
    leader.start()
    assert entered.wait(30)
    got: list[int] = []
    follower = threading.Thread(target=lambda: got.append(work(1)), name="follower")
    follower.start()
    deadline = time.monotonic() + 30
    while work.cache.stats().joins < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    go.set()
    leader.join(30)
    follower.join(30)
    s = work.cache.stats()
    assert got == [1] and runs == ["leader", "follower"]
    assert (s.hits, s.misses, s.joins, s.remote_joins) == (0, 2, 0, 0)  # two calls, two computations
    assert work(1) == 1
    assert work.cache.stats().hit_ratio == pytest.approx(1 / 3)
