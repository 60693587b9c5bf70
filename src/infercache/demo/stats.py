"""The demo's "Cache stats" tab: every live cache in a table, and plots that refresh themselves.

The tab reads :func:`infercache.stats` (every live cache of the process) on a
``gr.Timer`` tick and nowhere else, so watching costs nothing per hit. Each
tick appends one sample per cache to a bounded in-process
:class:`StatsHistory`, which the line plots draw (hit ratio and time saved
over time); the table and the memory bar plot show the latest sample.

The timer runs only while the tab is shown: Gradio's page hides the other
tabs' **from cache** badges whenever any event runs, a tick included. So the
history has samples only for the times someone had the tab open; the lines
join across the gaps.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import gradio as gr
import pandas as pd  # type: ignore[import-untyped]  # no stubs installed: frames are Any here
from gradio.events import api as gradio_api

import infercache as ic

__all__ = [
    "MAX_SAMPLES",
    "REFRESH_SECONDS",
    "TAB_LABEL",
    "StatsHistory",
    "StatsTab",
    "build_stats_tab",
    "cache_stats",
    "memory_frame",
    "table_frame",
]

TAB_LABEL = "Cache stats"
REFRESH_SECONDS = 2.0
"""How often the open tab re-reads :func:`infercache.stats`."""
MAX_SAMPLES = 300
"""Samples kept per cache: ten minutes at one every two seconds."""

_TIERS = ("memory", "disk", "redis")


def _used(data: dict[str, Any]) -> bool:
    """Whether a cache has been looked up or holds anything (unused ones would only add flat lines)."""
    return bool(data["hits"] or data["misses"] or data["size"])


def table_frame(stats: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per cache of ``stats`` (as :func:`infercache.stats` returns it), in its order.

    Hits are split by tier; the disk and redis columns (and remote joins)
    appear only when some cache has such a tier, so a memory-only app gets a
    narrower table.
    """
    stores = {t for data in stats.values() for t in data["tiers"]}
    stores |= {t for data in stats.values() for t, n in data["hits_by_tier"].items() if n and t != "memory"}
    shown = [t for t in _TIERS if t == "memory" or t in stores]
    rows = []
    for name, data in stats.items():
        row: dict[str, Any] = {
            "cache": name,
            "entries": data["size"],
            "memory (bytes)": data["memory"],
            "hits": data["hits"],
        }
        for tier in shown:
            row[f"{tier} hits"] = data["hits_by_tier"].get(tier, 0)
        row["misses"] = data["misses"]
        row["joins"] = data["joins"]
        if stores:
            row["remote joins"] = data["remote_joins"]
        row["hit ratio"] = round(data["hit_ratio"], 3)
        row["time saved (s)"] = round(data["saved_seconds"], 3)
        row["compute time (s)"] = round(data["compute_seconds"], 3)
        row["evictions"] = sum(data["evicted"].values())
        rows.append(row)
    if not rows:
        columns = ["cache", "entries", "memory (bytes)", "hits", "memory hits", "misses", "joins",
                   "hit ratio", "time saved (s)", "compute time (s)", "evictions"]
        return pd.DataFrame(columns=columns)
    return pd.DataFrame(rows)


