"""pytest plumbing for the benchmark suite (not the test suite).

Every benchmark tags itself with ``section``/``case``/``peer`` user properties.
This conftest collects them, together with the outcome and, for "n/a" cells,
the skip reason, and writes ``records.json`` into the directory named by the
``INFERCACHE_BENCH_OUT`` environment variable when the session ends. The
timings themselves come from pytest-benchmark's ``--benchmark-json`` file;
``report.py`` joins the two by node id.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

_RECORDS: list[dict[str, Any]] = []


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        text = str(longrepr[2])
        return text.removeprefix("Skipped: ")
    if longrepr is None:
        return ""
    text = str(getattr(report, "longreprtext", "") or longrepr)
    lines = [line for line in text.splitlines() if line.startswith("E ")]
    return (lines[-1][2:].strip() if lines else text.splitlines()[-1])[:300]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep one record per benchmark: its tags, outcome and n/a reason."""
    props = dict(report.user_properties)
    if not props:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        record: dict[str, Any] = {"nodeid": report.nodeid, "outcome": report.outcome, **props}
        if not report.passed:
            record["reason"] = _reason(report)
        _RECORDS.append(record)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write ``records.json`` for the report builder."""
    out = os.environ.get("INFERCACHE_BENCH_OUT")
    if not out:
        return
    path = Path(out) / "records.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_RECORDS, indent=1, default=str))
