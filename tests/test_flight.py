"""Single-flight: one computation per key under threads and asyncio.

Leaders that fail or vanish, generator fan-out (late joiners, consumers that
leave, items that cannot be kept, runs shared across event loops), recursion
(a call reaching itself is an error, never a deadlock), invalidation while
computations are in flight, and ``Run``, ``AsyncRun`` and the single-flight
table ``Flights`` on their own.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import types
import typing
import warnings
from collections import Counter
from typing import Any

import pytest
from flight_fixtures import KINDS, Caller, call, gated, join_all, run_bounded, wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

import infercache as ic
from infercache.flight import (
    ABANDONED,
    AsyncRun,
    Call,
    Flights,
    Run,
    Unkept,
    check_recursion,
    current_work,
    resolve,
)
from infercache.store import FOUND, LEAD, Store

# The messages in full: what a user reads when it happens.
RECURSION = (
    r"^infercache: a cached function called itself with the same arguments "
    r"while computing them; that call could never finish$"
)
CLOSED_OUTSIDE = (
    r"^infercache: the shared generator was closed before its end by something "
    r"other than its consumers; the run is incomplete and was not cached$"
)


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
    join_all(*threads)
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
    join_all(*threads)
    assert errors == ["model failed"] * 5
    assert len(runs) == 1
    assert len(bad.cache) == 0


def test_async_followers_get_the_leaders_exception_and_nothing_is_cached() -> None:
    """The async twin: waiters share the leader's exception instead of each running the function again."""
    gate = None
    runs = []

    @ic.cache
    async def bad(x):
        runs.append(x)
        await gate.wait()
        raise ValueError("model failed")

    async def main():
        nonlocal gate
        gate = asyncio.Event()
        tasks = [asyncio.create_task(bad(1)) for _ in range(5)]
        await async_wait_until(lambda: bad.cache.stats().joins == 4, "4 followers")
        gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = run_bounded(main())
    assert [(type(e), str(e)) for e in outcomes] == [(ValueError, "model failed")] * 5
    assert runs == [1]
    assert len(bad.cache) == 0
    s = bad.cache.stats()
    assert (s.misses, s.joins, s.computations) == (1, 4, 1)


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
    join_all(t1, t2)
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

    assert run_bounded(main()) == [5] * 20
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

    assert run_bounded(main()) == "ok"
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

    assert run_bounded(main()) == "ok"
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
    threads = [threading.Thread(target=lambda: results.append(run_bounded(work(1)))) for _ in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: work.cache.stats().joins == 2, "2 followers in other loops")
    release.set()
    join_all(*threads)
    assert results == [2, 2, 2]
    assert runs == [1]


def test_recursive_call_with_same_arguments_is_an_error_not_a_deadlock() -> None:
    @ic.cache
    def loop(x):
        return loop(x)

    with pytest.raises(RecursionError, match=RECURSION):
        loop(1)


