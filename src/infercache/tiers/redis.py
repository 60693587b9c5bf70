"""A tier in Redis or Valkey: one store shared by every process and replica.

Records are plain Redis strings under the engine's entry names
(:mod:`infercache.keyspace`); the verbs map to one command each:

- ``get`` -> GET; ``set`` -> SET with PX (the call's ``ttl``, else
  ``default_ttl``, one week unless configured; ``default_ttl=None`` keeps
  records until deleted or evicted by Redis's own ``maxmemory-policy``);
- ``delete`` -> DEL; ``clear(prefix)`` -> SCAN MATCH ``<prefix>*`` (glob
  characters of the prefix escaped) COUNT 1000, removing in batches with
  UNLINK; never KEYS, which blocks the server. ``entries(prefix)`` -> the
  same SCAN with STRLEN pipelined per batch.

In a Redis Cluster the SCAN runs on every primary (redis-py's cluster
``scan_iter``) and UNLINK is split per slot by the client. An entry name
carries the ``{function/version}`` hash tag, so one function version lives
on one slot.

**Leases** (cross-process single-flight): ``lease(name, ttl)`` is
``SET infercache-lease:<name> <random token> NX PX ttl``. The lease key keeps
the entry's hash tag, so it lives on the entry's slot. While held, one
daemon thread per tier (started on the first lease, ending when none is
held) renews each lease every ``ttl / 3`` with a Lua script that extends the
expiry only if the token is still the holder's; ``release`` deletes the key
only if the token matches (Lua again). A holder that dies stops renewing, so
its lease expires ``ttl`` later at most. Lease keys are not records: they
are never listed by ``entries`` nor counted or removed by ``clear``, not even
``clear(b"")`` -- removing a live computation's lease would let a second
process start the same computation; an idle lease expires by itself.

**Clients.** The tier needs a sync client (sync verbs, lease renewal) and an
async one (native ``aget``/``aset``/``adelete``/``aclear``/``alease``):

- from a URL (``redis://``, ``rediss://``, ``unix://``; ``valkey://`` and
  ``valkeys://`` are read as ``redis://`` and ``rediss://``), both are made with
  ``from_url``; ``?cluster=1`` in the URL or ``cluster=True`` makes cluster
  clients;
- from a client object (``redis.Redis``, ``redis.asyncio.Redis``,
  ``redis.cluster.RedisCluster``, ``redis.asyncio.cluster.RedisCluster``),
  that client is used for its kind, and the other kind is derived from its
  connection settings: host and port (for a cluster, its startup nodes), db,
  username, password or credential provider, client name, protocol, TLS
  (``ssl`` and the ``ssl_*`` certificate settings) and a unix socket path.
  Not derived: its timeouts, retry policy, pool size and connection
  callbacks -- the derived client gets the tier's own short timeouts.

Clients the tier makes have short socket and connect timeouts (1 s: short
enough that a hung server costs little, long enough that a loaded machine
does not mistake a slow reply for a dead server and open the breaker, which
would make processes compute what another is computing) and retry a failed
command once, immediately: a server that is down (connection refused) costs
a call under a millisecond, one that hangs at most twice the timeout, and
the circuit breaker above the tier stops later calls from paying even that. A client passed in keeps its own
settings, and stays the caller's: :meth:`RedisTier.close` closes only the
clients the tier made. A client must not decode responses
(``decode_responses=True`` is refused): records are bytes.

An asyncio client is bound to the event loop it first ran on, so the tier
keeps one per running loop (a cache used from several loops -- tests,
Gradio's worker threads -- works); a client passed in serves the first loop
that uses the tier. A client the tier made for a loop is closed when that
loop shuts down (``asyncio.run`` and the like close a loop's async
generators first, and the tier leaves one there for this), and its entry is
dropped when a new loop arrives.

Errors are not caught here: a verb raises ``redis.RedisError`` (connection
refused, timeout, a cluster without its slots) or ``OSError`` and the engine
and circuit breaker above the tier handle it. Only :meth:`RedisLease.release`
never raises (a lease that cannot be released expires by itself).

redis-py is imported when a tier is constructed, never at ``import infercache``.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import threading
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, TierError
from ..log import logger
from .base import Lease, Tier

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster

    AnyClient = redis.Redis | redis.asyncio.Redis | redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster

__all__ = ["LEASE_PREFIX", "RedisLease", "RedisTier"]

#: Prefix of lease keys; the entry's name follows, hash tag included.
LEASE_PREFIX = b"infercache-lease:"
#: Keys asked of SCAN per round trip, and removed per UNLINK.
BATCH = 1000
DEFAULT_TTL = 7 * 24 * 3600.0

_URL_SCHEMES = {"redis": "redis", "rediss": "rediss", "unix": "unix", "valkey": "redis", "valkeys": "rediss"}
_TRUE = {"1", "true", "yes", "on"}
# Connection settings carried from a given client to the one derived from it.
_PORTABLE = (
    "host", "port", "db", "username", "password", "credential_provider", "client_name", "protocol", "path",
    "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_data", "ssl_check_hostname",
    "ssl_min_version", "ssl_ciphers", "ssl_include_verify_flags", "ssl_exclude_verify_flags",
)
# Extend the expiry only while the key still holds this holder's token.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
# Delete the key only while it still holds this holder's token.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def glob_escape(prefix: bytes) -> bytes:
    """``prefix`` with SCAN MATCH's special characters (``* ? [ ] \\``) escaped, so it matches itself only."""
    out = bytearray()
    for byte in prefix:
        if byte in b"*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)


