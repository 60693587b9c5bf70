"""Turn one benchmark run into ``report.md`` and PNG plots.

Inputs (all in the results directory): ``benchmark.json`` (pytest-benchmark),
``records.json`` (tags, outcomes and n/a reasons written by ``conftest.py``)
and ``machine.json`` (written by ``run.py``). Every ratio compares rows of the
same run. Medians are used throughout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cases

TARGETS_DOC = "benchmarks/README.md"

# The report is typeset: the multiplication sign for ratios, an en dash for an empty cell.
# ruff: noqa: RUF001, RUF002


@dataclass
class Row:
    """One cell of the suite: a peer measured on a case, or why it could not be."""

    section: str
    case: str
    label: str
    peer: str
    median: float | None = None
    iqr: float | None = None
    rounds: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"  # ok | n/a | error
    reason: str = ""


# --------------------------------------------------------------------------- loading


def load(out: Path) -> tuple[list[Row], dict[str, Any]]:
    """Join pytest-benchmark's timings with the suite's records."""
    bench_path = out / "benchmark.json"
    bench = json.loads(bench_path.read_text()) if bench_path.exists() else {"benchmarks": []}
    by_id = {b["fullname"].split("::", 1)[-1]: b for b in bench["benchmarks"]}
    rec_path = out / "records.json"
    records = json.loads(rec_path.read_text()) if rec_path.exists() else []
    machine_path = out / "machine.json"
    machine = json.loads(machine_path.read_text()) if machine_path.exists() else {}
    rows: list[Row] = []
    for r in records:
        key = r["nodeid"].split("::", 1)[-1]
        b = by_id.get(key)
        extra = dict(b["extra_info"]) if b else {}
        for k in ("actual", "method", "reported"):
            if k in r:
                extra[k] = r[k]
        row = Row(
            section=r.get("section", "?"),
            case=r.get("case", "?"),
            label=r.get("label", r.get("case", "?")),
            peer=r.get("peer", ""),
            extra=extra,
        )
        if b is not None:
            row.median = b["stats"]["median"]
            row.iqr = b["stats"]["iqr"]
            row.rounds = b["stats"]["rounds"]
            if "own_median" in extra:  # timed by the suite itself (interleaved rows, the page's clock)
                row.median = extra["own_median"]
                row.iqr = extra.get("own_iqr", row.iqr)
                row.rounds = extra.get("own_rounds", row.rounds)
        if r["outcome"] == "skipped":
            row.status, row.reason = "n/a", r.get("reason", "")
        elif r["outcome"] == "failed":
            row.status, row.reason = "error", r.get("reason", "")
        elif b is None and row.section != "memory":
            row.status, row.reason = "n/a", "no timing recorded"
        rows.append(row)
    return rows, machine


# --------------------------------------------------------------------------- formatting


def fmt_time(seconds: float | None) -> str:
    """Seconds as a short human string (ns, µs, ms, s)."""
    if seconds is None:
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            v = seconds / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{seconds * 1e9:.0f} ns"


def fmt_bytes(n: float) -> str:
    """Bytes as a short human string."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def fmt_ratio(r: float | None) -> str:
    """A speed-up factor (>1 means faster than the reference)."""
    if r is None:
        return "n/a"
    return f"{r:.3g}×" if r < 1000 else f"{r:,.0f}×"


