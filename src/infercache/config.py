"""One validated, frozen settings object for ``@cache`` and ``Cache()``.

Both entry points accept the same bounds (``max_size``, ``max_memory``,
``ttl``), the same ``digest`` and ``per_session`` switches and a ``name``;
:meth:`Settings.of` checks them once, with one message per mistake, and the
engine reads them from the resulting :class:`Settings` instead of from a
positional tuple. Invalid values raise :class:`~infercache.errors.ConfigError`
(a ``ValueError``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = [
    "DIGESTS",
    "Settings",
    "check_digest",
    "check_max_size",
    "check_name",
    "check_ttl",
    "check_version",
    "parse_memory",
]

DIGESTS = ("blake3", "xxh3")
"""Digests a key can be made with: BLAKE3 (cryptographic, the default) or xxh3-128."""

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def parse_memory(value: float | str | None) -> int | None:
    """Parse a memory bound: ``None``, bytes as a number (``2e9``), or ``"512mb"``, ``"2gb"``, ``"1.5GiB"``.

    Decimal units (kb, mb, gb, tb) are powers of 1000, binary units (kib, mib,
    gib, tib) powers of 1024. Raises :class:`ConfigError` for anything else,
    or for a negative or zero bound.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"max_memory must be bytes or a string like '512mb', not {value!r}")
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"max_memory must be a finite number of bytes, got {value!r}")
        n = int(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "").replace("_", "")
        i = len(text)
        while i and text[i - 1].isalpha():
            i -= 1
        number, unit = text[:i], text[i:]
        if unit not in _UNITS or not number:
            raise ConfigError(
                f"max_memory {value!r} is not understood: use bytes or a string such as "
                "'512mb', '2gb' or '1.5GiB'"
            )
        try:
            amount = float(number)
        except ValueError:
            raise ConfigError(f"max_memory {value!r} does not start with a number") from None
        if not math.isfinite(amount):
            raise ConfigError(f"max_memory {value!r} is not a finite size")
        n = int(amount * _UNITS[unit])
    else:
        raise ConfigError(
            f"max_memory must be bytes (int) or a string like '512mb', not {type(value).__name__}"
        )
    if n <= 0:
        raise ConfigError(f"max_memory must be positive, got {value!r}")
    return n


def check_max_size(max_size: int) -> int:
    """Validate ``max_size`` (0 means unlimited)."""
    if isinstance(max_size, bool) or not isinstance(max_size, int):
        raise ConfigError(f"max_size must be an int (0 for unlimited), not {max_size!r}")
    if max_size < 0:
        raise ConfigError(f"max_size must be >= 0 (0 for unlimited), got {max_size}")
    return max_size


def check_ttl(ttl: float | None) -> float | None:
    """Validate ``ttl`` in seconds (``None`` means entries never expire)."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise ConfigError(f"ttl must be seconds (a number) or None, not {ttl!r}")
    if not ttl > 0 or ttl == math.inf:
        raise ConfigError(f"ttl must be a positive, finite number of seconds, got {ttl!r}")
    return float(ttl)


def check_digest(digest: str) -> str:
    """Validate ``digest`` (one of :data:`DIGESTS`)."""
    if digest not in DIGESTS:
        raise ConfigError(f"digest must be one of {DIGESTS}, not {digest!r}")
    return digest


def check_name(name: str | None) -> str | None:
    """Validate a cache's ``name`` (a non-empty string, or None for the default)."""
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"name must be a non-empty str, not {name!r}")
    return name


def check_version(version: str | None) -> str | None:
    """Validate an explicit code ``version`` (a non-empty string, or None to derive it from the code)."""
    if version is None:
        return None
    if not isinstance(version, str) or not version.strip():
        raise ConfigError(f"version must be a non-empty str (or None to derive it from the code), not {version!r}")
    return version


@dataclass(frozen=True)
class Settings:
    """The validated settings of one cache; build it with :meth:`of`.

    Attributes mirror the keyword arguments of :func:`infercache.cache` and
    :class:`infercache.Cache`: ``max_size`` (0 = unlimited), ``max_memory``
    (bytes or None), ``ttl`` (seconds or None), ``per_session``, ``digest``,
    ``name`` (None until the entry point supplies its default) and ``key``
    (the ``key=`` function of ``@cache``, None for all arguments), ``store``
    (what ``store=`` named, resolved into a tier by :mod:`infercache.stores`
    when the engine is built) and ``version`` (None: derived from the code).
    """

    max_size: int = 128
    max_memory: int | None = None
    ttl: float | None = None
    per_session: bool = False
    digest: str = "blake3"
    name: str | None = None
    key: Callable[[dict[str, Any]], Any] | None = None
    store: Any = None
    version: str | None = None

    @classmethod
    def of(
        cls,
        *,
        max_size: int = 128,
        max_memory: float | str | None = None,
        ttl: float | None = None,
        per_session: bool = False,
        digest: str = "blake3",
        name: str | None = None,
        key: Callable[[dict[str, Any]], Any] | None = None,
        store: Any = None,
        version: str | None = None,
    ) -> Settings:
        """Validate raw keyword settings; raises :class:`ConfigError` naming the bad one."""
        if key is not None and not callable(key):
            raise ConfigError(f"key= must be a callable taking the arguments dict, not {key!r}")
        return cls(
            max_size=check_max_size(max_size),
            max_memory=parse_memory(max_memory),
            ttl=check_ttl(ttl),
            per_session=bool(per_session),
            digest=check_digest(digest),
            name=check_name(name),
            key=key,
            store=store,
            version=check_version(version),
        )
