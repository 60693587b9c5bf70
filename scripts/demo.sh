#!/usr/bin/env bash
# Installs the package with the demo's extras into a virtual environment and
# starts the demo app on http://127.0.0.1:7860 (pass --port N to change it).
set -euo pipefail
cd "$(dirname "$0")/.."
# Gradio's streaming audio needs ffmpeg; without it the demo's audio tab falls back to whole files.
if ! command -v ffmpeg >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq ffmpeg >/dev/null; } \
    || echo "ffmpeg could not be installed: the demo's audio tab will not stream" >&2
fi
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch>=2.1,<=2.13.0"
.venv/bin/python -m pip install -q -e ".[demo]"
exec .venv/bin/infercache demo "$@"