class Notes:
    """Numbered footnotes for n/a and error cells."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def ref(self, text: str) -> str:
        """The footnote marker for ``text`` (reusing an identical note)."""
        if text not in self.items:
            self.items.append(text)
        return f"[{self.items.index(text) + 1}]"

    def cell(self, row: Row | None) -> str:
        """``n/a [k]`` / ``error [k]`` for a row that was not measured."""
        if row is None:
            return "–"
        return f"{row.status} {self.ref(f'{row.peer} / {row.case}: {row.reason}')}"

    def render(self) -> list[str]:
        """The footnote list as Markdown lines."""
        return [f"{i + 1}. {t}" for i, t in enumerate(self.items)]


def _find(rows: list[Row], section: str, case: str, peer: str) -> Row | None:
    for r in rows:
        if r.section == section and r.case == case and r.peer == peer:
            return r
    return None


def _ok(row: Row | None) -> bool:
    return row is not None and row.status == "ok" and row.median is not None


def speedup(rows: list[Row], section: str, case: str, peer: str) -> float | None:
    """gr.cache median / ``peer`` median for one case of this run."""
    ref = _find(rows, section, case, cases.REFERENCE)
    row = _find(rows, section, case, peer)
    if not (_ok(ref) and _ok(row)) or row.median == 0:  # type: ignore[union-attr]
        return None
    return ref.median / row.median  # type: ignore[union-attr,operator]


def _cases_in(rows: list[Row], section: str) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r.section == section and r.case not in seen:
            seen.append(r.case)
    return seen


def _peers_in(rows: list[Row], section: str) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r.section == section and r.peer not in seen:
            seen.append(r.peer)
    return seen


# --------------------------------------------------------------------------- sections


def section_machine(machine: dict[str, Any]) -> list[str]:
    """Where the numbers were measured."""
    v = machine.get("versions", {})
    return [
        "## Machine",
        "",
        f"- CPU: {machine.get('cpu', '?')} — {machine.get('usable_cpus', '?')} usable of "
        f"{machine.get('logical_cpus', '?')} logical CPUs; RAM {machine.get('memory', '?')}; {machine.get('os', '?')}",
        f"- Python {machine.get('python', '?')}; numpy {v.get('numpy', '?')}; gradio {v.get('gradio', '?')}; "
        f"torch {v.get('torch', '?')}; pandas {v.get('pandas', '?')}; Pillow {v.get('PIL', '?')}; "
        f"blake3 {v.get('blake3', '?')}; xxhash {v.get('xxhash', '?')}",
        f"- peers: cachetools {v.get('cachetools', '?')}; joblib {v.get('joblib', '?')}; "
        f"diskcache {v.get('diskcache', '?')}; harness pytest-benchmark {v.get('pytest_benchmark', '?')}",
        f"- infercache at {machine.get('infercache_commit', '?')}; run {machine.get('date', '?')}; "
        f"mode: {machine.get('mode', '?')}; {machine.get('threads', '')}",
        "",
    ]


def _target_rows(rows: list[Row]) -> list[tuple[str, str, str, str]]:
    default = cases.ic_peer_name(cases.IC_DIGESTS[0])
    xxh = cases.ic_peer_name("xxh3")
    out: list[tuple[str, str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("**met**" if ok else "**missed**")

    s = speedup(rows, "hit", "small_args", default)
    out.append(("small-argument hit vs gr.cache (default digest)", fmt_ratio(s), "≥ 9×",
                verdict(None if s is None else s >= 9)))
    s = _overhead_ratio(rows, default)
    out.append(("small-argument miss overhead, gr.cache's / infercache's (default digest)", fmt_ratio(s),
                "≥ 3×", verdict(None if s is None else s >= 3)))
    s = speedup(rows, "hit", "pil_1080p", default)
    out.append(("PIL RGB 1920x1080 hit vs gr.cache (default digest)", fmt_ratio(s), "≥ 3.5×",
                verdict(None if s is None else s >= 3.5)))
    s = speedup(rows, "hit", "image_1080p", default)
    out.append(("1080p image hit vs gr.cache (default digest)", fmt_ratio(s), "≥ 3.5×",
                verdict(None if s is None else s >= 3.5)))
    hit = _find(rows, "hit", "image_1080p", xxh)
    copy = _find(rows, "hash", "image_1080p", "copy: np.copy (alloc + copy)")
    if _ok(hit) and _ok(copy):
        r = hit.median / copy.median  # type: ignore[union-attr,operator]
        out.append(("1080p image hit with xxh3 / memory copy of the image", f"{r:.2f}× the copy time",
                    "≤ 1.5×", verdict(r <= 1.5)))
    else:
        out.append(("1080p image hit with xxh3 / memory copy of the image", "n/a", "≤ 1.5×", "n/a"))
    s = speedup(rows, "hit", "float_list", default)
    out.append(("list of floats hit vs gr.cache (default digest)", fmt_ratio(s), "≥ 10×",
                verdict(None if s is None else s >= 10)))
    errs = []
    for r in rows:
        if r.section == "memory":
            rep = r.extra.get("reported", {}).get("infercache sizeof")
            if isinstance(rep, int) and r.extra.get("actual"):
                errs.append(abs(rep - r.extra["actual"]) / r.extra["actual"])
    n_mem = sum(1 for r in rows if r.section == "memory")
    if errs and len(errs) == n_mem:
        out.append(("memory accounting, worst error vs really held", f"{max(errs) * 100:.1f}%", "≤ 5%",
                    verdict(max(errs) <= 0.05)))
    else:
        out.append(("memory accounting, worst error vs really held",
                    f"{max(errs) * 100:.1f}% ({len(errs)}/{n_mem} cases)" if errs else "n/a", "≤ 5%",
                    verdict(False) if errs and max(errs) > 0.05 else "n/a"))
    conc = [r for r in rows if r.section == "concurrency" and r.peer == default]
    if conc and _ok(conc[0]):
        counts = conc[0].extra.get("computations", [])
        out.append((f"{conc[0].extra.get('callers', '?')} concurrent identical calls",
                    f"{max(counts) if counts else '?'} computation(s) per burst", "1",
                    verdict(bool(counts) and max(counts) == 1)))
    else:
        out.append(("N concurrent identical calls compute once", "n/a", "1", "n/a"))
    if any(r.section == "tiers" for r in rows):
        out += _tier_targets(rows)
    out += _e2e_targets(rows)
    if any(r.section == "metrics" for r in rows):
        m = metrics_ratio(rows)
        out.append(("small-argument hit with metrics mounted / without",
                    "n/a" if m is None else f"{m:.3f}× the time", "≤ 1.05×",
                    verdict(None if m is None else m <= 1.05)))
    return out


def metrics_ratio(rows: list[Row]) -> float | None:
    """Median of the small-argument hit with ``ic.metrics`` mounted ÷ without, in this run."""
    without = _find(rows, "metrics", "small_args", "without metrics")
    mounted = _find(rows, "metrics", "small_args", "metrics mounted")
    if not (_ok(without) and _ok(mounted)) or not without.median:  # type: ignore[union-attr]
        return None
    return mounted.median / without.median  # type: ignore[union-attr,operator]


def section_metrics(rows: list[Row], notes: Notes) -> list[str]:
    """The small-argument hit with the Prometheus exporter mounted, against the same hit before mounting."""
    peers = _peers_in(rows, "metrics")
    if not peers:
        return []
    lines = [
        "## Metrics mounted (small-argument hit, median per call)",
        "",
        '`f("hello world", 0.7)` with the default digest, timed before and after `ic.metrics.mount` on a '
        "FastAPI app (the collector in prometheus_client's default registry, the page scraped once). "
        "The collector reads the counters at scrape time only, so a hit does the same work in both rows.",
        "",
        "| Row | Median | × the time without |",
        "|---|---|---|",
    ]
    ratio = metrics_ratio(rows)
    for p in peers:
        r = _find(rows, "metrics", "small_args", p)
        if not _ok(r):
            lines.append(f"| {p} | {notes.cell(r)} | |")
            continue
        cell = "1" if p == "without metrics" else ("n/a" if ratio is None else f"{ratio:.3f}")
        lines.append(f"| {p} | {fmt_time(r.median)} | {cell} |")  # type: ignore[union-attr]
    return [*lines, ""]


def section_targets(rows: list[Row]) -> list[str]:
    """The issue's targets, as ratios within this run."""
    lines = ["## Targets (ratios within this run)", "", "| Target | Measured | Goal | Status |",
             "|---|---|---|---|"]
    for t in _target_rows(rows):
        lines.append("| " + " | ".join(t) + " |")
    return [*lines, ""]


