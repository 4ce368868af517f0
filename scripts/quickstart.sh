#!/usr/bin/env bash
# Set up .venv if needed, then run a real measurement of the embedded default model on CPU,
# offline. Extra arguments go to `llm-energy-measure run`.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${EXTRAS:-run,gguf}" bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/llm-energy-measure run configs/examples/quickstart.yaml "$@"
