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
nothing is cached.

The rules this module keeps:

- **Recursion is by context, not identity.** A caller is recursive when it
  runs (transitively) inside the computation of the key it asks for: a leader
  computes, and a run steps its generator, with that work pushed on the
  :data:`current_work` context variable, which child tasks, ``to_thread`` and
  ``copy_context().run`` inherit. Such a caller gets ``RecursionError`` instead
  of waiting for itself forever; an independent caller of the same key (in
  another task or thread, whose context does not hold the work) waits as
  usual. Sync callers are also matched by thread, which catches a recursive
  call made from a fresh context. The variable is read only when a key is
  already in flight, never on a hit.
- **Invalidated work is not joined.** A computation is also the store's
  ticket for its result (:class:`infercache.store.Ticket`); once a ``clear()``,
  ``clear_session`` or ``delete`` covering its key marks the ticket stale,
  callers arriving afterwards start a new computation instead of joining it.
  Callers that joined *before* the invalidation still receive the old
  computation's result: they asked before the clear, and the result is not
  stored.
- **Streaming never breaks because caching is impossible.** An item that
  cannot be kept (``protect`` raises, e.g. it holds a lock) makes the run
  uncacheable (one warning per cached function, through the run's
  ``on_unkept`` callback) and is kept as :class:`Unkept`: every consumer still
  receives every item in order, and the consumers of that run all receive
  the *same* object for such an item, since it cannot be copied.
- **A run is stored only when the user's generator ended by itself**
  (``StopIteration``/``StopAsyncIteration`` raised while its frame was
  alive). A generator found closed by anything else ends the run with an
  error for its consumers and nothing is stored.
- **No event loop owns a shared async generator.** Its first step runs with
  no async-generator hooks installed, so ``asyncio.run``'s shutdown of the
  loop that happened to step it first (``loop.shutdown_asyncgens``) does not
  close it under the other consumers. Each step is a task of the loop of the
  consumer that needed the item; that task refuses cancellation by anything
  but its run while consumers remain, so a loop exiting mid-step (asyncio
  cancels every task at exit) lets the step finish, and a consumer on a
  surviving loop drives the next one. Cancelling a consumer never interrupts
  the shared generator.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from .store import FOLLOW, FOUND, LEAD, Store, Ticket

__all__ = [
    "ABANDONED",
    "FOLLOW",
    "FOUND",
    "LEAD",
    "AsyncRun",
    "Call",
    "Flights",
    "Run",
    "Unkept",
    "check_recursion",
    "current_work",
    "resolve",
]


class _Abandoned:
    def __repr__(self) -> str:
        return "ABANDONED"


ABANDONED: Any = _Abandoned()
RunT = TypeVar("RunT", bound="_RunBase")

# The chain of computations (Call, Run, AsyncRun objects) the current context runs inside,
# innermost first, as nested pairs ``(work, outer_chain)``; None outside any.
current_work: ContextVar[tuple[Any, Any] | None] = ContextVar("infercache_work", default=None)


def _inside(work: object) -> bool:
    """True when the current context runs inside ``work`` (a call or run of this cache)."""
    node = current_work.get()
    while node is not None:
        if node[0] is work:
            return True
        node = node[1]
    return False


def _stale(ticket: Any) -> bool:
    return ticket is not None and ticket.stale


def check_recursion(call: Call, owner: int) -> None:
    """Raise ``RecursionError`` when a caller (thread ``owner``, 0 for a coroutine) runs inside ``call``.

    What :meth:`infercache.store.Store.lead` asks before a caller follows a
    call in flight: the call's own thread, or a context inheriting its work,
    would wait for itself.
    """
    if (owner and call.owner == owner) or _inside(call):
        raise _recursion()


def _recursion() -> RecursionError:
    return RecursionError(
        "infercache: a cached function called itself with the same arguments "
        "while computing them; that call could never finish"
    )


def _closed_outside() -> RuntimeError:
    return RuntimeError(
        "infercache: the shared generator was closed before its end by something "
        "other than its consumers; the run is incomplete and was not cached"
    )


def _frame_gone(gen: Any) -> bool:
    """True when a native (async) generator can run no more (it ended or was closed)."""
    for attr in ("gi_frame", "ag_frame"):
        if hasattr(gen, attr):
            return getattr(gen, attr) is None
    return False


class Call(Ticket):
    """A leader's computation in flight; the future exists once someone waits on it.

    ``owner`` is the leader's thread id for sync calls (0 for coroutines, which
    are told apart by context only). The call is also the store's ticket for
    its result (:meth:`infercache.store.Store.lead`): one object per miss.
    """

    __slots__ = ("future", "owner")

    def __init__(self, owner: int) -> None:
        self.owner = owner
        self.future: concurrent.futures.Future[Any] | None = None
        self.stale = False