def section_hits(rows: list[Row], notes: Notes) -> list[str]:
    """Hit latency: one column per argument type, speed-up against gr.cache."""
    hit_cases = _cases_in(rows, "hit")
    peers = _peers_in(rows, "hit")
    labels = {c: next(r.label for r in rows if r.section == "hit" and r.case == c) for c in hit_cases}
    lines = [
        "## Hit latency (median per call; × = speed-up against gr.cache in this run)",
        "",
        "A hit returns a cached result for arguments seen before. ⚠ marks a cache that keys "
        "this argument by object identity, not content (an equal copy misses).",
        "",
        "| Peer | " + " | ".join(labels[c] for c in hit_cases) + " |",
        "|---|" + "---|" * len(hit_cases),
    ]
    for p in peers:
        cells = []
        for c in hit_cases:
            r = _find(rows, "hit", c, p)
            if not _ok(r):
                cells.append(notes.cell(r))
                continue
            s = speedup(rows, "hit", c, p)
            cell = fmt_time(r.median)  # type: ignore[union-attr]
            if s is not None and p != cases.REFERENCE and not p.startswith("no cache"):
                cell += f" ({fmt_ratio(s)})"
            if r.extra.get("content_keyed") is False and not p.startswith("no cache"):  # type: ignore[union-attr]
                cell += " ⚠"
            cells.append(cell)
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _overhead_ratio(rows: list[Row], peer: str) -> float | None:
    """gr.cache's miss overhead over the plain call ÷ ``peer``'s, in this run."""
    base = _find(rows, "miss", "small_args", "no cache (plain call)")
    ref = _find(rows, "miss", "small_args", cases.REFERENCE)
    row = _find(rows, "miss", "small_args", peer)
    if not (_ok(base) and _ok(ref) and _ok(row)):
        return None
    over = row.median - base.median  # type: ignore[union-attr,operator]
    return (ref.median - base.median) / over if over > 0 else None  # type: ignore[union-attr,operator]


