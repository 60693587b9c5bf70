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
from contextvars import ContextVar
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

    def hit_event(self) -> ContextVar[Any] | None:
        """A context variable that is not None while an event the hit hook reports to runs.

        Lets the hit path skip the hook (one variable read instead of a call)
        while no framework event runs. None: the hook is called on every hit.
        """
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
_ALWAYS: ContextVar[Any] = ContextVar("infercache_always", default=True)
hit_gate: ContextVar[Any] | None = None
"""None when there are no hit hooks; else :data:`hit_hooks` are to be called when
``hit_gate.get() is not None`` (the one hooked integration's :meth:`~Integration.hit_event`,
or a variable that is never None)."""


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
    global injected, hit_hooks, hit_gate
    injected = tuple(t for i in _registered for t in i.injected_types())
    hooked = [(h, i.hit_event()) for i, h in ((i, i.hit_hook()) for i in _registered) if h is not None]
    if not hooked:
        hit_hooks, hit_gate = (), None
    elif len(hooked) == 1 and hooked[0][1] is not None:
        hit_hooks, hit_gate = (hooked[0][0],), hooked[0][1]
    else:  # several hooks, or one without an event variable: each hook checks its own variable
        hit_hooks, hit_gate = tuple(_gated(h, e) for h, e in hooked), _ALWAYS


def _gated(hook: Callable[[], None], event: ContextVar[Any] | None) -> Callable[[], None]:
    """``hook``, called only while ``event`` is not None (always when there is no variable)."""
    if event is None:
        return hook

    def gated() -> None:
        if event.get() is not None:
            hook()

    return gated


def fire_hit_hooks() -> None:
    """Call the hit hooks when an event they report to runs (the inlined form is in the decorator)."""
    gate = hit_gate
    if gate is not None and gate.get() is not None:
        for hook in hit_hooks:
            hook()


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
