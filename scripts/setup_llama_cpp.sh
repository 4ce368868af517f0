#!/usr/bin/env bash
# Install llama-cpp-python (engine llama_cpp, and its OpenAI-compatible server) into the
# project's environment (.venv, made by scripts/setup.sh; VENV overrides it).
#
# PyPI ships llama-cpp-python as source only: it compiles llama.cpp with cmake and a C++
# compiler (about 4 minutes on 2 cores). The wheel is built once and kept in a cache outside
# the clone, keyed by version, Python and CPU (the build is tuned for this CPU's instruction
# set), so later runs and new clones install it in seconds:
#   LLAMA_CPP_WHEELS (default: $HOME/.cache/llm-energy-measure/wheels)
# The build is for CPU only (no GPU backend); for GPU offload install it yourself with e.g.
# CMAKE_ARGS="-DGGML_CUDA=on" pip install llama-cpp-python.
#
# Exit status: 0 with the environment's python path as the last line of stdout; 3 when there
# is no cached wheel and no toolchain to build one (cmake, a C++ compiler; callers treat 3 as
# "skip"); anything else is a real failure (a build that fails with the toolchain present).
# Progress goes to stderr, so `PY="$(bash scripts/setup_llama_cpp.sh | tail -n1)"` works.
set -euo pipefail

LLAMA_CPP_VERSION="0.3.36"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
CACHE="${LLAMA_CPP_WHEELS:-$HOME/.cache/llm-energy-measure/wheels}"
# A CPU-only build, tuned for this machine's CPU.
BUILD_ARGS="-DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_HIP=OFF -DLLAMA_CURL=OFF"

log() { echo "[setup_llama_cpp] $*" >&2; }

if [ ! -x "$PY" ]; then
    log "no environment at $VENV: creating it (scripts/setup.sh)"
    bash scripts/setup.sh >&2
fi

# True when the environment has llama-cpp-python at our version, importable, with the
# server's dependencies.
ready() {
    "$PY" - "$LLAMA_CPP_VERSION" <<'PYEOF' 2>/dev/null
import importlib.metadata as md, sys
assert md.version("llama-cpp-python") == sys.argv[1]
import llama_cpp  # noqa: F401  (loads the shared library)
import fastapi, sse_starlette, starlette_context, pydantic_settings, uvicorn  # noqa: F401
PYEOF
}

if ready; then
    log "llama-cpp-python==$LLAMA_CPP_VERSION already installed in $VENV"
    echo "$PY"
    exit 0
fi

# The cache key: version, machine and a digest of the CPU's flags and the build arguments
# (a native build may not run on another CPU; the wheel itself is for any Python 3).
CPU_FLAGS="$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m)"
DIGEST="$(printf '%s\n%s\n' "$CPU_FLAGS" "$BUILD_ARGS" | sha256sum | cut -c1-12)"
SLOT="$CACHE/llama-cpp-python-$LLAMA_CPP_VERSION-$(uname -m)-$DIGEST"
mkdir -p "$CACHE"
# One build at a time for a given cache slot (two jobs on one machine share the cache).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$SLOT.lock"
    flock 9
fi

wheel() { ls "$SLOT"/llama_cpp_python-"$LLAMA_CPP_VERSION"-*.whl 2>/dev/null | head -n1; }

if [ -z "$(wheel)" ]; then
    missing=()
    command -v cmake >/dev/null 2>&1 || missing+=(cmake)
    command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 \
        || command -v clang++ >/dev/null 2>&1 || missing+=("a C++ compiler")
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "cannot build llama-cpp-python: no ${missing[*]} on this machine, and no cached wheel in $SLOT"
        exit 3
    fi
    log "building llama-cpp-python==$LLAMA_CPP_VERSION for CPU (a few minutes) ..."
    BUILD="$(mktemp -d "$CACHE/.build.XXXXXX")"
    trap 'rm -rf "$BUILD"' EXIT
    start=$SECONDS
    if ! CMAKE_ARGS="$BUILD_ARGS" "$PY" -m pip wheel -q --no-deps -w "$BUILD" \
            "llama-cpp-python==$LLAMA_CPP_VERSION" >&2; then
        log "the build of llama-cpp-python failed (see above)"
        exit 1
    fi
    mkdir -p "$SLOT"
    mv "$BUILD"/llama_cpp_python-*.whl "$SLOT"/
    log "built in $((SECONDS - start)) s: $(wheel)"
fi

log "installing $(basename "$(wheel)") and the server's dependencies into $VENV"
"$PY" -m pip install -q --find-links "$SLOT" --only-binary llama-cpp-python \
    "llama-cpp-python[server]==$LLAMA_CPP_VERSION" >&2
if ! ready; then
    log "llama-cpp-python was installed but cannot be imported from $VENV"
    exit 1
fi
log "ready: $VENV"
echo "$PY"
