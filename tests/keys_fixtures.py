"""Helpers shared by the key tests (``test_keys*.py``)."""

from __future__ import annotations

from typing import Any

from infercache.keys import UnhashableError, make_key


def k(obj: Any, **kw: Any) -> bytes:
    """The store key of ``obj`` (``make_key``'s keywords pass through)."""
    return make_key(obj, **kw)


def all_distinct(values: list[Any]) -> bool:
    """True when no two of ``values`` share a key."""
    found = [k(v) for v in values]
    return len(set(found)) == len(found)


def refused(obj: Any) -> bool:
    """True when ``obj`` cannot be keyed (``UnhashableError``)."""
    try:
        make_key(obj)
    except UnhashableError:
        return True
    return False
