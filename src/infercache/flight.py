"""Single-flight: one computation per key, however many callers ask at once.

For plain and async functions, the first caller of a key becomes the *leader*
and computes; identical callers that arrive meanwhile wait on a
``concurrent.futures.Future`` (which threads and any event loop can wait on)
and receive the leader's result, or its exception. A leader that is cancelled
or interrupted (a ``BaseException`` such as ``CancelledError`` or
``KeyboardInterrupt``) *abandons* the call: its followers wake up and one of
them takes over.

For generators, identical callers share one :class:`Run` of the generator
(:class:`AsyncRun` for async generators). Each consumer reads the run's items
by index, so a late joiner first receives everything produced so far and then
the live items, in order. Whichever consumer needs an item that does not exist
yet advances the generator, so the run never depends on one consumer staying.
When the last consumer leaves before the end, the generator is closed and
nothing is cached. For async generators each step runs as its own task, so a
consumer being cancelled never interrupts the shared generator.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from typing import Any

__all__ = ["ABANDONED", "Call", "Flights", "Run", "AsyncRun"]


class _Abandoned:
    def __repr__(self) -> str:
        return "ABANDONED"


ABANDONED: Any = _Abandoned()


def _owner() -> tuple[int, int]:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return threading.get_ident(), id(task) if task is not None else 0


def _recursion() -> RecursionError:
    return RecursionError(
        "infercache: a cached function called itself with the same arguments "
        "while computing them; that call could never finish"
    )


class Call:
    """A leader's computation in flight; the future exists once someone waits on it."""

    __slots__ = ("owner", "future")

    def __init__(self, owner: tuple[int, int]) -> None:
        self.owner = owner
        self.future: concurrent.futures.Future[Any] | None = None


class Flights:
    """The computations and generator runs in flight for one cache."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, Call] = {}
        self._runs: dict[Hashable, Run | AsyncRun] = {}

    # -- plain and async functions -----------------------------------------

    def join(self, key: Hashable, *, in_task: bool = False) -> tuple[Any, bool]:
        """``(call, True)`` for the new leader of ``key``; else ``(future, False)`` to wait on.

        ``in_task`` says the caller is a coroutine, whose identity (for telling a
        recursive call from a concurrent one) is its task, not only its thread.
        """
        owner = _owner() if in_task else (threading.get_ident(), 0)
        with self._lock:
            call = self._calls.get(key)
            if call is not None:
                if call.owner == owner:
                    raise _recursion()
                if call.future is None:
                    # Only a contended key pays for a future.
                    call.future = concurrent.futures.Future()
                return call.future, False
            call = Call(owner)
            self._calls[key] = call
            return call, True

    def finish(
        self,
        key: Hashable,
        call: Call,
        *,
        value: Any = ABANDONED,
        error: BaseException | None = None,
    ) -> None:
        """Settle a leader's call: its value, its exception, or (neither) abandoned."""
        with self._lock:
            if self._calls.get(key) is call:
                del self._calls[key]
            future = call.future
        if future is None:
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    @staticmethod
    def wait(call: concurrent.futures.Future[Any]) -> Any:
        """Block until the leader settles; its value, ABANDONED, or its exception raised."""
        return call.result()

    @staticmethod
    async def await_(call: concurrent.futures.Future[Any]) -> Any:
        """Await the leader from any event loop; cancelling the waiter leaves the call alone."""
        return await asyncio.shield(asyncio.wrap_future(call))

    # -- generators ----------------------------------------------------------

    def join_run(self, key: Hashable, make: Callable[[], Run]) -> Run:
        """Join the live run of ``key`` or start one with ``make()``."""
        with self._lock:
            run = self._runs.get(key)
            if isinstance(run, Run) and run.producing_here():
                raise _recursion()
            if not (isinstance(run, Run) and run.enter()):
                run = make()
                run.enter()
                self._runs[key] = run
            return run

    def join_async_run(self, key: Hashable, make: Callable[[], AsyncRun]) -> AsyncRun:
        """Join the live async run of ``key`` or start one with ``make()``."""
        with self._lock:
            run = self._runs.get(key)
            if isinstance(run, AsyncRun) and run.producing_here():
                raise _recursion()
            if not (isinstance(run, AsyncRun) and run.enter()):
                run = make()
                run.enter()
                self._runs[key] = run
            return run

    def end_run(self, key: Hashable, run: Run | AsyncRun) -> None:
        """Forget ``run`` once it has ended (callers joining later start a new one)."""
        with self._lock:
            if self._runs.get(key) is run:
                del self._runs[key]