def section_miss(rows: list[Row], notes: Notes) -> list[str]:
    """Miss overhead on small arguments, net of the plain call."""
    base = _find(rows, "miss", "small_args", "no cache (plain call)")
    lines = [
        "## Miss overhead, small arguments (median per call)",
        "",
        "Every call has a new prompt; the plain call (which also builds the prompt string) is "
        "subtracted to give the overhead. Disk peers write each result to disk.",
        "",
        "| Peer | Per call | Overhead over plain call | × less overhead than gr.cache |",
        "|---|---|---|---|",
    ]
    for p in _peers_in(rows, "miss"):
        r = _find(rows, "miss", "small_args", p)
        if not _ok(r):
            lines.append(f"| {p} | {notes.cell(r)} | | |")
            continue
        over = fmt_time(r.median - base.median) if _ok(base) and r is not base else "–"  # type: ignore[union-attr,operator]
        s = _overhead_ratio(rows, p)
        ratio = fmt_ratio(s) if p not in (cases.REFERENCE,) and not p.startswith("no cache") else "–"
        lines.append(f"| {p} | {fmt_time(r.median)} | {over} | {ratio} |")  # type: ignore[union-attr]
    return [*lines, ""]


def throughput(row: Row | None) -> float | None:
    """GB/s of a hash/copy row."""
    if not _ok(row) or not row.extra.get("nbytes"):  # type: ignore[union-attr]
        return None
    return row.extra["nbytes"] / row.median / 1e9  # type: ignore[union-attr,operator]


def section_hash(rows: list[Row], notes: Notes) -> list[str]:
    """Hashing throughput against a memory copy of the same buffer in the same run."""
    bufs = _cases_in(rows, "hash")
    labels = {c: next(r.label for r in rows if r.section == "hash" and r.case == c) for c in bufs}
    ref_name = "copy: np.copy (alloc + copy)"
    lines = [
        "## Hashing throughput (GB/s of input; ÷copy = time relative to `np.copy` of the same buffer)",
        "",
        "A copy reads and writes every byte, a digest only reads, so a fast digest can beat the copy. "
        "`np.copy` allocates its destination (page faults included), `np.copyto` reuses one.",
        "",
        "| Digest / copy | " + " | ".join(f"{labels[b]}: GB/s | time ÷ copy" for b in bufs) + " |",
        "|---|" + "---|---|" * len(bufs),
    ]
    for p in _peers_in(rows, "hash"):
        cells = []
        for b in bufs:
            r = _find(rows, "hash", b, p)
            ref = _find(rows, "hash", b, ref_name)
            gbs = throughput(r)
            if gbs is None:
                cells += [notes.cell(r), ""]
                continue
            rel = r.median / ref.median if _ok(ref) else None  # type: ignore[union-attr,operator]
            cells += [f"{gbs:.2f}", f"{rel:.2f}" if rel is not None else "n/a"]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def section_memory(rows: list[Row], notes: Notes) -> list[str]:
    """Reported bytes against bytes really held."""
    mem = [r for r in rows if r.section == "memory"]
    estimators: list[str] = []
    for r in mem:
        for k in r.extra.get("reported", {}):
            if k not in estimators:
                estimators.append(k)
    lines = [
        "## Memory accounting (bytes reported vs bytes really held; error in %)",
        "",
        "Really held = what dropping the value frees, measured in a fresh process: tracemalloc for "
        "Python objects and numpy buffers; resident-set growth for torch tensors (torch's CPU "
        "allocator does not report to tracemalloc).",
        "",
        "| Value | Really held | " + " | ".join(estimators) + " |",
        "|---|---|" + "---|" * len(estimators),
    ]
    for r in mem:
        if r.status != "ok":
            lines.append(f"| {r.label} | {notes.cell(r)} |" + " |" * len(estimators))
            continue
        actual = r.extra["actual"]
        if not actual:
            lines.append(f"| {r.label} | n/a {notes.ref(f'{r.case}: nothing measurable was allocated')} |"
                         + " |" * len(estimators))
            continue
        cells = []
        for e in estimators:
            v = r.extra.get("reported", {}).get(e)
            if isinstance(v, int):
                cells.append(f"{fmt_bytes(v)} ({(v - actual) / actual * 100:+.1f}%)")
            else:
                cells.append(f"n/a {notes.ref(f'{e} / {r.case}: {v}')}")
        lines.append(f"| {r.label} | {fmt_bytes(actual)} ({r.extra.get('method')}) | " + " | ".join(cells) + " |")
    return [*lines, ""]


