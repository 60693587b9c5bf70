"""The disk tier beyond the shared contract: restarts, processes, budget, crashes, damage, expiry,
cross-process leases (OS file locks) and listing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infercache.errors import TierError
from infercache.tiers import DiskTier, Lease

BIG = 200 * 1024  # above the default inline_max: stored in a file


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def tier(path: Path) -> Iterator[DiskTier]:
    t = DiskTier(path)
    yield t
    t.close()


def run_child(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=60, check=True,
    )


def test_records_survive_reopening_the_directory(path: Path) -> None:
    first = DiskTier(path)
    first.set(b"small", b"s" * 10)
    first.set(b"big", b"b" * BIG)
    first.close()
    second = DiskTier(path)
    assert second.get(b"small") == b"s" * 10
    assert second.get(b"big") == b"b" * BIG
    second.close()


def test_two_processes_share_records_through_one_directory(path: Path, tier: DiskTier) -> None:
    tier.set(b"from-parent", b"p" * BIG)
    child = run_child(
        """
        import sys
        from infercache.tiers import DiskTier
        t = DiskTier(sys.argv[1])
        sys.stdout.write(str(len(t.get(b"from-parent") or b"")))
        t.set(b"from-child", b"c" * 300_000)
        t.set(b"small-from-child", b"hello")
        """,
        str(path),
    )
    assert child.stdout == str(BIG)
    assert tier.get(b"from-child") == b"c" * 300_000
    assert tier.get(b"small-from-child") == b"hello"


def test_processes_writing_at_once_all_succeed_within_the_budget(path: Path, tier: DiskTier) -> None:
    budget = 400_000
    code = """
        import sys
        from infercache.tiers import DiskTier
        t = DiskTier(sys.argv[1], max_bytes=int(sys.argv[3]), inline_max=1000)
        for i in range(60):
            t.set(f"{sys.argv[2]}/{i}".encode(), bytes([i]) * (500 + 997 * i))
    """
    children = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(path), f"p{n}", str(budget)])
        for n in range(3)
    ]
    assert [c.wait(timeout=60) for c in children] == [0, 0, 0]
    assert 0 < tier.size() <= budget
    for n in range(3):  # every survivor is complete
        for i in range(60):
            got = tier.get(f"p{n}/{i}".encode())
            assert got is None or got == bytes([i]) * (500 + 997 * i)


def test_max_bytes_holds_and_the_least_recently_used_go_first(path: Path) -> None:
    clock = FakeClock()
    tier = DiskTier(path, max_bytes=10_000, inline_max=1500, touch_every=1.0, clock=clock)
    for i in range(10):
        clock.now += 10
        tier.set(f"k{i}".encode(), bytes([i]) * 1000)
    assert tier.size() == 10_000
    clock.now += 10
    assert tier.get(b"k0") is not None  # now the most recently used
    for i in range(10, 13):
        clock.now += 10
        tier.set(f"k{i}".encode(), bytes([i]) * 2000)  # in files: inline and file records share one budget
    assert tier.size() <= 10_000
    kept = {i for i in range(13) if tier.get(f"k{i}".encode()) is not None}
    assert kept == {0, 7, 8, 9, 10, 11, 12}
    for i in range(200):
        tier.set(f"many{i}".encode(), b"x" * (i * 37 % 3000))
        assert tier.size() <= 10_000
    assert tier.size() == sum(len(tier.get(f"many{i}".encode()) or b"") for i in range(200))
    tier.close()


def test_a_record_over_the_budget_is_not_stored_and_drops_the_older_one(path: Path) -> None:
    tier = DiskTier(path, max_bytes=100)
    tier.set(b"a", b"1")
    tier.set(b"a", b"x" * 101)
    assert tier.get(b"a") is None
    tier.close()


def test_a_writer_killed_mid_write_leaves_the_last_whole_record(path: Path) -> None:
    # The child finished a write before each kill, so a complete record must always be there.
    size = 8 * 1024 * 1024
    code = """
        import sys
        from infercache.tiers import DiskTier
        t = DiskTier(sys.argv[1])
        i = 0
        while True:
            i = (i + 1) % 256
            t.set(b"big", bytes([i]) * int(sys.argv[2]))
            sys.stdout.write("."); sys.stdout.flush()
    """
    for delay in [0.004 * i for i in range(16)]:  # kills at many points of the next write
        child = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), str(path), str(size)], stdout=subprocess.PIPE
        )
        assert child.stdout is not None
        child.stdout.read(1)  # one write finished; the next one is under way
        time.sleep(delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        tier = DiskTier(path)
        got = tier.get(b"big")
        assert got is not None
        assert len(got) == size
        assert got == got[:1] * size
        tier.close()


def test_a_deleted_directory_is_recreated(path: Path, tier: DiskTier) -> None:
    tier.set(b"a", b"1")
    tier.set(b"big", b"b" * BIG)
    shutil.rmtree(path)
    assert tier.get(b"a") is None
    assert tier.get(b"big") is None
    tier.set(b"a", b"2")
    tier.set(b"big", b"c" * BIG)
    assert tier.get(b"a") == b"2"
    again = DiskTier(path)  # written where another process would look, not into the deleted files
    assert again.get(b"big") == b"c" * BIG
    again.close()


def test_a_deleted_data_folder_is_recreated_by_the_next_large_write(path: Path, tier: DiskTier) -> None:
    tier.set(b"big", b"b" * BIG)
    shutil.rmtree(path / "data")
    assert tier.get(b"big") is None  # its file is gone: a miss
    tier.set(b"big", b"c" * BIG)
    assert tier.get(b"big") == b"c" * BIG


def index_files(path: Path) -> list[Path]:
    return [path / name for name in os.listdir(path) if name.startswith("index.sqlite3")]


def test_a_corrupted_database_raises_tier_error_until_removed(path: Path, tier: DiskTier) -> None:
    tier.set(b"a", b"1")
    for file in index_files(path):
        with open(file, "r+b") as f:  # in place: the tier keeps the same files open
            f.write(b"this is not a database" * 1000)
    for verb in (lambda: tier.get(b"a"), lambda: tier.set(b"b", b"2"), lambda: tier.delete(b"a"), tier.clear):
        with pytest.raises(TierError):
            verb()
    reopened = DiskTier(path)  # constructing does not raise (a cache using it fails open) ...
    with pytest.raises(TierError):
        reopened.get(b"a")  # ... its verbs do
    for file in index_files(path):
        file.unlink()
    assert tier.get(b"a") is None
    tier.set(b"a", b"2")
    assert tier.get(b"a") == b"2"


def test_a_missing_or_truncated_file_is_a_miss(path: Path, tier: DiskTier) -> None:
    tier.set(b"a", b"a" * BIG)
    tier.set(b"b", b"b" * BIG)
    files = sorted((path / "data").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    files[0].unlink()
    with open(files[1], "r+b") as f:
        f.truncate(BIG // 2)
    assert tier.get(b"a") is None
    assert tier.get(b"b") is None


def test_records_expire_by_the_clock(path: Path) -> None:
    clock = FakeClock()
    tier = DiskTier(path, clock=clock)
    tier.set(b"a", b"1", ttl=10)
    tier.set(b"big", b"b" * BIG, ttl=10)
    tier.set(b"forever", b"2")
    clock.now += 9.9
    assert tier.get(b"a") == b"1"
    assert tier.get(b"big") == b"b" * BIG
    clock.now += 0.2
    assert tier.get(b"a") is None
    assert tier.get(b"big") is None
    assert tier.get(b"forever") == b"2"
    assert len(tier) == 1
    assert list((path / "data").iterdir()) == []  # the expired record's file went with it
    tier.close()


def test_clear_takes_names_bytewise_not_as_patterns(tier: DiskTier) -> None:
    names = [b"f%/a", b"f_/a", b"fx/a", b"f%", b"\xff\xff/a", b"\xff\xff", b"\xff\xfe"]
    for n in names:
        tier.set(n, n)
    assert tier.clear(b"f%/") == 1
    assert tier.get(b"f_/a") == b"f_/a"
    assert tier.get(b"fx/a") == b"fx/a"
    assert tier.clear(b"\xff\xff") == 2
    assert tier.get(b"\xff\xfe") == b"\xff\xfe"


def test_sweep_removes_files_left_by_crashed_writers(path: Path, tier: DiskTier) -> None:
    data = path / "data"
    tier.set(b"kept", b"k" * BIG)
    (data / "0123.tmp").write_bytes(b"partial")
    (data / "4567").write_bytes(b"never committed")
    old = time.time() - 7200
    for file in data.iterdir():  # the committed file is as old: the index, not age, keeps it
        os.utime(file, (old, old))
    (data / "89ab.tmp").write_bytes(b"being written right now")
    assert tier.sweep() == 2
    left = sorted(p.name for p in data.iterdir())
    assert len(left) == 2
    assert "89ab.tmp" in left
    assert tier.get(b"kept") == b"k" * BIG


def test_threads_share_one_tier(path: Path) -> None:
    tier = DiskTier(path, max_bytes=2_000_000, inline_max=1000)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(40):
                record = bytes([n]) * (100 + 50 * i)
                tier.set(f"t{n}/{i}".encode(), record)
                assert tier.get(f"t{n}/{i}".encode()) == record
        except (AssertionError, TierError, OSError) as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(tier) == 160
    assert tier.clear(b"t1/") == 40
    tier.close()


# -- leases ------------------------------------------------------------------

HOLD_LEASE = """
    import sys
    from infercache.tiers import DiskTier
    t = DiskTier(sys.argv[1])
    lease = t.lease(sys.argv[2].encode(), 30.0)
    print("held" if lease is not None else "refused", flush=True)
    sys.stdin.readline()  # until the parent says so (or kills this process)
    if lease is not None:
        lease.release()
    print("released", flush=True)
    sys.stdin.readline()
