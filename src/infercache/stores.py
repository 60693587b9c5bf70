"""Where results live beyond the process: ``store=``, ``INFERCACHE_STORE`` and the secret.

A cache always keeps its entries in memory; ``store=`` adds one shared,
persistent tier behind that (see :mod:`infercache.tiers`):

- ``None``: memory only;
- a directory path (``str`` or ``os.PathLike``), or ``"disk"`` for the
  platform's user cache directory: a :class:`~infercache.tiers.DiskTier`
  shared by every process using the directory, bounded to
  :data:`DEFAULT_DISK_BYTES`;
- a ``redis://``, ``rediss://`` or ``unix://`` URL: a
  :class:`~infercache.tiers.redis.RedisTier` shared by every replica;
- a tier object (``ic.DiskStore(path, max_bytes=...)``,
  ``ic.RedisStore(url_or_client, ...)``, or any
  :class:`~infercache.tiers.Tier`).

A cache that does not pass ``store=`` uses ``INFERCACHE_STORE`` (same string
forms; unset, empty or ``"memory"`` mean memory only), so a deployed app
moves to Redis without a code change.

Every record is authenticated (:mod:`infercache.codec`) with a key derived
from ``INFERCACHE_SECRET`` (at least 16 characters; give every replica the
same one). Without it, a disk store uses a random key generated once and
kept in the user's config directory (mode 0600, outside the cache
directory, so whoever can write the cache cannot forge entries); a Redis
store refuses to start, because replicas must share the key and a generated
one cannot be.

Stores opened from the same string are one object per process (one
connection pool, one circuit breaker) shared by every cache using them.
"""

from __future__ import annotations

import enum
import os
import secrets
import threading
import weakref
from pathlib import Path
from typing import Union

from .codec import Codec
from .errors import ConfigError
from .tiers import DiskTier, Tier
from .tiers.guard import Guarded

__all__ = [
    "DEFAULT_DISK_BYTES",
    "ENV_SECRET",
    "ENV_STORE",
    "FROM_ENV",
    "StoreSpec",
    "codec_for",
    "disk_path",
    "open_store",
    "open_tier",
    "resolve",
    "tiers_for",
]

ENV_STORE = "INFERCACHE_STORE"
"""The environment variable naming the default store of caches without ``store=``."""

ENV_SECRET = "INFERCACHE_SECRET"  # noqa: S105 - the variable's name, not a secret
"""The environment variable holding the secret that authenticates stored records."""

DEFAULT_DISK_BYTES = 2 * 1000**3
"""Byte budget of a disk store opened from a path or ``"disk"`` (2 GB); use ``DiskStore`` for another."""

_URL_SCHEMES = ("redis://", "rediss://", "unix://", "valkey://", "valkeys://")
_MEMORY = ("", "memory", "none")
_KEY_FILE = "secret.key"


class _FromEnv(enum.Enum):
    FROM_ENV = "the INFERCACHE_STORE environment variable"


FROM_ENV = _FromEnv.FROM_ENV
"""The default of ``store=``: read ``INFERCACHE_STORE`` when the cache is made."""

StoreSpec = Union[str, "os.PathLike[str]", Tier, None, _FromEnv]
"""What ``store=`` accepts (see the module docstring)."""

_lock = threading.Lock()
_by_spec: dict[str, Guarded] = {}
# By id: the guard holds its tier, so a guard (and its tier) lives exactly as long as a cache uses it.
_by_tier: weakref.WeakValueDictionary[int, Guarded] = weakref.WeakValueDictionary()
_codecs: dict[tuple[str, bytes], Codec] = {}


def resolve(store: StoreSpec) -> Tier | None:
    """The guarded tier ``store=`` names (reading ``INFERCACHE_STORE`` for :data:`FROM_ENV`), or None."""
    if store is FROM_ENV:
        store = os.environ.get(ENV_STORE, "").strip() or None
        if store is not None and store.lower() in _MEMORY:
            store = None
    return open_store(store)


