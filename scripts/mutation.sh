#!/usr/bin/env bash
# Mutation testing of the engine's modules with mutmut (settings: [tool.mutmut]
# in pyproject.toml; workflow: docs/testing.md).
#
#   bash scripts/mutation.sh [MODULE ...]
#
# MODULE is a module or package of src/infercache: store, flight, engine,
# sessions, keys, safety, sizes (the default set), or manual, prefix, tiers;
# or one module of the keys or tiers package (keys.encoder, tiers.disk, ...),
# to work through a large package a part at a time.
# Every mutant of the named modules is made and checked again on each run, in
# parallel on the machine's cores (MUTATION_CHILDREN overrides), each by the
# tests that called the function it changes. The run ends with the line
#   mutation score: K killed of N (P%)
# (a mutant that made its tests time out, twice, or crash their process counts as killed) and writes each
# mutant not killed, with its status and diff, to mutation-survivors.txt.
# MUTATION_TIMEOUT (seconds) bounds the mutmut run; mutants it did not reach
# count as not killed. Not part of the default test command: it takes minutes
# per module.
set -euo pipefail
cd "$(dirname "$0")/.."

known=(store flight engine sessions keys safety sizes manual prefix tiers)
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(store flight engine sessions keys safety sizes)
patterns=()
files=()
for m in "${modules[@]}"; do
  ok=0
  for k in "${known[@]}"; do [ "$m" = "$k" ] && ok=1; done
  # A module of a package among them, such as keys.encoder or tiers.disk.
  if [ $ok -eq 0 ] && [[ "$m" =~ ^(keys|tiers)\.[a-z_]+$ ]] && [ -f "src/infercache/${m/.//}.py" ]; then
    ok=1
  fi
  if [ $ok -eq 0 ]; then
    echo "mutation.sh: unknown module '$m' (one of: ${known[*]}, or keys.NAME / tiers.NAME)" >&2
    exit 2
  fi
  # The dot after the name keeps store from matching stores.
  patterns+=("infercache.$m.*")
  # The test files that mirror it (a subset of [tool.mutmut]'s selection): each
  # mutant runs only those of them that called the function it changes.
  case "$m" in
    # The engine's miss path is single-flight too: the flight and session tests drive it
    # (concurrent and async callers, recursion, sessions' calls in flight); test_stats checks
    # every counter it keeps (tier hits, remote joins, a follower that became a miss).
    engine) files+=(test_engine.py test_engine_tiers.py test_decorator.py test_decorator_calls.py test_manual.py
                    test_flight.py test_sessions.py test_stats.py) ;;
    store) files+=(test_store.py test_store_calls.py) ;;
    keys) files+=(test_keys.py test_keys_arrow.py test_keys_calls.py test_keys_files.py test_keys_golden.py test_keys_numpy.py
                  test_keys_objects.py test_keys_pandas.py test_keys_pil.py test_keys_polars.py
                  test_keys_torch.py) ;;
    # The call keys (keys.api's short paths) are tested against the general path in test_keys_calls.
    keys.api) files+=(test_keys.py test_keys_golden.py test_keys_calls.py) ;;
    # The encoder is the hub every keys test goes through; its own tests are in test_keys, and the
    # object rules and the keyed folders it dispatches to are checked in theirs.
    keys.encoder) files+=(test_keys.py test_keys_golden.py test_keys_objects.py test_keys_files.py) ;;
    keys.*) files+=(test_keys.py test_keys_golden.py "test_keys_${m#keys.}.py") ;;
    safety) files+=(test_safety.py test_safety_arrays.py test_safety_frames.py test_safety_pil.py test_codec.py) ;;
    # A manual Cache's store, name and version are checked where stores are opened.
    manual) files+=(test_manual.py test_stores.py) ;;
    tiers) files+=(test_tiers.py test_tiers_disk.py test_tiers_guard.py) ;;
    tiers.*) files+=(test_tiers.py "test_tiers_${m#tiers.}.py") ;;
    *) files+=("test_$m.py") ;;
  esac
done
# Read by tests/conftest.py: the files above only, and property tests at a few
# examples each (hundreds of mutants each run every test that called the function).
export INFERCACHE_MUTATION_TESTS="${files[*]}"
export INFERCACHE_HYPOTHESIS_PROFILE=mutation

# What it needs: the project's environment with the test dependencies and mutmut 3.3 or later.
install=0
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  install=1
fi
.venv/bin/python -c "import hypothesis, pytest, pytest_asyncio" 2>/dev/null || install=1
.venv/bin/python - 2>/dev/null <<'EOF' || install=1
from importlib.metadata import version

raise SystemExit(tuple(map(int, version("mutmut").split(".")[:2])) < (3, 3))
EOF
[ $install -eq 0 ] || .venv/bin/python -m pip install -q -e ".[test,mutation]"

