"""Run the whole infercache benchmark suite and write the report.

Usage (from the repository root)::

    python benchmarks/run.py                 # full suite, a few minutes
    python benchmarks/run.py --quick         # tiny sizes, few rounds (smoke run)
    python benchmarks/run.py --out DIR       # where results go (default benchmarks/results)
    python benchmarks/run.py -k hash         # only benchmarks whose id matches

It runs ``bench_suite.py`` under pytest-benchmark (warm-up, calibrated
repeated rounds, medians) in a child interpreter with numerical libraries held
to one thread, then writes into the output directory:

* ``report.md``      - the Markdown tables (ratios against gr.cache from this run)
* ``*.png``          - plots
* ``benchmark.json`` - pytest-benchmark's raw data; ``records.json`` tags and n/a
  reasons; ``machine.json`` - where it ran; ``pytest.log`` - harness output.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: pytest-benchmark options for the full run and the quick (smoke) run.
FULL_HARNESS = [
    "--benchmark-warmup=on",
    "--benchmark-warmup-iterations=200",
    "--benchmark-min-rounds=15",
    "--benchmark-max-time=1.0",
    "--benchmark-min-time=0.00002",
]
QUICK_HARNESS = [
    "--benchmark-warmup=off",
    "--benchmark-min-rounds=2",
    "--benchmark-max-time=0.001",
    "--benchmark-min-time=0.000001",
    "--benchmark-calibration-precision=1",
]
#: environment for the child: no oversubscription of the few cores we have.
THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "MPLBACKEND": "Agg",
    "GRADIO_ANALYTICS_ENABLED": "False",
}


def _version(module: str) -> str:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - a missing library is just "not installed"
        return "not installed"
    return str(getattr(mod, "__version__", None) or getattr(mod, "VERSION", "unknown"))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total() -> str:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(  # noqa: S603 - fixed git queries for the report's header
            ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(quick: bool) -> dict[str, Any]:
    """Where and with what the suite ran (shown at the top of the report)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    dirty = bool(_git("status", "--porcelain", "--", "src"))
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory": _memory_total(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {
            m: _version(m)
            for m in ("numpy", "gradio", "torch", "pandas", "PIL", "blake3", "xxhash",
                      "cachetools", "joblib", "diskcache", "pytest_benchmark")
        },
        "infercache_commit": (_git("rev-parse", "--short", "HEAD") or "unknown")
        + (" + uncommitted changes in src/" if dirty else ""),
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "mode": "quick (smoke sizes, not representative)" if quick else "full",
        "threads": "numerical libraries pinned to 1 thread (OMP/MKL/OpenBLAS, torch)",
    }


def run_suite(out: Path, quick: bool, select: str | None, extra: list[str]) -> int:
    """Run ``bench_suite.py`` under pytest-benchmark in a child interpreter."""
    env = os.environ.copy()
    env.update(THREAD_ENV)
    env["INFERCACHE_BENCH_OUT"] = str(out)
    env["INFERCACHE_BENCH_QUICK"] = "1" if quick else "0"
    paths = [str(REPO / "src"), str(HERE)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(HERE / "bench_suite.py"),
        "-c",
        str(HERE / "pytest.ini"),
        "--rootdir",
        str(HERE),
        "-q",
        "-rN",
        f"--benchmark-json={out / 'benchmark.json'}",
        "--benchmark-sort=name",
        "--benchmark-columns=min,median,iqr,rounds,iterations",
        *(QUICK_HARNESS if quick else FULL_HARNESS),
        *extra,
    ]
    if select:
        cmd += ["-k", select]
    log = out / "pytest.log"
    print("running:", " ".join(cmd[2:4]), "...", flush=True)
    with open(log, "w") as f:
        # this interpreter on the suite's own files
        proc = subprocess.run(cmd, cwd=HERE, env=env, stdout=f, stderr=subprocess.STDOUT)  # noqa: S603
    tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
    print("pytest:", tail[0] if tail else "(no output)", f"(log: {log})")
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few rounds (smoke run)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    parser.add_argument("-k", dest="select", default=None, help="pytest -k expression")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from existing results")
    parser.add_argument(
        "--update-readme", action="store_true", help="paste the report's tables into benchmarks/README.md"
    )
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = parser.parse_args(argv)

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    code = 0
    if not args.report_only:
        (out / "machine.json").write_text(json.dumps(machine_info(args.quick), indent=1))
        for stale in ("benchmark.json", "records.json"):
            (out / stale).unlink(missing_ok=True)
        code = run_suite(out, args.quick, args.select, args.pytest_args)
        # pytest exit code 1 means some benchmark errored; the report shows which.
        if code not in (0, 1):
            print(f"benchmark run failed (pytest exit code {code}); see {out / 'pytest.log'}")
            return code

    sys.path.insert(0, str(HERE))
    import report

    written = report.build(out)
    for path in written:
        print("wrote", path)
    if args.update_readme:
        update_readme(out / "report.md", HERE / "README.md")
        print("updated", HERE / "README.md")
    return 0 if code == 0 else 1


START, END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(report_md: Path, readme: Path) -> None:
    """Replace the results section of ``readme`` with ``report_md`` (minus the plots)."""
    body = report_md.read_text().split("\n## Plots", 1)[0]
    body = body.replace("# infercache benchmark report\n", "", 1).replace("\n## ", "\n### ")
    text = readme.read_text()
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(f"{head}{START}\n{body.strip()}\n\nPlots are written next to the report "
                      f"(not committed).\n{END}{tail}")


if __name__ == "__main__":
    raise SystemExit(main())