def section_concurrency(rows: list[Row], notes: Notes) -> list[str]:
    """N identical concurrent calls: how many computations ran and how long the burst took."""
    conc = [r for r in rows if r.section == "concurrency"]
    if not conc:
        return []
    label = conc[0].label
    lines = [
        f"## Concurrent identical calls ({label})",
        "",
        "Threads released together by a barrier, fresh cache each round; ideal is 1 computation "
        "and a wall time close to one compute.",
        "",
        "| Peer | Computations per burst (each round) | Wall time (median) |",
        "|---|---|---|",
    ]
    for r in conc:
        if not _ok(r):
            lines.append(f"| {r.peer} | {notes.cell(r)} | |")
            continue
        counts = r.extra.get("computations", [])
        lines.append(f"| {r.peer} | {', '.join(map(str, counts))} | {fmt_time(r.median)} |")
    return [*lines, ""]


def section_prefix(rows: list[Row], notes: Notes) -> list[str]:
    """Longest cached prefix of a new prompt."""
    pre = [r for r in rows if r.section == "prefix"]
    if not pre:
        return []
    ref = next((r for r in pre if r.peer.startswith("gr.Cache: guide")), None)
    lines = [
        f"## Prefix search ({pre[0].label})",
        "",
        "The Gradio guide's KV-cache example scans `keys()` on every request.",
        "",
        "| Method | Median | × vs gr.Cache guide loop | Correct |",
        "|---|---|---|---|",
    ]
    for r in pre:
        if not _ok(r):
            lines.append(f"| {r.peer} | {notes.cell(r)} | | |")
            continue
        s = ref.median / r.median if _ok(ref) else None  # type: ignore[union-attr,operator]
        correct = r.extra.get("correct")
        lines.append(f"| {r.peer} | {fmt_time(r.median)} | {fmt_ratio(s)} | "
                     f"{'–' if correct is None else ('yes' if correct else 'NO')} |")
    return [*lines, ""]


E2E_NOOP_PREFIX = "no-op"


def _e2e_ratio(rows: list[Row], section: str, client: str, slow: str, fast: str) -> float | None:
    """``slow`` median / ``fast`` median for one client of an end-to-end section."""
    a = _find(rows, section, client, slow)
    b = _find(rows, section, client, fast)
    if not (_ok(a) and _ok(b)) or not b.median:  # type: ignore[union-attr]
        return None
    return a.median / b.median  # type: ignore[union-attr,operator]


def _e2e_table(rows: list[Row], section: str, notes: Notes, ratio_to: str | None) -> list[str]:
    """Peers down, clients across; a cell is the median, × its speed-up against ``ratio_to``."""
    clients = _cases_in(rows, section)
    labels = {c: next(r.label for r in rows if r.section == section and r.case == c) for c in clients}
    lines = ["| Function | " + " | ".join(labels[c] for c in clients) + " |", "|---|" + "---|" * len(clients)]
    for p in _peers_in(rows, section):
        cells = []
        for c in clients:
            r = _find(rows, section, c, p)
            if not _ok(r):
                cells.append(notes.cell(r))
                continue
            cell = fmt_time(r.median)  # type: ignore[union-attr]
            paint = r.extra.get("in_page_paint_median")  # type: ignore[union-attr]
            if paint is not None:
                cell += f" (frame {fmt_time(paint)})"
            cached = not p.startswith(("no cache", E2E_NOOP_PREFIX))
            if ratio_to is not None and cached and p != ratio_to:
                s = _e2e_ratio(rows, section, c, ratio_to, p)
                cell += f" ({fmt_ratio(s)})" if s is not None else ""
            done = r.extra.get("computations_during_hits")  # type: ignore[union-attr]
            if cached and done:
                cell += f" ⚠ {done} computed"
            cells.append(cell)
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return lines


