"""Helpers shared by the key tests (``test_keys*.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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



def refusal_message(type_name: str, reason: str, fix_name: str, *, at: str = "", subject: str = "the value") -> str:
    """The whole message of an :class:`UnhashableError` for a value of type ``type_name`` (its
    ``module.qualname``), refused for ``reason``, whose fix names the class ``fix_name``;
    ``at``: where in the value (``"value[0]"``), if not the value itself; ``subject``: what
    is refused (``"parameter 'model'"`` for a call's value)."""
    where = f" (at {at})" if at else ""
    return (
        f"infercache cannot build a cache key for {subject}{where}: a {type_name} object cannot be hashed "
        f"by content because {reason}. Fix: choose what identifies the call (key=lambda kw: ... on the "
        f"decorator; for a Cache, a key of plain data such as a string or a tuple), or teach infercache "
        f"this type with infercache.register_hasher({fix_name}, fn) where fn returns its content."
    )


def keys_in_process(code: str, seed: str) -> list[str]:
    """The keys ``code`` prints (a JSON list of hex strings) in a fresh interpreter with ``PYTHONHASHSEED=seed``."""
    env = dict(os.environ, PYTHONHASHSEED=seed)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120
    )
    return list(json.loads(result.stdout))
