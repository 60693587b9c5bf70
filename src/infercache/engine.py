"""The engine: one object per cache, and the one path a miss takes.

Every entry point (``@cache`` on a function, async function, generator or
async generator, and ``Cache``) owns one :class:`Engine`: its validated
:class:`~infercache.config.Settings`, the in-memory :class:`~infercache.store.Store`,
the single-flight table (:class:`~infercache.flight.Flights`) and the tiers
behind the store (:class:`~infercache.tiers.Tier`, reached through one
:class:`~infercache.codec.Codec` and named by a
:class:`~infercache.keyspace.Keyspace`). Entry points only turn a call into a
key and hand it over; what happens next is here, once:

1. **look up**: the in-memory store, then each tier (a tier hit is decoded,
   verified and promoted into memory);
2. **lead or follow**: the first caller of a missing key leads; identical
   callers wait for it and receive its result or its exception
   (:meth:`Engine.call` / :meth:`Engine.acall`; generators share one run,
   :meth:`Engine.stream` / :meth:`Engine.astream`);
3. **compute** the value, with a store ticket taken before (so an
   invalidation during the computation drops the result);
4. **protect** it (:func:`~infercache.safety.protect`, after the framework's
   output hooks), **size** it (:func:`~infercache.sizes.sizeof`), **store** it
   in memory and write it through to the tiers (:meth:`Engine.save`);
5. **settle** the flight: followers are woken with the kept value.

A tier never makes a call fail: a tier error is logged and the call goes on
as if the tier were not there.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Hashable,
    Iterator,
    Sequence,
)
from dataclasses import replace
from typing import Any, TypeVar

from . import hooks, sessions
from .codec import Codec, CorruptEntry
from .config import Settings
from .errors import ConfigError
from .flight import (
    ABANDONED,
    FOLLOW,
    FOUND,
    AsyncRun,
    Call,
    Flights,
    Run,
    Unkept,
    check_recursion,
    current_work,
    resolve,
)
from .keys import KEY_FORMAT_VERSION, make_key
from .keyspace import Keyspace
from .log import logger
from .registry import caches
from .safety import protect, release
from .sizes import LEAF_TYPES, sizeof
from .store import SESSION, CacheStats, Entry, Store, Ticket, address_of, slot_of
from .tiers import Lease, Tier
from .tiers.guard import Guarded

__all__ = ["LEASE_SECONDS", "SESSION_TTL", "Engine", "Framed", "Full"]

Full = tuple[str, Hashable]
"""An entry's address in memory: ``(session namespace, key)``."""

Found = tuple[Any, float, str]
"""What a tier held for an entry: ``(kept value, compute seconds, tier name)``."""

RunT = TypeVar("RunT", Run, AsyncRun)

_perf = time.perf_counter
_ident = threading.get_ident
_getsizeof = sys.getsizeof
# Exact types protect() keeps as they are (immutable, holding nothing): kept without the call.
_PLAIN: frozenset[type] = frozenset({str, bytes, int, float, bool, type(None)})
# sys.getsizeof of an ASCII str and of bytes is this plus their length (CPython: compact ASCII
# and bytes objects hold their characters inline, with one terminating NUL counted here).
_STR_SIZE = _getsizeof("")
_BYTES_SIZE = _getsizeof(b"")
_RETRY: Any = object()  # "the leader was abandoned and left nothing: lead or follow again"
_POLL_FIRST = 0.005  # seconds between looks at the tiers while another process computes, doubling
_POLL_MAX = 0.1

LEASE_SECONDS = 15.0
"""How long a process's claim on computing an entry lasts without renewal (a tier may set its own)."""

SESSION_TTL = 24 * 3600.0
"""Expiry of a per-session entry in the tiers when the cache has no ``ttl`` (a backstop for dead processes)."""


Led = Callable[
    [Hashable, Call, Callable[..., Any], "tuple[Any, ...]", "dict[str, Any] | None", Sequence[hooks.Integration]], Any
]
"""The type of :attr:`Engine.led`."""


