#!/usr/bin/env bash
# Installs everything the test suite uses (Debian's Chromium for the browser
# tests, a virtual environment with the package and its extras), checks style
# (ruff) and types (mypy, strict on src/), then runs the whole suite. A finding
# of either checker fails the script before any test runs. Extra arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)  # Gradio's streaming audio needs it
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)  # the Redis tier's tests start their own servers
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build where one is at hand; a newer torch from the registry is a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch>=2.1,<=2.13.0"
.venv/bin/python -m pip install -q -e ".[dev,test,demo,bench]"

# Style and types gate the tests (their settings are in pyproject.toml).
.venv/bin/python -m ruff check src tests
.venv/bin/python -m mypy src

# pytest exits 5 when it collected no test: that fails this script like any other failure.
exec .venv/bin/python -m pytest "$@"