def memory_frame(stats: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Bytes held per cache (caches that were used), for the bar plot."""
    rows = [{"cache": name, "memory (bytes)": data["memory"]} for name, data in stats.items() if _used(data)]
    return pd.DataFrame(rows, columns=["cache", "memory (bytes)"])


@dataclass(frozen=True)
class _Sample:
    at: datetime
    rows: tuple[tuple[str, float, float], ...]  # (cache, hit ratio, time saved)


class StatsHistory:
    """A bounded history of :func:`infercache.stats` samples, shared by every viewer of the app.

    Several open pages each tick; a tick that comes less than
    ``min_interval`` seconds after the last sample reads the counters but adds
    no sample, so the history keeps about one sample per tick interval
    however many pages watch it. The oldest samples go past ``max_samples``.
    """

    def __init__(
        self,
        max_samples: int = MAX_SAMPLES,
        min_interval: float = REFRESH_SECONDS * 0.75,
    ) -> None:
        self.min_interval = min_interval
        self._samples: deque[_Sample] = deque(maxlen=max_samples)
        self._last = float("-inf")
        self._lock = threading.Lock()

    def sample(self) -> dict[str, dict[str, Any]]:
        """Read the counters of every live cache; record them if a sample is due; return them."""
        stats = ic.stats()
        now = time.monotonic()
        with self._lock:
            if now - self._last >= self.min_interval:
                self._last = now
                rows = tuple(
                    (name, float(d["hit_ratio"]), float(d["saved_seconds"]))
                    for name, d in stats.items()
                    if _used(d)
                )
                self._samples.append(_Sample(datetime.now(timezone.utc), rows))
        return stats

    @property
    def max_samples(self) -> int:
        """How many samples are kept."""
        return self._samples.maxlen or 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._samples)

    def frame(self) -> pd.DataFrame:
        """Every recorded sample, a row per cache and sample: ``time``, ``cache``, ``hit ratio``, ``time saved (s)``."""
        with self._lock:
            samples = list(self._samples)
        rows = [(s.at, name, ratio, saved) for s in samples for name, ratio, saved in s.rows]
        return pd.DataFrame(rows, columns=["time", "cache", "hit ratio", "time saved (s)"])


@dataclass(frozen=True)
class StatsTab:
    """The components of a stats tab, and the function that refreshes them."""

    timer: gr.Timer
    table: gr.Dataframe
    hit_ratio: gr.LinePlot
    saved: gr.LinePlot
    memory: gr.BarPlot
    history: StatsHistory

    @property
    def outputs(self) -> list[Any]:
        """The components :meth:`refresh` fills, in its order."""
        return [self.table, self.hit_ratio, self.saved, self.memory]

    def refresh(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Sample the counters and return the table and the three plots' data."""
        stats = self.history.sample()
        over_time = self.history.frame()
        return (
            table_frame(stats),
            over_time[["time", "cache", "hit ratio"]],
            over_time[["time", "cache", "time saved (s)"]],
            memory_frame(stats),
        )


def build_stats_tab(
    tabs: gr.Tabs,
    *,
    history: StatsHistory | None = None,
    every: float = REFRESH_SECONDS,
    tab_id: str = "stats",
) -> StatsTab:
    """Add the "Cache stats" tab to ``tabs`` (call it inside that ``gr.Tabs`` block).

    Its timer ticks only while the tab is selected (selecting it also
    refreshes at once); ``history`` defaults to a new one for this app. The
    app also answers ``/cache_stats`` (e.g. with ``gradio_client``) with
    :func:`infercache.stats` of the server process.
    """
    if history is None:
        history = StatsHistory(min_interval=every * 0.75)
    with gr.Tab(TAB_LABEL, id=tab_id):
        gr.Markdown(
            "Every live cache of the server process, from `ic.stats()`, read every "
            f"{every:g} s while this tab is open (nothing is counted or sampled per hit). "
            "Hits are split by the tier that answered; time saved adds, for each hit, how "
            "long its entry took to compute; evictions add up every reason (size, memory, "
            "TTL, session closed, cleared, deleted, oversized). The plots keep the last "
            f"{history.max_samples} samples."
        )
        table = gr.Dataframe(label="Caches", interactive=False, elem_id="ic-stats-table")
        with gr.Row():
            hit_ratio = gr.LinePlot(
                x="time", y="hit ratio", color="cache", title="Hit ratio over time",
                y_lim=[0, 1], x_axis_format="%H:%M:%S", elem_id="ic-stats-hit-ratio",
            )
            saved = gr.LinePlot(
                x="time", y="time saved (s)", color="cache", title="Time saved over time",
                y_lim=[0, None], x_axis_format="%H:%M:%S", elem_id="ic-stats-saved",
            )
        memory = gr.BarPlot(
            x="cache", y="memory (bytes)", color="cache", title="Memory per cache",
            y_lim=[0, None], elem_id="ic-stats-memory",
        )
        timer = gr.Timer(every, active=False)
        # gr.Tabs takes only tabs as children: the endpoint's component goes in this one.
        gradio_api(cache_stats, api_name="cache_stats", queue=False)
    tab = StatsTab(timer, table, hit_ratio, saved, memory, history)

    def on_select(evt: gr.SelectData) -> Any:
        shown = evt.value == TAB_LABEL
        refreshed: tuple[Any, ...] = tab.refresh() if shown else tuple(gr.skip() for _ in tab.outputs)
        return (gr.Timer(active=shown), *refreshed)

    tabs.select(on_select, None, [timer, *tab.outputs], queue=False, show_progress="hidden",
                api_visibility="undocumented")
    timer.tick(tab.refresh, None, tab.outputs, queue=False, show_progress="hidden",
               api_visibility="undocumented")
    return tab


def cache_stats() -> dict[str, dict[str, Any]]:
    """``ic.stats()`` of the server: every live cache's counters by name (what the tab shows)."""
    return ic.stats()
