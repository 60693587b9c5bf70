"""The engine with real stores, end to end: processes sharing results, damaged records, dead backends.

What issue 10 promises and only real processes, real directories and a real
``redis-server`` can show:

- separate processes share results through a directory, a Redis server and
  a 3-master Redis Cluster, and a restart keeps a directory's entries;
- a damaged record (a byte flipped anywhere, or cut short) and a record
  signed with another secret are misses that still return the right value,
  and are replaced;
- N processes asking for one new input compute it once, and a holder
  killed mid-computation blocks the others no longer than its lease;
- a Redis server killed in the middle of calls, or absent from the start,
  and a directory deleted, replaced, corrupted or full never fail a call;
  the store is used again once it is back.

Worker processes come from :mod:`tier_procs`; Redis servers from
:mod:`redis_fixtures`. Tests that need no second process run in this one,
clearing a cache's memory to make it read the store.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis_fixtures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_fixtures import RedisServer, free_port
from tier_procs import SECRET, Barrier, Result, Workers, expected, wait_for

import infercache as ic

# The fixtures, bound to this module's names (an import would be shadowed by each test's parameter).
redis_server = redis_fixtures.redis_server
redis_url = redis_fixtures.redis_url
redis_cluster = redis_fixtures.redis_cluster
redis_cluster_url = redis_fixtures.redis_cluster_url

SMALL = 100
LARGE = 200_000  # past the disk store's 64 KiB inline limit: a file of its own
INPUTS = [(1, SMALL), (2, LARGE)]

Value = tuple[int, int, bytes]


def value(x: int, size: int) -> Value:
    """What the cached functions here return for ``(x, size)``."""
    return (x, x * x, bytes([x % 256]) * size)


@pytest.fixture
def workers(tmp_path: Path) -> Workers:
    return Workers(tmp_path)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """This process signs its records with the workers' secret."""
    monkeypatch.setenv("INFERCACHE_SECRET", SECRET)
    return SECRET


