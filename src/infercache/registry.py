"""Every live cache of the process, by name.

One registry serves everything that needs to reach all caches: clearing a
user session in every per-session cache, ``ic.stats()``, metrics exporters and
the command line. It holds caches weakly: a cache that its owner dropped
leaves the registry by itself.

Names default to the cached function's qualified name (``name=`` overrides
it). Two live caches asked for the same name get distinct ones: the second
is ``"name#2"``, and so on, so counters exported by name never mix two caches.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["Registry", "caches", "stats"]

T = TypeVar("T")


class Registry(Generic[T]):
    """A thread-safe, weak, name-unique collection of live objects.

    A collected object's name is freed lazily: its weak reference's callback
    only notes the name (a list append, safe wherever the garbage collector
    runs it), and the next locked operation removes it. The callback must not
    take the lock: the collector can run it inside :meth:`add` on the thread
    that already holds it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, weakref.ref[T]] = {}
        self._dead: list[str] = []

    def add(self, item: T, name: str) -> str:
        """Register ``item`` under ``name`` (made unique); returns the name it got."""
        dead = self._dead
        with self._lock:
            self._purge()
            unique, n = name, 1
            while unique in self._items and self._items[unique]() is not None:
                n += 1
                unique = f"{name}#{n}"

            def note_dead(_: weakref.ref[T], key: str = unique) -> None:
                dead.append(key)

            self._items[unique] = weakref.ref(item, note_dead)
            return unique

    def _purge(self) -> None:
        # Lock held.
        while self._dead:
            name = self._dead.pop()
            ref = self._items.get(name)
            if ref is not None and ref() is None:
                del self._items[name]

    def get(self, name: str) -> T | None:
        """The live object registered as ``name``, or None."""
        with self._lock:
            self._purge()
            ref = self._items.get(name)
        return None if ref is None else ref()

    def items(self) -> list[tuple[str, T]]:
        """``(name, object)`` pairs of every live object, in registration order."""
        with self._lock:
            self._purge()
            refs = list(self._items.items())
        return [(name, obj) for name, ref in refs if (obj := ref()) is not None]

    def __len__(self) -> int:
        return len(self.items())


caches: Registry[Engine] = Registry()
"""Every live cache engine of the process (sessions, stats and exporters read it)."""


def stats() -> dict[str, dict[str, Any]]:
    """The counters of every live cache of the process, by name, as JSON-serializable data.

    Each value is :meth:`infercache.CacheStats.as_dict` of that cache plus
    ``"function"`` (what names its entries in a store: ``module.qualname``,
    the ``name=``, or where an unnamed ``Cache`` was made) and ``"tiers"``
    (the stores behind its memory, e.g. ``["redis"]``). Reading it takes each
    cache's lock briefly; nothing is counted on a hit to make it possible.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, engine in caches.items():
        data = engine.stats().as_dict()
        data["function"] = engine.identity
        data["tiers"] = [tier.name for tier in engine.tiers]
        out[name] = data
    return out
