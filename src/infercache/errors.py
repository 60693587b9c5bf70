"""The exceptions infercache raises, under one base class.

Every exception of infercache's own is an :class:`InfercacheError`, so one
``except ic.InfercacheError`` catches them all; each also derives from the
builtin a caller would expect (a value that cannot be keyed is a
``TypeError``, a bad setting a ``ValueError``), so code written against the
builtins keeps working.
"""

from __future__ import annotations

__all__ = [
    "CacheKeyError",
    "ConfigError",
    "InfercacheError",
    "TierError",
    "UnhashableError",
]


class InfercacheError(Exception):
    """Base of every exception infercache raises itself."""


class UnhashableError(InfercacheError, TypeError):
    """A value's content cannot be turned into a key.

    Raised for values whose state infercache cannot read completely (objects
    backed by C state with no adapter, objects whose class cannot be found
    again by name, reference cycles, ...). The message names the parameter and
    says how to fix it: a ``key=`` function or
    :func:`infercache.register_hasher`. Attributes: ``where`` (the parameter
    name or ``None``), ``path`` (where in the value, e.g. ``"img['a'][0]"``),
    ``type`` (the offending type) and ``reason``.
    """

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        path: str = "",
        type_: type | None = None,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.where = where
        self.path = path
        self.type = type_
        self.reason = reason


class CacheKeyError(InfercacheError, ValueError):
    """The ``key=`` function given to ``cache`` raised while computing a key."""


class ConfigError(InfercacheError, ValueError, TypeError):
    """A setting (``max_size``, ``max_memory``, ``ttl``, ``digest``, ``name``, ``key=``) is invalid.

    Both a ``ValueError`` (a bound out of range, an unknown digest) and a
    ``TypeError`` (a ``key=`` that is not callable), like numpy's ``AxisError``
    is both a ``ValueError`` and an ``IndexError``: callers may catch either.
    """


class TierError(InfercacheError):
    """A storage tier failed (unreachable server, full disk, corrupt entry).

    The engine never lets it reach a caller of a cached function: a failing
    tier is treated as a miss and logged. It is raised only by direct calls on
    a tier object.
    """
