"""Gradio end-to-end harness: the apps, a keep-alive queue client and a timed Chromium page.

``bench_suite.py`` times a repeated request to a real Gradio server on
127.0.0.1 through three clients:

* ``gradio_client`` (what the first round measured; each ``predict`` builds
  new HTTP clients and polls its message queue, so it is client-bound);
* :class:`QueueClient`, which speaks Gradio's queue protocol directly (POST
  ``queue/join`` with the event's data, then the ``queue/data`` event stream
  until ``process_completed``) over one keep-alive ``httpx.Client`` and one
  session for every request;
* headless Chromium through Playwright (:class:`BrowserPage`): the click and
  the wait for the output are timed inside the page with ``performance.now()``.

Two apps are served: :func:`textbox_app` (one textbox in, one out, a button
per function timed) and :func:`image_app` (a 1080p PNG into a cached
classifier, once with ``gr.Image(type="numpy")`` and once with
``gr.Image(type="filepath")`` and the decode inside the cached function).
Every output textbox has a reset button whose event runs in the browser only
(``fn=None, js=...``): the page empties the output before each timed click,
so the wait ends when the new output is shown even if it equals the last one.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Debian's Chromium; Playwright's own download is used when this is absent.
CHROMIUM = "/usr/bin/chromium"
# The flags tests/gradio_fixtures.py launches with, repeated: benchmarks do not import the test suite.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Missing(Exception):
    """A client or app that cannot run here (shown as n/a with this reason)."""


# --------------------------------------------------------------------------- server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(blocks: Any) -> str:
    """Launch ``blocks`` on 127.0.0.1 (a free port, retried if taken); returns its URL."""
    last: Exception | None = None
    for _ in range(5):
        try:
            blocks.launch(
                server_name="127.0.0.1",
                server_port=_free_port(),
                prevent_thread_lock=True,
                quiet=True,
                show_error=True,
            )
            return str(blocks.local_url)
        except OSError as exc:  # another process took the port between probe and bind
            last = exc
    raise Missing(f"could not launch a Gradio server: {last}")


@dataclass
class Endpoint:
    """One timed function of an app: its api name and the elem ids the page uses."""

    api_name: str
    button: str
    output: str
    reset: str
    inputs: list[str] = field(default_factory=list)


@dataclass
class App:
    """A launched Gradio app and its endpoints by row name."""

    blocks: Any
    url: str
    endpoints: dict[str, Endpoint]

    def close(self) -> None:
        """Stop the server."""
        self.blocks.close()


def _slug(i: int, kind: str) -> str:
    return f"ic-{kind}-{i}"


def textbox_app(functions: dict[str, Callable[[str], str]]) -> App:
    """A Blocks app with one textbox in, one textbox out and a button per function."""
    import gradio as gr

    endpoints: dict[str, Endpoint] = {}
    with gr.Blocks() as blocks:
        for i, (name, fn) in enumerate(functions.items()):
            ep = Endpoint(f"text{i}", _slug(i, "run"), _slug(i, "out"), _slug(i, "reset"), [_slug(i, "in")])
            with gr.Row():
                box_in = gr.Textbox(label=f"{name} input", elem_id=ep.inputs[0])
                box_out = gr.Textbox(label=f"{name} output", elem_id=ep.output)
                gr.Button(f"Run {name}", elem_id=ep.button).click(fn, box_in, box_out, api_name=ep.api_name)
                gr.Button("Reset", elem_id=ep.reset).click(None, None, box_out, js="() => ''")
            endpoints[name] = ep
    return App(blocks, launch(blocks), endpoints)


def image_app(functions: dict[str, tuple[str, Callable[[Any], str]]]) -> App:
    """A Blocks app with, per function, an image input of the given ``type`` and a textbox output."""
    import gradio as gr

    endpoints: dict[str, Endpoint] = {}
    with gr.Blocks() as blocks:
        for i, (name, (kind, fn)) in enumerate(functions.items()):
            ep = Endpoint(f"image{i}", _slug(i, "img-run"), _slug(i, "img-out"), _slug(i, "img-reset"),
                          [_slug(i, "img-in")])
            with gr.Row():
                image = gr.Image(type=kind, label=f"{name} input", elem_id=ep.inputs[0])  # type: ignore[arg-type]
                box_out = gr.Textbox(label=f"{name} output", elem_id=ep.output)
                gr.Button(f"Run {name}", elem_id=ep.button).click(fn, image, box_out, api_name=ep.api_name)
                gr.Button("Reset", elem_id=ep.reset).click(None, None, box_out, js="() => ''")
            endpoints[name] = ep
    return App(blocks, launch(blocks), endpoints)


def write_png(path: Path, shape: tuple[int, int, int]) -> Path:
    """A photo-like PNG (smooth gradients plus sensor-like noise) of ``shape`` (height, width, 3)."""
    import numpy as np
    from PIL import Image

    h, w, _ = shape
    rng = np.random.default_rng(1080)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    base = np.stack([200 * x * (1 - y) + 30, 180 * y + 40 * x, 120 + 100 * np.sin(6 * x + 3 * y)], axis=-1)
    noisy = base + rng.normal(0, 6, size=(h, w, 3))
    Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="RGB").save(path)
    return path


# --------------------------------------------------------------------------- keep-alive client


class QueueClient:
    """Gradio's queue protocol over one keep-alive HTTP/1.1 connection and one session.

    :meth:`call` is what one request costs a client that reuses its
    connection: POST ``queue/join`` (``data``, ``fn_index``, ``session_hash``,
    ``event_data``, ``trigger_id``), then GET ``queue/data?session_hash=...``
    and read the event stream until this event's ``process_completed``
    message. The stream is read to its end (the server closes it with
    ``close_stream`` right after) so the connection is reused.
    """

    def __init__(self, url: str) -> None:
        import httpx

        self.http = httpx.Client(base_url=url, timeout=60, trust_env=False)
        config = self.http.get("config").json()
        self.prefix = str(config.get("api_prefix") or "/gradio_api").strip("/")
        self.fn_index = {d.get("api_name"): d["id"] for d in config["dependencies"] if d.get("api_name")}
        self.session_hash = uuid.uuid4().hex
        self.last_message: dict[str, Any] = {}

    def upload(self, path: Path) -> dict[str, Any]:
        """Upload ``path`` as the browser does (``upload``); returns the FileData to send as input."""
        with open(path, "rb") as f:
            resp = self.http.post(f"{self.prefix}/upload", files={"files": (path.name, f, "image/png")})
        resp.raise_for_status()
        server_path = resp.json()[0]
        return {"path": server_path, "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}

    def call(self, api_name: str, *data: Any) -> list[Any]:
        """Run the event ``api_name`` once; returns its output data."""
        joined = self.http.post(
            f"{self.prefix}/queue/join",
            json={
                "data": list(data),
                "fn_index": self.fn_index[api_name],
                "session_hash": self.session_hash,
                "event_data": None,
                "trigger_id": None,
            },
        )
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        result: list[Any] | None = None
        with self.http.stream("GET", f"{self.prefix}/queue/data", params={"session_hash": self.session_hash}) as s:
            for line in s.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message.get("msg") == "process_completed":
                    self.last_message = message
                    if not message.get("success"):
                        raise RuntimeError(f"the event failed: {message.get('output')}")
                    result = list(message["output"]["data"])
        if result is None:
            raise RuntimeError("the event stream ended before the event completed")
        return result

    def close(self) -> None:
        """Close the connection."""
        self.http.close()


# --------------------------------------------------------------------------- Chromium


#: In the page: click, then wait (MutationObserver on the document, plus a 1 ms poll for a
#: textarea whose value is set as a property) until the output shows ``expected``.
#: Returns [ms to the output in the DOM, ms to the next animation frame, i.e. its paint].
_TIMED_CLICK = """
async ([button, output, expected]) => {
  const area = document.querySelector(`#${output} textarea`);
  const run = document.querySelector(`#${button}`);
  return await new Promise((resolve, reject) => {
    let done = false, iv = 0, obs = null;
    const t0 = performance.now();
    const check = () => {
      if (done || area.value !== expected) return;
      done = true;
      const dom = performance.now() - t0;
      obs.disconnect();
      clearInterval(iv);
      requestAnimationFrame(() => resolve([dom, performance.now() - t0]));
    };
    obs = new MutationObserver(check);
    obs.observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
    iv = setInterval(check, 1);
    setTimeout(() => {
      if (done) return;
      done = true;
      obs.disconnect();
      clearInterval(iv);
      reject(new Error(`no output; the page shows ${JSON.stringify(area.value)}`));
    }, 60000);
    run.click();
  });
}
"""

_RESET = """
async ([reset, output]) => {
  const area = document.querySelector(`#${output} textarea`);
  document.querySelector(`#${reset}`).click();
  for (let i = 0; i < 5000 && area.value !== ''; i++) await new Promise(r => setTimeout(r, 1));
  return area.value;
}
"""


def chromium_path() -> str | None:
    """Debian's Chromium if present, else None (Playwright's own browser)."""
    return CHROMIUM if os.path.exists(CHROMIUM) else None


class Browser:
    """One headless Chromium (Playwright, sync API) for the whole run."""

    def __init__(self) -> None:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:
            raise Missing("needs playwright") from exc
        self._pw = sync_playwright().start()
        try:
            self.browser = self._pw.chromium.launch(
                executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
            )
        except Exception as exc:  # no browser binary is an n/a, whatever Playwright raises
            self._pw.stop()
            raise Missing(f"cannot start headless Chromium: {str(exc).splitlines()[0][:160]}") from exc

    def page(self, app: App) -> BrowserPage:
        """A new page (a new Gradio session) showing ``app``."""
        page = self.browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(app.url)
        page.wait_for_selector(f"#{next(iter(app.endpoints.values())).button}", timeout=60_000)
        return BrowserPage(page, app)

    def close(self) -> None:
        """Close the browser and Playwright."""
        try:
            self.browser.close()
        finally:
            self._pw.stop()


class BrowserPage:
    """A page of an app, with timed clicks measured inside the page."""

    def __init__(self, page: Any, app: App) -> None:
        self.page = page
        self.app = app

    def fill(self, row: str, text: str) -> None:
        """Type ``text`` into the row's input textbox (untimed)."""
        ep = self.app.endpoints[row]
        self.page.fill(f"#{ep.inputs[0]} textarea", text)

    def upload(self, row: str, path: Path) -> None:
        """Upload ``path`` into the row's image input and wait until it is shown (untimed)."""
        ep = self.app.endpoints[row]
        self.page.set_input_files(f"#{ep.inputs[0]} input[type=file]", str(path))
        self.page.wait_for_selector(f"#{ep.inputs[0]} img", timeout=60_000)

    def reset(self, row: str) -> None:
        """Empty the row's output (a browser-only event; untimed)."""
        ep = self.app.endpoints[row]
        left = self.page.evaluate(_RESET, [ep.reset, ep.output])
        if left != "":
            raise RuntimeError(f"the output was not reset: {left!r}")

    def click(self, row: str, expected: str) -> tuple[float, float]:
        """Click the row's button; seconds until ``expected`` is in the output, and until the next frame."""
        ep = self.app.endpoints[row]
        dom, frame = self.page.evaluate(_TIMED_CLICK, [ep.button, ep.output, expected])
        return dom / 1000, frame / 1000

    def output(self, row: str) -> str:
        """The row's output text."""
        return str(self.page.input_value(f"#{self.app.endpoints[row].output} textarea"))

    def close(self) -> None:
        """Close the page (ends its session)."""
        self.page.close()


def settle(seconds: float = 0.05) -> None:
    """A short pause between rounds so a round does not start while the last one's tail runs."""
    time.sleep(seconds)
