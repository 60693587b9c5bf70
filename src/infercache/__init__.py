"""infercache: cache expensive ML functions by the content of their inputs.

A drop-in for Gradio's ``@gr.cache`` and ``gr.Cache()`` (``import infercache as
ic`` and use ``@ic.cache`` / ``c=ic.Cache()``), correct where it is not:
content keys (never identity), single-flight for concurrent identical calls,
hard memory bounds with real byte accounting, mutation-safe results, and any
signature including ``*args``/``**kwargs``. Works in plain Python and inside
Gradio apps (queue bypass, ``from cache`` badges, per-session isolation).
"""

from typing import TYPE_CHECKING

from .decorator import CachedFunction, CacheHandle, cache
from .errors import (
    CacheKeyError,
    ConfigError,
    InfercacheError,
    TierError,
    UnhashableError,
)
from .keys import hash_key, register_hasher
from .manual import Cache
from .registry import stats
from .safety import register_copier
from .sessions import clear_session, current_session, session
from .store import CacheStats
from .tiers import DiskTier as DiskStore
from .tiers import RedisTier as RedisStore

if TYPE_CHECKING:  # at run time ic.metrics is loaded on first use (__getattr__ below)
    from . import metrics as metrics

__all__ = [
    "Cache",
    "CacheHandle",
    "CacheKeyError",
    "CacheStats",
    "CachedFunction",
    "ConfigError",
    "DiskStore",
    "InfercacheError",
    "RedisStore",
    "TierError",
    "UnhashableError",
    "cache",
    "clear_session",
    "current_session",
    "hash_key",
    "register_copier",
    "register_hasher",
    "session",
    "stats",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # ic.metrics on first use: the exporters' libraries stay out of `import infercache`.
    if name == "metrics":
        import importlib

        return importlib.import_module(".metrics", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
