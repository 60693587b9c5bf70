"""The demo's "Cache stats" tab in a real browser: its table and plots show the server's ``ic.stats()``.

The real ``infercache demo`` command runs in a subprocess on 127.0.0.1 (its
models are built lazily, so it starts in seconds), which keeps this test's
process's own caches out of its table. Runs go through ``gradio_client``;
the server's ``ic.stats()`` is read through the app's ``/cache_stats``
endpoint; headless Chromium opens the tab; the table is read from the page
and the plots from the SVG Vega renders (each mark carries its data in an
``aria-label``). The screenshot goes to ``$INFERCACHE_TEST_ARTIFACTS`` (else
pytest's ``tmp_path``) and is copied to ``artifacts/`` at the repository root
(git-ignored). The last tests check the history and the table builder
directly, in this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_fixtures import artifact_path, chromium, client, free_port, wait_until

import infercache as ic
from infercache.demo.stats import REFRESH_SECONDS, TAB_LABEL, StatsHistory, table_frame

DEMO_CACHES = {"classify", "translate", "chat", "melody", "summarize", "city", "kv_prefix", "embed", "retrieve"}

# The rendered table: header titles, then each body row's cell texts (the body is an
# ARIA grid of divs, virtual: rows past its height are not rendered; all fit here).
_TABLE_JS = """() => {
  const root = document.getElementById('ic-stats-table');
  const heads = [...root.querySelectorAll('thead th')].map((th) => th.getAttribute('title'));
  const rows = [...root.querySelectorAll('[role=grid] [role=row]')].map(
    (row) => [...row.querySelectorAll('[role=gridcell]')].map((cell) => cell.innerText.trim()));
  return {heads, rows: rows.filter((cells) => cells.some((text) => text))};
}"""

# The aria-labels of one kind of mark of a plot ("cache: city; memory (bytes): 618").
_MARKS_JS = """([id, selector]) => [...document.querySelectorAll(`#${id} ${selector}`)]
  .map((p) => p.getAttribute('aria-label')).filter((label) => label)"""

# The vertices of each line of a line plot, by the cache its first point names.
_LINES_JS = """(id) => [...document.querySelectorAll(`#${id} g.mark-line path`)].map((p) => [
  p.getAttribute('aria-label'), ((p.getAttribute('d') || '').match(/[ML]/g) || []).length])"""


def _fields(label: str) -> dict[str, str]:
    """``"time: 20:03:13; hit ratio: 0.5; cache: city"`` as a dict."""
    return dict(part.split(": ", 1) for part in label.split("; "))


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _artifact_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("INFERCACHE_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def demo_url(tmp_path: Path) -> Iterator[str]:
    """The URL of ``infercache demo`` started in a subprocess (memory only, no warm-up)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("INFERCACHE_STORE", "INFERCACHE_SECRET")}
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "infercache.cli", "demo", "--host", "127.0.0.1", "--port", str(port),
             "--no-warmup"],
            env={**env, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the demo exited:\n{log.read_text()}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/config", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=120, what="the demo server to answer")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _open_stats_tab(page: Any) -> None:
    """Select the stats tab: in the tab bar if it fits, else in Gradio's "More tabs" menu."""
    page.get_by_role("tab", name="Classifier (sync)").wait_for()
    tab = page.get_by_role("tab", name=TAB_LABEL)
    if tab.count() and tab.is_visible():
        tab.click()
    else:
        page.get_by_role("button", name="More tabs").click()
        page.locator(".overflow-dropdown button", has_text=TAB_LABEL).click()


_COLUMNS = ("entries", "memory (bytes)", "hits", "memory hits", "misses", "joins", "evictions")


def _expected_rows(stats: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    """What the table must show per cache (memory only: no store column in this app)."""
    return {
        name: {
            "entries": str(d["size"]),
            "memory (bytes)": str(d["memory"]),
            "hits": str(d["hits"]),
            "memory hits": str(d["hits_by_tier"].get("memory", 0)),
            "misses": str(d["misses"]),
            "joins": str(d["joins"]),
            "evictions": str(sum(d["evicted"].values())),
        }
        for name, d in stats.items()
    }


def _shown_rows(page: Any, columns: tuple[str, ...] | None = None) -> dict[str, dict[str, str]]:
    """The rendered table by cache name (only ``columns`` of each row when given)."""
    table = page.evaluate(_TABLE_JS)
    heads = table["heads"]
    shown = {}
    for cells in table["rows"]:
        row = dict(zip(heads, cells))
        name = row.pop("cache", "")
        shown[name] = row if columns is None else {k: row.get(k, "(missing)") for k in columns}
    return shown


@pytest.mark.browser
@pytest.mark.server
@pytest.mark.timeout(180)
def test_stats_tab_shows_every_cache_and_plots_their_history(demo_url: str, tmp_path: Path) -> None:
    c = client(demo_url)

    def server_stats() -> dict[str, dict[str, Any]]:
        stats: dict[str, dict[str, Any]] = c.predict(api_name="/cache_stats")
        return stats

    assert c.predict("Paris", api_name="/lookup_city").startswith("**Paris**")  # a miss
    assert "c.get('paris')" in c.predict("  PARIS ", api_name="/lookup_city")  # a hit
    for _ in range(2):  # a miss, then a hit
        assert c.predict("Hello my friend", "Spanish", api_name="/translate") == "Hola mi amigo"
    assert c.predict("Hello my friend", "German", api_name="/translate") == "Hallo mein Freund"
    stats = server_stats()
    assert stats.keys() == DEMO_CACHES
    assert (stats["city"]["hits"], stats["city"]["misses"]) == (1, 1)
    assert (stats["translate"]["hits"], stats["translate"]["misses"]) == (1, 2)
    used = {name for name, d in stats.items() if d["hits"] or d["misses"] or d["size"]}
    assert used == {"city", "translate"}

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        posts: list[str] = []  # what the page asks of the server: a timer tick is one
        page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
        page.goto(demo_url)
        _open_stats_tab(page)

        # Every live cache of the server, one row each, with its counters.
        def table_matches() -> bool:
            return _shown_rows(page, _COLUMNS) == _expected_rows(server_stats())

        try:
            wait_until(table_matches, timeout=30, what="the table to show the server's ic.stats()")
        except AssertionError:  # show what differs
            assert _shown_rows(page, _COLUMNS) == _expected_rows(server_stats())
            raise
        assert server_stats() == stats  # reading them counted nothing
        shown = _shown_rows(page)
        assert (shown["translate"]["hits"], shown["translate"]["misses"]) == ("1", "2")
        assert _number(shown["translate"]["hit ratio"]) == pytest.approx(1 / 3, abs=1e-3)
        assert _number(shown["translate"]["time saved (s)"]) == pytest.approx(
            stats["translate"]["saved_seconds"], abs=1e-3)
        assert "disk hits" not in shown["city"]  # no store behind these caches

        # The line plots: one line per used cache, two timer samples at least.
        def lines_drawn(plot_id: str) -> bool:
            lines = {_fields(label)["cache"]: n for label, n in page.evaluate(_LINES_JS, plot_id)}
            return lines.keys() == used and min(lines.values()) >= 2

        for plot_id, column, field in (
            ("ic-stats-hit-ratio", "hit ratio", "hit_ratio"),
            ("ic-stats-saved", "time saved (s)", "saved_seconds"),
        ):
            wait_until(lambda p=plot_id: lines_drawn(p), timeout=30, what=f"two points per line in {plot_id}")
            points = [_fields(label) for label in page.evaluate(_MARKS_JS, [plot_id, "g.mark-symbol path"])]
            assert {p["cache"] for p in points} == used
            # The runs ended before the tab opened: every sample holds the final counters.
            for p in points:
                assert _number(p[column]) == pytest.approx(stats[p["cache"]][field], abs=1e-6), p

        # The bar plot: one bar per used cache, as tall as its bytes.
        bars = {
            (f := _fields(label))["cache"]: int(_number(f["memory (bytes)"]))
            for label in page.evaluate(_MARKS_JS, ["ic-stats-memory", "g.mark-rect path"])
        }
        assert bars == {name: stats[name]["memory"] for name in used}
        assert all(bars.values())

        shot = _artifact_dir(tmp_path) / "demo-cache-stats.png"
        page.screenshot(path=str(shot), full_page=True)
        shutil.copyfile(shot, artifact_path(shot.name))
        print(f"screenshot: {shot}")

        # Leaving the tab stops its timer (a tick would hide the other tabs' cache badges):
        # the page sends nothing more. A tick already on its way may still go, so this
        # waits for a quiet window rather than checking an instant.
        assert posts, "the ticks were not seen as POST requests"
        page.get_by_role("tab", name="Translation (async)").click()
        page.get_by_label("English text").wait_for()
        wait_until(lambda: _quiet_for(page, posts, 3 * REFRESH_SECONDS), timeout=30,
                   what="the page to send nothing for three tick intervals after leaving the tab")


def _quiet_for(page: Any, requests: list[str], seconds: float) -> bool:
    """Whether the page adds no request to ``requests`` in the next ``seconds``.

    It waits through Playwright: its sync API delivers page events only while
    one of its calls runs (a ``time.sleep`` would see none).
    """
    before = len(requests)
    page.wait_for_timeout(seconds * 1000)
    return len(requests) == before


# -- the pieces behind the tab, without a browser ------------------------------------------


def test_history_keeps_one_sample_per_interval_however_many_pages_tick() -> None:
    history = StatsHistory(min_interval=3600)
    for _ in range(5):  # five pages ticking at once
        history.sample()
    assert len(history) == 1


def test_history_keeps_only_the_last_samples() -> None:
    @ic.cache
    def double(x: int) -> int:
        return 2 * x

    history = StatsHistory(max_samples=3, min_interval=0)
    for i in range(5):
        double(i % 2)  # misses, then hits: the hit ratio moves with each sample
        history.sample()
    assert len(history) == 3
    rows = history.frame()
    mine = rows[rows["cache"] == double.cache.name]
    ratios = [h / (h + 2) for h in (1, 2, 3)]  # the last three samples: 2 misses and 1, 2, 3 hits
    assert mine["hit ratio"].tolist() == pytest.approx(ratios)


def test_table_shows_store_columns_only_when_a_cache_has_a_store(tmp_path: Path) -> None:
    @ic.cache
    def in_memory(x: int) -> int:
        return x

    in_memory(1)
    in_memory(1)
    memory_only = table_frame({in_memory.cache.name: ic.stats()[in_memory.cache.name]})
    assert "disk hits" not in memory_only.columns and "remote joins" not in memory_only.columns
    assert memory_only.iloc[0]["memory hits"] == 1

    @ic.cache(store=str(tmp_path / "store"))
    def on_disk(x: int) -> int:
        return x

    on_disk(1)
    stats = ic.stats()
    both = table_frame({name: stats[name] for name in (in_memory.cache.name, on_disk.cache.name)})
    assert {"memory hits", "disk hits", "remote joins"} <= set(both.columns)
    assert "redis hits" not in both.columns
    assert both["misses"].tolist() == [1, 1]