def section_e2e(rows: list[Row], notes: Notes) -> list[str]:
    """Repeated requests through a real Gradio server, from three clients."""
    out: list[str] = []
    text = [r for r in rows if r.section == "e2e"]
    if text:
        app = text[0].extra.get("app", "Gradio Blocks, textbox in/out")
        out += [
            f"## Gradio end to end ({app}; median per request)",
            "",
            "A repeated request (a hit for the caches) to a real Gradio server on 127.0.0.1. "
            "gradio_client builds new HTTP clients and polls its queue on every `predict`, so its column "
            "measures the client. The keep-alive client speaks Gradio's queue protocol (`queue/join`, "
            "then the `queue/data` event stream until `process_completed`) over one connection and one "
            "session. Chromium: click to the output shown in the page, timed in the page "
            "(`performance.now()`; frame = to the next animation frame, when it is painted). "
            "× = speed-up against gr.cache through the same client.",
            "",
        ]
        out += _e2e_table(rows, "e2e", notes, cases.REFERENCE)
        out.append("")
    image = [r for r in rows if r.section == "e2e_image"]
    if image:
        app = image[0].extra.get("app", "Gradio Blocks, PNG upload in")
        out += [
            f"## Gradio end to end, image input ({app}; median per request)",
            "",
            "The PNG is uploaded once; every request sends the same upload again (the first is the miss, "
            "not timed). With `type=\"numpy\"` Gradio decodes the PNG before the cached function is "
            "asked; with `type=\"filepath\"` the function gets the upload's path (Gradio names upload "
            "folders by the SHA-256 of the content) and decodes inside, so a hit skips the decode. "
            "× = speed-up against the numpy-input hit through the same client.",
            "",
        ]
        out += _e2e_table(rows, "e2e_image", notes, E2E_IMAGE_NUMPY)
        out.append("")
    return out


#: the image rows the e2e image target compares (names as in bench_suite.py).
E2E_IMAGE_NUMPY = 'infercache, gr.Image(type="numpy")'
E2E_IMAGE_PATH = 'infercache, gr.Image(type="filepath"), decode inside'
E2E_NOOP = "no-op (returns its input, no cache)"


def _e2e_targets(rows: list[Row]) -> list[tuple[str, str, str, str]]:
    """The issue's end-to-end targets: (target, measured, goal, status)."""

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("**met**" if ok else "**missed**")

    out: list[tuple[str, str, str, str]] = []
    default = cases.ic_peer_name(cases.IC_DIGESTS[0])
    if any(r.section == "e2e" for r in rows):
        r = _e2e_ratio(rows, "e2e", "keepalive", default, E2E_NOOP)
        out.append(("Gradio hit (infercache) / no-op function, both through the keep-alive client",
                    "n/a" if r is None else f"{r:.2f}× the no-op time", "< 1×",
                    verdict(None if r is None else r < 1)))
    if any(r.section == "e2e_image" for r in rows):
        r = _e2e_ratio(rows, "e2e_image", "chromium", E2E_IMAGE_PATH, E2E_IMAGE_NUMPY)
        out.append(("Gradio image hit in Chromium: filepath pattern / numpy input",
                    "n/a" if r is None else f"{r:.2f}× the numpy-input time", "≤ 0.6×",
                    verdict(None if r is None else r <= 0.6)))
    return out


def _tier_ratio(rows: list[Row], case: str, slow: str, fast: str) -> float | None:
    """``slow`` median / ``fast`` median in the tier section for ``case`` (None if either is missing)."""
    a = _find(rows, "tiers", case, slow)
    b = _find(rows, "tiers", case, fast)
    if not (_ok(a) and _ok(b)) or not b.median:  # type: ignore[union-attr]
        return None
    return a.median / b.median  # type: ignore[union-attr,operator]


def _tier_targets(rows: list[Row]) -> list[tuple[str, str, str, str]]:
    """The issue's tier targets: (target, measured, goal, status)."""

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("**met**" if ok else "**missed**")

    out: list[tuple[str, str, str, str]] = []
    labels = {r.case: r.label for r in rows if r.section == "tiers"}
    for case in cases.TIER_IMAGE_CASES:
        what = labels.get(case, case)
        for peer in cases.DISK_PEERS:
            r = _tier_ratio(rows, case, peer, cases.TIER_DISK)
            out.append((f"disk tier hit vs {peer} (speed-up): {what}", fmt_ratio(r), "≥ 3×",
                        verdict(None if r is None else r >= 3)))
    for case, goal in [*((c, 2.5) for c in cases.TIER_IMAGE_CASES), ("small_value", 1.5)]:
        r = _tier_ratio(rows, case, cases.TIER_REDIS, cases.FLOOR_REDIS)
        out.append((f"Redis tier hit / its floor (GET + frombuffer + key hash): {labels.get(case, case)}",
                    "n/a" if r is None else f"{r:.2f}× the floor time", f"≤ {goal}×",
                    verdict(None if r is None else r <= goal)))
    return out