def store_of(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ``store=`` string of a kind of store (its server started on first use)."""
    if kind == "disk":
        return str(tmp_path / "store")
    if kind == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    cluster_url: str = request.getfixturevalue("redis_cluster_url")
    return cluster_url + "?cluster=1"


def counted(store: Any) -> tuple[Callable[[int, int], Value], list[int]]:
    """A new cached function over ``store`` (empty memory) and the list of the inputs it computed."""
    calls: list[int] = []

    def compute(x: int, size: int) -> Value:
        calls.append(x)
        return value(x, size)

    return ic.cache(store=store)(compute), calls


def forget(fn: Callable[..., Any]) -> None:
    """Empty a cached function's memory, so its next call reads the store."""
    fn.cache.engine.store.clear()  # type: ignore[attr-defined]


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# -- sharing across processes ----------------------------------------------------


@pytest.mark.parametrize("kind", ["disk", "redis", "cluster"])
def test_a_second_process_is_served_what_a_running_first_one_computed(
    kind: str, workers: Workers, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = store_of(kind, request, tmp_path)
    linger = tmp_path / "linger"
    first = workers.start(store, INPUTS, linger=linger)  # stays alive after its calls
    for x, size in INPUTS:
        assert first.next_value() == expected(x, size)
    workers.run(store, [*INPUTS, (2, LARGE)])
    linger.touch()
    first.check()
    assert workers.computed() == [1, 2]  # the second process computed nothing


def test_a_restarted_process_finds_the_directorys_entries(workers: Workers, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    workers.run(store, INPUTS)  # computes, stores, exits
    workers.run(store, INPUTS)
    assert workers.computed() == [1, 2]


@pytest.mark.parametrize("kind", ["disk", "redis"])
def test_async_functions_share_results_across_processes(
    kind: str, workers: Workers, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = store_of(kind, request, tmp_path)
    workers.run(store, INPUTS, mode="async")
    workers.run(store, INPUTS, mode="async")
    assert workers.computed() == [1, 2]


# -- damaged and foreign records -------------------------------------------------


def flip_or_cut(record: bytes, damage: tuple[str, int, int]) -> bytes:
    """``record`` with one byte XOR-ed with a mask (``("flip", at, mask)``) or cut to ``at`` bytes."""
    kind, at, mask = damage
    if kind == "cut":
        return record[:at]
    return record[:at] + bytes([record[at] ^ mask]) + record[at + 1 :]


def damages(size: int) -> st.SearchStrategy[tuple[str, int, int]]:
    """A flipped byte anywhere in a record of ``size`` bytes, or a cut anywhere in it."""
    return st.one_of(
        st.tuples(st.just("flip"), st.integers(0, size - 1), st.integers(1, 255)),
        st.tuples(st.just("cut"), st.integers(0, size - 1), st.just(0)),
    )


class DiskRecord:
    """The one record of a disk store, read and damaged directly: in its index row, or in its file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _row(self) -> tuple[bytes, bytes | None, str | None]:
        with sqlite3.connect(self.path / "index.sqlite3") as db:
            rows = db.execute("SELECT name, value, file FROM entries").fetchall()
        assert len(rows) == 1, rows
        name, inline, file = rows[0]
        return bytes(name), None if inline is None else bytes(inline), file

    def read(self) -> bytes:
        _, inline, file = self._row()
        return inline if inline is not None else (self.path / "data" / str(file)).read_bytes()

    def write(self, record: bytes) -> None:
        name, inline, file = self._row()
        if inline is not None:
            db = sqlite3.connect(self.path / "index.sqlite3")
            try:
                with db:
                    db.execute("UPDATE entries SET value = ? WHERE name = ?", (record, name))
            finally:
                db.close()
        else:
            (self.path / "data" / str(file)).write_bytes(record)


class RedisRecord:
    """The one record of a Redis store, damaged with SETRANGE (a flip) or SET ... KEEPTTL (a cut)."""

    def __init__(self, server: RedisServer) -> None:
        self.client = server.client()

    def _name(self) -> bytes:
        names = list(self.client.scan_iter(match=b"infercache/*"))
        assert len(names) == 1, names
        name: bytes = names[0]
        return name

    def read(self) -> bytes:
        record = self.client.get(self._name())
        assert isinstance(record, bytes)
        return record

    def damage(self, damage: tuple[str, int, int]) -> None:
        name = self._name()
        kind, at, mask = damage
        if kind == "flip":
            old = self.client.getrange(name, at, at)
            assert isinstance(old, bytes)
            self.client.setrange(name, at, bytes([old[0] ^ mask]))
        else:
            self.client.set(name, self.read()[:at], keepttl=True)


@pytest.mark.parametrize("where", ["disk index", "disk file", "redis"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_record_is_a_miss_with_the_right_answer_and_is_replaced(
    where: str,
    data: st.DataObject,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
    secret: str,
) -> None:
    caplog.set_level(logging.WARNING, logger="infercache")
    caplog.clear()
    size = LARGE if where == "disk file" else SMALL
    if where == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        server.flush()  # examples share the server: one record at a time
        store: str = server.url
        record: DiskRecord | RedisRecord = RedisRecord(server)
    else:
        path = tmp_path / "store"
        shutil.rmtree(path, ignore_errors=True)  # examples share the test's tmp_path
        store = str(path)
        record = DiskRecord(path)
    fn, calls = counted(store)
    assert fn(3, size) == value(3, size)
    good = record.read()
    damage = data.draw(damages(len(good)), label="damage")
    if isinstance(record, RedisRecord):
        record.damage(damage)
    else:
        record.write(flip_or_cut(good, damage))

    forget(fn)
    assert fn(3, size) == value(3, size)
    assert calls == [3, 3]  # a miss: computed again
    if not (where == "disk file" and damage[0] == "cut"):  # a file of the wrong size is absent, not corrupt
        assert len(messages(caplog, "dropped")) == 1
    replaced = record.read()
    assert replaced != flip_or_cut(good, damage) and len(replaced) == len(good)  # a whole new record
    forget(fn)
    assert fn(3, size) == value(3, size)
    assert calls == [3, 3]  # and served from the store again


@pytest.mark.parametrize("kind", ["disk", "redis"])
def test_a_record_signed_with_another_secret_is_a_miss_and_is_replaced(
    kind: str, workers: Workers, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = store_of(kind, request, tmp_path)
    other = "another-secret-fedcba9876543210"
    workers.run(store, [(5, SMALL)])
    foreign = workers.run(store, [(5, SMALL)], secret=other)
    assert workers.computed() == [5, 5]
    assert "dropped" in foreign.stderr
    workers.run(store, [(5, SMALL)], secret=other)  # its own record now
    assert workers.computed() == [5, 5]
    workers.run(store, [(5, SMALL)])  # the first secret's record is gone
    assert workers.computed() == [5, 5, 5]


# -- one computation across processes ---------------------------------------------


# A command slower than the store's 1 s timeout (a loaded machine) opens the circuit breaker, and
# the process then computes on its own: failing open by design, but a second computation here.
PATIENT = {"socket_timeout": 5.0, "connect_timeout": 5.0}


def redis_options(kind: str, **options: Any) -> dict[str, Any] | None:
    """``ic.RedisStore`` keyword arguments for the workers of the single-computation tests (None for disk)."""
    if kind == "disk":
        return None
    return {**PATIENT, "cluster": kind == "cluster", **options}


def report(workers: Workers, results: list[Result]) -> str:
    """The computations and the workers' logs, for a failed assertion."""
    return f"computed by (pid, x): {workers.calls()}\n" + "\n".join(r.stderr for r in results)


@pytest.mark.parametrize(
    ("kind", "mode"), [("disk", "sync"), ("redis", "sync"), ("cluster", "sync"), ("disk", "async"), ("redis", "async")]
)
def test_four_processes_asking_for_one_new_input_compute_it_once(
    kind: str, mode: str, workers: Workers, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = store_of(kind, request, tmp_path).removesuffix("?cluster=1")
    barrier = Barrier(tmp_path)
    procs = [
        workers.start(store, [(7, LARGE)], mode=mode, sleep=1.0, barrier=barrier, redis=redis_options(kind))
        for _ in range(4)
    ]
    barrier.go(4)
    results = [proc.check() for proc in procs]
    assert workers.computed() == [7], report(workers, results)


@pytest.mark.parametrize("kind", ["disk", "redis"])
def test_a_holder_killed_mid_computation_does_not_block_the_others(
    kind: str, workers: Workers, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = store_of(kind, request, tmp_path)
    # Redis: a short lease, so the dead holder's expires soon; the disk's OS lock is freed at once.
    options = redis_options(kind, lease_ttl=1.0)
    started = tmp_path / "started"
    holder = workers.start(store, [(9, SMALL)], sleep=300.0, started=started, redis=options)
    wait_for(started.exists, "the holder to start computing")
    barrier = Barrier(tmp_path)
    # Computing takes longer than the lease: the new holder's renewals keep the other one waiting.
    waiters = [workers.start(store, [(9, SMALL)], sleep=1.5, barrier=barrier, redis=options) for _ in range(2)]
    barrier.go(2)
    time.sleep(0.3)  # let the waiters find the key held (the test passes either way, but tests less)
    holder.kill()
    results = [waiter.check() for waiter in waiters]
    calls = workers.calls()
    assert [x for _, x in calls] == [9, 9], report(workers, results)  # the killed holder's, and one waiter's
    assert calls[0][0] == holder.proc.pid
    assert calls[1][0] in {w.proc.pid for w in waiters}


# -- Redis going away -------------------------------------------------------------


def test_killing_redis_mid_calls_fails_none_and_a_restarted_server_is_used_again(
    redis_server: RedisServer, redis_url: str, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    caplog.set_level(logging.WARNING, logger="infercache")
    fn, _calls = counted(ic.RedisStore(redis_url))
    inputs = [i % 120 for i in range(200)]  # 120 distinct inputs, 80 repeated
    random.Random(10).shuffle(inputs)
    lock = threading.Lock()
    done = [0]
    reached = threading.Event()
    killed = threading.Event()

    def call(x: int) -> Value:
        result = fn(x, SMALL)
        with lock:
            done[0] += 1
            n = done[0]
        if n == 50:
            reached.set()
        elif n > 60:
            killed.wait()  # the last 140 calls all end after the kill
        return result

    def kill() -> None:
        reached.wait()
        redis_server.kill()
        killed.set()

    killer = threading.Thread(target=kill)
    killer.start()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, inputs))
    killer.join()
    assert results == [value(x, SMALL) for x in inputs]
    assert len(messages(caplog, "redis tier unavailable")) == 1

    redis_server.restart()  # empty, on the same port
    raw = redis_server.client()
    fresh = iter(range(1000, 100_000))

    def written_again() -> bool:
        x = next(fresh)
        assert fn(x, SMALL) == value(x, SMALL)
        return any(raw.scan_iter(match=b"infercache/*"))

    # The breaker retries after 1 s, doubling while the server stays down: poll, no timing claim.
    wait_for(written_again, "the restarted redis-server to be written again")
    raw.close()
    assert len(messages(caplog, "redis tier is back")) == 1


def test_a_redis_server_down_from_the_start_fails_no_call(caplog: pytest.LogCaptureFixture, secret: str) -> None:
    caplog.set_level(logging.WARNING, logger="infercache")
    fn, calls = counted(ic.RedisStore(f"redis://127.0.0.1:{free_port()}/0"))  # nothing listens there
    inputs = [i % 5 for i in range(20)]
    assert [fn(x, SMALL) for x in inputs] == [value(x, SMALL) for x in inputs]
    assert calls == [0, 1, 2, 3, 4]  # memory still serves repeated inputs
    assert len(messages(caplog, "redis tier unavailable")) == 1


# -- disk faults ----------------------------------------------------------------------


def wait_until_written_again(fn: Callable[[int, int], Value], calls: list[int], x: int) -> None:
    """Call ``fn(x, LARGE)`` with memory cleared until the store serves it (the breaker retries after 1 s)."""

    def served() -> bool:
        before = len(calls)
        forget(fn)
        assert fn(x, LARGE) == value(x, LARGE)
        return len(calls) == before

    wait_for(served, "the store to be written and read again")


def test_a_store_directory_deleted_while_in_use_is_recreated_and_used_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    caplog.set_level(logging.WARNING, logger="infercache")
    path = tmp_path / "store"
    fn, calls = counted(str(path))
    assert [fn(x, LARGE) for x in range(3)] == [value(x, LARGE) for x in range(3)]
    shutil.rmtree(path)
    assert [fn(x, size) for x in range(6) for size in (SMALL, LARGE)] == [
        value(x, size) for x in range(6) for size in (SMALL, LARGE)
    ]
    assert (path / "index.sqlite3").is_file()
    forget(fn)
    before = list(calls)
    assert [fn(x, size) for x in range(3, 6) for size in (SMALL, LARGE)] == [
        value(x, size) for x in range(3, 6) for size in (SMALL, LARGE)
    ]
    assert calls == before  # stored in the recreated directory, read back from it
    assert len(messages(caplog, "unavailable")) <= 1


def test_a_store_directory_replaced_by_a_file_degrades_to_memory_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    # Unwritable for root too (chmod does not stop root): nothing can be created under a regular file.
    caplog.set_level(logging.WARNING, logger="infercache")
    path = tmp_path / "store"
    fn, calls = counted(str(path))
    fn(0, LARGE)
    shutil.rmtree(path)
    path.write_text("not a directory")
    inputs = [1, 2, 3, 1, 2, 3, 0]
    assert [fn(x, LARGE) for x in inputs] == [value(x, LARGE) for x in inputs]
    assert calls == [0, 1, 2, 3]  # memory serves what it holds
    assert len(messages(caplog, "disk tier unavailable")) == 1
    path.unlink()
    wait_until_written_again(fn, calls, 4)
    assert len(messages(caplog, "disk tier is back")) == 1
    assert len(messages(caplog, "disk tier unavailable")) == 1


def test_a_store_database_replaced_by_garbage_degrades_to_memory_and_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    caplog.set_level(logging.WARNING, logger="infercache")
    path = tmp_path / "store"
    fn, calls = counted(str(path))
    fn(0, SMALL)
    db = path / "index.sqlite3"
    garbage = path / "garbage"
    garbage.write_bytes(random.Random(9).randbytes(64 * 1024))
    os.replace(garbage, db)
    inputs = [1, 2, 1, 2]
    assert [fn(x, size) for x in inputs for size in (SMALL, LARGE)] == [
        value(x, size) for x in inputs for size in (SMALL, LARGE)
    ]
    assert calls == [0, 1, 1, 2, 2]
    assert len(messages(caplog, "disk tier unavailable")) == 1
    db.unlink()  # what an operator does with a corrupt cache database: it is recreated
    wait_until_written_again(fn, calls, 3)
    assert len(messages(caplog, "disk tier is back")) == 1


@pytest.mark.parametrize("fault", ["corrupt database", "path under a file"])
def test_a_disk_store_that_cannot_be_opened_at_start_degrades_to_memory_and_recovers(
    fault: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, secret: str
) -> None:
    caplog.set_level(logging.WARNING, logger="infercache")
    if fault == "corrupt database":
        path = tmp_path / "store"
        path.mkdir()
        blocker = path / "index.sqlite3"
        blocker.write_bytes(b"not a database" * 1000)
    else:
        blocker = tmp_path / "file"
        blocker.write_text("a regular file")
        path = blocker / "store"
    fn, calls = counted(str(path))
    assert [fn(x, SMALL) for x in (1, 2, 1)] == [value(x, SMALL) for x in (1, 2, 1)]
    assert calls == [1, 2]
    assert len(messages(caplog, "disk tier unavailable")) == 1
    blocker.unlink()
    wait_until_written_again(fn, calls, 3)
    assert len(messages(caplog, "disk tier is back")) == 1


def test_a_full_disk_degrades_to_memory_and_writes_resume_when_space_is_back(
    workers: Workers, tmp_path: Path
) -> None:
    store = str(tmp_path / "store")
    inputs = [(1, LARGE), (2, LARGE), (1, LARGE), (3, SMALL)]
    full = workers.run(store, inputs, full_disk=32 * 1024, until_back=(4, LARGE))
    assert full.stderr.count("disk tier unavailable") == 1
    assert full.stderr.count("disk tier is back") == 1
    assert workers.computed()[:3] == [1, 2, 3]  # 1 again came from memory
    computed = len(workers.calls())
    workers.run(store, [(4, LARGE)])  # written once the space was back
    assert len(workers.calls()) == computed
