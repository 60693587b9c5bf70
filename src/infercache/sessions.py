"""User sessions: which namespace a per-session cache reads and writes.

The current session is, in order: the innermost :func:`session` context
(a ``ContextVar``, so it follows threads' and asyncio tasks' own contexts),
then what a registered framework integration reports (Gradio's session hash),
else the shared anonymous namespace ``""``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from . import hooks
from .registry import caches

__all__ = ["clear_session", "current_session", "session"]

ANONYMOUS = ""

_current: ContextVar[str | None] = ContextVar("infercache_session", default=None)


@contextmanager
def session(session_id: str) -> Iterator[str]:
    """Make ``session_id`` the current session for per-session caches in this block.

    Works across threads and asyncio tasks (each keeps its own context). Use it
    outside a framework, e.g. one session per logged-in user of a web service::

        with ic.session(user.id):
            generate(prompt)
    """
    if not isinstance(session_id, str) or not session_id:
        raise ValueError(f"session id must be a non-empty str, got {session_id!r}")
    token = _current.set(session_id)
    try:
        yield session_id
    finally:
        _current.reset(token)


def current_session() -> str | None:
    """The current session id, or None outside any session."""
    explicit = _current.get()
    if explicit is not None:
        return explicit
    for integration in hooks.active():
        found = integration.session_id()
        if found:
            return found
    return None


def namespace() -> str:
    """The namespace per-session caches use now (``""`` outside any session)."""
    return current_session() or ANONYMOUS


def clear_session(session_id: str) -> int:
    """Drop ``session_id``'s entries from every per-session cache; returns how many.

    Its computations in flight are not stored either (callers arriving later
    compute afresh); other sessions' entries and running computations are
    untouched, so one user closing a tab never costs another user anything.
    """
    if not isinstance(session_id, str) or not session_id:
        raise ValueError(f"session id must be a non-empty str, got {session_id!r}")
    return sum(
        engine.clear_session(session_id) for _, engine in caches.items() if engine.settings.per_session
    )
