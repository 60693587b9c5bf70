"""What a storage tier must implement.

A tier stores bytes under bytes names (made by :mod:`infercache.keyspace`;
values are records made by :mod:`infercache.codec`), beyond the in-memory
store that always stays in front of it. Four verbs, each with an async form:

- ``get(name) -> bytes | None``: the record, or None when absent or expired;
- ``set(name, record, ttl)``: store it, expiring after ``ttl`` seconds
  (None: the tier's own default or never);
- ``delete(name) -> bool``: remove one record; True if it was there;
- ``clear(prefix) -> int``: remove every record whose name starts with
  ``prefix`` (one function, one session, or all); how many were removed.

Two optional capabilities, with defaults that are correct for any tier:

- ``lease(name, ttl) -> Lease | None``: take the right to compute ``name``
  across processes (None: another process holds it). The default grants
  every request (no coordination beyond the process); the disk tier uses an
  OS file lock, the Redis tier a key with expiry renewed while computing;
- ``entries(prefix)``: iterate ``(name, size)`` of stored records, for the
  ``infercache ls|stats`` command (the default lists nothing).

A tier may raise :class:`~infercache.errors.TierError` (or any ``OSError``)
when its backend fails; the engine catches it, counts it, logs it and goes on
without the tier (fail open). It never sees Python objects and never decodes
what it stores.

The async forms default to running the sync verb in a worker thread, so a
tier with only blocking I/O is complete by implementing the four sync verbs;
a tier with a native async client overrides them.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Iterator

__all__ = ["Lease", "Tier"]


class Lease:
    """The right to compute one entry, held by one process until released (or it dies).

    The base class is the lease of a tier that does not coordinate processes:
    always granted, nothing to release. A coordinating tier returns a
    subclass whose :meth:`release` frees the entry for the next process, and
    which stays held while the holder lives (renewed in the background, or an
    OS lock), so a holder that dies frees it after at most the lease's expiry.
    """

    def release(self) -> None:
        """Give the lease up (only its holder can; idempotent, never raises)."""

    async def arelease(self) -> None:
        """Async :meth:`release`."""
        self.release()


class Tier(abc.ABC):
    """The storage interface: four verbs over bytes, sync and async."""

    #: Short name used in stats and logs ("memory", "disk", "redis").
    name: str = "tier"

    @abc.abstractmethod
    def get(self, name: bytes) -> bytes | None:
        """The record stored under ``name``, or None."""

    @abc.abstractmethod
    def set(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        """Store ``record`` under ``name``, replacing any older one."""

    @abc.abstractmethod
    def delete(self, name: bytes) -> bool:
        """Remove ``name``; True if it was stored."""

    @abc.abstractmethod
    def clear(self, prefix: bytes = b"") -> int:
        """Remove every record whose name starts with ``prefix``; how many."""

    def lease(self, name: bytes, ttl: float) -> Lease | None:
        """Take the lease on computing ``name`` for ``ttl`` seconds (renewed while held), or None if held.

        The default grants every request: processes are not coordinated.
        """
        return Lease()

    async def alease(self, name: bytes, ttl: float) -> Lease | None:
        """Async :meth:`lease`."""
        return await asyncio.to_thread(self.lease, name, ttl)

    def entries(self, prefix: bytes = b"") -> Iterator[tuple[bytes, int]]:
        """``(name, size in bytes)`` of each live record whose name starts with ``prefix``.

        For tools (``infercache ls``); the order is unspecified. The default lists nothing.
        """
        return iter(())

    def close(self) -> None:  # noqa: B027 - optional hook: most tiers hold nothing to release
        """Release connections or files (the tier is unusable afterwards)."""

    async def aget(self, name: bytes) -> bytes | None:
        """Async :meth:`get`."""
        return await asyncio.to_thread(self.get, name)

    async def aset(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        """Async :meth:`set`."""
        await asyncio.to_thread(self.set, name, record, ttl)

    async def adelete(self, name: bytes) -> bool:
        """Async :meth:`delete`."""
        return await asyncio.to_thread(self.delete, name)

    async def aclear(self, prefix: bytes = b"") -> int:
        """Async :meth:`clear`."""
        return await asyncio.to_thread(self.clear, prefix)
