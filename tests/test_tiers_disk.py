"""The disk tier beyond the shared contract: restarts, processes, budget, crashes, damage, expiry."""

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
from infercache.tiers import DiskTier

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
    with pytest.raises(TierError):
        DiskTier(path)
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
