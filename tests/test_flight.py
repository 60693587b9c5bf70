"""Single-flight under threads and asyncio, leaders that fail or vanish, generator fan-out."""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter

import pytest

import infercache as ic


def wait_until(predicate, what: str, timeout: float = 10.0) -> None:
    """Synchronise with other threads (not a timing assertion: fails only on a hang)."""
    done = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        done.wait(0.005)
    raise AssertionError(f"timed out waiting for {what}")


async def async_wait_until(predicate, what: str, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def test_eight_concurrent_identical_calls_compute_once() -> None:
    """gr.cache runs all 8."""
    release = threading.Event()
    runs = []

    @ic.cache
    def slow(x):
        runs.append(x)
        release.wait(10)
        return x * 2

    results = []
    threads = [threading.Thread(target=lambda: results.append(slow(21))) for _ in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: slow.cache.stats().joins == 7, "7 followers")
    release.set()
    for t in threads:
        t.join()
    assert runs == [21]
    assert results == [42] * 8


def test_followers_get_the_leaders_exception_and_nothing_is_cached() -> None:
    release = threading.Event()
    runs = []

    @ic.cache
    def bad(x):
        runs.append(x)
        release.wait(10)
        raise ValueError("model failed")

    errors = []

    def call():
        try:
            bad(1)
        except ValueError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    wait_until(lambda: bad.cache.stats().joins == 4, "4 followers")
    release.set()
    for t in threads:
        t.join()
    assert errors == ["model failed"] * 5
    assert len(runs) == 1
    assert len(bad.cache) == 0


class Killed(BaseException):
    """Stands for an interrupt of the leader's thread (not an Exception)."""


def test_interrupted_leader_hands_over_to_a_follower() -> None:
    release = threading.Event()
    runs = []

    @ic.cache
    def work(x):
        runs.append(threading.current_thread().name)
        if len(runs) == 1:
            release.wait(10)
            raise Killed()
        return "done"

    out = {}

    def leader():
        try:
            work(1)
        except Killed:
            out["leader"] = "killed"

    def follower():
        out["follower"] = work(1)

    t1 = threading.Thread(target=leader, name="leader")
    t1.start()
    wait_until(lambda: len(runs) == 1, "leader running")
    t2 = threading.Thread(target=follower, name="follower")
    t2.start()
    wait_until(lambda: work.cache.stats().joins == 1, "follower waiting")
    release.set()
    t1.join()
    t2.join()
    assert out == {"leader": "killed", "follower": "done"}
    assert runs == ["leader", "follower"]
    assert work(1) == "done" and len(runs) == 2


def test_asyncio_tasks_compute_once() -> None:
    runs = []

    @ic.cache
    async def embed(text):
        runs.append(text)
        await asyncio.sleep(0.01)
        return len(text)

    async def main():
        return await asyncio.gather(*(embed("hello") for _ in range(20)))

    assert asyncio.run(main()) == [5] * 20
    assert runs == ["hello"]


def test_cancelled_async_leader_never_strands_its_waiters() -> None:
    runs = []

    @ic.cache
    async def work(x):
        runs.append(x)
        if len(runs) == 1:
            await asyncio.sleep(3600)
        return "ok"

    async def main():
        leader = asyncio.create_task(work(1))
        await async_wait_until(lambda: len(runs) == 1, "leader running")
        follower = asyncio.create_task(work(1))
        await async_wait_until(lambda: work.cache.stats().joins == 1, "follower waiting")
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await asyncio.wait_for(follower, 10)

    assert asyncio.run(main()) == "ok"
    assert len(runs) == 2


def test_cancelled_follower_does_not_disturb_the_leader() -> None:
    gate = None
    runs = []

    @ic.cache
    async def work(x):
        runs.append(x)
        await gate.wait()
        return "ok"

    async def main():
        nonlocal gate
        gate = asyncio.Event()
        leader = asyncio.create_task(work(1))
        await async_wait_until(lambda: len(runs) == 1, "leader running")
        follower = asyncio.create_task(work(1))
        await async_wait_until(lambda: work.cache.stats().joins == 1, "follower waiting")
        follower.cancel()
        gate.set()
        return await leader

    assert asyncio.run(main()) == "ok"
    assert runs == [1]


def test_calls_from_different_event_loops_share_one_computation() -> None:
    release = threading.Event()
    runs = []

    @ic.cache
    async def work(x):
        runs.append(x)
        await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
        return x + 1

    results = []
    threads = [threading.Thread(target=lambda: results.append(asyncio.run(work(1)))) for _ in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: work.cache.stats().joins == 2, "2 followers in other loops")
    release.set()
    for t in threads:
        t.join()
    assert results == [2, 2, 2]
    assert runs == [1]


def test_recursive_call_with_same_arguments_is_an_error_not_a_deadlock() -> None:
    @ic.cache
    def loop(x):
        return loop(x)

    with pytest.raises(RecursionError, match="called itself"):
        loop(1)


def test_thread_stress_each_key_computed_once() -> None:
    runs: Counter = Counter()
    lock = threading.Lock()

    @ic.cache(max_size=0)
    def f(k):
        with lock:
            runs[k] += 1
        return k * k

    rng = random.Random(7)
    plan = [[rng.randrange(10) for _ in range(200)] for _ in range(16)]
    bad = []

    def worker(keys):
        for k in keys:
            if f(k) != k * k:
                bad.append(k)

    threads = [threading.Thread(target=worker, args=(p,)) for p in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad
    assert set(runs.values()) == {1}


def test_asyncio_stress_each_key_computed_once() -> None:
    runs: Counter = Counter()

    @ic.cache(max_size=0)
    async def f(k):
        runs[k] += 1
        await asyncio.sleep(0)
        return -k

    async def main():
        rng = random.Random(3)
        keys = [rng.randrange(15) for _ in range(500)]
        out = await asyncio.gather(*(f(k) for k in keys))
        assert out == [-k for k in keys]

    asyncio.run(main())
    assert set(runs.values()) == {1}


# -- generators ------------------------------------------------------------------


def test_late_joiner_gets_the_yields_so_far_then_the_live_ones() -> None:
    step = [threading.Event() for _ in range(4)]
    produced = []

    @ic.cache
    def stream(p):
        for i in range(4):
            step[i].wait(10)
            produced.append(i)
            yield f"{p}{i}"

    first, second = [], []

    def consume(into):
        for item in stream("t"):
            into.append(item)

    a = threading.Thread(target=consume, args=(first,))
    a.start()
    step[0].set()
    step[1].set()
    wait_until(lambda: len(first) == 2, "two items")
    b = threading.Thread(target=consume, args=(second,))
    b.start()
    wait_until(lambda: stream.cache.stats().joins == 1, "late joiner")
    step[2].set()
    step[3].set()
    a.join()
    b.join()
    assert first == second == ["t0", "t1", "t2", "t3"]
    assert produced == [0, 1, 2, 3]
    assert list(stream("t")) == first  # now a replay


def test_generator_run_continues_when_its_first_consumer_leaves() -> None:
    gate = threading.Event()
    runs = []

    @ic.cache
    def stream(p):
        runs.append(p)
        yield 1
        gate.wait(10)
        yield 2
        yield 3

    g1 = stream("x")
    assert next(g1) == 1
    got = []
    t = threading.Thread(target=lambda: got.extend(stream("x")))
    t.start()
    wait_until(lambda: stream.cache.stats().joins == 1, "second consumer")
    g1.close()  # the consumer that started the run goes away
    gate.set()
    t.join()
    assert got == [1, 2, 3]
    assert runs == ["x"]
    assert list(stream("x")) == [1, 2, 3]


def test_generator_closed_when_every_consumer_leaves() -> None:
    closed = []

    @ic.cache
    def stream(p):
        try:
            for i in range(10):
                yield i
        finally:
            closed.append(p)

    g = stream("a")
    next(g)
    g.close()
    assert closed == ["a"]
    assert len(stream.cache) == 0


def test_concurrent_generator_error_reaches_every_consumer() -> None:
    gate = threading.Event()

    @ic.cache
    def stream(p):
        yield 1
        gate.wait(10)
        raise OSError("device lost")

    errors = []

    def consume():
        try:
            list(stream("x"))
        except OSError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=consume) for _ in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: stream.cache.stats().joins == 2, "3 consumers")
    gate.set()
    for t in threads:
        t.join()
    assert errors == ["device lost"] * 3
    assert len(stream.cache) == 0