def run_in_thread(fn: typing.Callable[[], object]) -> tuple[bool, dict]:
    """Run ``fn`` in a daemon thread; (still running after a generous wait, outcome)."""
    out: dict = {}

    def target() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            out["error"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(10)  # a deadlock guard, not a timing assertion
    return th.is_alive(), out


def test_generator_calling_itself_with_the_same_arguments_is_an_error_not_a_deadlock() -> None:
    @ic.cache
    def again(n):
        yield 1
        yield from again(n)

    hung, out = run_in_thread(lambda: list(again(1)))
    assert not hung, "deadlocked"
    assert isinstance(out.get("error"), RecursionError)


def test_a_thread_started_inside_a_generators_step_calling_it_again_is_recursion() -> None:
    """A thread that inherited a step's context is part of the run: its own call of the same
    generator is refused, while the step runs (it may be waiting for that thread) and also
    between steps (the run cannot tell which of its threads it will wait for next)."""
    import contextvars

    outcomes: dict = {}
    between = threading.Event()

    def again(when: str, after: threading.Event | None = None) -> None:
        if after is not None:
            assert after.wait(20), "never released"
        try:
            outcomes[when] = list(stream(1))
        except RecursionError as exc:
            outcomes[when] = exc

    threads: list = []

    @ic.cache
    def stream(n):
        during = threading.Thread(target=contextvars.copy_context().run, args=(again, "during the step"))
        during.start()
        join_all(during)  # the step waits for its thread
        later = threading.Thread(target=contextvars.copy_context().run, args=(again, "between steps", between))
        later.start()
        threads.append(later)
        yield 1
        yield 2

    consumer = stream(1)
    assert next(consumer) == 1
    between.set()  # no step runs now: the thread started in the first one calls again
    join_all(*threads)
    assert list(consumer) == [2]
    assert isinstance(outcomes["during the step"], RecursionError)
    assert isinstance(outcomes["between steps"], RecursionError)


def test_a_generator_calling_itself_from_a_fresh_context_on_its_own_thread_is_recursion() -> None:
    """The step's thread is recognised without its context (code may run in an empty one)."""
    import contextvars

    @ic.cache
    def again(n):
        yield 1
        yield from contextvars.Context().run(lambda: list(again(n)))

    hung, out = run_in_thread(lambda: list(again(1)))
    assert not hung, "deadlocked"
    assert isinstance(out.get("error"), RecursionError)


def test_a_consumer_advanced_from_a_thread_inside_the_step_is_recursion() -> None:
    """A consumer that joined outside, advanced by a thread the running step waits for, would wait
    for that very step: refused, and the run goes on."""
    import contextvars

    consumers: dict = {}

    @ic.cache
    def stream(n):
        yield 1
        out: dict = {}

        def advance_b() -> None:
            try:
                out["b"] = next(consumers["b"])
            except RecursionError:
                out["b"] = "refused"

        thread = threading.Thread(target=contextvars.copy_context().run, args=(advance_b,))
        thread.start()
        join_all(thread)
        yield out["b"]

    a = stream(1)
    consumers["b"] = stream(1)
    assert next(a) == 1 and next(consumers["b"]) == 1  # one run, two consumers
    hung, out = run_in_thread(lambda: next(a))
    assert not hung, "deadlocked"
    assert out.get("value") == "refused"


def test_an_async_consumer_advanced_from_a_task_inside_the_step_is_recursion() -> None:
    """The async form of the case above: a task the step awaits, advancing a consumer that joined
    outside, would wait for that very step."""
    consumers: dict = {}

    @ic.cache
    async def stream(n):
        yield 1

        async def advance_b():
            try:
                return await consumers["b"].__anext__()
            except RecursionError:
                return "refused"

        yield await asyncio.create_task(advance_b())  # a child task: the step's context

    async def main():
        a = stream(1)
        consumers["b"] = stream(1)
        assert await a.__anext__() == 1 and await consumers["b"].__anext__() == 1  # one run, two consumers
        return await asyncio.wait_for(a.__anext__(), 10)  # a hang guard, not a timing assertion

    assert run_bounded(main()) == "refused"


def test_async_generator_calling_itself_with_the_same_arguments_is_an_error_not_a_deadlock() -> None:
    @ic.cache
    async def again(n):
        yield 1
        async for x in again(n):
            yield x

    async def consume():
        return [x async for x in again(1)]

    async def guarded():
        return await asyncio.wait_for(consume(), 10)  # a hang guard, not a timing assertion

    hung, out = run_in_thread(lambda: asyncio.run(guarded()))
    assert not hung
    assert isinstance(out.get("error"), RecursionError)


def test_recursive_calls_with_different_arguments_work() -> None:
    @ic.cache(max_size=0)
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    @ic.cache(max_size=0)
    async def afib(n):
        return n if n < 2 else await afib(n - 1) + await afib(n - 2)

    assert fib(40) == 102334155
    assert run_bounded(afib(30)) == 832040

    @ic.cache
    def countdown(n):
        if n:
            yield from countdown(n - 1)
        yield n

    assert list(countdown(5)) == [0, 1, 2, 3, 4, 5]
    assert list(countdown(5)) == [0, 1, 2, 3, 4, 5]


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
    join_all(*threads)
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

    run_bounded(main())
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
    join_all(a, b)
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
    join_all(t)
    assert got == [1, 2, 3]
    assert runs == ["x"]
    assert list(stream("x")) == [1, 2, 3]


def test_generator_closed_when_every_consumer_leaves() -> None:
    closed = []

    @ic.cache
    def stream(p):
        try:
            yield from range(10)
        finally:
            closed.append(p)

    g = stream("a")
    next(g)
    g.close()
    assert closed == ["a"]
    assert len(stream.cache) == 0


def test_interleaved_consumers_of_one_generator_in_one_thread_share_one_run() -> None:
    runs = []

    @ic.cache
    def gen(n):
        runs.append(n)
        yield from range(n)

    assert list(zip(gen(3), gen(3))) == [(0, 0), (1, 1), (2, 2)]
    assert runs == [3]
    a, b = gen(5), gen(5)
    next(a), next(b)
    a.close()  # one consumer leaves early; the other finishes the shared run
    assert list(b) == [1, 2, 3, 4]
    assert list(gen(5)) == [0, 1, 2, 3, 4] and runs == [3, 5]


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
    join_all(*threads)
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

    assert run_bounded(main()) == [0, 1, 2, 3, 4]
    assert runs == ["q"]

    async def replay():
        return [x async for x in stream("q")]

    assert run_bounded(replay()) == [0, 1, 2, 3, 4]


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

    run_bounded(main())
    assert closed == ["z"]
    assert len(stream.cache) == 0


def test_async_generator_step_under_way_is_cancelled_when_its_last_consumer_leaves() -> None:
    """Leaving mid-step (not between yields): the step awaiting inside the generator is cancelled."""
    events = []
    release = None

    @ic.cache
    async def stream(p):
        yield 0
        events.append("step started")
        try:
            await release.wait()  # set only once the test is over
        except asyncio.CancelledError:
            events.append("step cancelled")
            raise
        yield 1

    async def main():
        nonlocal release
        release = asyncio.Event()

        async def consume():
            async for x in stream("q"):
                events.append(x)

        consumer = asyncio.create_task(consume())
        try:
            await async_wait_until(lambda: events == [0, "step started"], "the second step running")
            consumer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await consumer
            await async_wait_until(lambda: "step cancelled" in events, "the running step cancelled")
        finally:
            release.set()  # a step that was not cancelled ends, so the loop can close

    run_bounded(main())
    assert events == [0, "step started", "step cancelled"]
    assert len(stream.cache) == 0
    assert stream.cache.engine.flights.in_flight() == 0


def test_an_async_generator_that_swallows_its_steps_cancellation_is_closed_by_its_run() -> None:
    """The last consumer leaving mid-step cancels the step; a generator that catches that and
    goes on to its next yield is closed by the run when the step ends, on its loop (its
    ``finally`` may await), not left suspended until the garbage collector closes it."""
    events = []

    @ic.cache
    async def stream(p):
        try:
            yield 0
            events.append("step started")
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                events.append("cancellation swallowed")
            yield 1
            yield 2
        finally:
            await asyncio.sleep(0)  # only a close awaited on a loop gets past this
            events.append("closed")

    async def main():
        async def consume():
            async for x in stream("q"):
                events.append(x)

        consumer = asyncio.create_task(consume())
        await async_wait_until(lambda: events == [0, "step started"], "the second step running")
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await async_wait_until(lambda: "closed" in events, "the generator closed by its run")

    run_bounded(main())
    assert events == [0, "step started", "cancellation swallowed", "closed"]
    assert len(stream.cache) == 0


def test_a_run_interrupted_by_a_base_exception_fails_for_its_other_consumers() -> None:
    """A ``KeyboardInterrupt`` (any ``BaseException`` that is not an ``Exception``) in one
    consumer's step reaches that consumer as itself and every other consumer as an error
    naming it, never as the end of the stream; nothing is cached."""
    interrupt = True

    @ic.cache
    def stream(n):
        yield 0
        if interrupt:
            raise KeyboardInterrupt
        yield 1

    a, b = stream(1), stream(1)
    assert next(a) == 0 and next(b) == 0  # one run, two consumers
    with pytest.raises(KeyboardInterrupt):
        next(a)
    interrupted = r"^infercache: the shared generator run was interrupted \(KeyboardInterrupt\(\)\)$"
    with pytest.raises(RuntimeError, match=interrupted):
        next(b)
    assert len(stream.cache) == 0
    interrupt = False
    assert list(stream(1)) == [0, 1]  # a new run


def test_a_caches_in_flight_count_covers_its_calls_and_its_generator_runs() -> None:
    release = threading.Event()

    @ic.cache
    def slow(x):
        assert release.wait(20), "never released"
        return x

    @ic.cache
    def stream(x):
        yield x
        yield x

    flights = slow.cache.engine.flights
    worker = threading.Thread(target=slow, args=(1,))
    worker.start()
    wait_until(lambda: flights.in_flight() == 1, "the call counted in flight")
    release.set()
    join_all(worker)
    assert flights.in_flight() == 0
    consumer = stream(1)
    assert next(consumer) == 1
    assert stream.cache.engine.flights.in_flight() == 1
    assert list(consumer) == [1]
    assert stream.cache.engine.flights.in_flight() == 0
    assert repr(ABANDONED) == "ABANDONED"  # what a follower's outcome shows in a debugger


def test_a_step_with_consumers_refuses_to_be_cancelled_and_says_so() -> None:
    """Only its run cancels a step while it has consumers: ``cancel()`` from anyone else returns
    False (the asyncio contract for a task that will not be cancelled) and the step goes on."""
    release = None

    @ic.cache
    async def stream(p):
        yield 0
        await release.wait()
        yield 1

    async def main():
        nonlocal release
        release = asyncio.Event()
        agen = stream("q")
        assert await agen.__anext__() == 0
        waiting = asyncio.ensure_future(agen.__anext__())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        steps = [t for t in asyncio.all_tasks() if getattr(t.get_coro(), "__qualname__", "") == "AsyncRun._advance"]
        assert len(steps) == 1
        (step,) = steps
        assert step.cancel() is False and step.cancel("from outside") is False
        release.set()
        assert await asyncio.wait_for(waiting, 10) == 1  # a hang guard, not a timing assertion
        assert [x async for x in agen] == []

    run_bounded(main())
    assert len(stream.cache) == 1


# -- items that cannot be kept -----------------------------------------------------


class Handle:
    """A streamed item holding a lock: it cannot be deep-copied, so it cannot be kept."""

    def __init__(self, i: int) -> None:
        self.i = i
        self.lock = threading.Lock()


def describe(items: list) -> list:
    return [x.i if isinstance(x, Handle) else x for x in items]


def copy_warnings(caplog: pytest.LogCaptureFixture) -> list:
    """The log records saying a value could not be copied (so was not cached)."""
    return [r for r in caplog.records if "could not be copied" in r.getMessage()]


def test_generator_items_that_cannot_be_kept_reach_every_consumer_uncached(caplog: pytest.LogCaptureFixture) -> None:
    """A lock-holding item used to raise TypeError; now the stream goes on and is not cached."""
    gates = [threading.Event() for _ in range(4)]
    runs = []

    @ic.cache
    def stream(n):
        runs.append(n)
        for i in range(n):
            gates[i].wait(10)
            yield Handle(i) if i % 2 else [i]  # lists can be kept, handles cannot

    got: dict[str, list] = {"first": [], "late": []}
    errors = []

    def consume(name):
        try:
            for x in stream(4):
                got[name].append(x)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with caplog.at_level(logging.WARNING, logger="infercache"):
        first = threading.Thread(target=consume, args=("first",))
        first.start()
        gates[0].set()
        gates[1].set()
        wait_until(lambda: len(got["first"]) == 2, "two items")
        late = threading.Thread(target=consume, args=("late",))
        late.start()
        wait_until(lambda: stream.cache.stats().joins == 1, "late joiner")
        gates[2].set()
        gates[3].set()
        join_all(first, late)
        assert not errors
        assert describe(got["first"]) == describe(got["late"]) == [[0], 1, [2], 3]
        # Items that could not be copied are the same object for every consumer of the run;
        # the ones that could are each consumer's own.
        assert got["first"][1] is got["late"][1] and got["first"][3] is got["late"][3]
        assert got["first"][0] is not got["late"][0]
        assert len(stream.cache) == 0
        assert describe(list(stream(4))) == [[0], 1, [2], 3]  # computed again
        assert runs == [4, 4]
        assert len(copy_warnings(caplog)) == 1  # once per cached function


def test_async_generator_items_that_cannot_be_kept_reach_every_consumer_uncached(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = []

    @ic.cache
    async def stream(n):
        runs.append(n)
        for i in range(n):
            await asyncio.sleep(0)
            yield Handle(i) if i % 2 else [i]

    async def main():
        async def take():
            return [x async for x in stream(4)]

        return await asyncio.gather(take(), take(), take())

    with caplog.at_level(logging.WARNING, logger="infercache"):
        results = run_bounded(main())
        assert [describe(r) for r in results] == [[[0], 1, [2], 3]] * 3
        assert results[0][1] is results[1][1] is results[2][1]
        assert runs == [4]
        assert len(stream.cache) == 0
        again = run_bounded(main())
        assert [describe(r) for r in again] == [[[0], 1, [2], 3]] * 3
        assert runs == [4, 4]
        assert len(copy_warnings(caplog)) == 1


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["sync", "async"]),
    keepable=st.lists(st.booleans(), max_size=6),
    joins=st.lists(st.integers(0, 6), max_size=3),
)
def test_every_consumer_gets_every_item_and_only_fully_kept_runs_are_cached(
    kind: str, keepable: list[bool], joins: list[int]
) -> None:
    """Consumers joining a shared run at any point get every item in order, kept or not."""
    expected = [[i] if ok else i for i, ok in enumerate(keepable)]

    def make(i: int, ok: bool) -> object:
        return [i] if ok else Handle(i)

    if kind == "sync":

        @ic.cache
        def stream():
            for i, ok in enumerate(keepable):
                yield make(i, ok)

        def step(g):
            return next(g, StopIteration)

        def replay():
            return list(stream())

    else:

        @ic.cache
        async def stream():
            for i, ok in enumerate(keepable):
                await asyncio.sleep(0)
                yield make(i, ok)

        loop = asyncio.new_event_loop()

        def step(g):
            try:
                return loop.run_until_complete(g.__anext__())
            except StopAsyncIteration:
                return StopIteration

        async def collect():
            return [x async for x in stream()]

        def replay():
            return loop.run_until_complete(collect())

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            consumers = [(stream(), [])]
            taken = 0
            while True:
                for _ in [p for p in joins if p == taken]:
                    joiner = stream()  # joins the run at its first step, while the run is live
                    first = step(joiner)
                    consumers.append((joiner, [] if first is StopIteration else [first]))
                item = step(consumers[0][0])
                if item is StopIteration:
                    break
                consumers[0][1].append(item)
                taken += 1
                assert taken <= len(expected), "the run goes on past its items"
            for gen, got in consumers[1:]:
                while (item := step(gen)) is not StopIteration:
                    got.append(item)
                    assert len(got) <= len(expected), "a joiner's run goes on past its items"
            for _, got in consumers:
                assert describe(got) == expected
                for i, ok in enumerate(keepable):
                    if not ok:
                        assert got[i] is consumers[0][1][i]
            assert len(stream.cache) == (1 if all(keepable) else 0)
            assert describe(replay()) == expected
    finally:
        if kind == "async":
            loop.close()


