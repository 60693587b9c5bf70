"""The bounded LRU store behind every cache.

One :class:`Store` holds the entries of one cached function or one ``Cache``.
Entries are addressed by ``(namespace, key)``: the namespace is ``""`` for
shared caches and the session id for per-session ones, so all sessions share
one set of bounds (as the guide requires) while never seeing each other's
entries.

Inside the store an entry sits in one LRU dict under its *slot*
(:func:`slot_of`): the key itself in namespace ``""``, and
``(SESSION, namespace, key)`` in a session's namespace, where ``SESSION`` is a
private marker no key can hold, so a shared key never equals a session's.
A shared cache's hit then needs no tuple built (the decorator's inlined hit
path looks the key up as is), and only sessions are indexed by namespace.

Bounds are hard: after every :meth:`Store.set` the entry count is at most
``max_size`` (when non-zero) and the accounted bytes are at most
``max_memory`` (when set). An entry larger than ``max_memory`` on its own is
refused rather than stored (and the store warns once). Expired entries (TTL)
are never returned; they are dropped when met, swept before counting, and
go before any live entry when a bound is reached.

The store is thread-safe: one lock guards each store, held only for
dictionary operations (never while computing sizes or values).

Invalidation is scoped exactly, and checked in one place, :meth:`Store.set`.
A value computed outside the lock (a function's result, a ``Cache.set`` being
copied) is written with the :class:`Ticket` taken before computing it
(:meth:`Store.begin`; for the leader of a function's miss, its single-flight
call registered by :meth:`Store.lead`). The store keeps the tickets in
flight; an invalidation marks the ones it covers stale, and ``set`` (or
:meth:`Store.settle`) refuses a stale ticket:

- ``delete(ns, key)`` covers the tickets of that one key;
- ``clear_namespace(ns)`` (a session ending) covers that namespace's tickets;
- ``clear()`` covers every ticket.

So a result computed before an invalidation never outlives it, and one user
closing a tab (``clear_namespace``) never discards another user's running
computation. :attr:`Ticket.stale` is also what the single-flight table reads
to keep callers that arrive after an invalidation from joining a computation
it covers (:mod:`infercache.flight`).

The single-flight table of function calls lives here, under the same lock as
the entries, so a miss costs two critical sections: :meth:`Store.lead` (the
entry, stored since the caller's lookup? else follow the call in flight,
else register a new one) and :meth:`Store.settle` (store the value, forget
the call, count the computation). An invalidation takes the calls it covers
out of the table, so callers arriving afterwards lead anew.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field
from logging import DEBUG
from typing import Any, NamedTuple

from .config import check_max_size, check_ttl
from .log import logger

_debug_on = logger.isEnabledFor  # the check logger.debug() makes first, without the call

__all__ = [
    "EVICTION_REASONS",
    "FOLLOW",
    "FOUND",
    "LEAD",
    "CacheStats",
    "Entry",
    "LookupParts",
    "Store",
    "Ticket",
    "slot_of",
]

EVICTION_REASONS = ("size", "memory", "ttl", "session", "cleared", "deleted", "oversized")
"""Why entries leave a store: the ``max_size`` or ``max_memory`` bound, expiry, their
session closing, a clear, a delete, or (``oversized``) a value refused for being
larger than ``max_memory`` on its own."""


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of one cache's counters (exact: every event is counted, none sampled).

    Every call is counted once, as one of: ``hits`` (served from the cache,
    from memory or from a store: ``hits_by_tier``, ``"memory"``, ``"disk"``,
    ``"redis"``), ``misses`` (found nothing anywhere and computed), ``joins``
    (waited for an identical computation in flight in this process) or
    ``remote_joins`` (waited for another process's computation).
    ``saved_seconds`` adds, for every hit, how long the computation of that
    entry took; ``compute_seconds`` is the time spent computing
    (``computations`` runs). ``evicted`` counts entries that left by reason
    (see :data:`EVICTION_REASONS`); ``evictions`` is the ``size`` and
    ``memory`` part of it and ``expirations`` the ``ttl`` part.
    ``tier_errors`` counts store operations that failed (the call went on
    without the store); ``verification_failures`` records that were dropped
    because they failed authentication or did not decode.
    """

    hits: int
    misses: int
    joins: int
    evictions: int
    expirations: int
    size: int
    memory: int
    max_size: int
    max_memory: int | None
    saved_seconds: float
    name: str = ""
    hits_by_tier: dict[str, int] = field(default_factory=dict)
    remote_joins: int = 0
    evicted: dict[str, int] = field(default_factory=dict)
    compute_seconds: float = 0.0
    computations: int = 0
    tier_errors: int = 0
    verification_failures: int = 0

    @property
    def hit_ratio(self) -> float:
        """Hits over calls (hits, misses and joins), 0.0 before the first call."""
        total = self.hits + self.misses + self.joins + self.remote_joins
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The counters as JSON-serializable data (what :func:`infercache.stats` returns per cache)."""
        out = asdict(self)
        out["hit_ratio"] = self.hit_ratio
        return out


class Entry:
    """One stored value with its accounting."""

    __slots__ = ("cost", "expires", "raw_key", "size", "value")

    def __init__(
        self, value: Any, size: int, expires: float | None, raw_key: Any, cost: float
    ) -> None:
        self.value = value
        self.size = size
        self.expires = expires
        self.raw_key = raw_key
        self.cost = cost


_ALL: Any = object()  # "every key" for Store._invalidate


class _Session:
    """The type of :data:`SESSION`: one instance, equal only to itself."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SESSION"


