"""A tier of bytes in a dictionary: the storage interface's reference implementation.

It shares nothing between processes and survives nothing, so it is no use in
production beside the in-memory store; it exists to show the smallest correct
:class:`~infercache.tiers.Tier` and to run the engine's tier path (codec
round trip, promotion into memory, write-through) in tests without a server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .base import Tier

__all__ = ["MemoryTier"]


class MemoryTier(Tier):
    """Records in a dict, with expiry; thread-safe."""

    name = "memory"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[bytes, tuple[bytes, float | None]] = {}

    def get(self, name: bytes) -> bytes | None:
        with self._lock:
            found = self._records.get(name)
            if found is None:
                return None
            record, expires = found
            if expires is not None and expires <= self._clock():
                del self._records[name]
                return None
            return record

    def set(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        expires = None if ttl is None else self._clock() + ttl
        with self._lock:
            self._records[name] = (bytes(record), expires)

    def delete(self, name: bytes) -> bool:
        with self._lock:
            return self._records.pop(name, None) is not None

    def clear(self, prefix: bytes = b"") -> int:
        with self._lock:
            doomed = [n for n in self._records if n.startswith(prefix)]
            for n in doomed:
                del self._records[n]
            return len(doomed)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
