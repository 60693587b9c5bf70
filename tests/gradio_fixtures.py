"""Shared helpers for the Gradio server and browser tests.

* :func:`serve` launches a ``gr.Blocks`` on 127.0.0.1 at a free port and always
  closes it.
* :func:`chromium` starts Debian's Chromium (``/usr/bin/chromium``) headless
  through Playwright. The browser tests do not skip without it: CI installs it.
* :func:`artifact_path` gives a path under ``artifacts/`` at the repository
  root (git-ignored) for screenshots.
* :func:`wait_until` polls a condition (no timing assertions: a timeout only
  turns a hang into a clear failure).
* :func:`client` opens a ``gradio_client`` client (each one a new Gradio
  session); :func:`wait_started` waits for a slow call to block;
  :func:`outputs` gives every output a submitted job streamed.
* :func:`run_event` runs one event through the queue as the browser does and
  returns the server's messages, including the cache flag behind Gradio's
  ``from cache`` / ``used cache`` badges (``gradio_client`` drops it).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import httpx
from gradio_client import Client
from gradio_client.client import Job

REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(blocks: gr.Blocks, **launch_kwargs: Any) -> Iterator[str]:
    """Launch ``blocks`` on 127.0.0.1 (free port); yield its URL; close it afterwards."""
    last: Exception | None = None
    for _ in range(5):  # another process may grab the port between probe and bind
        port = free_port()
        try:
            blocks.launch(
                server_name="127.0.0.1",
                server_port=port,
                prevent_thread_lock=True,
                quiet=True,
                show_error=True,
                **launch_kwargs,
            )
            break
        except OSError as exc:
            last = exc
    else:
        raise RuntimeError(f"could not launch a Gradio server: {last}")
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        blocks.close()


def wait_until(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def client(url: str, downloads: str | None = None) -> Client:
    """A new client: a new Gradio session, downloading into ``downloads`` (a new folder by default).

    Its requests wait up to a minute: gradio_client's own requests (joining the queue,
    uploading a file) use httpx's default of 5 s, which a loaded machine's server can
    pass before answering, failing the test with no fault of the code under test.
    """
    return Client(url, verbose=False, download_files=downloads or tempfile.mkdtemp(prefix="ic-client-"),
                  httpx_kwargs={"timeout": 60})


def wait_started(event: threading.Event, job: Job) -> None:
    """Wait until ``event`` is set, failing early if ``job`` ended instead."""
    wait_until(lambda: event.is_set() or job.done(), what="the slow call to start")
    assert event.is_set(), f"the slow call ended before blocking: {job.exception()!r}"


def outputs(job: Job) -> list[Any]:
    """Every output ``job`` produced (each yield of a generator), once it has finished."""
    job.result()
    return list(job.outputs())


def artifact_path(name: str) -> Path:
    """``artifacts/<name>`` at the repository root (created on demand)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium ``Browser`` driven by Playwright (sync API)."""
    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        raise RuntimeError(
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium); "
            "scripts/test.sh does this"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class EventRun:
    """The queue messages of one event, as the browser receives them."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def completed(self) -> dict[str, Any]:
        """The ``process_completed`` message (the last one)."""
        last = self.messages[-1] if self.messages else {}
        assert last.get("msg") == "process_completed", f"the event did not complete: {self.messages}"
        return last

    @property
    def used_cache(self) -> str | None:
        """The badge the page shows: ``"full"`` (from cache), ``"partial"`` (used cache) or None."""
        return self.completed.get("used_cache")

    @property
    def data(self) -> list[Any]:
        """The event's final output values."""
        completed = self.completed
        assert completed.get("success"), f"the event failed: {completed.get('output')}"
        return list(completed["output"]["data"])

    @property
    def generating(self) -> int:
        """How many intermediate (streamed) outputs the event sent."""
        return sum(1 for m in self.messages if m.get("msg") == "process_generating")


def run_event(url: str, api_name: str, *data: Any, session_hash: str | None = None) -> EventRun:
    """Run the event named ``api_name`` once through Gradio's queue; return all its messages.

    This speaks the queue protocol the browser uses (``queue/join`` then the
    ``queue/data`` event stream) because the cache flag of the final message,
    which drives the badges, is not exposed by ``gradio_client``.
    """
    session_hash = session_hash or uuid.uuid4().hex
    run = EventRun()
    with httpx.Client(base_url=url, timeout=60) as http:
        config = http.get("config").json()
        prefix = str(config.get("api_prefix") or "/gradio_api").strip("/")
        fn_index = next(
            d["id"] for d in config["dependencies"] if d.get("api_name") == api_name.lstrip("/")
        )
        joined = http.post(
            f"{prefix}/queue/join",
            json={
                "data": list(data),
                "fn_index": fn_index,
                "session_hash": session_hash,
                "event_data": None,
                "trigger_id": None,
            },
        )
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        with http.stream("GET", f"{prefix}/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") != event_id:
                    continue
                run.messages.append(message)
                if message.get("msg") == "process_completed":
                    return run
    raise AssertionError(f"the event stream ended before the event completed: {run.messages}")