class Unkept:
    """A generator item that could not be protected: handed to every consumer as is."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class Flights:
    """The computations and generator runs in flight for one cache.

    Calls of plain and async functions are registered in ``store``'s
    single-flight table, under the store's lock (:meth:`Store.lead`,
    :meth:`Store.settle`): the engine's miss path looks up, registers and
    settles each in one critical section; followers wait on the call's
    future (:meth:`await_` from a coroutine). Without a store (tests of
    generator runs alone) the table is a store of its own that never holds
    entries. Generator runs have their own table and lock.
    """

    def __init__(self, store: Store | None = None) -> None:
        self.store = store if store is not None else Store(max_size=0)
        self._lock = threading.Lock()
        self._runs: dict[Hashable, Run | AsyncRun] = {}

    # -- plain and async functions -----------------------------------------

    @staticmethod
    async def await_(call: concurrent.futures.Future[Any]) -> Any:
        """Await the leader from any event loop; cancelling the waiter leaves the call alone."""
        return await asyncio.shield(asyncio.wrap_future(call))

    # -- generators ----------------------------------------------------------

    def join_run(self, key: Hashable, make: Callable[[], RunT]) -> RunT:
        """Join the live run of ``key`` or start one with ``make()`` (sync or async runs).

        A run that ended, or whose ticket an invalidation made stale, is not
        joined: the caller starts a new one.
        """
        with self._lock:
            found = self._runs.get(key)
            if found is not None:
                if found.producing_here():
                    raise _recursion()
                if not _stale(found.ticket) and found.enter():
                    return cast(RunT, found)  # one cached function runs one kind of generator  # pragma: no mutate
            run = make()
            run.enter()
            self._runs[key] = cast("Run | AsyncRun", run)  # pragma: no mutate (a cast does nothing at run time)
            return run

    def end_run(self, key: Hashable, run: Run | AsyncRun) -> None:
        """Forget ``run`` once it has ended (callers joining later start a new one)."""
        with self._lock:
            if self._runs.get(key) is run:
                del self._runs[key]

    def in_flight(self) -> int:
        """How many calls and runs are in flight (for tests and diagnostics)."""
        with self._lock:
            runs = len(self._runs)
        return self.store.in_flight() + runs


def resolve(
    future: concurrent.futures.Future[Any] | None, value: Any = ABANDONED, error: BaseException | None = None
) -> None:
    """Wake the followers waiting on ``future`` (if any) with a leader's value or exception."""
    if future is None:
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class _RunBase:
    """State shared by sync and async runs; ``_cond`` guards all of it.

    The lock is re-entrant: a consumer's generator closed by the garbage
    collector leaves its run from whatever code the collector interrupted,
    possibly a method of the same run on the same thread.
    """

    def __init__(
        self,
        keep: Callable[[Any], Any],
        publish: Callable[[list[Any]], None],
        on_end: Callable[[], None],
        on_unkept: Callable[[BaseException], None] | None = None,
        ticket: Any = None,
    ) -> None:
        self._keep = keep
        self._publish = publish
        self._on_end = on_end
        self._on_unkept = on_unkept
        self.ticket = ticket
        self._cond = threading.Condition(threading.RLock())
        self.items: list[Any] = []
        self.done = False
        self.error: BaseException | None = None
        self.consumers = 0
        self.cacheable = True

    def enter(self) -> bool:
        """Count one more consumer; False if the run already ended (start a new one)."""
        with self._cond:
            if self.done:
                return False
            self.consumers += 1
            return True

    def _keep_item(self, value: Any) -> Any:
        """The kept form of one item, or :class:`Unkept` (and an uncacheable run) if it cannot be kept."""
        try:
            return self._keep(value)
        except Exception as exc:  # noqa: BLE001 - any failure to copy means "do not cache"
            first = self.cacheable
            self.cacheable = False
            if first and self._on_unkept is not None:
                self._on_unkept(exc)
            return Unkept(value)

    def _end(self, error: BaseException | None) -> None:
        with self._cond:
            self.done = True
            self.error = error
            self._cond.notify_all()

    def _complete(self) -> None:
        # Publish before marking done: a caller that misses the run from now on finds the store entry.
        try:
            if self.cacheable:
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
        on_unkept: Callable[[BaseException], None] | None = None,
        ticket: Any = None,
    ) -> None:
        super().__init__(keep, publish, on_end, on_unkept, ticket)
        self._factory = factory
        self._gen: Iterator[Any] | None = None
        self._producing = False
        self._producer = 0

    def producing_here(self) -> bool:
        """True when the caller is inside this run's step (a re-entrant call would wait for itself)."""
        return (self._producing and self._producer == threading.get_ident()) or _inside(self)

    def item(self, index: int) -> tuple[bool, Any]:
        """``(True, kept_item)`` for item ``index``, producing it if needed; ``(False, None)`` at the end."""
        me = threading.get_ident()
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
                    self._producer = me
                    break
                if self._producer == me or _inside(self):
                    raise _recursion()
                self._cond.wait()
        # This thread alone advances the generator until the item is appended or the run ends.
        token = current_work.set((self, current_work.get()))
        try:
            if self._gen is None:
                self._gen = iter(self._factory())
            elif _frame_gone(self._gen):
                raise _closed_outside()
            kept = self._keep_item(next(self._gen))
        except StopIteration:
            self._complete()
            return False, None
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            current_work.reset(token)
        with self._cond:
            self.items.append(kept)
            self._producing = False
            self._cond.notify_all()
        return True, kept

    def leave(self) -> None:
        """One consumer is gone; the last one to leave an unfinished run closes it."""
        if not self._last_one_out():
            return
        close = getattr(self._gen, "close", None)
        if close is not None:
            close()