def section_tiers(rows: list[Row], notes: Notes) -> list[str]:
    """Hits read back from a persistent tier, against the disk caches and the floors."""
    tiers = [r for r in rows if r.section == "tiers"]
    if not tiers:
        return []
    tier_cases = _cases_in(rows, "tiers")
    labels = {c: next(r.label for r in tiers if r.case == c) for c in tier_cases}
    lines = [
        "## Persistent tiers (hit latency with the in-memory store bypassed; median per call)",
        "",
        "The in-memory store is emptied before every timed call (not timed), so each infercache hit "
        "reads the record from disk or Redis, verifies its MAC and decodes it. joblib.Memory and "
        "diskcache.memoize read their own files on every call. A floor does the least any hit "
        "must: hash the argument's key, read the same record's bytes (open + read of a file; a raw "
        "redis-py GET) and view them with `np.frombuffer`. "
        "(× its floor = time ÷ the floor's; × slower = time ÷ the infercache disk tier's.)",
        "",
        "| Peer | " + " | ".join(labels[c] for c in tier_cases) + " |",
        "|---|" + "---|" * len(tier_cases),
    ]
    for p in _peers_in(rows, "tiers"):
        cells = []
        for c in tier_cases:
            r = _find(rows, "tiers", c, p)
            if not _ok(r):
                cells.append(notes.cell(r))
                continue
            cell = fmt_time(r.median)  # type: ignore[union-attr]
            if p in cases.FLOOR_OF:
                ratio = _tier_ratio(rows, c, p, cases.FLOOR_OF[p])
                cell += f" ({ratio:.2f}× its floor)" if ratio is not None else ""
            elif p in cases.DISK_PEERS:
                ratio = _tier_ratio(rows, c, p, cases.TIER_DISK)
                cell += f" ({fmt_ratio(ratio)} slower)" if ratio is not None else ""
            if r.extra.get("computations_during_hits"):  # type: ignore[union-attr]
                cell += f" ⚠ {r.extra['computations_during_hits']} recomputed"  # type: ignore[union-attr]
            cells.append(cell)
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return [*lines, ""]


# --------------------------------------------------------------------------- plots


