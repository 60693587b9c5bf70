"""Shared helpers for the Gradio server and browser tests.

* :func:`serve` launches a ``gr.Blocks`` on 127.0.0.1 at a free port and always
  closes it.
* :func:`chromium` starts Debian's Chromium (``/usr/bin/chromium``) headless
  through Playwright. The browser tests do not skip without it: CI installs it.
* :func:`artifact_path` gives a path under ``artifacts/`` at the repository
  root (git-ignored) for screenshots.
* :func:`wait_until` polls a condition (no timing assertions: a timeout only
  turns a hang into a clear failure).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gradio as gr

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