class _RunBase:
    """State shared by sync and async runs; ``_cond`` guards all of it."""

    def __init__(
        self,
        keep: Callable[[Any], Any],
        publish: Callable[[list[Any]], None],
        on_end: Callable[[], None],
    ) -> None:
        self._keep = keep
        self._publish = publish
        self._on_end = on_end
        self._cond = threading.Condition(threading.Lock())
        self.items: list[Any] = []
        self.done = False
        self.error: BaseException | None = None
        self.consumers = 0

    def enter(self) -> bool:
        """Count one more consumer; False if the run already ended (start a new one)."""
        with self._cond:
            if self.done:
                return False
            self.consumers += 1
            return True

    def _end(self, error: BaseException | None) -> None:
        with self._cond:
            self.done = True
            self.error = error
            self._cond.notify_all()

    def _complete(self) -> None:
        # Publish before marking done: a caller that misses the run from now on finds the store entry.
        try:
            self._publish(self.items)
        finally:
            self._on_end()
            self._end(None)

    def _last_one_out(self) -> bool:
        """Count a consumer leaving; True when it was the last of an unfinished run (now closed)."""
        with self._cond:
            self.consumers -= 1
            if self.consumers or self.done:
                return False
            self.done = True
            self.error = RuntimeError("infercache: run closed by its last consumer")
            self._cond.notify_all()
        self._on_end()
        return True

    def _fail(self, exc: BaseException) -> None:
        self._on_end()
        if not isinstance(exc, Exception):
            exc = RuntimeError(f"infercache: the shared generator run was interrupted ({exc!r})")
        self._end(exc)


class Run(_RunBase):
    """One shared run of a sync generator."""

    def __init__(
        self,
        factory: Callable[[], Iterator[Any]],
        keep: Callable[[Any], Any],
        publish: Callable[[list[Any]], None],
        on_end: Callable[[], None],
    ) -> None:
        super().__init__(keep, publish, on_end)
        self._factory = factory
        self._gen: Iterator[Any] | None = None
        self._producing = False
        self._producer: tuple[int, int] | None = None

    def producing_here(self) -> bool:
        """True when the caller is the one advancing the generator (a re-entrant call)."""
        return self._producing and self._producer == _owner()

    def item(self, index: int) -> tuple[bool, Any]:
        """``(True, kept_item)`` for item ``index``, producing it if needed; ``(False, None)`` at the end."""
        with self._cond:
            while True:
                if index < len(self.items):
                    return True, self.items[index]
                if self.done:
                    if self.error is not None:
                        raise self.error
                    return False, None
                if not self._producing:
                    self._producing = True
                    self._producer = _owner()
                    break
                if self._producer == _owner():
                    raise _recursion()
                self._cond.wait()
        try:
            if self._gen is None:
                self._gen = iter(self._factory())
            value = next(self._gen)
            kept = self._keep(value)
        except StopIteration:
            self._complete()
            return False, None
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            with self._cond:
                self._producing = False
        with self._cond:
            self.items.append(kept)
            self._cond.notify_all()
        return True, kept

    def leave(self) -> None:
        """One consumer is gone; the last one to leave an unfinished run closes it."""
        if not self._last_one_out():
            return
        close = getattr(self._gen, "close", None)
        if close is not None:
            close()


class AsyncRun(_RunBase):
    """One shared run of an async generator; each step is a task of its own."""

    def __init__(
        self,
        factory: Callable[[], AsyncIterator[Any]],
        keep: Callable[[Any], Any],
        publish: Callable[[list[Any]], None],
        on_end: Callable[[], None],
    ) -> None:
        super().__init__(keep, publish, on_end)
        self._factory = factory
        self._gen: AsyncIterator[Any] | None = None
        self._step: asyncio.Task[None] | None = None
        self._step_loop: asyncio.AbstractEventLoop | None = None
        self._signal: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._closing = False

    def producing_here(self) -> bool:
        """True when called from inside the step that advances the generator."""
        step = self._step
        if step is None:
            return False
        try:
            return asyncio.current_task() is step
        except RuntimeError:
            return False

    async def item(self, index: int) -> tuple[bool, Any]:
        """Like :meth:`Run.item`, awaiting the shared step instead of blocking."""
        while True:
            with self._cond:
                if index < len(self.items):
                    return True, self.items[index]
                if self.done:
                    if self.error is not None:
                        raise self.error
                    return False, None
                signal = self._signal
                if self._step is not None and asyncio.current_task() is self._step:
                    raise _recursion()
                if self._step is None:
                    loop = asyncio.get_running_loop()
                    self._step_loop = loop
                    self._step = loop.create_task(self._advance())
            await asyncio.shield(asyncio.wrap_future(signal))

    async def _advance(self) -> None:
        error: BaseException | None = None
        finished = False
        try:
            if self._gen is None:
                self._gen = self._factory().__aiter__()
            value = await self._gen.__anext__()
            kept = self._keep(value)
        except StopAsyncIteration:
            finished = True
        except BaseException as exc:  # noqa: BLE001 - recorded for every consumer
            error = exc
        if finished:
            self._complete()
        elif error is not None:
            self._fail(error)
        else:
            with self._cond:
                self.items.append(kept)
        with self._cond:
            self._step = None
            signal, self._signal = self._signal, concurrent.futures.Future()
            closing = self._closing and not finished
        signal.set_result(None)
        if closing:
            await self._aclose()
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise error

    async def leave(self) -> None:
        """One consumer is gone; the last one to leave an unfinished run closes it."""
        if not self._last_one_out():
            return
        with self._cond:
            # A step finishing from here on sees _closing and closes the generator itself.
            step = self._step
            self._closing = step is not None
        if step is None:
            await self._aclose()
        elif self._step_loop is not None:
            self._step_loop.call_soon_threadsafe(step.cancel)

    async def _aclose(self) -> None:
        aclose = getattr(self._gen, "aclose", None)
        if aclose is not None:
            await aclose()
