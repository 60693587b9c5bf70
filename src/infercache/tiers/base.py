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

__all__ = ["Tier"]


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