def open_store(spec: str | os.PathLike[str] | Tier | None) -> Tier | None:
    """The tier ``spec`` names, behind a circuit breaker; one per spec per process.

    Raises :class:`~infercache.errors.ConfigError` for a spec that names no
    store (an unknown URL scheme, an empty string, another type). Opening
    never contacts a server: a Redis store that is down is found out (and
    skipped) on first use.
    """
    if spec is None:
        return None
    if isinstance(spec, Guarded):
        return spec
    if isinstance(spec, Tier):
        with _lock:
            guarded = _by_tier.get(id(spec))
            if guarded is None or guarded.tier is not spec:
                guarded = _by_tier[id(spec)] = Guarded(spec)
            return guarded
    key = _normalize(spec)
    with _lock:
        guarded = _by_spec.get(key)
        if guarded is None:
            guarded = _by_spec[key] = Guarded(open_tier(key))
        return guarded


def open_tier(spec: str | os.PathLike[str]) -> Tier:
    """A new tier for a directory, ``"disk"`` or a URL, without a circuit breaker and not shared.

    For tools that want a backend's errors raised rather than skipped (the
    ``infercache ls|stats|clear`` command). Raises
    :class:`~infercache.errors.ConfigError` for a spec that names no store.
    """
    key = _normalize(spec)
    if key.lower().startswith(_URL_SCHEMES):
        from .tiers.redis import RedisTier

        url = "redis" + key[len("valkey") :] if key.lower().startswith("valkey") else key
        tier: Tier = RedisTier(url)
        return tier
    return DiskTier(key, max_bytes=DEFAULT_DISK_BYTES)


def _normalize(spec: object) -> str:
    """A URL as given, or a directory as an absolute path: one string per store."""
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str):
        raise ConfigError(
            "store= takes None, a directory, 'disk', a redis:// / rediss:// / unix:// URL "
            f"or a store object (ic.DiskStore, ic.RedisStore), not {type(spec).__name__}"
        )
    text = spec.strip()
    if not text:
        raise ConfigError("store= is an empty string: pass None for memory only, or a directory or URL")
    lowered = text.lower()
    if lowered.startswith(_URL_SCHEMES):
        return text
    if "://" in text:
        raise ConfigError(f"store= {spec!r}: unknown scheme; use a directory or a redis://, rediss:// or unix:// URL")
    return str(disk_path(text))


def tiers_for(store: StoreSpec) -> tuple[tuple[Tier, ...], Codec | None]:
    """What an engine needs for ``store=``: its tiers (none or one) and their codec."""
    tier = resolve(store)
    if tier is None:
        return (), None
    return (tier,), codec_for(tier)


def disk_path(text: str) -> Path:
    """The directory a disk store spec names: ``"disk"`` is the user cache directory's ``store``."""
    if text.lower() == "disk":
        import platformdirs

        return Path(platformdirs.user_cache_dir("infercache")) / "store"
    return Path(text).expanduser().resolve()


def _shared(tier: Tier) -> bool:
    """True for a tier other machines may read (it needs a secret they share)."""
    inner = tier.tier if isinstance(tier, Guarded) else tier
    return not isinstance(inner, DiskTier) and inner.name != "memory"


def codec_for(tier: Tier) -> Codec:
    """The codec that signs and verifies records of ``tier`` (see the module docstring for the secret)."""
    text = os.environ.get(ENV_SECRET)
    if text is not None:
        secret = text.encode()
        if len(secret) < 16:
            raise ConfigError(f"{ENV_SECRET} must be at least 16 characters (a random token: 32 hex digits or more)")
        origin = "env"
    elif _shared(tier):
        raise ConfigError(
            f"a {tier.name} store is shared by every process that uses it: set {ENV_SECRET} "
            "(the same random secret, at least 16 characters, for every replica) to authenticate its entries"
        )
    else:
        secret = local_secret()
        origin = "file"
    with _lock:
        codec = _codecs.get((origin, secret))
        if codec is None:
            codec = _codecs[(origin, secret)] = Codec(secret)
        return codec


def local_secret() -> bytes:
    """This user's generated secret for local stores (created once, mode 0600, in the config directory)."""
    import platformdirs

    folder = Path(platformdirs.user_config_dir("infercache"))
    path = folder / _KEY_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = folder / f".{_KEY_FILE}.{secrets.token_hex(8)}"
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(staging, path)  # fails if another process made it first: then use theirs
        except FileExistsError:
            pass
    finally:
        staging.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    secret = path.read_text().strip().encode()
    if len(secret) < 16:
        raise ConfigError(f"the secret in {path} is shorter than 16 characters: delete the file to make a new one")
    return secret
