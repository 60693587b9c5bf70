"""Worker processes for the end-to-end tier tests: real interpreters sharing a directory or a Redis server.

:class:`Workers` writes one worker script into a test's temporary directory
and starts it with ``sys.executable``, each run a separate process with its
own memory, so whatever one process finds that another computed came
through the store. The script defines one cached function,
``compute(x, size) -> (x, x * x, bytes([x % 256]) * size)`` (``acompute`` is
its async twin), whose body appends ``"<pid> <x>"`` to a calls file before
doing anything else, so the test counts real computations across processes.
A record of a ``size`` above 64 KiB goes to a file of the disk store, a
smaller one inline in its index.

Each worker prints one JSON line per call, a summary of the value it got
(:func:`expected` builds the right one), and logs the library's warnings to
its stderr. Its environment carries ``INFERCACHE_SECRET`` and a private
``XDG_CONFIG_HOME`` / ``XDG_CACHE_HOME``, and no ``INFERCACHE_STORE``.

Coordination is through files, never through timing: a worker given a
:class:`Barrier` announces itself ready (its store is open) and waits for
the barrier's go before its calls; ``started=`` makes the function touch a
file when it begins computing, so the test knows a holder has the key.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SECRET", "Barrier", "Result", "Worker", "Workers", "expected", "wait_for"]

SECRET = "tier-tests-secret-0123456789abcdef"  # noqa: S105 - a test value, not a credential
#: Longest a worker may run, or a test wait for a file: a hang becomes a failure, not a speed check.
TIMEOUT = 60.0

WORKER = '''
import asyncio
import json
import logging
import os
import sys
import time

import infercache as ic

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
cfg = json.loads(sys.argv[1])
CALLS = cfg["calls"]
SLEEP = cfg["sleep"]
STARTED = cfg["started"]


def compute(x, size):
    with open(CALLS, "a") as f:
        f.write(f"{os.getpid()} {x}\\n")
    if STARTED:
        open(STARTED, "w").close()
    time.sleep(SLEEP)
    return (x, x * x, bytes([x % 256]) * size)


async def acompute(x, size):
    with open(CALLS, "a") as f:
        f.write(f"{os.getpid()} {x}\\n")
    if STARTED:
        open(STARTED, "w").close()
    await asyncio.sleep(SLEEP)
    return (x, x * x, bytes([x % 256]) * size)


store = cfg["store"]
if cfg["redis"] is not None:
    store = ic.RedisStore(store, **cfg["redis"])
fn = ic.cache(store=store)(acompute if cfg["mode"] == "async" else compute)

if cfg["ready"]:
    open(cfg["ready"], "w").close()
if cfg["go"]:
    deadline = time.monotonic() + 60
    while not os.path.exists(cfg["go"]):
        if time.monotonic() > deadline:
            sys.exit("no go from the barrier")
        time.sleep(0.005)


def summary(value):
    x, square, blob = value
    return {"x": x, "square": square, "size": len(blob), "bytes": sorted(set(blob))}


if cfg["full_disk"]:
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["full_disk"], hard))
for x, size in cfg["inputs"]:
    value = asyncio.run(fn(x, size)) if cfg["mode"] == "async" else fn(x, size)
    print(json.dumps(summary(value)), flush=True)
if cfg["full_disk"]:
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
if cfg["until_back"]:
    x, size = cfg["until_back"]
    tier = fn.cache.engine.tiers[0]
    deadline = time.monotonic() + 60
    while not tier.available:  # each call past the breaker's cooldown probes the store
        if time.monotonic() > deadline:
            sys.exit("the store did not come back")
        fn.cache.engine.store.clear()
        fn(x, size)
        time.sleep(0.05)
    fn.cache.engine.store.clear()
    print(json.dumps(summary(fn(x, size))), flush=True)  # computed again only if the store lost it
if cfg["linger"]:
    while not os.path.exists(cfg["linger"]):
        time.sleep(0.005)
'''


def expected(x: int, size: int) -> dict[str, Any]:
    """The summary a worker prints for the right value of ``compute(x, size)``."""
    return {"x": x, "square": x * x, "size": size, "bytes": [x % 256] if size else []}


def wait_for(condition: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` until true; a timeout is a failure naming ``what`` (no assertion on speed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@dataclass
class Result:
    """What a finished worker printed: one summary per call, and its log lines."""

    values: list[dict[str, Any]]
    stderr: str


class Worker:
    """One running worker process."""

    def __init__(self, proc: subprocess.Popen[str], inputs: Sequence[tuple[int, int]]) -> None:
        self.proc = proc
        #: The ``(x, size)`` of each value it prints, in order.
        self.inputs = list(inputs)
        self._read = 0

    def next_value(self) -> dict[str, Any]:
        """Block until the worker prints its next value (it is in the store by then), and return it."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"worker {self.proc.pid} ended early:\n{self.finish().stderr}")
        value: dict[str, Any] = json.loads(line)
        self._read += 1
        return value

    def finish(self) -> Result:
        """Wait for the worker to exit; its output (fails the test if it exited with an error)."""
        try:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"worker {self.proc.pid} hung:\n{err}") from None
        assert self.proc.returncode == 0, f"worker {self.proc.pid} exited with {self.proc.returncode}:\n{err}"
        return Result([json.loads(line) for line in out.splitlines() if line.strip()], err)

    def check(self) -> Result:
        """:meth:`finish`, and every value it got (after those read by :meth:`next_value`) is the right one."""
        result = self.finish()
        assert result.values == [expected(x, size) for x, size in self.inputs[self._read :]], result.stderr
        return result

    def kill(self) -> None:
        """SIGKILL the worker (no cleanup of any kind runs in it) and reap it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=TIMEOUT)


class Barrier:
    """A start line for workers: each one announces itself ready, then waits until :meth:`go`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / f"barrier-{uuid.uuid4().hex[:8]}"
        self.folder.mkdir()
        self.go_file = self.folder / "go"

    def ready_file(self) -> Path:
        """A new file for one more worker to create when ready."""
        return self.folder / f"ready-{uuid.uuid4().hex[:8]}"

    def ready(self) -> int:
        """How many workers are ready."""
        return sum(1 for p in self.folder.iterdir() if p.name.startswith("ready-"))

    def go(self, count: int) -> None:
        """Wait until ``count`` workers are ready, then let them all go at once."""
        wait_for(lambda: self.ready() >= count, f"{count} workers to be ready")
        self.go_file.touch()


