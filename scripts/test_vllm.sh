#!/usr/bin/env bash
# Tests of engine vllm against the real library (tests/vllm), in the vLLM environment that
# scripts/setup_vllm.sh creates or reuses (cached outside the clone). A CPU that cannot run
# vLLM's CPU build is a skip (exit 0 with the reason), not a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
set +e
PY="$(bash scripts/setup_vllm.sh | tail -n1)"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -eq 3 ]; then
    echo "vLLM tests skipped: $PY"
    exit 0
fi
if [ "$rc" -ne 0 ]; then
    echo "vLLM environment setup failed (exit $rc)" >&2
    exit "$rc"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# The sources of this clone come first, whatever the editable install points at.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
set +e
"$PY" -m pytest -p no:cacheprovider tests/vllm "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no vLLM tests" >&2
    exit 1
fi
exit "$rc"
