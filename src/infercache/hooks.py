"""The seam between the core engine and the frameworks it runs inside.

The core never imports a framework. A framework integration (for example
``infercache.integrations.gradio``) describes itself with an
:class:`Integration` object and registers it here; the decorator and ``Cache``
ask :func:`active` for the registered integrations on each call.

Discovery is lazy and cheap: an integration is imported the first time the
core runs while its framework is already imported by the user's program
(``"gradio" in sys.modules``), so ``import infercache`` never pulls a heavy
framework in, and a plain Python program pays one dict lookup per call.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Integration", "active", "injected_types", "register", "unregister"]


class Integration:
    """What a framework tells the core. Every method has a do-nothing default."""

    name: str = "integration"

    def session_id(self) -> str | None:
        """The id of the user session the current call belongs to, if any."""
        return None

    def probing(self) -> bool:
        """True while the framework only asks "is this a hit?" (no computing on a miss)."""
        return False

    def miss_error(self) -> BaseException:
        """The exception to raise on a miss while :meth:`probing` is true."""
        return LookupError("cache miss while probing")

    def manual_hit(self) -> None:
        """Called when ``Cache.get`` (or ``longest_prefix``) returns a hit."""

    def hit_hook(self) -> Callable[[], None] | None:
        """A function called on every hit of a cached function (kept cheap: the hot path)."""
        return None

    def injected_types(self) -> tuple[type, ...]:
        """Types of the argument values the framework injects (left out of keys)."""
        return ()

    def store_output(self, value: Any) -> Any:
        """Turn a freshly computed output into the form kept in the cache."""
        return value

    def load_output(self, value: Any) -> Any:
        """Turn a kept output back into what a hit returns."""
        return value

    def cache_bases(self) -> tuple[type, ...]:
        """Extra base classes for ``Cache`` so the framework recognises it."""
        return ()


# module name of a framework -> module of its integration
_KNOWN = {"gradio": "infercache.integrations.gradio"}
_registered: list[Integration] = []
_lock = threading.Lock()
_modules = sys.modules

# Fast-path state, read (never written) by the decorator's inlined hit path, where a
# function call would cost more than the check: discovery is due only while
# ``pending`` is non-empty and ``len(sys.modules) != seen_modules``.
pending: dict[str, str] = dict(_KNOWN)
"""Frameworks whose integration is not loaded yet (framework module -> integration module)."""
seen_modules = -1
"""``len(sys.modules)`` when discovery last ran."""
injected: tuple[type, ...] = ()
"""What :func:`injected_types` returns (compared by identity on the hot path)."""
hit_hooks: tuple[Callable[[], None], ...] = ()
"""The registered integrations' hit hooks, called on every hit served from a store."""


def register(integration: Integration) -> None:
    """Register a framework integration (idempotent by ``integration.name``)."""
    with _lock:
        if any(i.name == integration.name for i in _registered):
            return
        _registered.append(integration)
        _refresh()


def unregister(name: str) -> None:
    """Remove the integration registered under ``name`` (if any)."""
    with _lock:
        _registered[:] = [i for i in _registered if i.name != name]
        _refresh()


def _refresh() -> None:
    global injected, hit_hooks
    injected = tuple(t for i in _registered for t in i.injected_types())
    hit_hooks = tuple(h for h in (i.hit_hook() for i in _registered) if h is not None)


def injected_types() -> tuple[type, ...]:
    """All registered integrations' injected types, as one ``isinstance`` tuple."""
    return injected


def registered() -> list[Integration]:
    """The list of registered integrations itself (updated in place), without discovery."""
    return _registered


def active() -> list[Integration]:
    """The registered integrations, importing those whose framework is loaded."""
    global seen_modules
    # Nothing new can be loaded while the module count stays the same: one len() per call.
    if pending and len(_modules) != seen_modules:
        seen_modules = len(_modules)
        _discover()
    return _registered


def _discover() -> None:
    for framework, module in list(pending.items()):
        if framework in sys.modules:
            with _lock:
                if pending.pop(framework, None) is None:
                    continue
            try:
                importlib.import_module(module)
            except ImportError:  # the integration needs a newer framework; core works alone
                pass