# -- runs shared across event loops and threads ----------------------------------


def test_async_generator_shared_by_two_event_loops_outlives_the_first_loop() -> None:
    """The first loop to step the run used to own it: its exit closed the run under the other consumer."""
    gates = [threading.Event() for _ in range(8)]
    runs = []

    @ic.cache
    async def stream(n):
        runs.append(n)
        for i in range(n):
            await asyncio.to_thread(gates[i].wait, 10)
            yield i

    first: list = []
    second: list = []
    first_loop_gone = threading.Event()

    def take_two() -> None:
        async def main():
            async for x in stream(8):
                first.append(x)
                if len(first) == 2:
                    return  # leaves its generator open: asyncio.run's shutdown finalises it

        run_bounded(main())

    def take_all() -> None:
        async def main():
            out = []
            async for x in stream(8):
                out.append(x)
                if x == 1:  # the run rests at a yield while the first loop shuts down
                    await asyncio.to_thread(first_loop_gone.wait, 10)
            return out

        second.extend(run_bounded(main()))

    a = threading.Thread(target=take_two)
    a.start()
    wait_until(lambda: runs == [8], "run started on the first loop")
    b = threading.Thread(target=take_all)
    b.start()
    wait_until(lambda: stream.cache.stats().joins == 1, "consumer on the second loop")
    for gate in gates:
        gate.set()
    join_all(a)
    first_loop_gone.set()
    join_all(b)
    assert first == [0, 1]
    assert second == list(range(8))
    assert runs == [8]

    async def replay():
        return [x async for x in stream(8)]

    assert run_bounded(replay()) == list(range(8))  # the complete run, not a truncated one


