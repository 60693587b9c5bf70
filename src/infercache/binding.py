"""Binding a call's arguments to the function's parameters, fast.

A cached function's key is made from the argument of every parameter, in
parameter order, with defaults applied: ``f(1, b=2)``, ``f(a=1, b=2)`` and
``f(1)`` with default ``b=2`` are one call. :class:`Signature` precomputes
what ``inspect.Signature.bind`` would work out per call, so the common shapes
(positional arguments only, keywords naming plain parameters) bind without
it; anything else falls back to ``inspect``. It also finds the parameters a
framework fills in itself (``request: gr.Request``, ``progress=gr.Progress()``)
and the ``Cache()`` defaults of the guide's manual pattern, which are left out
of keys.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["Signature", "names_type"]

_EMPTY = inspect.Parameter.empty
_ANY_SIGNATURE = inspect.Signature(
    [
        inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
        inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
    ]
)


def _has_empty(values: tuple[Any, ...] | list[Any]) -> bool:
    # By identity: ``in`` would compare arrays and DataFrames with ``==``.
    for v in values:
        if v is _EMPTY:
            return True
    return False


class Signature:
    """The parameters of a function, precomputed for fast argument binding."""

    def __init__(self, fn: Callable[..., Any], manual_cache_type: type | None) -> None:
        try:
            self.signature = inspect.signature(fn)
        except (ValueError, TypeError):  # builtins without one: key all arguments as given
            self.signature = _ANY_SIGNATURE
        params = list(self.signature.parameters.values())
        self.names = tuple(p.name for p in params)
        self.defaults = tuple(p.default for p in params)
        self.count = len(params)
        self.simple = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self.index = {p.name: i for i, p in enumerate(params)}
        skip = {
            i
            for i, p in enumerate(params)
            if manual_cache_type is not None and isinstance(p.default, manual_cache_type)
        }
        self.keep = tuple(i for i in range(self.count) if i not in skip) if skip else None
        self.params = [p for i, p in enumerate(params) if i not in skip]
        if self.keep is not None:
            self.names = tuple(self.names[i] for i in self.keep)
        self._fn = fn

    def declared(self, types: tuple[type, ...]) -> frozenset[int]:
        """Positions (in :meth:`values`) of parameters a framework fills in itself.

        A parameter is the framework's when its default is an instance of one
        of ``types`` (``progress=gr.Progress()``) or its annotation names one
        (``request: gr.Request``), which is how frameworks decide what to inject.
        """
        if not types:
            return frozenset()
        try:
            hints = typing.get_type_hints(self._fn)
        except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to the raw ones
            hints = {p.name: p.annotation for p in self.params}
        return frozenset(
            i
            for i, p in enumerate(self.params)
            if isinstance(p.default, types) or names_type(hints.get(p.name), types)
        )

    def values(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The argument of every parameter, in order, defaults applied."""
        values = self._bind(args, kwargs)
        if self.keep is not None:
            values = tuple(values[i] for i in self.keep)
        return values

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        if self.simple:
            n = len(args)
            if not kwargs:
                if n == self.count:
                    return args
                if n < self.count:
                    tail = self.defaults[n:]
                    if not _has_empty(tail):
                        return args + tail
            elif n <= self.count:
                out = list(args) + list(self.defaults[n:])
                ok = True
                for name, value in kwargs.items():
                    i = self.index.get(name)
                    if i is None or i < n:
                        ok = False
                        break
                    out[i] = value
                if ok and not _has_empty(out):
                    return tuple(out)
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return tuple(bound.arguments.values())


def names_type(hint: Any, types: tuple[type, ...]) -> bool:
    """True when the annotation ``hint`` names one of ``types`` (also inside ``Optional``, ``list[...]`` ...)."""
    args = typing.get_args(hint)
    if args:  # Optional[X], X | None, list[X], Annotated[X, ...]
        return any(names_type(arg, types) for arg in args)
    try:
        return isinstance(hint, type) and issubclass(hint, types)
    except TypeError:  # generic aliases pass isinstance(..., type) on Python 3.10
        return False