def plots(rows: list[Row], out: Path) -> list[Path]:
    """Write the PNG plots; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    colors = plt.get_cmap("tab10")

    # hit latency, one panel per argument type
    hit_cases = _cases_in(rows, "hit")
    peers = _peers_in(rows, "hit")
    if hit_cases:
        ncols = 2
        nrows = (len(hit_cases) + 1) // 2
        fig, axes = plt.subplots(nrows, ncols, figsize=(13, 3.2 * nrows), squeeze=False)
        for ax, c in zip(axes.flat, hit_cases):
            names, vals, cols = [], [], []
            for i, p in enumerate(peers):
                r = _find(rows, "hit", c, p)
                if _ok(r):
                    names.append(p)
                    vals.append(r.median * 1e6)  # type: ignore[union-attr,operator]
                    cols.append("black" if p == cases.REFERENCE else colors(i % 10))
            ax.barh(names, vals, color=cols)
            ax.set_xscale("log")
            ax.invert_yaxis()
            ax.set_title(next(r.label for r in rows if r.section == "hit" and r.case == c), fontsize=9)
            ax.set_xlabel("median hit latency (µs, log)")
            ax.tick_params(axis="y", labelsize=7)
        for ax in list(axes.flat)[len(hit_cases):]:
            ax.axis("off")
        fig.suptitle("Cache hit latency (lower is better; gr.cache in black)")
        fig.tight_layout()
        p = out / "hit_latency.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)

    # speed-up of infercache against gr.cache, per case, with the targets
    ic_peers = [p for p in peers if p.startswith("infercache")]
    if hit_cases and ic_peers:
        fig, ax = plt.subplots(figsize=(10, 4))
        width = 0.8 / len(ic_peers)
        for j, p in enumerate(ic_peers):
            vals = [speedup(rows, "hit", c, p) or 0.0 for c in hit_cases]
            ax.bar([i + j * width for i in range(len(hit_cases))], vals, width, label=p)
        targets = {"small_args": 5, "image_1080p": 3.5, "float_list": 10}
        for i, c in enumerate(hit_cases):
            if c in targets:
                ax.hlines(targets[c], i - 0.1, i + 0.9, colors="red", linestyles="dashed")
        ax.axhline(1, color="black", linewidth=0.8)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(hit_cases))])
        ax.set_xticklabels(hit_cases, rotation=20, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("speed-up vs gr.cache (×, log)")
        ax.set_title("infercache hit speed-up over gr.cache (red dashes: targets)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out / "speedup_vs_gr_cache.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)

    # hashing throughput
    bufs = _cases_in(rows, "hash")
    hpeers = _peers_in(rows, "hash")
    if bufs:
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(hpeers) * len(bufs) + 1.5))
        height = 0.8 / len(bufs)
        for j, b in enumerate(bufs):
            vals = [throughput(_find(rows, "hash", b, p)) or 0.0 for p in hpeers]
            label = next(r.label for r in rows if r.section == "hash" and r.case == b)
            ax.barh([i + j * height for i in range(len(hpeers))], vals, height, label=label)
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(hpeers))])
        ax.set_yticklabels(hpeers, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("GB/s of input (higher is better)")
        ax.set_title("Digest throughput against a memory copy of the same buffer")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out / "hash_throughput.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)

    # memory accounting: reported / really held
    mem = [r for r in rows if r.section == "memory" and r.status == "ok"]
    if mem:
        estimators = sorted({k for r in mem for k in r.extra.get("reported", {})})
        fig, ax = plt.subplots(figsize=(10, 0.5 * len(mem) * len(estimators) + 1.5))
        height = 0.8 / max(1, len(estimators))
        for j, e in enumerate(estimators):
            vals = []
            for r in mem:
                v = r.extra.get("reported", {}).get(e)
                vals.append(v / r.extra["actual"] if isinstance(v, int) and r.extra["actual"] else 0.0)
            ax.barh([i + j * height for i in range(len(mem))], [max(v, 1e-6) for v in vals], height, label=e)
        ax.axvline(1, color="black")
        ax.axvspan(0.95, 1.05, color="green", alpha=0.15)
        ax.set_xscale("log")
        ax.set_yticks([i + 0.4 - height / 2 for i in range(len(mem))])
        ax.set_yticklabels([r.label for r in mem], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("reported / really held (1 = exact; green band ±5%)")
        ax.set_title("Memory accounting accuracy")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out / "memory_accounting.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)

    # concurrency
    conc = [r for r in rows if r.section == "concurrency" and _ok(r)]
    if conc:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 0.4 * len(conc) + 2))
        names = [r.peer for r in conc]
        a1.barh(names, [max(r.extra.get("computations", [0])) for r in conc], color="tab:orange")
        a1.set_xlabel("computations per burst (worst round; 1 is ideal)")
        a1.invert_yaxis()
        a2.barh(names, [r.median * 1e3 for r in conc], color="tab:blue")  # type: ignore[operator]
        a2.set_xlabel("wall time of the burst (ms, median)")
        a2.invert_yaxis()
        a2.set_yticklabels([])
        fig.suptitle(conc[0].label)
        fig.tight_layout()
        p = out / "concurrency.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written


# --------------------------------------------------------------------------- entry point


def build(out: Path) -> list[Path]:
    """Write ``report.md`` and the plots into ``out``; returns the written paths."""
    rows, machine = load(out)
    notes = Notes()
    body: list[str] = []
    body += section_targets(rows)
    body += section_hits(rows, notes)
    body += section_miss(rows, notes)
    body += section_metrics(rows, notes)
    body += section_hash(rows, notes)
    body += section_memory(rows, notes)
    body += section_concurrency(rows, notes)
    body += section_prefix(rows, notes)
    body += section_e2e(rows, notes)
    body += section_tiers(rows, notes)
    pngs = plots(rows, out)
    command = "python benchmarks/run.py" + (" --quick" if "quick" in str(machine.get("mode", "")) else "")
    lines = ["# infercache benchmark report", "", f"Produced by `{command}`.", ""]
    lines += section_machine(machine)
    lines += body
    if notes.items:
        lines += ["## Notes (n/a and errors)", "", *notes.render(), ""]
    if pngs:
        lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in pngs] + [""]
    md = out / "report.md"
    md.write_text("\n".join(lines))
    return [md, *pngs]


if __name__ == "__main__":
    import sys

    print("\n".join(str(p) for p in build(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))))