"""


def hold_lease_in_child(path: Path, name: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD_LEASE), str(path), name],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "held\n"
    return child


def finish(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        child.kill()
    child.communicate(timeout=30)


def test_a_lease_held_by_another_process_is_refused_until_released(path: Path, tier: DiskTier) -> None:
    child = hold_lease_in_child(path, "job")
    try:
        assert tier.lease(b"job", 30.0) is None
        other = tier.lease(b"another job", 30.0)  # one lock per name
        assert other is not None
        other.release()
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline() == "released\n"
        mine = tier.lease(b"job", 30.0)
        assert mine is not None
        mine.release()
    finally:
        finish(child)


def test_a_lease_is_freed_at_once_when_its_holder_is_killed(path: Path, tier: DiskTier) -> None:
    child = hold_lease_in_child(path, "job")
    try:
        assert tier.lease(b"job", 3600.0) is None
        child.kill()  # SIGKILL: no release, no cleanup; the ttl (an hour) is not waited for
        child.wait(timeout=30)
        mine = tier.lease(b"job", 3600.0)
        assert mine is not None
        mine.release()
    finally:
        finish(child)


def test_a_released_lease_can_be_taken_again_and_release_is_idempotent(tier: DiskTier) -> None:
    first = tier.lease(b"job", 30.0)
    assert first is not None
    assert tier.lease(b"job", 30.0) is None
    first.release()
    first.release()  # a second release does nothing (and never raises)
    second = tier.lease(b"job", 30.0)
    assert second is not None
    first.release()  # the first lease's late release does not free the second one
    assert tier.lease(b"job", 30.0) is None
    second.release()


def test_two_threads_asking_for_one_lease_get_it_once(tier: DiskTier) -> None:
    barrier = threading.Barrier(2)
    granted: list[Lease | None] = []

    def ask() -> None:
        barrier.wait()
        granted.append(tier.lease(b"job", 30.0))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = [lease for lease in granted if lease is not None]
    assert len(granted) == 2
    assert len(held) == 1
    held[0].release()


def lock_files(path: Path) -> list[Path]:
    return sorted((path / "locks").iterdir())


def test_sweep_removes_old_unheld_lock_files_and_keeps_held_ones(path: Path, tier: DiskTier) -> None:
    held = tier.lease(b"held", 30.0)
    assert held is not None
    done = tier.lease(b"done", 30.0)
    assert done is not None
    done.release()
    old = time.time() - 7200
    for file in lock_files(path):
        os.utime(file, (old, old))
    young = tier.lease(b"young", 30.0)  # its file is new
    assert young is not None
    young.release()
    assert len(lock_files(path)) == 3
    assert tier.sweep() == 1  # "done": old and free
    assert len(lock_files(path)) == 2
    assert tier.lease(b"held", 30.0) is None  # still excluded after the sweep
    held.release()
    assert tier.sweep(older_than=-60) == 2
    assert lock_files(path) == []
    again = tier.lease(b"done", 30.0)  # a swept name is simply created again
    assert again is not None
    assert tier.lease(b"done", 30.0) is None
    again.release()


def test_a_lease_taken_on_a_lock_file_unlinked_under_it_starts_over(path: Path, tier: DiskTier) -> None:
    # The race sweep() opens: a process opens the lock file, sweep unlinks it (it was
    # unheld), another process creates a new file at the path and locks it, then the
    # first process locks the file it opened. That lock is on a file nobody else can
    # find, so it must not count as the lease. A FIFO holds the first process in its
    # open() while the rest happens (opening a FIFO to read waits for a writer).
    taker = DiskTier(path)  # its own tier: as another process would
    first = tier.lease(b"job", 30.0)
    assert first is not None
    first.release()
    (lock_path,) = lock_files(path)
    spare = path / "spare"
    for _attempt in range(20):
        lock_path.unlink()
        os.mkfifo(lock_path)
        os.link(lock_path, spare)  # a second name, to wake the opener after the first one is gone
        result: list[object] = []
        thread = threading.Thread(target=lambda out=result: out.append(taker.lease(b"job", 30.0)))
        thread.start()
        time.sleep(0.05)  # lets it reach open(); if it did not, this attempt is retried
        lock_path.unlink()  # what sweep() does to an unheld lock file
        holder = tier.lease(b"job", 30.0)  # another process takes the name on a new file
        assert holder is not None
        try:
            writer = os.open(spare, os.O_WRONLY | os.O_NONBLOCK)  # wakes a reader blocked in open()
        except OSError:  # no reader waiting yet: the taker opened the new file instead
            writer = -1
        thread.join(timeout=30)
        if writer >= 0:
            os.close(writer)
        spare.unlink()
        woken = writer >= 0
        assert result == [None]  # excluded by the holder either way
        holder.release()
        if woken:
            break
    else:
        pytest.fail("the taker never reached open() before the unlink")
    taker.close()


# -- listing -----------------------------------------------------------------


def test_entries_lists_exactly_the_live_records_under_a_prefix_from_the_index(path: Path) -> None:
    clock = FakeClock()
    tier = DiskTier(path, inline_max=1000, clock=clock)
    tier.set(b"f/a", b"a" * 10)
    tier.set(b"f/big", b"b" * 5000)  # in a file
    tier.set(b"f/short", b"s" * 20, ttl=5)
    tier.set(b"f/long", b"l" * 30, ttl=50)
    tier.set(b"g/other", b"o" * 40)
    tier.set(b"f", b"not under f/")
    for i in range(1100):  # more than one page of rows
        tier.set(b"f/many/%04d" % i, b"m" * (i % 7))
    for file in (path / "data").iterdir():
        file.unlink()  # sizes come from the index: the records are never opened
    clock.now += 10
    listed = list(tier.entries(b"f/"))
    expected = {b"f/a": 10, b"f/big": 5000, b"f/long": 30} | {b"f/many/%04d" % i: i % 7 for i in range(1100)}
    assert len(listed) == len(expected)
    assert dict(listed) == expected
    assert sorted(name for name, _ in tier.entries()) == sorted([*expected, b"g/other", b"f"])
    assert list(tier.entries(b"h/")) == []
    tier.close()
