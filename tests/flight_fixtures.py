"""Helpers for tests of computations in flight: one gated cached function per function kind.

Each kind (plain, async, generator, async generator) is built so that its k-th
computation (0-based, counted across calls) blocks until ``gates[k]`` is set
and then produces ``[x, k]``: a test can hold computations in flight, start
callers from threads (async kinds run ``asyncio.run`` in their own thread, so
their callers are on different event loops), and tell which computation a
caller was served by.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import infercache as ic

KINDS = ("sync", "async", "gen", "asyncgen")

# How long a test waits for threads or an event loop before it calls the wait a hang
# and fails: generous, so that it never fires on a slow but working run, and below a
# mutation run's per-mutant limit, so that a mutant that hangs fails the test.
HANG_BOUND = 20.0

T = TypeVar("T")


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Synchronise with other threads (not a timing assertion: fails only on a hang)."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        pause.wait(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def join_all(*threads: threading.Thread, timeout: float = HANG_BOUND) -> None:
    """Join ``threads``, failing (not hanging) when any is still running ``timeout`` s after the call.

    A hang is a failure with a clear message, not a wait without end.
    """
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads still blocked after {timeout} s: {stuck}"


def run_bounded(main: Coroutine[Any, Any, T], timeout: float = HANG_BOUND) -> T:
    """``asyncio.run(main)``, failing (not hanging) when ``main`` has not finished after ``timeout`` s."""

    async def bounded() -> T:
        try:
            return await asyncio.wait_for(main, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"event loop still busy after {timeout} s: a hang") from None

    return asyncio.run(bounded())


def gated(kind: str, gates: list[threading.Event], started: list[Any], **settings: Any) -> Any:
    """A cached function of ``kind`` whose k-th computation waits for ``gates[k]`` and gives ``[x, k]``.

    ``started`` receives ``(session, x, k)`` as each computation begins.
    """

    def begin(x: Any) -> int:
        k = len(started)
        started.append((ic.current_session(), x, k))
        return k

    if kind == "sync":

        def sync_fn(x: Any) -> list[Any]:
            k = begin(x)
            gates[k].wait(10)
            return [x, k]

        return ic.cache(**settings)(sync_fn)
    if kind == "async":

        async def async_fn(x: Any) -> list[Any]:
            k = begin(x)
            await asyncio.to_thread(gates[k].wait, 10)
            return [x, k]

        return ic.cache(**settings)(async_fn)
    if kind == "gen":

        def gen_fn(x: Any) -> Any:
            k = begin(x)
            gates[k].wait(10)
            yield x
            yield k

        return ic.cache(**settings)(gen_fn)
    if kind == "asyncgen":

        async def asyncgen_fn(x: Any) -> Any:
            k = begin(x)
            await asyncio.to_thread(gates[k].wait, 10)
            yield x
            yield k

        return ic.cache(**settings)(asyncgen_fn)
    raise ValueError(kind)


def call(kind: str, fn: Any, x: Any, session: str | None = None) -> list[Any]:
    """Call ``fn(x)`` the way its kind is called (in ``session`` if given); the result as a list."""
    if session is not None:
        with ic.session(session):
            return call(kind, fn, x)
    if kind == "sync":
        return fn(x)
    if kind == "async":
        return run_bounded(fn(x))
    if kind == "gen":
        return list(fn(x))

    async def collect() -> list[Any]:
        return [v async for v in fn(x)]

    return run_bounded(collect())


class Caller:
    """``call(kind, fn, x, session)`` in a thread of its own; ``result()`` joins it."""

    def __init__(self, kind: str, fn: Any, x: Any, session: str | None = None) -> None:
        self.value: Any = None
        self.error: BaseException | None = None

        def target() -> None:
            try:
                self.value = call(kind, fn, x, session)
            except BaseException as exc:  # noqa: BLE001 - handed to the test by result()
                self.error = exc

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()

    def result(self) -> Any:
        self.thread.join(HANG_BOUND)
        assert not self.thread.is_alive(), f"caller still blocked after {HANG_BOUND} s"
        if self.error is not None:
            raise self.error
        return self.value
