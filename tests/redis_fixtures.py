"""Real ``redis-server`` processes for tests: one server, or a 3-master cluster.

Plain classes, usable anywhere (a subprocess test, a benchmark), and pytest
fixtures over them that a test module imports by name::

    from redis_fixtures import redis_server, redis_url  # noqa: F401 - pytest fixtures

* :class:`RedisServer` starts ``redis-server`` on a free 127.0.0.1 port with
  no persistence, in a directory of its own, and waits until it answers PING.
  ``kill()`` is a SIGKILL (a crash), ``restart()`` brings it back on the same
  port (empty), ``stop()`` ends it for good.
* :class:`RedisCluster3` starts three masters in cluster mode, gives each a
  third of the 16384 slots, introduces them to one another (CLUSTER
  ADDSLOTSRANGE and CLUSTER MEET through redis-py) and waits until every node
  reports ``cluster_state:ok``.
* Fixtures: ``redis_server`` (module scope), ``redis_url`` (per test: the
  server flushed, and restarted first if a test killed it), ``redis_cluster``
  (module scope) and ``redis_cluster_url`` (per test: every master flushed).

Without the ``redis-server`` binary the fixtures skip with the reason (the
README's test command installs Debian's package, so CI has it). Every server
started here is also killed at interpreter exit, should a test leave one.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

__all__ = [
    "RedisCluster3",
    "RedisServer",
    "free_port",
    "redis_cluster",
    "redis_cluster_url",
    "redis_server",
    "redis_url",
    "require_redis_server",
    "wait_until",
]

SERVER = "redis-server"
START_TIMEOUT = 15.0
_live: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_live):
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def require_redis_server() -> str:
    """The path of ``redis-server``; skips the calling test when it is not installed."""
    path = shutil.which(SERVER)
    if path is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs Debian's redis-server package)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``condition`` until it is true; a timeout turns a hang into a clear failure, it is no assertion on speed."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {condition}")
        time.sleep(interval)


def _answers_ping(port: int) -> bool:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """One ``redis-server`` on 127.0.0.1, without persistence, started at construction.

    Args:
        directory: its working directory (a fresh temporary one, removed by
            :meth:`stop`, when None).
        port: the port (a free one when None); :meth:`restart` keeps it.
        args: extra command-line arguments (e.g. ``["--cluster-enabled", "yes"]``).
    """

    def __init__(self, directory: Path | None = None, *, port: int | None = None, args: tuple[str, ...] = ()) -> None:
        self.binary = require_redis_server()
        self._own_dir = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="redis-")) if directory is None else directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        # A port found free can be taken before the server binds it: try a few.
        for attempt in range(5):
            self.port = free_port() if port is None else port
            try:
                self.start()
                return
            except RuntimeError:
                if port is not None or attempt == 4:
                    raise

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def alive(self) -> bool:
        """Whether the process is running (not whether it answers)."""
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the process on :attr:`port` and wait until it answers PING; RuntimeError if it does not."""
        log = self.directory / "redis.log"
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--logfile", str(log), *self.args,
        ]
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        _live.add(self.proc)
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers_ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self._end(signal.SIGKILL)
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server on port {self.port} did not start:\n{tail}")
            time.sleep(0.02)

    def _end(self, sig: signal.Signals) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _live.discard(proc)

    def kill(self) -> None:
        """SIGKILL the server (a crash: clients see their connections reset)."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        """Start it again on the same port (empty: nothing is persisted); kills it first if it runs."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """End the server for good (SIGTERM) and remove its temporary directory."""
        self._end(signal.SIGTERM)
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def client(self) -> redis.Redis:
        """A new sync client of this server (the caller closes it)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=5)

    def flush(self) -> None:
        """Empty the server (FLUSHALL)."""
        with self.client() as c:
            c.flushall()


class RedisCluster3:
    """Three masters in cluster mode on 127.0.0.1, each owning a third of the slots, ready when constructed."""

    SLOTS = 16384

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
        self.nodes: list[RedisServer] = []
        # The bus port defaults to port + 10000, past 65535 for many free ports: chosen here.
        self.bus_ports = [free_port() for _ in range(3)]
        try:
            for i in range(3):
                self.nodes.append(RedisServer(
                    self.directory / f"node{i}",
                    args=("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{i}.conf",
                          "--cluster-port", str(self.bus_ports[i]), "--cluster-node-timeout", "2000"),
                ))
            self._form()
        except BaseException:
            self.stop()
            raise

    def _form(self) -> None:
        clients = [n.client() for n in self.nodes]
        try:
            third = self.SLOTS // 3
            bounds = [(0, third - 1), (third, 2 * third - 1), (2 * third, self.SLOTS - 1)]
            for c, (lo, hi) in zip(clients, bounds):
                c.execute_command("CLUSTER ADDSLOTSRANGE", lo, hi)
            for node, bus_port in zip(self.nodes[1:], self.bus_ports[1:]):
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port, bus_port)

            def ready() -> bool:
                for c in clients:
                    info = c.execute_command("CLUSTER INFO")  # parsed by redis-py into a dict of str
                    if info.get("cluster_state") != "ok" or str(info.get("cluster_known_nodes")) != "3":
                        return False
                return True

            wait_until(ready, timeout=START_TIMEOUT)
        finally:
            for c in clients:
                c.close()

    @property
    def ports(self) -> list[int]:
        """The masters' ports."""
        return [n.port for n in self.nodes]

    @property
    def url(self) -> str:
        """A URL of one master (a cluster client discovers the others from it)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    def client(self) -> RedisCluster:
        """A new sync cluster client (the caller closes it)."""
        return RedisCluster(host="127.0.0.1", port=self.nodes[0].port, socket_timeout=5, socket_connect_timeout=5)

    def flush(self) -> None:
        """Empty every master."""
        for node in self.nodes:
            node.flush()

    def stop(self) -> None:
        """End every master and remove their directories."""
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A ``redis-server`` shared by the tests of one module."""
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the module's server, emptied for this test (and restarted first if a test killed it)."""
    if not redis_server.alive:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisCluster3]:
    """A 3-master cluster shared by the tests of one module."""
    cluster = RedisCluster3()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster3) -> str:
    """The URL of the module's cluster, every master emptied for this test."""
    redis_cluster.flush()
    return redis_cluster.url