class Framed:
    """A kept value that a framework integration transformed on the way in (file outputs)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class Engine:
    """One cache: settings, memory store, single-flight table and tiers, and its miss path.

    Args:
        settings: the cache's validated settings.
        identity: what names the cache across processes (``module.qualname``
            of a cached function, or the cache's ``name=``); its keyspace is
            built from it.
        label: how messages name the cache (a function's qualified name).
        tiers: storage tiers behind the in-memory store, searched in order.
        codec: turns kept values into records for the tiers (required with tiers).
        version: the code version that names the cache's entries in the tiers
            (see :mod:`infercache.version`).
    """

    def __init__(
        self,
        settings: Settings,
        identity: str,
        *,
        label: str | None = None,
        tiers: Sequence[Tier] = (),
        codec: Codec | None = None,
        version: str = "",
    ) -> None:
        if tiers and codec is None:
            raise ConfigError("a cache with storage tiers needs a codec to write them")
        self.settings = settings
        self.identity = identity
        self.label = label or identity
        self.store = Store(settings.max_size, settings.max_memory, settings.ttl)
        self.flights = Flights(self.store)  # calls in flight live in the store's table, under its lock
        self._lead = self.store.lead
        # A guarded store is shared by caches; each cache gets its own view of it to count its errors.
        self.tiers = tuple(t.view() if isinstance(t, Guarded) else t for t in tiers)
        self.codec = codec
        self.keyspace = Keyspace(identity, version, KEY_FORMAT_VERSION)
        self._reported_unkept = False
        self.led: Led = self._leader()
        """The leader of a miss without tiers, once ``call`` is ``slot``'s registered call: compute, settle.

        ``led(slot, call, func, args, kwargs, integrations)``, for :meth:`call`, and for the
        decorator's inlined lookup, which registers the call in the same critical section as
        its miss (see :meth:`Store.calls_table`). While a framework only probes for a hit, the
        call is forgotten (a follower that joined meanwhile looks up again) and the framework's
        miss signal raised, as :meth:`probe_miss` does.
        """
        # Counters beside the store's (the store counts memory hits, misses, joins and removals).
        self._counts = threading.Lock()
        self.tier_hits: dict[str, int] = {}
        self.tier_saved = 0.0
        self.remote_joins = 0
        self.tier_errors = 0
        self.verification_failures = 0
        self.name = caches.add(self, settings.name or self.label)

    # -- addressing ------------------------------------------------------------

    def namespace(self) -> str:
        """The namespace of the current call: the session for per-session caches, else ``""``."""
        return sessions.namespace() if self.settings.per_session else ""

    def address(self, key: Any, *, where: str) -> Full:
        """The address of ``key`` (any keyable value) in the current namespace."""
        return self.namespace(), make_key(key, algorithm=self.settings.digest, where=where)

    # -- values ------------------------------------------------------------------

    def keep(self, value: Any, integrations: Sequence[hooks.Integration]) -> Any:
        """The kept form of a computed value: the frameworks' output hooks, then :func:`protect`."""
        framed = value
        for integration in integrations:
            framed = integration.store_output(framed)
        if framed is value:
            return value if type(value) in _PLAIN else protect(value)
        return Framed(protect(framed))

    def deliver(self, kept: Any) -> Any:
        """What one caller receives for a kept value (its own copy where it could mutate it)."""
        kind = type(kept)
        if kind is Unkept:
            return kept.value
        if kind is not Framed:
            return release(kept)
        value = release(kept.value)
        for integration in hooks.active():
            value = integration.load_output(value)
        return value

    def serve(self, entry: Entry) -> Any:
        """A hit served from the store: tell the frameworks (badges), then :meth:`deliver`."""
        hooks.fire_hit_hooks()
        return self.deliver(entry.value)

    def report_unkept(self, error: BaseException, what: str) -> None:
        """Log, once per cache, that a value could not be kept safely and is not cached."""
        if not self._reported_unkept:
            self._reported_unkept = True
            logger.warning(
                "infercache: %s of %r could not be copied safely and was not cached (%s: %s)",
                what,
                self.label,
                type(error).__name__,
                error,
            )

    # -- lookup ------------------------------------------------------------------

    def lookup(self, full: Full) -> Entry | None:
        """The live entry of ``full``: from memory, else from the first tier holding it (promoted)."""
        entry = self.store.lookup(full)
        if entry is None and self.tiers:
            found = self._fetch(self._name(full))
            if found is not None:
                return self._promote(full, found)
        return entry

    async def alookup(self, full: Full) -> Entry | None:
        """:meth:`lookup` for async callers: the tiers are read with their async verbs."""
        entry = self.store.lookup(full)
        if entry is None and self.tiers:
            found = await self._afetch(self._name(full))
            if found is not None:
                return self._promote(full, found)
        return entry

    def _name(self, full: Full) -> bytes:
        return self.keyspace.name(full[0], _key_bytes(full[1]))

    def _fetch(self, name: bytes) -> Found | None:
        """What the first tier holding a valid record under ``name`` stored, or None."""
        for tier in self.tiers:
            found = self._decode(tier, name, self._tier_call(tier, "get", name))
            if found is not None:
                return found
        return None

    async def _afetch(self, name: bytes) -> Found | None:
        """:meth:`_fetch` with the tiers' async verbs."""
        for tier in self.tiers:
            found = self._decode(tier, name, await self._atier_call(tier, "aget", name))
            if found is not None:
                return found
        return None

    def _decode(self, tier: Tier, name: bytes, record: bytes | None) -> Found | None:
        """``(kept value, compute seconds, tier name)`` of a tier's record, or None (absent or dropped)."""
        if record is None or self.codec is None:  # no codec only without tiers (checked in __init__)
            return None
        try:
            kept, cost = self.codec.loads(name, record)
        except (CorruptEntry, TypeError, ValueError) as exc:  # a signed record of another shape too
            with self._counts:
                self.verification_failures += 1
            logger.warning("infercache: dropped a %s entry of %r: %s", tier.name, self.label, exc)
            self._tier_call(tier, "delete", name)
            return None
        return kept, float(cost), tier.name

    def _promote(self, full: Full, found: Found) -> Entry:
        """A hit read from a tier: counted, stored in memory, returned as an entry.

        The memory lookup before it counted a miss, which this takes back. A
        value memory refuses (larger than ``max_memory``) is still served.
        """
        kept, cost, tier = found
        size = sizeof(kept) + sizeof(full[1])
        self.store.uncount_miss()
        with self._counts:
            self.tier_hits[tier] = self.tier_hits.get(tier, 0) + 1
            self.tier_saved += cost
        ticket = self.store.begin(*full)
        self.store.set(full[0], full[1], kept, size, ticket=ticket, cost=cost)
        entry = self.store.peek(*full)
        return entry if entry is not None else Entry(kept, size, None, None, cost)

    def _tier_call(self, tier: Tier, verb: str, *args: Any) -> Any:
        try:
            return getattr(tier, verb)(*args)
        except Exception as exc:  # noqa: BLE001 - a tier never makes a call fail
            self._tier_failed(tier, verb, exc)
            return None

    async def _atier_call(self, tier: Tier, verb: str, *args: Any) -> Any:
        # The twin of _tier_call: the same guard around an awaited verb.
        try:
            return await getattr(tier, verb)(*args)
        except Exception as exc:  # noqa: BLE001 - a tier never makes a call fail
            self._tier_failed(tier, verb, exc)
            return None

    def _tier_failed(self, tier: Tier, verb: str, exc: BaseException) -> None:
        """A tier without a circuit breaker failed (a guarded one counts and logs its own failures)."""
        with self._counts:
            self.tier_errors += 1
        logger.warning("infercache: %s tier failed on %s (%s: %s)", tier.name, verb, type(exc).__name__, exc)

    # -- across processes ----------------------------------------------------------

    def _lead_across(self, full: Full) -> tuple[Found | None, Lease | None]:
        """Before computing a miss: ``(found, None)`` if another process stored it, else ``(None, lease)``.

        Takes the first tier's lease on the entry; while another process
        holds it, waits (polling the tiers) until its value appears or its
        lease is released or expires (the holder failed or died): then this
        process takes the lease and computes. A tier that fails grants the
        lease, so a backend that is down means computing locally.
        """
        name = self._name(full)
        tier = self.tiers[0]
        ttl = _lease_ttl(tier)
        delay = _POLL_FIRST
        while True:
            lease = self._take_lease(tier, name, ttl)
            found = self._fetch(name)  # also after taking it: the holder may have just finished
            if found is not None:
                _release(lease)
                return found, None
            if lease is not None:
                return None, lease
            time.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    async def _alead_across(self, full: Full) -> tuple[Found | None, Lease | None]:
        """:meth:`_lead_across` for async callers."""
        # The twin of _lead_across: the same loop, awaiting the tiers and the pause.
        name = self._name(full)
        tier = self.tiers[0]
        ttl = _lease_ttl(tier)
        delay = _POLL_FIRST
        while True:
            try:
                lease = await tier.alease(name, ttl)
            except Exception:  # noqa: BLE001 - a failing tier grants the lease: compute locally
                lease = Lease()
            found = await self._afetch(name)
            if found is not None:
                await _arelease(lease)
                return found, None
            if lease is not None:
                return None, lease
            await asyncio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    @staticmethod
    def _take_lease(tier: Tier, name: bytes, ttl: float) -> Lease | None:
        try:
            return tier.lease(name, ttl)
        except Exception:  # noqa: BLE001 - a failing tier grants the lease: compute locally
            return Lease()

    def _adopt(self, full: Full, call: Call, found: Found) -> Any:
        """Another process computed the value this call leads for: store it, wake the followers, deliver it."""
        kept, cost, _ = found
        self.store.uncount_miss()  # a remote join instead
        with self._counts:
            self.remote_joins += 1
        self.store.set(full[0], full[1], kept, sizeof(kept) + sizeof(full[1]), ticket=call, cost=cost)
        resolve(self.store.forget(slot_of(*full), call), kept)
        return self.deliver(kept)

    # -- storing -----------------------------------------------------------------

    def save(
        self,
        full: Full,
        kept: Any,
        ticket: Ticket,
        *,
        cost: float = 0.0,
        raw_key: Any = None,
        extra_size: int = 0,
        on_stored: Callable[[], None] | None = None,
        through: bool = True,
    ) -> bool:
        """Size a kept value, store it under ``ticket`` and write it through to the tiers.

        The store refuses it (False) when an invalidation covered ``ticket``
        meanwhile or it is larger than ``max_memory``. ``on_stored`` runs
        under the store's lock right after a successful store. With
        ``through=False`` the caller writes the tiers itself (async callers,
        with :meth:`_awrite_through`).
        """
        ns, key = full
        size = sizeof(kept) + sizeof(key) + extra_size
        stored = self.store.set(
            ns, key, kept, size, raw_key=raw_key, cost=cost, ticket=ticket, on_stored=on_stored
        )
        if stored and through and self.tiers:
            self._write_through(full, kept, cost)
        return stored

    def _record(self, full: Full, kept: Any, cost: float) -> tuple[bytes, bytes, float | None] | None:
        """``(name, record, ttl)`` to write for a kept value, or None when it cannot be encoded.

        The record holds the value and its compute time (a hit in another
        process is credited with it, as a memory hit is).
        """
        codec = self.codec
        if codec is None:  # never with tiers (checked in __init__)
            return None
        name = self._name(full)
        try:
            record = codec.dumps(name, (kept, cost))
        except Exception as exc:  # noqa: BLE001 - what cannot be encoded stays in memory only
            logger.info("infercache: an entry of %r stays in memory only (%s: %s)", self.label, type(exc).__name__, exc)
            return None
        ttl = self.settings.ttl
        if ttl is None and full[0]:
            ttl = SESSION_TTL  # a session's entries outlive a process that dies before the session closes
        return name, record, ttl

    def _write_through(self, full: Full, kept: Any, cost: float) -> None:
        made = self._record(full, kept, cost)
        if made is not None:
            for tier in self.tiers:
                self._tier_call(tier, "set", *made)

    async def _awrite_through(self, full: Full, kept: Any, cost: float) -> None:
        """:meth:`_write_through` with the tiers' async verbs."""
        made = self._record(full, kept, cost)
        if made is not None:
            for tier in self.tiers:
                await self._atier_call(tier, "aset", *made)

    # -- the miss path of functions ----------------------------------------------

    def probe_miss(self, integrations: Sequence[hooks.Integration], *, counted: bool = True) -> None:
        """Raise the framework's miss signal when it only probes for a hit (no computing)."""
        for integration in integrations:
            if integration.probing():
                if counted:
                    # The framework will call again for real: count that call's miss, not this one.
                    self.store.uncount_miss()
                raise integration.miss_error()

    def call(
        self,
        full: Full,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        integrations: Sequence[hooks.Integration],
    ) -> Any:
        """What happens on a miss of a plain function: lead the computation or wait for its leader.

        The first caller of a missing key leads: it takes the store's ticket
        (the single-flight call object) and computes ``func(*args, **kwargs)``
        inside it (so a recursive call is recognised), then settles
        (:meth:`_settle`). Identical callers that arrive meanwhile follow: they
        receive the leader's kept result (or its exception); a follower whose
        leader was abandoned (cancelled, interrupted) looks up again and may
        lead itself.

        The path of a leader without tiers is written out here (it is the
        miss compared with gr.cache); the others go on in :meth:`_call_on`.
        """
        namespace, key = full
        slot = (SESSION, namespace, key) if namespace else key  # store.slot_of, inlined
        # One critical section: the entry (stored since our lookup?), else follow or lead.
        kind, call = self._lead(slot, _ident(), Call, check_recursion)
        if kind or self.tiers:  # FOLLOW or FOUND (LEAD is 0), or a leader that asks the tiers first
            return self._call_on(full, slot, kind, call, func, args, kwargs, integrations)
        return self.led(slot, call, func, args, kwargs, integrations)

    def _leader(self) -> Led:
        """:attr:`led`, built once per cache: a closure over what it reads (the miss path
        compared with gr.cache, where each attribute or global lookup costs ~2%)."""
        store = self.store
        forget, uncount_miss, settle = store.forget, store.uncount_miss, store.settle
        work_get, work_set, work_reset = current_work.get, current_work.set, current_work.reset
        abandon, report_unkept = self._abandon, self.report_unkept
        perf, getsizeof, plain, str_size, bytes_size = _perf, _getsizeof, _PLAIN, _STR_SIZE, _BYTES_SIZE

        def led(
            slot: Hashable,
            call: Call,
            func: Callable[..., Any],
            args: tuple[Any, ...],
            kwargs: dict[str, Any] | None,
            integrations: Sequence[hooks.Integration],
        ) -> Any:
            for integration in integrations:
                if integration.probing():
                    resolve(forget(slot, call))
                    uncount_miss()  # the framework will call again for real
                    raise integration.miss_error()
            start = perf()
            # For recursion through a thread or context that inherits it (the thread check
            # in Store.lead does not see those).
            token = work_set((call, work_get()))
            try:
                result = func(*args, **kwargs) if kwargs else func(*args)
            except BaseException as exc:
                abandon(slot, call, exc, perf() - start)
                raise
            finally:
                work_reset(token)
            seconds = perf() - start
            # _settle, written out (no tiers to write through).
            kept: Any = ABANDONED
            size = -1
            try:
                try:
                    framed = result
                    for integration in integrations:
                        framed = integration.store_output(framed)
                    if framed is result and type(result) in plain:  # kept as it is, a leaf for sizeof
                        kept = result
                        # sys.getsizeof, inlined for an ASCII str and a bytes key (same figures, see _STR_SIZE)
                        size = (
                            str_size + len(result) if type(result) is str and result.isascii() else getsizeof(result)
                        ) + (bytes_size + len(slot) if type(slot) is bytes else sizeof(address_of(slot)[1]))
                    else:
                        kept = Framed(protect(framed)) if framed is not result else protect(result)
                except Exception as exc:  # noqa: BLE001 - any failure to copy means "do not cache"
                    report_unkept(exc, "the result")
                else:
                    if size < 0:
                        size = sizeof(kept) + sizeof(address_of(slot)[1])
            finally:
                settle(slot, call, kept, size, seconds)
                if call.future is not None:  # final once settled (see Store.settle)
                    _wake(call, kept)
            return result

        return led

    def _call_on(
        self,
        full: Full,
        slot: Hashable,
        kind: int,
        got: Any,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        integrations: Sequence[hooks.Integration],
    ) -> Any:
        """:meth:`call` after the first :meth:`Store.lead` said ``(kind, got)``: follow, serve, or lead with tiers."""
        while True:
            if kind == FOUND:
                return self.serve(got)
            if kind != FOLLOW:
                break
            served = self._followed(full, got.result())
            if served is not _RETRY:
                return served
            kind, got = self.store.lead(slot, _ident(), Call, check_recursion)
        call: Call = got  # the ticket of the result, too
        lease = None
        if self.tiers:
            try:
                found, lease = self._lead_across(full)
            except BaseException as exc:  # interrupted while another process computed
                self._abandon(slot, call, exc)
                raise
            if found is not None:
                return self._adopt(full, call, found)
        try:
            start = _perf()
            # For recursion through a thread or context that inherits it (the thread check
            # in Store.lead does not see those).
            token = current_work.set((call, current_work.get()))
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._abandon(slot, call, exc, _perf() - start)
                raise
            finally:
                current_work.reset(token)
            self._settle(full, slot, call, result, _perf() - start, integrations)
        finally:
            if lease is not None:
                _release(lease)  # after the result was written through: waiting processes find it
        return result

    async def acall(
        self,
        full: Full,
        func: Callable[..., Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        integrations: Sequence[hooks.Integration],
    ) -> Any:
        """:meth:`call` for async functions."""
        # The twin of call(): the same steps, awaiting where call() blocks or computes.
        slot = slot_of(*full)
        lead = self.store.lead
        while True:
            kind, got = lead(slot, 0, Call, check_recursion)  # a coroutine: told apart by context only
            if kind == FOUND:
                return self.serve(got)
            if kind != FOLLOW:
                break
            served = self._followed(full, await Flights.await_(got))
            if served is not _RETRY:
                return served
        call: Call = got
        lease = None
        if self.tiers:
            try:
                found, lease = await self._alead_across(full)
            except BaseException as exc:
                self._abandon(slot, call, exc)
                raise
            if found is not None:
                return self._adopt(full, call, found)
        try:
            start = _perf()
            token = current_work.set((call, current_work.get()))
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                self._abandon(slot, call, exc, _perf() - start)
                raise
            finally:
                current_work.reset(token)
            cost = _perf() - start
            kept = self._settle(full, slot, call, result, cost, integrations, through=False)
            if kept is not ABANDONED and self.tiers:
                await self._awrite_through(full, kept, cost)
        finally:
            if lease is not None:
                await _arelease(lease)
        return result

    def _computed(self, start: float) -> float:
        """Count one computation that began at ``start``; its duration in seconds."""
        seconds = _perf() - start
        self.store.computed(seconds)
        return seconds

    def _followed(self, full: Full, outcome: Any) -> Any:
        """A follower's answer once its leader settled; ``_RETRY`` if the leader left nothing."""
        if outcome is not ABANDONED:
            return self.deliver(outcome)  # shared with a computation in flight: not a hit
        entry = self.store.touch(*full)  # a hit
        if entry is not None:
            self.store.uncount_join(as_miss=False)
            return self.serve(entry)
        self.store.uncount_join(as_miss=True)  # it looks up again, and may compute
        return _RETRY

    def _abandon(self, slot: Hashable, call: Call, error: BaseException, seconds: float | None = None) -> None:
        """A leader's computation raised: followers get an ``Exception``; anything else abandons the call.

        ``seconds``: how long it computed (counted), None if it never started.
        """
        future = self.store.forget(slot, call, seconds)
        if isinstance(error, Exception):
            resolve(future, error=error)
        else:  # cancelled or interrupted: a follower takes over
            resolve(future)

    def _settle(
        self,
        full: Full,
        slot: Hashable,
        call: Call,
        result: Any,
        cost: float,
        integrations: Sequence[hooks.Integration],
        *,
        through: bool = True,
    ) -> Any:
        """A leader's result: keep it (if it can be kept safely), store it, hand it to the followers.

        Storing the kept value, forgetting the call and counting the
        computation are one critical section of the store
        (:meth:`Store.settle`); the followers are woken after it, the tiers
        written after that. Returns the kept value when it was stored
        (``ABANDONED`` otherwise), for an async caller that writes the tiers
        itself (``through=False``).
        """
        kept = ABANDONED
        size = -1  # nothing to store unless kept and sized
        stored = False
        try:
            try:
                kept = self.keep(result, integrations)
            except Exception as exc:  # noqa: BLE001 - any failure to copy means "do not cache"
                self.report_unkept(exc, "the result")
            else:
                key = full[1]
                # sizeof(), inlined for leaves (the usual string or number, and a bytes key).
                size = (_getsizeof(kept) if type(kept) in LEAF_TYPES else sizeof(kept)) + (
                    _getsizeof(key) if type(key) is bytes else sizeof(key)
                )
        finally:
            stored = self.store.settle(slot, call, kept, size, cost)
            if call.future is not None:  # final once settled (see Store.settle)
                _wake(call, kept)
        if stored and through and self.tiers:
            self._write_through(full, kept, cost)
        return kept if stored else ABANDONED

    # -- the miss path of generators ---------------------------------------------

    def _new_run(
        self,
        kind: Callable[..., RunT],
        full: Full,
        factory: Callable[[], Any],
        integrations: Sequence[hooks.Integration],
    ) -> RunT:
        """A shared run of a generator: every item kept, the whole run stored when it ends by itself."""
        start = _perf()
        ticket = self.store.begin(*full)

        def on_end() -> None:
            self.flights.end_run(full, made[0])
            self.store.end(ticket)

        def publish(items: list[Any]) -> None:
            self.save(full, tuple(items), ticket, cost=self._computed(start))

        run = kind(
            factory,
            keep=lambda value: self.keep(value, integrations),
            publish=publish,
            on_end=on_end,
            # Streaming goes on uncopied: every consumer still gets every item.
            on_unkept=lambda exc: self.report_unkept(exc, "an item yielded by this run"),
            ticket=ticket,
        )
        made: list[Run | AsyncRun] = [run]  # on_end() needs the run it belongs to
        return run

    def stream(
        self, full: Full, factory: Callable[[], Iterator[Any]], integrations: Sequence[hooks.Integration]
    ) -> Generator[Any, None, None]:
        """The items of a cached generator call: replayed on a hit, else from the shared run."""
        entry = self.lookup(full)
        if entry is not None:
            hooks.fire_hit_hooks()  # one hit, however many items it replays
            for kept in entry.value:
                yield self.deliver(kept)
            return
        self.probe_miss(integrations)
        run = self.flights.join_run(full, lambda: self._new_run(Run, full, factory, integrations))
        if run.consumers > 1:
            self.store.count_join()
        i = 0
        try:
            while True:
                more, kept = run.item(i)
                if not more:
                    return
                i += 1
                yield self.deliver(kept)  # computed now, not a hit
        finally:
            run.leave()

    async def astream(
        self, full: Full, factory: Callable[[], AsyncIterator[Any]], integrations: Sequence[hooks.Integration]
    ) -> AsyncGenerator[Any, None]:
        """:meth:`stream` for async generators."""
        # The twin of stream(): the same steps, awaiting the shared run's items.
        entry = self.lookup(full)
        if entry is not None:
            hooks.fire_hit_hooks()
            for kept in entry.value:
                yield self.deliver(kept)
            return
        self.probe_miss(integrations)
        run = self.flights.join_run(full, lambda: self._new_run(AsyncRun, full, factory, integrations))
        if run.consumers > 1:
            self.store.count_join()
        i = 0
        try:
            while True:
                more, kept = await run.item(i)
                if not more:
                    return
                i += 1
                yield self.deliver(kept)
        finally:
            await run.leave()

    # -- administration ----------------------------------------------------------

    def clear(self) -> None:
        """Drop every entry of every session, in memory and in the tiers; results in flight are not stored."""
        self.store.clear()
        for tier in self.tiers:
            self._tier_call(tier, "clear", self.keyspace.prefix())

    def clear_session(self, session_id: str) -> int:
        """Drop one session's entries and results in flight; how many entries left memory."""
        removed = self.store.clear_namespace(session_id)
        for tier in self.tiers:
            self._tier_call(tier, "clear", self.keyspace.prefix(session_id))
        return removed

    def delete(self, full: Full) -> bool:
        """Drop one entry (and its result in flight); True if it was live in memory."""
        removed = self.store.delete(*full)
        if self.tiers:
            name = self.keyspace.name(full[0], _key_bytes(full[1]))
            for tier in self.tiers:
                self._tier_call(tier, "delete", name)
        return removed

    def stats(self) -> CacheStats:
        """A snapshot of every counter of this cache (memory, tiers, computations)."""
        memory = self.store.stats()
        with self._counts:
            tier_hits = dict(self.tier_hits)
            guarded = sum(t.errors for t in self.tiers if isinstance(t, Guarded))
            return replace(
                memory,
                name=self.name,
                hits=memory.hits + sum(tier_hits.values()),
                hits_by_tier={**memory.hits_by_tier, **tier_hits},
                saved_seconds=memory.saved_seconds + self.tier_saved,
                remote_joins=self.remote_joins,
                tier_errors=self.tier_errors + guarded,
                verification_failures=self.verification_failures,
            )

    def __len__(self) -> int:
        return len(self.store)

    def __repr__(self) -> str:
        return f"<infercache.Engine {self.name!r} {len(self.store)} entries>"


def _lease_ttl(tier: Tier) -> float:
    ttl = getattr(tier, "lease_ttl", None)
    return float(ttl) if isinstance(ttl, (int, float)) and ttl > 0 else LEASE_SECONDS


def _release(lease: Lease | None) -> None:
    if lease is not None:
        try:
            lease.release()
        except Exception as exc:  # noqa: BLE001 - an unreleased lease expires by itself
            logger.warning("infercache: a lease was not released (%s: %s)", type(exc).__name__, exc)


async def _arelease(lease: Lease | None) -> None:
    # The twin of _release, awaiting the tier's async release.
    if lease is not None:
        try:
            await lease.arelease()
        except Exception as exc:  # noqa: BLE001 - an unreleased lease expires by itself
            logger.warning("infercache: a lease was not released (%s: %s)", type(exc).__name__, exc)


def _wake(call: Call, kept: Any) -> None:
    """Hand a settled call's kept value to its followers, and drop the future (the call may live on in
    child tasks' contexts; the value must not)."""
    future, call.future = call.future, None
    resolve(future, kept)


def _key_bytes(key: Hashable) -> bytes:
    if isinstance(key, bytes):
        return key
    raise TypeError(f"only content keys (bytes) reach the tiers, not {type(key).__name__}")