SESSION = _Session()
"""The first item of a session entry's slot: private, so no key (plain tuples included) equals a slot."""


def slot_of(namespace: str, key: Hashable) -> Hashable:
    """Where ``(namespace, key)`` sits in :attr:`Store._data`: ``key`` itself in ``""``, else a marked tuple."""
    return (SESSION, namespace, key) if namespace else key


def address_of(slot: Hashable) -> tuple[str, Hashable]:
    """The ``(namespace, key)`` of a slot (the inverse of :func:`slot_of`)."""
    if type(slot) is tuple and len(slot) == 3 and slot[0] is SESSION:
        return slot[1], slot[2]
    return "", slot


class Ticket:
    """One value being computed for ``(namespace, key)``, from before its computation began.

    ``stale`` turns True (under the store's lock, never back) when a
    ``delete``/``clear_namespace``/``clear`` covering this key runs before the
    value is stored; the store then refuses it.
    """

    __slots__ = ("key", "namespace", "stale")

    def __init__(self, namespace: str = "", key: Hashable = None) -> None:
        self.namespace = namespace
        self.key = key
        self.stale = False

    def __repr__(self) -> str:
        state = "stale" if self.stale else "live"
        return f"<Ticket {self.namespace!r}/{self.key!r} {state}>"


RemoveListener = Callable[[str, Hashable, Entry], None]

LEAD = 0
"""What :meth:`Store.lead` says when the caller leads: the new call is registered, it computes."""
FOLLOW = 1
"""What :meth:`Store.lead` says when an identical call is in flight: wait on the future it returns."""
FOUND = 2
"""What :meth:`Store.lead` says when the entry is there (stored since the caller's lookup)."""


class LookupParts(NamedTuple):
    """The bound pieces of :meth:`Store.lookup_slot`, for a caller that inlines it (see there)."""

    get: Callable[[Hashable], Entry | None]
    """The entry under a slot, live or expired (lock held)."""
    to_end: Callable[[Hashable], None]
    """Mark a slot most recently used (lock held)."""
    acquire: Callable[[], bool]
    release: Callable[[], None]
    clock: Callable[[], float]
    """The clock ``Entry.expires`` is compared with."""


