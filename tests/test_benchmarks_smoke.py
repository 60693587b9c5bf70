"""Smoke run of the benchmark suite so it cannot rot.

Runs ``benchmarks/run.py --quick`` (tiny inputs, a couple of rounds) in a
subprocess and checks that the report and plots are produced with the expected
rows. Benchmarks are not tests: nothing here looks at a timing.

Marked ``bench``: the suite's default run (``bash scripts/test.sh``) includes
it; ``-m "not bench"`` leaves it out of a quick local run (it is about a fifth
of the suite's time).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "benchmarks" / "run.py"

NEEDED = ("pytest_benchmark", "matplotlib", "numpy", "gradio")
missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
pytestmark = [
    pytest.mark.bench,
    pytest.mark.skipif(bool(missing), reason=f"benchmark extras not installed: {missing}"),
]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the quick suite once for all checks below; returns the results folder."""
    out = tmp_path_factory.mktemp("bench-results")
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
    )
    log = (out / "pytest.log").read_text() if (out / "pytest.log").exists() else ""
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}\nlog tail:\n{log[-3000:]}"
    return out


def test_report_and_plots_written(quick_report: Path) -> None:
    assert (quick_report / "report.md").is_file()
    assert (quick_report / "benchmark.json").is_file()
    for name in ("hit_latency", "hash_throughput", "memory_accounting", "concurrency"):
        png = quick_report / f"{name}.png"
        assert png.is_file(), name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_has_every_section_and_peer(quick_report: Path) -> None:
    md = (quick_report / "report.md").read_text()
    for heading in (
        "## Machine",
        "## Targets",
        "## Hit latency",
        "## Miss overhead",
        "## Hashing throughput",
        "## Memory accounting",
        "## Concurrent identical calls",
        "## Prefix search",
        "## Persistent tiers",
        "## Gradio end to end",
    ):
        assert heading in md, heading
    for peer in (
        "| gr.cache |",
        "| functools.lru_cache |",
        "| cachetools.cached (lock) |",
        "| joblib.Memory |",
        "| diskcache.memoize |",
        "| infercache (blake3, default) |",
        "| infercache (xxh3) |",
    ):
        assert peer in md, peer
    for row in ("copy: np.copy", "sha256", "xxh3_128", "infercache hash_key (blake3)", "object holding tensors"):
        assert row in md, row
    assert "CPU:" in md and "Python" in md and "numpy" in md and "gradio" in md


def test_gr_cache_reference_is_measured(quick_report: Path) -> None:
    """Every ratio is against gr.cache, so its hit rows must have numbers, not n/a."""
    md = (quick_report / "report.md").read_text()
    hit_table = md.split("## Hit latency", 1)[1].split("##", 1)[0]
    gr_row = next(line for line in hit_table.splitlines() if line.startswith("| gr.cache |"))
    assert "n/a" not in gr_row and "error" not in gr_row, gr_row


def _table(md: str, heading: str) -> list[list[str]]:
    """The cells of the first Markdown table after ``heading`` (header row included)."""
    section = md.split(heading, 1)[1].split("\n## ", 1)[0]
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def test_gradio_end_to_end_rows_per_client(quick_report: Path) -> None:
    """The textbox app through gradio_client, the keep-alive client and Chromium; the image app's two patterns.

    The keep-alive client needs nothing beyond Gradio, so its cells are
    measured; a browser cell may be n/a (no Playwright or no Chromium), never
    an error.
    """
    md = (quick_report / "report.md").read_text()
    text = _table(md, "## Gradio end to end (")
    assert text[0] == [
        "Function",
        "gradio_client (client-bound)",
        "keep-alive client (join + event stream)",
        "headless Chromium, click to output",
    ]
    assert [row[0] for row in text[1:]] == [
        "no-op (returns its input, no cache)",
        "no cache (plain call)",
        "gr.cache",
        "infercache (blake3, default)",
    ]
    for row in text[1:]:
        assert " ms" in row[1] and " ms" in row[2], row
        assert not row[3].startswith("error"), row
    image = _table(md, "## Gradio end to end, image input (")
    assert image[0][1:] == ["keep-alive client (join + event stream)", "headless Chromium, click to output"]
    assert [row[0] for row in image[1:]] == [
        'no-op, gr.Image(type="numpy") (no cache)',
        'infercache, gr.Image(type="numpy")',
        'infercache, gr.Image(type="filepath"), decode inside',
    ]
    for row in image[1:]:
        assert " ms" in row[1], row
        assert not row[2].startswith("error"), row


def test_gradio_end_to_end_targets_reported(quick_report: Path) -> None:
    """Both end-to-end targets are in the targets table, the keep-alive one with a measured ratio."""
    md = (quick_report / "report.md").read_text()
    targets = {row[0]: row for row in _table(md, "## Targets")}
    hit = targets["Gradio hit (infercache) / no-op function, both through the keep-alive client"]
    assert hit[1].endswith("the no-op time") and hit[3] in ("**met**", "**missed**"), hit
    image = targets["Gradio image hit in Chromium: filepath pattern / numpy input"]
    assert image[2].startswith("≤ 0.6"), image