# Each mutant's worker imports the mutated modules (every mutant of a function is
# a copy of it): compiled once and kept under mutants/, not once per mutant.
unset PYTHONDONTWRITEBYTECODE
children="${MUTATION_CHILDREN:-$(nproc 2>/dev/null || echo 2)}"
limit=()
[ -z "${MUTATION_TIMEOUT:-}" ] || limit=(timeout "$MUTATION_TIMEOUT")

# Which tests call which function is recorded afresh on every run. mutmut keeps that record in
# mutants/ and adds to it only for tests whose names it has not seen: a test that changed, a
# function an old test calls since a change, or the files of another module's run (the
# selection above is not part of mutmut's settings) would keep an old, wrong record, and a
# mutant of a function recorded as called by no test shows as "no tests".
rm -f mutants/mutmut-stats.json

start=$(date +%s)
status=0
${limit[@]+"${limit[@]}"} .venv/bin/mutmut run --max-children "$children" "${patterns[@]}" || status=$?
if [ $status -ne 0 ]; then
  echo "mutation.sh: mutmut run ended with status $status (124: stopped by MUTATION_TIMEOUT)" >&2
fi

# A timeout counts as killed only if it times out again when checked once more:
# mutmut's limit is wall-clock time, and a worker starved of CPU (these runs go
# under nice beside other work) or paused passes it with no hang in its tests.
# The check gets what is left of MUTATION_TIMEOUT, at least 5 minutes.
.venv/bin/mutmut results --all true >mutants/results.txt
mapfile -t timed_out < <(.venv/bin/python - "${patterns[@]}" <<'EOF'
import fnmatch
import sys

with open("mutants/results.txt", encoding="utf-8") as f:
    for line in f:
        name, sep, status = line.strip().rpartition(": ")
        if sep and status == "timeout" and any(fnmatch.fnmatch(name, p) for p in sys.argv[1:]):
            print(name)
EOF
)
if [ ${#timed_out[@]} -gt 0 ]; then
  echo "mutation.sh: checking the ${#timed_out[@]} timeouts once more" >&2
  again=()
  if [ -n "${MUTATION_TIMEOUT:-}" ]; then
    left=$(( MUTATION_TIMEOUT - ($(date +%s) - start) ))
    again=(timeout "$(( left > 300 ? left : 300 ))")
  fi
  ${again[@]+"${again[@]}"} .venv/bin/mutmut run --max-children "$children" "${timed_out[@]}" >/dev/null || true
  .venv/bin/mutmut results --all true >mutants/results.txt
fi

# The score and the survivors, from mutmut's saved results of the named modules.
.venv/bin/python - "$(( $(date +%s) - start ))" "${patterns[@]}" <<'EOF'
import fnmatch
import subprocess
import sys

seconds, patterns = int(sys.argv[1]), sys.argv[2:]
# The tests failed, hung, or crashed their process (a mutant that makes code read memory it
# does not own, through ctypes or a buffer released too early): each way the change was seen.
counted = {"killed", "timeout", "segfault"}
status_of = {}
with open("mutants/results.txt", encoding="utf-8") as f:
    for line in f:
        name, sep, status = line.strip().rpartition(": ")
        if sep and any(fnmatch.fnmatch(name, p) for p in patterns):
            status_of[name] = status
scored = {n: s for n, s in status_of.items() if s != "skipped"}
killed = sum(s in counted for s in scored.values())
left = sorted(n for n, s in scored.items() if s not in counted)
by_status: dict[str, int] = {}
for s in scored.values():
    by_status[s] = by_status.get(s, 0) + 1
with open("mutation-survivors.txt", "w", encoding="utf-8") as out:
    out.write(f"# mutants not killed of {', '.join(patterns)}: {len(left)} of {len(scored)}\n")
    out.write("# " + ", ".join(f"{s}: {c}" for s, c in sorted(by_status.items())) + "\n\n")
    for name in left:
        if scored[name] == "not checked":  # not reached (MUTATION_TIMEOUT): no diff, it costs a process each
            out.write(f"## {name} ({scored[name]})\n\n")
            continue
        diff = subprocess.run(
            [".venv/bin/mutmut", "show", name], capture_output=True, text=True, check=False
        ).stdout
        out.write(f"## {name} ({scored[name]})\n{diff.rstrip()}\n\n")
print(", ".join(f"{s}: {c}" for s, c in sorted(by_status.items())) + f"; {seconds} s")
print(f"{len(left)} mutants not killed written to mutation-survivors.txt")
pct = 100.0 * killed / len(scored) if scored else 0.0
print(f"mutation score: {killed} killed of {len(scored)} ({pct:.1f}%)")
EOF
exit $status