@pytest.mark.parametrize("own_consumer", ["reading", "gone"])
def test_a_loop_exiting_mid_step_lets_the_step_finish_for_consumers_on_other_loops(own_consumer: str) -> None:
    """asyncio.run cancels every task at exit; the shared step must not die with that loop,
    whether the loop's own consumer still reads the run or left it first (the consumer on
    the other loop is then the only one)."""
    gates = [threading.Event() for _ in range(4)]
    entered = [threading.Event() for _ in range(4)]
    let_go, shutting_down = threading.Event(), threading.Event()
    runs = []

    @ic.cache
    async def stream(n):
        runs.append(n)
        for i in range(n):
            entered[i].set()
            await asyncio.to_thread(gates[i].wait, 10)
            yield i

    second: list = []
    errors: list = []

    def first_loop() -> None:
        async def sentinel():
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                shutting_down.set()  # every task of this loop, the step included, was asked to cancel
                raise

        async def main():
            agen = stream(4)
            assert await agen.__anext__() == 0

            async def next_item():
                return await agen.__anext__()

            tasks = [asyncio.ensure_future(next_item())]  # this loop steps item 1
            await asyncio.to_thread(let_go.wait, 10)
            if own_consumer == "gone":
                tasks[0].cancel()  # this loop's consumer leaves; the step goes on for the other one
                await asyncio.gather(tasks[0], return_exceptions=True)
            tasks.append(asyncio.ensure_future(sentinel()))
            await asyncio.sleep(0)

        run_bounded(main())

    def second_loop() -> None:
        async def main():
            return [x async for x in stream(4)]

        try:
            second.extend(run_bounded(main()))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    gates[0].set()
    a = threading.Thread(target=first_loop)
    a.start()
    assert entered[1].wait(10)  # the first loop's step is inside the generator
    b = threading.Thread(target=second_loop)
    b.start()
    wait_until(lambda: stream.cache.stats().joins == 1, "consumer on the second loop")
    let_go.set()
    assert shutting_down.wait(10)
    for gate in gates[1:]:
        gate.set()
    join_all(a, b)
    assert errors == []
    assert second == [0, 1, 2, 3]
    assert runs == [4]
    assert len(stream.cache) == 1


