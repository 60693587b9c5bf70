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


def keys_in_process(code: str, seed: str) -> list[str]:
    """The keys ``code`` prints (a JSON list of hex strings) in a fresh interpreter with ``PYTHONHASHSEED=seed``."""
    env = dict(os.environ, PYTHONHASHSEED=seed)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120
    )
    return list(json.loads(result.stdout))