def _first_anext(gen: AsyncIterator[Any]) -> Any:
    """``gen.__anext__()`` with no async-generator hooks, so that no event loop adopts ``gen``.

    The hooks (``sys.set_asyncgen_hooks``) are per thread and consulted once,
    when a generator is first iterated; with them unset, the running loop
    neither finalizes ``gen`` when it is collected nor closes it in
    ``shutdown_asyncgens``. The run closes it itself.
    """
    saved = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=None, finalizer=None)
    try:
        return gen.__anext__()
    finally:
        sys.set_asyncgen_hooks(*saved)


class _Step(asyncio.Task):  # type: ignore[type-arg]
    """The task advancing a shared async generator by one item.

    Only its run may cancel it while the run has consumers: a loop shutting
    down (``asyncio.run`` cancels every task at exit) then waits for the step
    to reach the generator's next ``yield`` instead of killing the generator
    under the consumers of other loops.
    """

    def __init__(self, run: AsyncRun, loop: asyncio.AbstractEventLoop) -> None:
        self._infercache_run = run
        super().__init__(run._advance(), loop=loop)

    def cancel(self, msg: Any = None) -> bool:
        if self._infercache_run.may_cancel_step():
            return super().cancel(msg)
        return False


class AsyncRun(_RunBase):
    """One shared run of an async generator; each step is a task of its own."""

    def __init__(
        self,
        factory: Callable[[], AsyncIterator[Any]],
        keep: Callable[[Any], Any],
        publish: Callable[[list[Any]], None],
        on_end: Callable[[], None],
        on_unkept: Callable[[BaseException], None] | None = None,
        ticket: Any = None,
    ) -> None:
        super().__init__(keep, publish, on_end, on_unkept, ticket)
        self._factory = factory
        self._gen: AsyncIterator[Any] | None = None
        self._step: _Step | None = None
        self._step_loop: asyncio.AbstractEventLoop | None = None
        self._signal: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._closing = False

    def producing_here(self) -> bool:
        """True when called from inside this run's step (or a task it spawned)."""
        return _inside(self)

    def may_cancel_step(self) -> bool:
        """Whether the running step may be cancelled: only once nobody reads the run any more."""
        with self._cond:
            return self._closing or self.consumers <= 0

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
                if _inside(self):
                    raise _recursion()
                signal = self._signal
                if self._step is None:
                    loop = asyncio.get_running_loop()
                    self._step_loop = loop
                    self._step = _Step(self, loop)
            await asyncio.shield(asyncio.wrap_future(signal))

    async def _advance(self) -> None:
        current_work.set((self, current_work.get()))  # this task's own context
        error: BaseException | None = None
        finished = False
        kept: Any = None
        try:
            if self._gen is None:
                self._gen = self._factory().__aiter__()
                step = _first_anext(self._gen)
            elif _frame_gone(self._gen):
                raise _closed_outside()
            else:
                step = self._gen.__anext__()
            kept = self._keep_item(await step)
        except StopAsyncIteration:
            finished = True
        except BaseException as exc:  # noqa: BLE001 - recorded for every consumer
            error = exc
        if finished:
            self._complete()
        elif error is not None:
            self._fail(error)
        with self._cond:
            if not finished and error is None:
                self.items.append(kept)
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
            try:
                self._step_loop.call_soon_threadsafe(step.cancel)
            except RuntimeError:  # that loop is closed: its step will never run again
                pass

    async def _aclose(self) -> None:
        aclose = getattr(self._gen, "aclose", None)
        if aclose is not None:
            await aclose()