def test_sync_generator_run_survives_a_consumer_thread_that_ends_mid_run() -> None:
    gates = [threading.Event() for _ in range(4)]
    runs = []

    @ic.cache
    def stream(n):
        runs.append(n)
        for i in range(n):
            gates[i].wait(10)
            yield i

    taken: list = []
    got: list = []

    def dies() -> None:
        for x in stream(4):
            taken.append(x)
            if x == 1:
                return  # the thread ends, dropping its generator mid-run

    a = threading.Thread(target=dies)
    a.start()
    wait_until(lambda: runs == [4], "run started")
    b = threading.Thread(target=lambda: got.extend(stream(4)))
    b.start()
    wait_until(lambda: stream.cache.stats().joins == 1, "second consumer")
    gates[0].set()
    gates[1].set()
    join_all(a)
    for gate in gates[2:]:
        gate.set()
    join_all(b)
    assert taken == [0, 1]
    assert got == [0, 1, 2, 3]
    assert runs == [4]
    assert list(stream(4)) == [0, 1, 2, 3] and runs == [4]


def test_consumer_generator_collected_by_gc_leaves_the_run_to_the_others() -> None:
    import gc

    runs = []

    @ic.cache
    def stream(n):
        runs.append(n)
        yield from range(n)

    abandoned = stream(5)
    reader = stream(5)
    assert next(abandoned) == 0
    assert next(reader) == 0
    cycle: list = [abandoned]
    cycle.append(cycle)
    del abandoned, cycle  # garbage only the cyclic collector frees, mid-run
    gc.collect()
    assert list(reader) == [1, 2, 3, 4]
    assert list(stream(5)) == [0, 1, 2, 3, 4]
    assert runs == [5]


# -- Run and AsyncRun on their own -------------------------------------------------


class Recorder:
    """The callbacks a run reports to, recorded."""

    def __init__(self) -> None:
        self.published: list = []
        self.ended = 0
        self.unkept: list = []

    def kwargs(self) -> dict:
        return {
            "keep": lambda v: ("kept", v),
            "publish": lambda items: self.published.append(list(items)),
            "on_end": self.end,
            "on_unkept": self.unkept.append,
        }

    def end(self) -> None:
        self.ended += 1


def test_run_publishes_only_after_the_generator_ends_by_itself() -> None:
    rec = Recorder()
    run = Run(lambda: iter(range(2)), **rec.kwargs())
    assert run.enter()
    assert run.item(0) == (True, ("kept", 0))
    assert run.item(1) == (True, ("kept", 1))
    assert rec.published == []
    assert run.item(2) == (False, None)
    assert rec.published == [[("kept", 0), ("kept", 1)]]
    assert rec.ended == 1
    assert run.item(0) == (True, ("kept", 0))  # replay after the end
    assert not run.enter()  # an ended run takes no new consumers


