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
from collections.abc import Callable
from typing import Any

import infercache as ic

KINDS = ("sync", "async", "gen", "asyncgen")


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Synchronise with other threads (not a timing assertion: fails only on a hang)."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return
        pause.wait(0.005)
    raise AssertionError(f"timed out waiting for {what}")


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
        return asyncio.run(fn(x))
    if kind == "gen":
        return list(fn(x))

    async def collect() -> list[Any]:
        return [v async for v in fn(x)]

    return asyncio.run(collect())


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
        self.thread.join(30)
        assert not self.thread.is_alive(), "caller still blocked"
        if self.error is not None:
            raise self.error
        return self.value