class Store:
    """A thread-safe LRU mapping ``(namespace, key) -> Entry`` with hard bounds."""

    def __init__(
        self,
        max_size: int = 128,
        max_memory: int | None = None,
        ttl: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_size = check_max_size(max_size)
        self.max_memory = max_memory
        self.ttl = check_ttl(ttl)
        # Bounded by count alone, nothing expires: what Store.settle's short path covers.
        self._lean = max_memory is None and self.ttl is None
        self._clock = clock
        # Entries by slot (slot_of), least recently used first. Never replaced: the
        # decorator's inlined hit path holds its bound methods.
        self._data: OrderedDict[Hashable, Entry] = OrderedDict()
        # With a ttl, the slots in the order they expire (insertion order: one ttl for all).
        self._expiry: OrderedDict[Hashable, None] = OrderedDict()
        # The keys of each session namespace (never of the shared namespace "").
        self._by_namespace: dict[str, dict[Hashable, None]] = {}
        self._memory = 0
        self._lock = threading.RLock()
        self._acquire = self._lock.acquire
        self._release = self._lock.release
        self._listeners: list[RemoveListener] = []
        self._warned_too_big = False
        # Tickets of values being computed (begin()); identity-hashed (each is one computation).
        self._inflight: set[Ticket] = set()
        # The single-flight table of function calls: slot -> the leader's call (a Ticket), guarded
        # by the same lock as the entries, so a miss registers and a leader settles in one round.
        self._calls: dict[Hashable, Ticket] = {}
        self.computations = 0
        self.compute_seconds = 0.0
        self.settle: Callable[[Hashable, Any, Any, int, float], bool] = self._settler()
        """``settle(slot, call, value, size, seconds)``: a leader's computation ended: store
        ``value`` under its call and forget the call, in one round.

        ``value`` (already protected, ``size`` bytes; a negative size stores
        nothing) is stored, costing ``seconds``, only while ``call`` is still
        the slot's call: an invalidation covering it meanwhile dropped it from
        the table. Counts the computation. Returns whether it was stored.

        Once this returns, no caller can start following ``call`` (it is out
        of the table): ``call.future`` is then final, None when nobody waits,
        and the caller resolves it outside the lock.
        """
        self.hits = 0
        self.misses = 0
        self.joins = 0
        # Evictions to stay within max_size and within max_memory (``evictions`` is their sum).
        self.size_evictions = 0
        self.memory_evictions = 0
        self.expirations = 0
        self.saved_seconds = 0.0
        # Entries gone by reason, besides the bounds (evictions) and expiry (expirations).
        self.dropped = dict.fromkeys(("session", "cleared", "deleted", "oversized"), 0)

    # -- lookups -------------------------------------------------------------

    def get(self, namespace: str, key: Hashable) -> Entry | None:
        """The live entry for ``key``, marked most recently used; counts a hit or miss."""
        return self.lookup_slot((SESSION, namespace, key) if namespace else key)

    def lookup(self, full: tuple[str, Hashable]) -> Entry | None:
        """:meth:`get` for a ``(namespace, key)`` pair already built."""
        namespace, key = full
        return self.lookup_slot((SESSION, namespace, key) if namespace else key)

    def lookup_slot(self, slot: Hashable) -> Entry | None:
        """:meth:`get` by slot (:func:`slot_of`); for a shared cache the slot is the key itself."""
        # acquire()/release() rather than ``with``: half the cost on the hottest line.
        self._acquire()
        try:
            entry = self._data.get(slot)
            if entry is not None:
                if entry.expires is None or entry.expires > self._clock():
                    self._data.move_to_end(slot)
                    self.hits += 1
                    self.saved_seconds += entry.cost
                    return entry
                self.expire(slot, entry)
                return None
            self.misses += 1
            return None
        finally:
            self._release()

    def lookup_parts(self) -> LookupParts:
        """What a caller needs to inline :meth:`lookup_slot` (the decorator's hit path, where a call costs ~10%).

        The inlined form must do what ``lookup_slot`` does, between
        ``acquire()`` and ``release()``: on a live entry ``to_end(slot)``,
        ``hits += 1`` and ``saved_seconds += entry.cost``; on no entry
        ``misses += 1``; on an expired one :meth:`expire`.
        """
        return LookupParts(self._data.get, self._data.move_to_end, self._acquire, self._release, self._clock)

    def calls_table(self) -> dict[Hashable, Ticket]:
        """The single-flight table itself, for a caller that inlines :meth:`lead`'s registering step.

        The decorator's inlined lookup, on a miss and under the same lock
        acquisition (``lookup_parts().acquire``), registers a new call for a
        slot that has none (``table[slot] = call``): the caller then leads, as
        after ``(LEAD, call)``, and settles with :meth:`settle` (or
        :meth:`forget`). A slot with a call in flight goes through
        :meth:`lead` (follow, recursion check). The dict is never replaced.
        """
        return self._calls

    def expire(self, slot: Hashable, entry: Entry) -> None:
        """Drop the expired ``entry`` a lookup met under ``slot``: an expiration and a miss (lock held)."""
        self._remove(slot, entry)
        self.expirations += 1
        self.misses += 1

    def peek(self, namespace: str, key: Hashable) -> Entry | None:
        """The live entry for ``key`` without touching LRU order or counters."""
        with self._lock:
            entry = self._data.get(slot_of(namespace, key))
            if entry is None or (entry.expires is not None and entry.expires <= self._clock()):
                return None
            return entry

    def touch(self, namespace: str, key: Hashable) -> Entry | None:
        """Like :meth:`get` but for callers that decided on a hit themselves (no miss counted)."""
        slot = slot_of(namespace, key)
        with self._lock:
            entry = self._data.get(slot)
            if entry is None or (entry.expires is not None and entry.expires <= self._clock()):
                return None
            self._data.move_to_end(slot)
            self.hits += 1
            self.saved_seconds += entry.cost
            return entry

    # -- computations in flight ------------------------------------------------

    def begin(self, namespace: str, key: Hashable) -> Ticket:
        """A ticket for a value of ``(namespace, key)`` about to be computed (pass it to :meth:`set`)."""
        ticket = Ticket(namespace, key)
        with self._lock:
            self._inflight.add(ticket)
        return ticket

    def end(self, ticket: Ticket) -> None:
        """Forget ``ticket`` without storing anything (its computation failed or was abandoned)."""
        with self._lock:
            self._inflight.discard(ticket)

    def lead(
        self,
        slot: Hashable,
        owner: int,
        make: Callable[[int], Ticket],
        check: Callable[[Any, int], None],
    ) -> tuple[int, Any]:
        """Lookup-or-register for a caller that just missed ``slot``, in one critical section.

        ``(FOUND, entry)`` when the entry is live now (a leader stored it since
        the caller's lookup; no counter touched); else ``(FOLLOW, future)``
        when a call of ``slot`` is in flight: the caller's miss becomes a join
        and it waits on the call's future (made here, so only a contended key
        pays for one); else ``(LEAD, call)``: ``make(owner)`` is registered as
        the slot's call, and is the ticket of its result (:meth:`settle`).
        ``check(call, owner)`` runs before following and raises when the caller
        runs inside that very call (recursion).
        """
        self._acquire()  # acquire()/release(): on every miss
        try:
            entry = self._data.get(slot)
            if entry is not None and (entry.expires is None or entry.expires > self._clock()):
                return FOUND, entry
            call: Any = self._calls.get(slot)
            if call is not None:
                check(call, owner)
                if not call.stale:
                    future = call.future
                    if future is None:
                        future = call.future = concurrent.futures.Future()
                    self.joins += 1
                    self.misses -= 1
                    return FOLLOW, future
            call = make(owner)
            self._calls[slot] = call
            return LEAD, call
        finally:
            self._release()

    def _settler(self) -> Callable[[Hashable, Any, Any, int, float], bool]:
        """:attr:`settle`, built once per store: a closure over the tables it touches (it runs
        on every miss, where each attribute lookup costs ~1%)."""
        acquire, release, calls, data = self._acquire, self._release, self._calls, self._data
        by_namespace, listeners, popitem = self._by_namespace, self._listeners, self._data.popitem
        lean = self._lean

        def settle(slot: Hashable, call: Any, value: Any, size: int, seconds: float) -> bool:
            acquire()
            try:
                self.computations += 1
                self.compute_seconds += seconds
                other = calls.pop(slot, None)
                if other is not call:
                    if other is not None:  # a newer call of the slot (ours was invalidated): it stays
                        calls[slot] = other
                    return False
                if size < 0:
                    return False
                if lean and type(slot) is not tuple and slot not in data:
                    # _put for the usual case (not a session's slot, which _put indexes; no ttl, no
                    # max_memory): a new entry, and at most the least recently used one out.
                    data[slot] = Entry(value, size, None, None, seconds)
                    if len(data) > self.max_size > 0:
                        out_slot, out = popitem(False)
                        self.size_evictions += 1
                        if by_namespace or listeners:
                            self._memory += size
                            self._forget_entry(out_slot, out)
                        else:
                            self._memory += size - out.size
                        if _debug_on(DEBUG):
                            logger.debug("infercache: evicted %d entries to stay within the cache's bounds", 1)
                    else:
                        self._memory += size
                    return True
                return self._put(slot, value, size, None, seconds)
            finally:
                release()

        return settle

    def forget(
        self, slot: Hashable, call: Any, seconds: float | None = None
    ) -> concurrent.futures.Future[Any] | None:
        """Forget ``slot``'s ``call`` without storing anything; the future its followers wait on.

        With ``seconds``, also counts the computation (a leader that raised).
        """
        with self._lock:
            if seconds is not None:
                self.computations += 1
                self.compute_seconds += seconds
            if self._calls.get(slot) is call:
                del self._calls[slot]
            future: concurrent.futures.Future[Any] | None = call.future
            call.future = None
            return future

    def computed(self, seconds: float) -> None:
        """Count one computation of ``seconds`` (one that :meth:`settle` did not count)."""
        with self._lock:
            self.computations += 1
            self.compute_seconds += seconds

    def in_flight(self) -> int:
        """How many function calls are registered in flight (see :meth:`lead`)."""
        with self._lock:
            return len(self._calls)

    def _invalidate(self, namespace: str | None = None, key: Any = _ALL) -> None:
        # Lock held. Marks stale and forgets the tickets covered (all, a namespace's, or one key's).
        if namespace is None:
            covered = list(self._inflight)
        elif key is _ALL:
            covered = [t for t in self._inflight if t.namespace == namespace]
        else:
            covered = [t for t in self._inflight if t.namespace == namespace and t.key == key]
        for ticket in covered:
            ticket.stale = True
            self._inflight.discard(ticket)
        calls = self._calls
        if calls:
            # A covered call leaves the table: callers from now on lead anew instead of joining it.
            if namespace is None:
                slots = list(calls)
            elif key is _ALL:
                slots = [s for s in calls if address_of(s)[0] == namespace]
            else:
                slot = slot_of(namespace, key)
                slots = [slot] if slot in calls else []
            for slot in slots:
                calls.pop(slot).stale = True

    # -- updates -------------------------------------------------------------

    def set(
        self,
        namespace: str,
        key: Hashable,
        value: Any,
        size: int,
        *,
        raw_key: Any = None,
        cost: float = 0.0,
        ticket: Ticket | None = None,
        on_stored: Callable[[], None] | None = None,
    ) -> bool:
        """Store ``value`` (already protected) and evict until within bounds.

        Returns False, and removes any older value under the same key, when the
        entry alone is larger than ``max_memory``. With ``ticket`` (taken with
        :meth:`begin` before computing ``value``), the value
        is dropped, and False returned, if an invalidation covering its key
        ran meanwhile (or the ticket was already used or ended): a result
        computed before a clear must not outlive it.
        """
        if size < 0:
            raise ValueError(f"entry size must be >= 0, got {size}")
        slot = slot_of(namespace, key)
        self._acquire()
        try:
            if ticket is not None:
                if self._calls.get(slot) is ticket:  # a leader's call (lead()) as the ticket
                    del self._calls[slot]
                else:
                    try:
                        self._inflight.remove(ticket)
                    except KeyError:  # covered by an invalidation, or already used
                        return False
            if not self._put(slot, value, size, raw_key, cost):
                return False
            if on_stored is not None and slot in self._data:
                on_stored()
            return True
        finally:
            self._release()

    def delete(self, namespace: str, key: Hashable) -> bool:
        """Remove one entry, and the values of that key in flight; True if it was present and live."""
        slot = slot_of(namespace, key)
        with self._lock:
            if self._inflight or self._calls:
                self._invalidate(namespace, key)
            entry = self._data.get(slot)
            if entry is None:
                return False
            live = entry.expires is None or entry.expires > self._clock()
            self._remove(slot, entry)
            if live:
                self.dropped["deleted"] += 1
            else:
                self.expirations += 1
            return live

    def clear(self) -> None:
        """Remove every entry of every namespace and every value in flight (counters are kept)."""
        with self._lock:
            self._invalidate()
            self._sweep_if_ttl()
            self.dropped["cleared"] += len(self._data)
            for slot, entry in list(self._data.items()):
                self._remove(slot, entry)

    def clear_namespace(self, namespace: str) -> int:
        """Remove one namespace's entries and values in flight; returns how many entries were removed."""
        with self._lock:
            if self._inflight or self._calls:
                self._invalidate(namespace)
            self._sweep_if_ttl()
            if namespace:
                slots: list[Hashable] = [(SESSION, namespace, key) for key in self._by_namespace.get(namespace, ())]
            else:
                slots = [slot for slot in self._data if address_of(slot)[0] == ""]
            for slot in slots:
                self._remove(slot, self._data[slot])
            self.dropped["session"] += len(slots)
            return len(slots)

    def search(
        self, namespace: str, choose: Callable[[Callable[[Hashable], bool]], Hashable | None]
    ) -> Entry | None:
        """A lookup where the caller picks the key under the store's lock.

        ``choose(is_live)`` returns the key to serve (asking ``is_live(key)``
        of candidates) or None; the chosen entry counts as a hit and becomes
        most recently used, None counts as a miss. For indexes kept beside the
        store, such as ``Cache``'s prefix tree, which must agree with it.
        """
        def is_live(key: Hashable) -> bool:
            entry = self._data.get(slot_of(namespace, key))
            return entry is not None and (entry.expires is None or entry.expires > self._clock())

        with self._lock:
            key = choose(is_live)
            if key is None or not is_live(key):
                self.misses += 1
                return None
            return self.touch(namespace, key)

    def add_listener(self, listener: RemoveListener) -> None:
        """Call ``listener(namespace, key, entry)`` (under the lock) whenever an entry leaves."""
        with self._lock:
            self._listeners.append(listener)

    # -- views ---------------------------------------------------------------

    def entries(self, namespace: str | None = None) -> list[tuple[Hashable, Entry]]:
        """Live ``(key, entry)`` pairs, least recently used first (one namespace or all)."""
        with self._lock:
            self.purge_expired()
            pairs = [(address_of(slot), e) for slot, e in self._data.items()]
            if namespace is None:
                return [(k, e) for (_, k), e in pairs]
            return [(k, e) for (ns, k), e in pairs if ns == namespace]

    def values(self, namespace: str) -> list[Entry]:
        """Live entries of one namespace, least recently used first."""
        with self._lock:
            self.purge_expired()
            if not self._by_namespace:  # no session entries: every entry is in ""
                return list(self._data.values()) if namespace == "" else []
            if namespace and namespace not in self._by_namespace:
                return []
            return [e for slot, e in self._data.items() if address_of(slot)[0] == namespace]

    def purge_expired(self) -> int:
        """Drop every expired entry now; returns how many were dropped."""
        if self.ttl is None:
            return 0
        with self._lock:
            return self._sweep()

    def __len__(self) -> int:
        with self._lock:
            self.purge_expired()
            return len(self._data)

    @property
    def evictions(self) -> int:
        """Entries evicted to stay within the bounds (``size_evictions + memory_evictions``)."""
        return self.size_evictions + self.memory_evictions

    @property
    def memory(self) -> int:
        """Accounted bytes of all entries."""
        return self._memory

    def stats(self) -> CacheStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            self.purge_expired()
            return CacheStats(
                hits=self.hits,
                misses=self.misses,
                joins=self.joins,
                evictions=self.evictions,
                expirations=self.expirations,
                size=len(self._data),
                memory=self._memory,
                max_size=self.max_size,
                max_memory=self.max_memory,
                saved_seconds=self.saved_seconds,
                hits_by_tier={"memory": self.hits},
                computations=self.computations,
                compute_seconds=self.compute_seconds,
                evicted={
                    "size": self.size_evictions,
                    "memory": self.memory_evictions,
                    "ttl": self.expirations,
                    **self.dropped,
                },
            )

    def uncount_miss(self) -> None:
        """Take back one miss (a framework's probe that will be followed by the real call)."""
        with self._lock:
            self.misses -= 1

    def count_join(self) -> None:
        """A caller that missed waits for an identical computation in flight: a join, not a miss."""
        with self._lock:
            self.joins += 1
            self.misses -= 1

    def uncount_join(self, *, as_miss: bool) -> None:
        """Take a join back: the computation left nothing (``as_miss``: the caller computes) or the
        caller was then served from the store (a hit, counted there)."""
        with self._lock:
            self.joins -= 1
            if as_miss:
                self.misses += 1

    # -- internals (lock held) -----------------------------------------------

    def _sweep(self) -> int:
        # Expired entries leave oldest first; the cost is the number that expired.
        now = self._clock()
        expiry, data = self._expiry, self._data
        dropped = 0
        while expiry:
            slot = next(iter(expiry))
            entry = data[slot]
            if entry.expires is not None and entry.expires > now:
                break
            self._remove(slot, entry)
            dropped += 1
        self.expirations += dropped
        return dropped

    def _sweep_if_ttl(self) -> None:
        # Expired entries about to be removed for another reason are counted as expired.
        if self.ttl is not None:
            self._sweep()

    def _put(self, slot: Hashable, value: Any, size: int, raw_key: Any, cost: float) -> bool:
        """Store one entry under ``slot`` and evict down to the bounds; False when it alone is too big.

        Any older entry of the slot goes first (also when the new one is refused).
        """
        data = self._data
        old = data.get(slot)
        if old is not None:
            self._remove(slot, old)
        max_memory = self.max_memory
        if max_memory is not None and size > max_memory:
            self.dropped["oversized"] += 1
            if not self._warned_too_big:
                self._warned_too_big = True
                logger.warning(
                    "infercache: an entry of %d bytes is larger than max_memory=%d bytes "
                    "and was not cached (logged once per cache)",
                    size,
                    max_memory,
                )
            return False
        if self.ttl is None:
            data[slot] = Entry(value, size, None, raw_key, cost)
        else:
            data[slot] = Entry(value, size, self._clock() + self.ttl, raw_key, cost)
            self._expiry[slot] = None
        if type(slot) is tuple and len(slot) == 3 and slot[0] is SESSION:
            keys = self._by_namespace.get(slot[1])
            if keys is None:
                self._by_namespace[slot[1]] = {slot[2]: None}
            else:
                keys[slot[2]] = None
        self._memory += size
        max_size = self.max_size
        if (max_size and len(data) > max_size) or (max_memory is not None and self._memory > max_memory):
            self._evict()
        return True

    def _evict(self) -> None:
        data = self._data
        if self.ttl is not None and (
            (self.max_size and len(data) > self.max_size)
            or (self.max_memory is not None and self._memory > self.max_memory)
        ):
            self._sweep()  # an expired entry goes before any live one
        wave = 0
        while data and (
            (self.max_size and len(data) > self.max_size)
            or (self.max_memory is not None and self._memory > self.max_memory)
        ):
            if self.max_size and len(data) > self.max_size:
                self.size_evictions += 1
            else:
                self.memory_evictions += 1
            slot, entry = data.popitem(last=False)  # the least recently used
            self._forget_entry(slot, entry)
            wave += 1
        if wave and _debug_on(DEBUG):
            logger.debug("infercache: evicted %d entries to stay within the cache's bounds", wave)

    def _remove(self, slot: Hashable, entry: Entry) -> None:
        del self._data[slot]
        self._forget_entry(slot, entry)

    def _forget_entry(self, slot: Hashable, entry: Entry) -> None:
        # The bookkeeping of an entry that just left _data: expiry order, bytes, index, listeners.
        if entry.expires is not None:
            self._expiry.pop(slot, None)
        self._memory -= entry.size
        if not self._by_namespace and not self._listeners:
            return  # a shared cache's entry, and nobody to tell
        namespace, key = address_of(slot)
        if namespace:
            keys = self._by_namespace.get(namespace)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del self._by_namespace[namespace]
        for listener in self._listeners:
            listener(namespace, key, entry)