def test_run_closed_from_outside_is_an_error_and_never_published() -> None:
    """A generator closed by anyone but the run ends early; that is not its natural end."""
    rec = Recorder()
    gen = (i for i in range(5))
    run = Run(lambda: gen, **rec.kwargs())
    run.enter()
    assert run.item(0) == (True, ("kept", 0))
    gen.close()
    with pytest.raises(RuntimeError, match=CLOSED_OUTSIDE):
        run.item(1)
    assert rec.published == []
    assert rec.ended == 1


def test_async_run_closed_from_outside_is_an_error_and_never_published() -> None:
    rec = Recorder()

    async def numbers():
        for i in range(5):
            yield i

    gen = numbers()
    run = AsyncRun(lambda: gen, **rec.kwargs())

    async def main():
        run.enter()
        assert await run.item(0) == (True, ("kept", 0))
        await gen.aclose()
        with pytest.raises(RuntimeError, match=CLOSED_OUTSIDE):
            await run.item(1)

    run_bounded(main())
    assert rec.published == []
    assert rec.ended == 1


def test_run_item_that_cannot_be_kept_is_unkept_and_the_run_unpublished() -> None:
    rec = Recorder()

    def keep(v):
        if v == 1:
            raise TypeError("cannot copy")
        return ("kept", v)

    run = Run(lambda: iter(range(3)), **{**rec.kwargs(), "keep": keep})
    run.enter()
    assert run.item(0) == (True, ("kept", 0))
    more, item = run.item(1)
    assert more and isinstance(item, Unkept) and item.value == 1
    assert run.item(2) == (True, ("kept", 2))
    assert run.item(3) == (False, None)
    assert [type(e) for e in rec.unkept] == [TypeError]  # reported once
    assert rec.published == [] and rec.ended == 1


def test_run_closed_by_its_last_consumer() -> None:
    closed = []

    def gen():
        try:
            yield from range(5)
        finally:
            closed.append(True)

    rec = Recorder()
    run = Run(gen, **rec.kwargs())
    run.enter()
    run.enter()
    run.item(0)
    run.leave()
    assert not closed  # one consumer is still reading
    run.leave()
    assert closed == [True] and rec.ended == 1 and rec.published == []
    with pytest.raises(RuntimeError, match="closed by its last consumer"):
        run.item(1)


def test_async_run_steps_are_shared_across_tasks() -> None:
    steps = []
    rec = Recorder()

    async def numbers():
        for i in range(3):
            steps.append(i)
            await asyncio.sleep(0)
            yield i

    run = AsyncRun(numbers, **rec.kwargs())

    async def consume():
        run.enter()
        out = []
        i = 0
        while True:
            more, kept = await run.item(i)
            if not more:
                return out
            out.append(kept)
            i += 1
            assert i <= 3, "the run goes on past its three items"

    async def main():
        return await asyncio.gather(consume(), consume(), consume())

    assert run_bounded(main()) == [[("kept", i) for i in range(3)]] * 3
    assert steps == [0, 1, 2]
    assert rec.published == [[("kept", i) for i in range(3)]]


# -- the single-flight table ---------------------------------------------------------


class Table:
    """A store's single-flight table as the engine uses it: ``Store.lead`` to join or lead,
    ``Store.forget`` and ``resolve`` to settle a call without storing a value."""

    def __init__(self) -> None:
        self.store = Store(max_size=0)

    def join(self, key: Any, *, in_task: bool = False) -> tuple[Any, bool]:
        """``(call, True)`` for the new leader of ``key``; else ``(future, False)`` to wait on."""
        kind, got = self.store.lead(key, 0 if in_task else threading.get_ident(), Call, check_recursion)
        assert kind != FOUND, "this store holds no entries"
        return got, kind == LEAD

    def finish(self, key: Any, call: Call, *, value: Any = ABANDONED, error: BaseException | None = None) -> None:
        resolve(self.store.forget(key, call), value, error)

    def in_flight(self) -> int:
        return self.store.in_flight()

    @staticmethod
    def wait(future: Any) -> Any:
        return future.result(timeout=20)  # a hang guard, not a timing assertion


def test_flights_join_finish_and_wait() -> None:
    flights = Table()
    call, leader = flights.join("k")
    assert leader and isinstance(call, Call)
    out = []
    t = threading.Thread(target=lambda: out.append(Table.wait(flights.join("k")[0])))
    t.start()
    wait_until(lambda: call.future is not None, "a follower waiting")
    flights.finish("k", call, value=42)
    join_all(t)
    assert out == [42]
    assert flights.in_flight() == 0
    again, leader = flights.join("k")
    assert leader and again is not call


def test_flights_follower_gets_the_exception_or_abandoned() -> None:
    flights = Table()
    call, _ = flights.join("k")
    results: list = []

    def follow() -> None:
        future, leader = flights.join("k")
        assert not leader
        try:
            results.append(Table.wait(future))
        except ValueError as exc:
            results.append(exc)

    t = threading.Thread(target=follow)
    t.start()
    wait_until(lambda: call.future is not None, "a follower waiting")
    flights.finish("k", call, error=ValueError("boom"))
    join_all(t)
    assert isinstance(results[0], ValueError)
    call, _ = flights.join("k")
    t = threading.Thread(target=follow)
    t.start()
    wait_until(lambda: call.future is not None, "a follower waiting")
    flights.finish("k", call)  # abandoned: neither value nor error
    join_all(t)
    assert results[1] is ABANDONED


