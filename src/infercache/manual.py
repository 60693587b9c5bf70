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

import sys
import threading
from collections.abc import Callable, Hashable
from typing import Any

from . import hooks
from .config import Settings
from .engine import Engine
from .prefix import PrefixIndex
from .safety import protect, release
from .sizes import sizeof
from .store import CacheStats, Entry
from .stores import FROM_ENV, StoreSpec, tiers_for

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
        name: the cache's name in stats and metrics (default ``"Cache"``,
            made unique per process with a ``#2`` suffix). In a store, caches
            with the same name share entries; an unnamed cache is named there
            by the module and line that created it.
        store: where entries also live beyond the process (see
            :func:`infercache.cache`); by default ``INFERCACHE_STORE``.
        version: a version for the entries in a store (change it to stop
            serving what older code stored).

    Raises :class:`~infercache.errors.ConfigError` for an invalid setting.
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
        name: str | None = None,
        store: StoreSpec = FROM_ENV,
        version: str | None = None,
    ) -> None:
        settings = Settings.of(
            max_size=max_size,
            max_memory=max_memory,
            per_session=per_session,
            ttl=ttl,
            digest=digest,
            name=name,
            store=store,
            version=version,
        )
        tiers, codec = tiers_for(store)
        self.engine = Engine(
            settings,
            name or _creation_site(),
            label=name or "Cache",
            tiers=tiers,
            codec=codec,
            version=version or "",
        )
        self._prefixes: dict[str, PrefixIndex] = {}
        self.engine.store.add_listener(self._forget_prefix)

    @property
    def per_session(self) -> bool:
        """True when each user session has its own entries (Gradio reads this too)."""
        return self.engine.settings.per_session

    @property
    def digest(self) -> str:
        """The digest keys are made with (``"blake3"`` or ``"xxh3"``)."""
        return self.engine.settings.digest

    @property
    def name(self) -> str:
        """The cache's name in stats and metrics (unique per process)."""
        return self.engine.name

    # -- the guide's interface -------------------------------------------------

    def get(self, key: Any) -> dict[str, Any] | None:
        """The keyword data stored under ``key`` (a fresh dict), or None on a miss."""
        entry = self.engine.lookup(self._locate(key))
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
        full = self._locate(key)
        ns, k = full
        store = self.engine.store
        ticket = store.begin(ns, k)
        try:
            kept_key = protect(key)
            kept = {name: protect(value) for name, value in data.items()}
            key_size = sizeof(kept_key)
        except BaseException:
            store.end(ticket)
            raise

        def index_prefix() -> None:
            # Under the store's lock, so the index never lists an entry the store has dropped.
            if PrefixIndex.kind(key) is None:
                return
            # One radix slot can stand for several entries ([1, 2] and (1, 2) are two keys).
            index = self._prefixes.setdefault(ns, PrefixIndex())
            slot = index.get(key)
            if slot is None:
                index.add(key, {k})
            else:
                slot.add(k)

        self.engine.save(full, kept, ticket, raw_key=kept_key, extra_size=key_size, on_stored=index_prefix)

    def keys(self) -> list[Any]:
        """The stored keys (of the current session when per-session), oldest use first."""
        return [
            e.raw_key if type(e.raw_key) is str else release(e.raw_key)
            for e in self.engine.store.values(self.engine.namespace())
        ]

    def delete(self, key: Any) -> bool:
        """Remove ``key`` (and a ``set`` of it in progress); True if it was stored."""
        return self.engine.delete(self._locate(key))

    def clear(self) -> None:
        """Remove every entry of every session (and every ``set`` in progress)."""
        self.engine.clear()

    def clear_session(self, session_id: str) -> int:
        """Remove one session's entries (other sessions are untouched); returns how many were removed."""
        return self.engine.clear_session(session_id)

    def __contains__(self, key: Any) -> bool:
        ns, k = self._locate(key)
        return self.engine.store.peek(ns, k) is not None

    def __len__(self) -> int:
        """Entries of all sessions together (the count ``max_size`` bounds)."""
        return len(self.engine)

    def stats(self) -> CacheStats:
        """Hits, misses, evictions, size, memory and hit ratio of this cache."""
        return self.engine.stats()

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
        ns = self.engine.namespace()

        def choose(live: Callable[[Hashable], bool]) -> Hashable | None:
            index = self._prefixes.get(ns)
            if index is None:
                return None
            found = index.longest_prefix(key, strict=strict, accept=lambda slot: any(live(t) for t in slot))
            if found is None:
                return None
            slot: set[Hashable] = found[1]
            return next(t for t in slot if live(t))

        entry = self.engine.store.search(ns, choose)
        if entry is None:
            return None
        return release(entry.raw_key), self._hit(entry)

    # -- internals ---------------------------------------------------------------

    def _locate(self, key: Any) -> tuple[str, Hashable]:
        return self.engine.address(key, where="key")

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
        s = self.engine.stats()
        mode = ", per_session" if self.per_session else ""
        return f"<infercache.Cache {s.size} entries, {s.memory} bytes{mode}>"


def _creation_site() -> str:
    """``module:line`` of the code that created a Cache: its identity in a store when it has no name.

    The same source creates the same cache in every replica (a default
    argument ``c=Cache()`` is evaluated once, at its ``def`` line), while two
    unnamed caches created at different places never share entries.
    """
    frame = sys._getframe(1)
    here = __name__
    while frame.f_back is not None and frame.f_globals.get("__name__") == here:
        frame = frame.f_back
    module = frame.f_globals.get("__name__", "?")
    return f"{module}:{frame.f_lineno}:Cache"