def _millis(seconds: float) -> int:
    """Seconds as whole milliseconds for PX, rounded up (a positive ttl never becomes 0, which SET refuses)."""
    return max(1, math.ceil(seconds * 1000))


def _split_url(url: str, cluster: bool) -> tuple[str, bool]:
    """The URL for redis-py (valkey schemes renamed, the ``cluster`` query removed), and whether it is a cluster."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _URL_SCHEMES:
        raise ConfigError(f"a Redis store URL starts with redis://, rediss:// or unix://, not {url!r}")
    base, _, query = rest.partition("?")
    kept = []
    for pair in query.split("&") if query else []:
        name, _, value = pair.partition("=")
        if name == "cluster":
            cluster = not value or value.lower() in _TRUE
        else:
            kept.append(pair)
    tail = "?" + "&".join(kept) if kept else ""
    return f"{_URL_SCHEMES[scheme.lower()]}://{base}{tail}", cluster


@dataclass
class _Settings:
    """What is needed to connect a second client of the other kind (sync or async) to the same server."""

    cluster: bool
    options: dict[str, Any]
    nodes: list[tuple[str, int]] = field(default_factory=list)


def _portable(kwargs: dict[str, Any], connection_class: object, cluster: bool) -> dict[str, Any]:
    options = {k: kwargs[k] for k in _PORTABLE if kwargs.get(k) is not None}
    if "SSL" in getattr(connection_class, "__name__", "") or kwargs.get("ssl"):
        options["ssl"] = True
    else:
        options = {k: v for k, v in options.items() if not k.startswith("ssl_")}
    if "path" in options:
        options["unix_socket_path"] = options.pop("path")
        options.pop("host", None)
        options.pop("port", None)
    if cluster:
        for k in ("host", "port", "db", "unix_socket_path"):
            options.pop(k, None)
    return options


def _settings_of(client: Any) -> _Settings:
    """The connection settings of a redis-py client of any of the four kinds (see the module's docstring)."""
    manager = getattr(client, "nodes_manager", None)
    if manager is not None:
        kwargs = dict(getattr(client, "connection_kwargs", None) or manager.connection_kwargs)
        nodes = [(n.host, int(n.port)) for n in manager.startup_nodes.values()]
        return _Settings(True, _portable(kwargs, kwargs.get("connection_class"), True), nodes)
    pool = client.connection_pool
    return _Settings(False, _portable(dict(pool.connection_kwargs), pool.connection_class, False))


def _decodes(client: Any) -> bool:
    """Whether ``client`` decodes responses to str (records must come back as bytes)."""
    try:
        return bool(client.get_encoder().decode_responses)
    except AttributeError:
        return bool(client.connection_pool.get_encoder().decode_responses)


class _Renewer:
    """Renews the live leases of one tier from one daemon thread, started when needed, ending when none is left."""

    def __init__(self, renew: Callable[[RedisLease], bool]) -> None:
        self._renew = renew
        self._fresh()

    def _fresh(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._leases: set[RedisLease] = set()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def add(self, lease: RedisLease) -> None:
        if self._pid != os.getpid():
            # A forked child has no renewal thread (nor the parent's leases), whatever the copied state says.
            self._fresh()
        with self._cond:
            if self._stopped:
                return
            self._leases.add(lease)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="infercache-redis-leases", daemon=True)
                self._thread.start()
            self._cond.notify()

    def discard(self, lease: RedisLease) -> None:
        with self._cond:
            self._leases.discard(lease)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._leases.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        """Whether the renewal thread is alive (for tests)."""
        with self._cond:
            return self._thread is not None

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped or not self._leases:
                        self._thread = None
                        return
                    now = time.monotonic()
                    due = [lease for lease in self._leases if lease.due <= now]
                    if due:
                        break
                    self._cond.wait(min(lease.due for lease in self._leases) - now)
            for lease in due:
                lease.due = time.monotonic() + lease.ttl / 3
                try:
                    still_held = self._renew(lease)
                except Exception as exc:  # noqa: BLE001 - retried at the next period; past the ttl the lease expires
                    logger.debug("redis tier: renewing lease %r failed: %s", lease.key, exc)
                    continue
                if not still_held:
                    lease.lost = True
                    self.discard(lease)


class RedisLease(Lease):
    """A lease held in Redis: renewed in the background while held, deleted by :meth:`release` if still ours."""

    def __init__(self, tier: RedisTier, key: bytes, token: bytes, ttl: float) -> None:
        self.tier = tier
        self.key = key
        self.token = token
        self.ttl = ttl
        self.due = time.monotonic() + ttl / 3
        #: Set when a renewal found the key gone or another holder's (expired while Redis was unreachable).
        self.lost = False
        self.released = False

    def release(self) -> None:
        """Delete the lease key if it still holds our token and stop renewing; idempotent, never raises."""
        if self.released:
            return
        self.released = True
        self.tier._renewer.discard(self)
        try:
            self.tier._sync_release(keys=[self.key], args=[self.token])
        except Exception as exc:  # noqa: BLE001 - an unreleased lease expires after its ttl
            logger.debug("redis tier: releasing lease %r failed: %s", self.key, exc)

    async def arelease(self) -> None:
        """Async :meth:`release` (through the running loop's async client)."""
        if self.released:
            return
        self.released = True
        self.tier._renewer.discard(self)
        try:
            await self.tier._side().release(keys=[self.key], args=[self.token])
        except Exception as exc:  # noqa: BLE001 - an unreleased lease expires after its ttl
            logger.debug("redis tier: releasing lease %r failed: %s", self.key, exc)


@dataclass
class _AsyncSide:
    """The async client serving one event loop, its release script, and whether the tier made it."""

    client: Any
    release: Any
    owned: bool
    closed: bool = False
    #: Closes the client when the loop shuts down (see :func:`_close_at_loop_shutdown`).
    closer: AsyncGenerator[None, None] | None = None


async def _close_at_loop_shutdown(side: _AsyncSide) -> AsyncGenerator[None, None]:
    """An async generator left suspended in the loop: the loop's shutdown closes it, and with it the client.

    ``asyncio.run`` (and ``asyncio.Runner``, uvicorn, pytest-asyncio) close
    every live async generator of a loop before closing it; a client left
    open past that would hold sockets the closed loop can never close.
    """
    try:
        yield
    finally:
        if not side.closed:
            side.closed = True
            try:
                await side.client.aclose()
            except Exception as exc:  # noqa: BLE001 - closing is best effort: the server drops the connections
                logger.debug("redis tier: closing an async client at loop shutdown failed: %s", exc)


class RedisTier(Tier):
    """Records in Redis or Valkey (standalone or Cluster), shared by every process; see the module's docstring.

    Args:
        url_or_client: a ``redis://``, ``rediss://`` or ``unix://`` URL (add
            ``?cluster=1`` for a Redis Cluster), or a redis-py client:
            ``redis.Redis``, ``redis.asyncio.Redis``,
            ``redis.cluster.RedisCluster`` or ``redis.asyncio.cluster.RedisCluster``.
        cluster: the URL names a Redis Cluster (same as ``?cluster=1``).
        default_ttl: seconds a record lives when ``set`` is given no ttl;
            None keeps it until deleted (or evicted by the server).
        socket_timeout: seconds a command may take on clients the tier makes.
        connect_timeout: seconds connecting may take on clients the tier makes.
        lease_ttl: seconds a lease lives unrenewed when :meth:`lease` is given
            no ttl: how long a holder that died blocks the others at most.
    """

    name = "redis"

    def __init__(
        self,
        url_or_client: str | AnyClient,
        *,
        cluster: bool = False,
        default_ttl: float | None = DEFAULT_TTL,
        socket_timeout: float = 1.0,
        connect_timeout: float = 1.0,
        lease_ttl: float = 15.0,
    ) -> None:
        for label, value in (("socket_timeout", socket_timeout), ("connect_timeout", connect_timeout),
                             ("lease_ttl", lease_ttl), ("default_ttl", default_ttl)):
            if value is not None and not value > 0:
                raise ConfigError(f"RedisTier {label} must be a positive number of seconds, not {value!r}")
        import redis
        import redis.asyncio
        import redis.asyncio.cluster
        import redis.cluster

        self.default_ttl = default_ttl
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self.lease_ttl = lease_ttl
        self._lock = threading.Lock()
        self._closed = False
        self._given_async: Any = None
        self._asides: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncSide] = weakref.WeakKeyDictionary()

        if isinstance(url_or_client, str):
            url, self.cluster = _split_url(url_or_client, cluster)
            self._make_sync: Callable[[], Any] = lambda: self._sync_from_url(url)
            self._make_async: Callable[[], Any] = lambda: self._async_from_url(url)
            self._sync: Any = self._make_sync()
            self._owns_sync = True
        else:
            kinds = (redis.Redis, redis.asyncio.Redis, redis.cluster.RedisCluster, redis.asyncio.cluster.RedisCluster)
            if not isinstance(url_or_client, kinds):
                raise ConfigError(
                    "RedisTier takes a redis://, rediss:// or unix:// URL, or a redis.Redis, redis.asyncio.Redis, "
                    f"redis.cluster.RedisCluster or redis.asyncio.cluster.RedisCluster, not {type(url_or_client)!r}"
                )
            if _decodes(url_or_client):
                raise ConfigError("RedisTier needs a client made without decode_responses=True: records are bytes")
            settings = _settings_of(url_or_client)
            self.cluster = settings.cluster
            self._make_sync = lambda: self._sync_from(settings)
            self._make_async = lambda: self._async_from(settings)
            if isinstance(url_or_client, (redis.Redis, redis.cluster.RedisCluster)):
                self._sync = url_or_client
                self._owns_sync = False
            else:
                self._given_async = url_or_client
                self._sync = self._make_sync()
                self._owns_sync = True
        self._sync_renew = self._sync.register_script(_RENEW)
        self._sync_release = self._sync.register_script(_RELEASE)
        self._renewer = _Renewer(self._renew)

    # -- clients ----------------------------------------------------------

    def _sync_retry(self) -> Any:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return Retry(NoBackoff(), 1)

    def _async_retry(self) -> Any:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        return Retry(NoBackoff(), 1)

    def _timeouts(self) -> dict[str, Any]:
        return {"socket_timeout": self.socket_timeout, "socket_connect_timeout": self.connect_timeout}

    def _sync_from_url(self, url: str) -> Any:
        import redis
        import redis.cluster

        if self.cluster:
            return redis.cluster.RedisCluster.from_url(url, retry=self._sync_retry(), **self._timeouts())
        return redis.Redis.from_url(url, retry=self._sync_retry(), **self._timeouts())

    def _async_from_url(self, url: str) -> Any:
        import redis.asyncio
        import redis.asyncio.cluster

        if self.cluster:
            return redis.asyncio.cluster.RedisCluster.from_url(url, retry=self._async_retry(), **self._timeouts())
        return redis.asyncio.Redis.from_url(url, retry=self._async_retry(), **self._timeouts())

    def _sync_from(self, settings: _Settings) -> Any:
        import redis
        import redis.cluster

        if settings.cluster:
            node: Any = redis.cluster.ClusterNode  # untyped in redis-py
            nodes = [node(host, port) for host, port in settings.nodes]
            return redis.cluster.RedisCluster(
                startup_nodes=nodes, retry=self._sync_retry(), **settings.options, **self._timeouts()
            )
        return redis.Redis(retry=self._sync_retry(), **settings.options, **self._timeouts())

    def _async_from(self, settings: _Settings) -> Any:
        import redis.asyncio
        import redis.asyncio.cluster

        if settings.cluster:
            nodes = [redis.asyncio.cluster.ClusterNode(host, port) for host, port in settings.nodes]
            return redis.asyncio.cluster.RedisCluster(
                startup_nodes=nodes, retry=self._async_retry(), **settings.options, **self._timeouts()
            )
        return redis.asyncio.Redis(retry=self._async_retry(), **settings.options, **self._timeouts())

    def _client(self) -> Any:
        if self._closed:
            raise TierError("this redis tier is closed")
        return self._sync

    @property
    def client(self) -> Any:
        """The sync redis-py client (given, or made by the tier)."""
        return self._sync

    def async_client(self) -> Any:
        """The async redis-py client serving the running event loop (made on first use)."""
        return self._side().client

    def _side(self) -> _AsyncSide:
        if self._closed:
            raise TierError("this redis tier is closed")
        loop = asyncio.get_running_loop()
        side = self._asides.get(loop)
        if side is not None:
            return side
        with self._lock:
            side = self._asides.get(loop)
            if side is None:
                # A closed loop's client can never run again; dropping it lets the loop be collected.
                for old in [lp for lp in self._asides if lp.is_closed()]:
                    del self._asides[old]
                if self._given_async is not None:
                    client, owned, self._given_async = self._given_async, False, None
                else:
                    client, owned = self._make_async(), True
                side = _AsyncSide(client, client.register_script(_RELEASE), owned)
                if owned:
                    side.closer = _close_at_loop_shutdown(side)
                    # Run it to its yield now, in this loop: its first step registers it with the loop.
                    step: Any = side.closer.asend(None)
                    try:
                        step.send(None)
                    except StopIteration:
                        pass
                self._asides[loop] = side
        return side

    # -- verbs --------------------------------------------------------------

    def _px(self, ttl: float | None) -> int | None:
        ttl = self.default_ttl if ttl is None else ttl
        return None if ttl is None else _millis(ttl)

    def get(self, name: bytes) -> bytes | None:
        record: bytes | None = self._client().get(name)
        return record

    def set(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        if ttl is not None and ttl <= 0:
            self._client().delete(name)  # already expired: what was stored under the name is outdated too
            return
        self._client().set(name, record, px=self._px(ttl))

    def delete(self, name: bytes) -> bool:
        return bool(self._client().delete(name))

    def _scan(self, prefix: bytes) -> Iterator[list[bytes]]:
        """The names (lease keys left out) starting with ``prefix``, in batches of at most :data:`BATCH`."""
        batch: list[bytes] = []
        for key in self._client().scan_iter(match=glob_escape(prefix) + b"*", count=BATCH):
            if not key.startswith(LEASE_PREFIX):
                batch.append(key)
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def clear(self, prefix: bytes = b"") -> int:
        """Remove every record whose name starts with ``prefix`` (leases are left to expire); how many.

        ``clear(b"")`` empties the whole database but leases: give the tier
        a database of its own, or clear by the ``infercache/`` prefix.
        """
        client = self._client()
        return sum(int(client.unlink(*batch)) for batch in self._scan(prefix))

    def entries(self, prefix: bytes = b"") -> Iterator[tuple[bytes, int]]:
        """``(name, size)`` of the records starting with ``prefix``; leases and keys of other types are skipped."""
        client = self._client()
        for batch in self._scan(prefix):
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.strlen(key)
                pipe.exists(key)
            # A key of another type (a hash of another application) answers WRONGTYPE: not a record, skipped.
            results = pipe.execute(raise_on_error=False)
            for key, size, exists in zip(batch, results[0::2], results[1::2]):
                if not isinstance(size, Exception) and not isinstance(exists, Exception) and exists:
                    yield key, int(size)

    # -- leases -------------------------------------------------------------

    def _lease_args(self, name: bytes, ttl: float | None) -> tuple[bytes, bytes, float]:
        ttl = self.lease_ttl if ttl is None else ttl
        if not ttl > 0:
            raise ValueError(f"a lease ttl must be positive, not {ttl!r}")
        return LEASE_PREFIX + name, secrets.token_hex(16).encode(), ttl

    def lease(self, name: bytes, ttl: float | None = None) -> RedisLease | None:
        """Take the lease on computing ``name`` for ``ttl`` seconds (default ``lease_ttl``), renewed while held.

        None when another holder has it. Renewal happens every ``ttl / 3``
        from the tier's background thread until :meth:`RedisLease.release`.
        """
        key, token, ttl = self._lease_args(name, ttl)
        if not self._client().set(key, token, nx=True, px=_millis(ttl)):
            return None
        lease = RedisLease(self, key, token, ttl)
        self._renewer.add(lease)
        return lease

    async def alease(self, name: bytes, ttl: float | None = None) -> RedisLease | None:
        """Async :meth:`lease` (renewal still runs on the tier's thread)."""
        key, token, ttl = self._lease_args(name, ttl)
        if not await self._side().client.set(key, token, nx=True, px=_millis(ttl)):
            return None
        lease = RedisLease(self, key, token, ttl)
        self._renewer.add(lease)
        return lease

    def _renew(self, lease: RedisLease) -> bool:
        return bool(self._sync_renew(keys=[lease.key], args=[lease.token, _millis(lease.ttl)]))

    # -- async verbs ----------------------------------------------------------

    async def aget(self, name: bytes) -> bytes | None:
        record: bytes | None = await self._side().client.get(name)
        return record

    async def aset(self, name: bytes, record: bytes, ttl: float | None = None) -> None:
        client = self._side().client
        if ttl is not None and ttl <= 0:
            await client.delete(name)
            return
        await client.set(name, record, px=self._px(ttl))

    async def adelete(self, name: bytes) -> bool:
        return bool(await self._side().client.delete(name))

    async def aclear(self, prefix: bytes = b"") -> int:
        client = self._side().client
        removed = 0
        batch: list[bytes] = []
        async for key in client.scan_iter(match=glob_escape(prefix) + b"*", count=BATCH):
            if not key.startswith(LEASE_PREFIX):
                batch.append(key)
                if len(batch) >= BATCH:
                    removed += int(await client.unlink(*batch))
                    batch = []
        if batch:
            removed += int(await client.unlink(*batch))
        return removed

    # -- closing ------------------------------------------------------------

    def close(self) -> None:
        """Stop renewing leases (held ones expire after their ttl) and close the clients the tier made."""
        if self._closed:
            return
        self._closed = True
        self._renewer.stop()
        if self._owns_sync:
            self._sync.close()
        with self._lock:
            sides = list(self._asides.items())
            self._asides.clear()
        for loop, side in sides:
            if side.owned and not side.closed:
                side.closed = True
                _close_on(loop, side.client)

    async def aclose(self) -> None:
        """:meth:`close`, awaiting the running loop's async client's own close."""
        loop = asyncio.get_running_loop()
        with self._lock:
            side = self._asides.pop(loop, None)
        if side is not None and side.owned and not side.closed:
            side.closed = True
            await side.client.aclose()
        self.close()


def _close_on(loop: asyncio.AbstractEventLoop, client: Any) -> None:
    """Close an async client on the loop it belongs to, from whatever thread is closing the tier."""
    if loop.is_closed():
        return  # its connections went with the loop's transports
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    try:
        if loop is running:
            task = loop.create_task(client.aclose())
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        elif loop.is_running():
            asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=1.0)
        elif running is None:
            loop.run_until_complete(client.aclose())
    except Exception as exc:  # noqa: BLE001 - closing is best effort: the server drops idle connections anyway
        logger.debug("redis tier: closing an async client failed: %s", exc)


# Tasks closing clients on the running loop, kept referenced until done.
_closing: set[asyncio.Task[None]] = set()
