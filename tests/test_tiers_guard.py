"""The circuit breaker: a failing tier is skipped, logged once when it goes and once when it is back."""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

import pytest

import infercache as ic
from infercache.tiers import DiskTier, Lease
from infercache.tiers.guard import Guarded


class CountingDiskTier(DiskTier):
    """A real disk tier that counts how often the guard let a verb through."""

    reached = 0

    def get(self, name: bytes) -> bytes | None:
        self.reached += 1
        return super().get(name)

    def set(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        self.reached += 1
        super().set(name, record, ttl)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _break(path: Path) -> None:
    """Put a regular file where the tier's directory was: every verb fails until it is removed."""
    shutil.rmtree(path)
    path.write_text("not a directory")


def _mend(path: Path) -> None:
    path.unlink()


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Guarded, CountingDiskTier, Clock, Path]:
    path = tmp_path / "d"
    tier = CountingDiskTier(path)
    clock = Clock()
    return Guarded(tier, cooldown=1.0, max_cooldown=4.0, clock=clock), tier, clock, path


def test_a_failing_tier_answers_as_empty_and_is_skipped_until_the_cooldown_ends(
    setup: tuple[Guarded, CountingDiskTier, Clock, Path], caplog: pytest.LogCaptureFixture
) -> None:
    guarded, tier, _clock, path = setup
    guarded.set(b"a", b"1")
    assert guarded.get(b"a") == b"1"
    _break(path)
    caplog.set_level(logging.WARNING, logger="infercache")
    before = tier.reached
    assert guarded.get(b"a") is None  # the failure, answered as a miss
    assert tier.reached == before + 1
    assert not guarded.available
    assert guarded.errors == 1
    for _ in range(50):
        assert guarded.get(b"a") is None
        guarded.set(b"b", b"2")
        assert isinstance(guarded.lease(b"a", 1.0), Lease)  # compute locally
        assert guarded.delete(b"a") is False
        assert guarded.clear() == 0
    assert tier.reached == before + 1  # none of them touched the tier
    unavailable = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(unavailable) == 1


def test_a_probe_after_the_cooldown_brings_the_tier_back_once(
    setup: tuple[Guarded, CountingDiskTier, Clock, Path], caplog: pytest.LogCaptureFixture
) -> None:
    guarded, _tier, clock, path = setup
    _break(path)
    guarded.get(b"a")
    _mend(path)
    clock.now = 0.5
    assert guarded.get(b"a") is None and not guarded.available  # still cooling down
    clock.now = 1.0
    caplog.set_level(logging.WARNING, logger="infercache")
    guarded.set(b"a", b"1")  # the probe: the directory is recreated
    assert guarded.available
    assert guarded.get(b"a") == b"1"  # writes resumed
    back = [r for r in caplog.records if "is back" in r.getMessage()]
    assert len(back) == 1


def test_repeated_failures_double_the_window_up_to_the_maximum(
    setup: tuple[Guarded, CountingDiskTier, Clock, Path],
) -> None:
    guarded, tier, clock, path = setup
    _break(path)
    windows = []
    for _ in range(5):
        guarded.get(b"a")  # fails (the first one, or the probe)
        start = clock.now
        reached = tier.reached
        while tier.reached == reached:  # advance until the next probe is let through
            clock.now += 0.25
            guarded.get(b"a")
        windows.append(clock.now - start)
    assert windows == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_cache_keeps_answering_while_its_store_fails_and_uses_it_again_after(tmp_path: Path) -> None:
    path = tmp_path / "s"
    tier = CountingDiskTier(path)
    clock = Clock()
    guarded = Guarded(tier, clock=clock)
    calls: list[int] = []

    @ic.cache(store=guarded)
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    _break(path)
    assert [double(i) for i in range(20)] == [2 * i for i in range(20)]
    assert double(3) == 6 and calls.count(3) == 1  # memory still serves
    _mend(path)
    clock.now = 100.0
    assert double(100) == 200
    double.cache.engine.store.clear()
    assert double(100) == 200
    assert calls.count(100) == 1  # written to the directory once it was back, read from it after


class SlowReadTier(CountingDiskTier):
    """A real disk tier whose read of one name waits until told (a reply still on its way)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reading = threading.Event()
        self.answer = threading.Event()

    def get(self, name: bytes) -> bytes | None:
        if name == b"slow":
            self.reading.set()
            self.answer.wait(30)
            return b"late reply"
        return super().get(name)


def test_a_reply_that_set_out_before_the_failure_does_not_close_the_breaker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "d"
    tier = SlowReadTier(path)
    guarded = Guarded(tier, clock=Clock())
    got: list[bytes | None] = []
    reader = threading.Thread(target=lambda: got.append(guarded.get(b"slow")))
    reader.start()
    assert tier.reading.wait(30)
    _break(path)
    caplog.set_level(logging.WARNING, logger="infercache")
    guarded.set(b"a", b"1")  # fails: the breaker opens
    tier.answer.set()
    reader.join(30)
    assert got == [b"late reply"]
    assert not guarded.available  # still open: that reply says nothing about the tier now
    assert [r.getMessage() for r in caplog.records if "is back" in r.getMessage()] == []