def test_flights_same_thread_join_is_recursion_and_stale_calls_are_not_joined() -> None:
    flights = Table()
    call, _ = flights.join("k")
    with pytest.raises(RecursionError):
        flights.join("k")  # the leader's own thread would wait for itself
    call.stale = True  # what an invalidation of its key does (through the store)
    token = current_work.set(None)
    try:
        other: list = []
        t = threading.Thread(target=lambda: other.append(flights.join("k")))
        t.start()
        join_all(t)
    finally:
        current_work.reset(token)
    fresh, leader = other[0]
    assert leader and fresh is not call
    flights.finish("k", call, value=1)  # the old leader finishing leaves the new call alone
    assert flights.in_flight() == 1


def test_flights_keys_are_independent_and_an_uncontended_call_makes_no_future() -> None:
    flights = Table()
    a, leads_a = flights.join("a")
    b, leads_b = flights.join("b")
    assert leads_a and leads_b and a is not b
    assert a.future is None and b.future is None  # only a contended key pays for a future
    assert flights.in_flight() == 2
    flights.finish("a", a, value=1)
    flights.finish("b", b, value=2)
    assert flights.in_flight() == 0


def test_flights_coroutines_on_the_leaders_thread_follow_instead_of_recursing() -> None:
    """An event loop's thread runs unrelated tasks: only the context tells recursion apart."""
    flights = Table()
    call, _ = flights.join("k", in_task=True)
    future, leader = flights.join("k", in_task=True)
    assert not leader and future is call.future
    same_thread, leader = flights.join("k")  # a sync caller on the same thread, outside the call
    assert not leader and same_thread is future
    flights.finish("k", call, value="v")
    assert Table.wait(future) == "v"


def test_flights_await_gets_the_value_and_a_cancelled_waiter_leaves_the_call_alone() -> None:
    flights = Table()
    call, _ = flights.join("k")
    future, _ = flights.join("k", in_task=True)

    async def main():
        cancelled = asyncio.ensure_future(Flights.await_(future))
        await asyncio.sleep(0)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert not future.cancelled()
        waiter = asyncio.ensure_future(Flights.await_(future))
        await asyncio.sleep(0)
        settle = threading.Thread(target=flights.finish, args=("k", call), kwargs={"value": 7})
        settle.start()
        try:
            return await asyncio.wait_for(waiter, 10)  # a hang guard, not a timing assertion
        finally:
            join_all(settle)

    assert run_bounded(main()) == 7


def test_flights_join_run_shares_a_live_run_and_never_an_ended_or_stale_one() -> None:
    flights = Flights()
    ticket = types.SimpleNamespace(stale=False)

    def make(key: str) -> Run:
        made: list[Run] = []
        rec = Recorder()
        # As the engine does: a run leaves the table when it ends.
        run = Run(lambda: iter(range(2)), **{**rec.kwargs(), "on_end": lambda: flights.end_run(key, made[0])},
                  ticket=ticket)
        made.append(run)
        return run

    first = flights.join_run("k", lambda: make("k"))
    assert flights.join_run("k", lambda: make("k")) is first and first.consumers == 2
    assert flights.join_run("other", lambda: make("other")) is not first  # keys are independent
    while first.item(len(first.items))[0]:
        assert len(first.items) <= 2, "the run goes on past its two items"
    second = flights.join_run("k", lambda: make("k"))
    assert second is not first  # the first run ended
    flights.end_run("k", first)  # a late end of the old run leaves the new one in place
    assert flights.join_run("k", lambda: make("k")) is second
    ticket.stale = True  # what an invalidation of the key does
    assert flights.join_run("k", lambda: make("k")) is not second
    assert flights.in_flight() == 2


def test_flights_join_run_from_inside_the_runs_own_step_is_recursion() -> None:
    flights = Flights()
    rec = Recorder()
    errors: list = []

    def body():
        try:
            flights.join_run("k", make)
        except RecursionError as exc:
            errors.append(exc)
        yield 1

    def make() -> Run:
        return Run(body, **rec.kwargs())

    run = flights.join_run("k", make)
    assert run.item(0) == (True, ("kept", 1))
    assert len(errors) == 1


# -- invalidation while computations are in flight -----------------------------------