def test_async_generator_fan_out_survives_a_cancelled_consumer() -> None:
    runs = []

    @ic.cache
    async def stream(p):
        runs.append(p)
        for i in range(5):
            await asyncio.sleep(0.002)
            yield i

    async def main():
        async def take(n=None):
            out = []
            async for x in stream("q"):
                out.append(x)
                if n is not None and len(out) == n:
                    await asyncio.sleep(3600)
            return out

        stuck = asyncio.create_task(take(2))
        await async_wait_until(lambda: len(runs) == 1, "run started")
        full = asyncio.create_task(take())
        await async_wait_until(lambda: stream.cache.stats().joins == 1, "second consumer")
        stuck.cancel()
        result = await asyncio.wait_for(full, 10)
        with pytest.raises(asyncio.CancelledError):
            await stuck
        return result

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]
    assert runs == ["q"]

    async def replay():
        return [x async for x in stream("q")]

    assert asyncio.run(replay()) == [0, 1, 2, 3, 4]


def test_async_generator_closed_when_every_consumer_leaves() -> None:
    closed = []

    @ic.cache
    async def stream(p):
        try:
            for i in range(100):
                await asyncio.sleep(0)
                yield i
        finally:
            closed.append(p)

    async def main():
        agen = stream("z")
        assert await agen.__anext__() == 0
        await agen.aclose()

    asyncio.run(main())
    assert closed == ["z"]
    assert len(stream.cache) == 0
