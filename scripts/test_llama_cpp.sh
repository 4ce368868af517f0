#!/usr/bin/env bash
# Tests of engine llama_cpp against the real library (tests/llama_cpp), in the project's
# environment once scripts/setup_llama_cpp.sh has installed llama-cpp-python there (a wheel
# built once and cached outside the clone). A machine that cannot build it (no cmake or C++
# compiler, no cached wheel) is a skip (exit 0 with the reason), not a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
set +e
PY="$(bash scripts/setup_llama_cpp.sh | tail -n1)"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 3 ]; then
    echo "llama.cpp tests skipped: $PY"
    exit 0
fi
if [ "$rc" -ne 0 ]; then
    echo "llama.cpp environment setup failed (exit $rc)" >&2
    exit "$rc"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The sources of this clone come first, whatever the editable install points at.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
set +e
"$PY" -m pytest -p no:cacheprovider tests/llama_cpp "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no llama.cpp tests" >&2
    exit 1
fi
exit "$rc"