def test_a_result_computed_across_a_clear_is_not_stored() -> None:
    started, release = threading.Event(), threading.Event()

    @ic.cache
    def slow(x):
        started.set()
        release.wait(5)
        return x

    t = threading.Thread(target=slow, args=(1,))
    t.start()
    started.wait(5)
    slow.cache.clear()  # e.g. the model was reloaded
    release.set()
    join_all(t)
    assert len(slow.cache) == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_caller_arriving_after_clear_never_gets_a_result_computed_before_it(kind: str) -> None:
    """Callers used to join the computation that started before the clear and get its stale result."""
    gates = [threading.Event() for _ in range(2)]
    started: list = []
    f = gated(kind, gates, started)
    old = Caller(kind, f, 1)
    wait_until(lambda: len(started) == 1, "the first computation")
    early = Caller(kind, f, 1)
    wait_until(lambda: f.cache.stats().joins == 1, "a caller joining before the clear")
    f.cache.clear()
    new = Caller(kind, f, 1)
    wait_until(lambda: len(started) == 2 or f.cache.stats().joins == 2, "the caller after the clear")
    assert len(started) == 2  # a computation of its own, not the one from before the clear
    gates[0].set()
    # Who asked before the clear gets the result computed for them (it is not stored).
    assert old.result() == early.result() == [1, 0]
    gates[1].set()
    assert new.result() == [1, 1]
    assert call(kind, f, 1) == [1, 1]  # what is stored was computed after the clear
    assert len(started) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_clear_session_restarts_that_sessions_computations_in_flight(kind: str) -> None:
    gates = [threading.Event() for _ in range(2)]
    started: list = []
    f = gated(kind, gates, started, per_session=True)
    old = Caller(kind, f, 1, session="A")
    wait_until(lambda: len(started) == 1, "A's computation")
    ic.clear_session("A")  # the tab closed and reopened with the same id
    new = Caller(kind, f, 1, session="A")
    wait_until(lambda: len(started) == 2 or f.cache.stats().joins == 1, "A's caller after the clear")
    assert len(started) == 2
    gates[0].set()
    gates[1].set()
    assert old.result() == [1, 0]
    assert new.result() == [1, 1]
    assert call(kind, f, 1, session="A") == [1, 1]


# -- recursion through child tasks, threads and copied contexts ------------------------


CHILD_CALLS = {
    "create_task": lambda coro: asyncio.create_task(coro),
    "gather": lambda coro: asyncio.gather(coro),
    "wait_for": lambda coro: asyncio.wait_for(coro, 30),
    "ensure_future": lambda coro: asyncio.ensure_future(coro),
    "to_thread": lambda coro: asyncio.to_thread(asyncio.run, coro),
}


@pytest.mark.parametrize("how", sorted(CHILD_CALLS))
def test_async_self_call_through_a_child_task_is_recursion_not_a_deadlock(how: str) -> None:
    runs = []

    @ic.cache
    async def f(x):
        runs.append(x)
        return await CHILD_CALLS[how](f(x))

    async def main():
        with pytest.raises(RecursionError, match="called itself"):
            await asyncio.wait_for(f(1), 10)  # the bound only ends the test on the old deadlock

    run_bounded(main())
    assert runs == [1]


def test_sync_self_call_in_a_thread_with_the_copied_context_is_recursion() -> None:
    import concurrent.futures
    import contextvars

    pool = concurrent.futures.ThreadPoolExecutor(1)

    @ic.cache
    def f(x):
        ctx = contextvars.copy_context()
        return pool.submit(ctx.run, f, x).result(10)

    try:
        with pytest.raises(RecursionError, match="called itself"):
            f(1)
    finally:
        pool.shutdown()


def test_a_cycle_through_another_cached_function_is_recursion() -> None:
    @ic.cache
    async def f(x):
        return await asyncio.create_task(g(x))

    @ic.cache
    async def g(x):
        return await asyncio.create_task(f(x))

    async def main():
        with pytest.raises(RecursionError):
            await asyncio.wait_for(f(1), 10)

    run_bounded(main())


def test_async_generator_self_call_through_a_child_task_is_recursion() -> None:
    @ic.cache
    async def stream(x):
        async def first(gen):
            async for v in gen:
                return v

        yield await asyncio.create_task(first(stream(x)))

    async def main():
        with pytest.raises(RecursionError):
            await asyncio.wait_for(first_item(), 10)

    async def first_item():
        return [v async for v in stream(1)]

    run_bounded(main())


def test_independent_tasks_of_one_key_still_share_one_computation() -> None:
    """Tasks created side by side copy the same context, but neither runs inside the other."""
    runs = []

    @ic.cache
    async def f(x):
        runs.append(x)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return x * 2

    async def main():
        a = asyncio.create_task(f(1))
        b = asyncio.create_task(f(1))
        return await a, await b

    assert run_bounded(main()) == (2, 2)
    assert runs == [1]
    assert f.cache.stats().joins == 1


def test_a_leader_may_compute_other_keys_in_child_tasks_and_threads() -> None:
    import concurrent.futures
    import contextvars

    @ic.cache
    async def countdown(n):
        if n == 0:
            return [0]
        return [n, *(await asyncio.create_task(countdown(n - 1)))]

    assert run_bounded(countdown(4)) == [4, 3, 2, 1, 0]

    pool = concurrent.futures.ThreadPoolExecutor(6)  # one thread per level: each waits for the next

    @ic.cache
    def total(n):
        if n == 0:
            return 0
        return n + pool.submit(contextvars.copy_context().run, total, n - 1).result(10)

    try:
        assert total(5) == 15
    finally:
        pool.shutdown()


def test_a_task_left_running_by_a_finished_leader_is_not_recursive() -> None:
    """Its context still names the leader's computation, which is over: it computes anew."""
    runs = []
    later: list = []

    @ic.cache
    async def f(x):
        runs.append(x)
        if len(runs) == 1:
            go = asyncio.Event()
            later.append((go, asyncio.create_task(after(go, x))))
        return len(runs)

    async def after(go, x):
        await go.wait()
        return await f(x)

    async def main():
        assert await f(1) == 1
        f.cache.clear()
        go, task = later[0]
        go.set()
        return await task

    assert run_bounded(main()) == 2
    assert runs == [1, 1]
