"""``Cache``: explicit get/set caching inside a function.

Use it as a default parameter value (``def f(prompt, c=Cache()):``): the
default is created once, so every call sees the same instance, as the guide
describes. Keys are hashed by content like ``@cache`` arguments; values are
keyword data kept under the same mutation-safety policy (what ``get`` returns
may be mutated freely). ``longest_prefix`` answers the KV-cache question
"which stored prompt is the longest prefix of this one?" from a radix tree in
time proportional to the prompt, not to the number of entries.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

from . import hooks, sessions
from .keys import ALGORITHMS, make_key
from .prefix import PrefixIndex
from .safety import protect, release
from .sizes import sizeof
from .store import CacheStats, Entry, Store, parse_memory

__all__ = ["Cache"]

_framework_classes: dict[tuple[type, ...], type] = {}
_framework_lock = threading.Lock()


class Cache:
    """A thread-safe, bounded, content-keyed cache with manual ``get``/``set``.

    Args:
        max_size: most entries kept (least recently used evicted first); 0 for
            unlimited.
        max_memory: most bytes kept, as an int or a string like ``"512mb"``;
            a hard bound.
        per_session: give each user session its own entries; the bounds apply
            to all sessions together. Outside any session, one shared anonymous
            namespace is used.
        ttl: seconds an entry stays valid.
        digest: ``"blake3"`` (default, cryptographic) or ``"xxh3"`` (trusted
            inputs only).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Cache:  # noqa: PYI034 - may be a framework subclass
        bases = tuple(b for g in hooks.active() for b in g.cache_bases())
        made = cls
        if bases and cls is Cache:
            with _framework_lock:
                made = _framework_classes.get(bases)  # type: ignore[assignment]
                if made is None:
                    made = type("Cache", (Cache, *bases), {"__module__": __name__})
                    _framework_classes[bases] = made
        return object.__new__(made)

    def __init__(
        self,
        *,
        max_size: int = 128,
        max_memory: int | str | None = None,
        per_session: bool = False,
        ttl: float | None = None,
        digest: str = "blake3",
    ) -> None:
        if digest not in ALGORITHMS:
            raise ValueError(f"digest must be one of {ALGORITHMS}, not {digest!r}")
        self.per_session = bool(per_session)
        self.digest = digest
        self._entries = Store(max_size=max_size, max_memory=parse_memory(max_memory), ttl=ttl)
        self._prefixes: dict[str, PrefixIndex] = {}
        self._entries.add_listener(self._forget_prefix)
        if self.per_session:
            sessions.register_store(self._entries)

    # -- the guide's interface -------------------------------------------------

    def get(self, key: Any) -> dict[str, Any] | None:
        """The keyword data stored under ``key`` (a fresh dict), or None on a miss."""
        ns, k = self._locate(key)
        entry = self._entries.get(ns, k)
        if entry is None:
            return None
        return self._hit(entry)

    def set(self, key: Any, **data: Any) -> None:
        """Store keyword ``data`` under ``key``, replacing what was there.

        Data larger than ``max_memory`` on its own is not stored (a warning is
        given once); any older data under ``key`` is dropped then too. A ``set``
        still copying its data when ``clear()``, ``clear_session()`` of its
        session or ``delete(key)`` runs is dropped, like a cached function's
        result computed across an invalidation: nothing from before a clear
        outlives it.
        """
        ns, k = self._locate(key)
        store = self._entries
        ticket = store.begin(ns, k)
        try:
            kept_key = protect(key)
            kept = {name: protect(value) for name, value in data.items()}
            size = sizeof(kept) + sizeof(kept_key) + sizeof(k)
        except BaseException:
            store.end(ticket)
            raise
        with store._lock:
            stored = store.set(ns, k, kept, size, raw_key=kept_key, ticket=ticket)
            if stored and PrefixIndex.kind(key) is not None:
                # One radix slot can stand for several entries ([1, 2] and (1, 2) are two keys).
                index = self._prefixes.setdefault(ns, PrefixIndex())
                slot = index.get(key)
                if slot is None:
                    index.add(key, {k})
                else:
                    slot.add(k)

    def keys(self) -> list[Any]:
        """The stored keys (of the current session when per-session), oldest use first."""
        return [
            e.raw_key if type(e.raw_key) is str else release(e.raw_key)
            for e in self._entries.values(self._namespace())
        ]

    def delete(self, key: Any) -> bool:
        """Remove ``key`` (and a ``set`` of it in progress); True if it was stored."""
        ns, k = self._locate(key)
        return self._entries.delete(ns, k)

    def clear(self) -> None:
        """Remove every entry of every session (and every ``set`` in progress)."""
        self._entries.clear()

    def clear_session(self, session_id: str) -> int:
        """Remove one session's entries (other sessions are untouched); returns how many were removed."""
        return self._entries.clear_namespace(session_id)

    def __contains__(self, key: Any) -> bool:
        ns, k = self._locate(key)
        return self._entries.peek(ns, k) is not None

    def __len__(self) -> int:
        """Entries of all sessions together (the count ``max_size`` bounds)."""
        return len(self._entries)

    def stats(self) -> CacheStats:
        """Hits, misses, evictions, size, memory and hit ratio of this cache."""
        return self._entries.stats()

    # -- prefix reuse ------------------------------------------------------------

    def longest_prefix(self, key: Any, *, strict: bool = False) -> tuple[Any, dict[str, Any]] | None:
        """The longest stored key that is a prefix of ``key``, with its data.

        ``key`` is a ``str``, ``bytes`` or a sequence of ints (token ids); only
        stored keys of the same kind match. With ``strict=True`` an exact match
        is excluded. Returns ``(stored_key, data)`` or None; a hit counts as a
        hit and marks the entry recently used. Cost grows with ``len(key)``, not
        with the number of entries.
        """
        if PrefixIndex.kind(key) is None:
            raise TypeError(
                "longest_prefix takes a str, bytes or a sequence of ints (token ids), "
                f"not {type(key).__name__}"
            )
        ns = self._namespace()
        store = self._entries
        with store._lock:
            index = self._prefixes.get(ns)
            found = None
            if index is not None:
                found = index.longest_prefix(
                    key, strict=strict, accept=lambda slot: any(store.peek(ns, t) for t in slot)
                )
            if found is None:
                store.misses += 1
                return None
            live = [t for t in found[1] if store.peek(ns, t) is not None]
            entry = store.touch(ns, live[0])
        assert entry is not None  # accept() checked it under the same lock
        return release(entry.raw_key), self._hit(entry)

    # -- internals ---------------------------------------------------------------

    def _namespace(self) -> str:
        return sessions.namespace() if self.per_session else ""

    def _locate(self, key: Any) -> tuple[str, Hashable]:
        return self._namespace(), make_key(key, algorithm=self.digest, where="the Cache key")

    def _hit(self, entry: Entry) -> dict[str, Any]:
        for g in hooks.active():
            g.manual_hit()
        return {name: release(value) for name, value in entry.value.items()}

    def _forget_prefix(self, namespace: str, key: Hashable, entry: Entry) -> None:
        index = self._prefixes.get(namespace)
        if index is None:
            return
        raw = release(entry.raw_key)
        if PrefixIndex.kind(raw) is None:
            return
        slot = index.get(raw)
        if slot is not None:
            slot.discard(key)
            if not slot:
                index.remove(raw)
                if not len(index):
                    del self._prefixes[namespace]

    def __repr__(self) -> str:
        s = self._entries.stats()
        mode = ", per_session" if self.per_session else ""
        return f"<infercache.Cache {s.size} entries, {s.memory} bytes{mode}>"