class Workers:
    """Starts worker processes over one calls file, in a test's temporary directory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.script = folder / "tier_worker.py"
        self.script.write_text(WORKER)
        self.calls_file = folder / "calls.txt"
        self.calls_file.touch()
        self.home = folder / "home"

    def env(self, secret: str = SECRET) -> dict[str, str]:
        """The environment of a worker: the secret, private config and cache directories, no default store."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("INFERCACHE_")}
        env["INFERCACHE_SECRET"] = secret
        env["XDG_CONFIG_HOME"] = str(self.home / "config")
        env["XDG_CACHE_HOME"] = str(self.home / "cache")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(
        self,
        store: str,
        inputs: Sequence[tuple[int, int]],
        *,
        mode: str = "sync",
        sleep: float = 0.0,
        started: Path | None = None,
        barrier: Barrier | None = None,
        redis: dict[str, Any] | None = None,
        linger: Path | None = None,
        full_disk: int | None = None,
        until_back: tuple[int, int] | None = None,
        secret: str = SECRET,
    ) -> Worker:
        """Start a worker calling the cached function on each ``(x, size)`` of ``inputs``.

        ``store`` is a directory or a URL (``store=`` as given); with
        ``redis`` (keyword arguments) it is a Redis URL opened as
        ``ic.RedisStore(url, **redis)``. ``mode="async"`` calls the async twin.
        ``sleep`` is how long each computation takes. With ``linger`` the
        worker stays alive after its calls until that file exists.
        ``full_disk`` limits the size of any file the worker writes to that
        many bytes (``RLIMIT_FSIZE``: a full disk that stops root too) during
        its calls, and lifts it after; ``until_back=(x, size)`` then calls
        ``compute(x, size)`` (memory cleared each time) until the store's
        circuit breaker has closed again, and prints that value last.
        """
        cfg = {
            "store": store,
            "inputs": [list(pair) for pair in inputs],
            "calls": str(self.calls_file),
            "mode": mode,
            "sleep": sleep,
            "started": str(started) if started else None,
            "ready": str(barrier.ready_file()) if barrier else None,
            "go": str(barrier.go_file) if barrier else None,
            "redis": redis,
            "linger": str(linger) if linger else None,
            "full_disk": full_disk,
            "until_back": list(until_back) if until_back else None,
        }
        proc = subprocess.Popen(
            [sys.executable, str(self.script), json.dumps(cfg)],
            env=self.env(secret),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return Worker(proc, [*inputs, *([until_back] if until_back else [])])

    def run(self, store: str, inputs: Sequence[tuple[int, int]], **options: Any) -> Result:
        """Start a worker, wait for it, and check that every value it got is right."""
        return self.start(store, inputs, **options).check()

    def calls(self) -> list[tuple[int, int]]:
        """``(pid, x)`` of every computation so far, in every process."""
        lines = self.calls_file.read_text().splitlines()
        return [(int(pid), int(x)) for pid, x in (line.split() for line in lines if line.strip())]

    def computed(self) -> list[int]:
        """The inputs computed so far, in order, in every process."""
        return [x for _, x in self.calls()]
