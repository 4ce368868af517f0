#!/usr/bin/env bash
# Wheels for running scripts/gpu_check.sh --system on a GPU machine that cannot reach PyPI but
# whose python3 (3.12, x86-64) already holds CUDA torch, transformers, accelerate and the
# scientific stack. Downloads, into DIR (default .whl), this package's wheel and the packages
# such an image lacks (pydantic, loguru, codecarbon, zeus and what they need), then drops the
# ones the image has, so that one version of each is installed there.
#   bash scripts/gpu_wheels.sh [DIR]          (PYVER=3.11 ... for another Python)
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-.whl}"
mkdir -p "$DIR"
python3 -m pip download -q --only-binary=:all: --python-version "${PYVER:-3.12}" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$DIR" \
    "pydantic>=2.6" "loguru>=0.7" "filelock>=3.12" "codecarbon>=2.5" "zeus>=0.10"
# Already in the image (and large, or pinned there): keep the image's versions.
IN_IMAGE="numpy pandas scipy scikit_learn joblib threadpoolctl psutil nvidia_ml_py requests
urllib3 idna certifi charset_normalizer click rich pygments markdown_it_py mdurl typer
typing_extensions httpx httpcore h11 anyio narwhals python_dateutil prometheus_client py_cpuinfo
cloudpickle annotated_doc shellingham six filelock pyyaml"
for name in $IN_IMAGE; do
    rm -f "$DIR/$name"-[0-9]*.whl
done
python3 -m pip wheel -q --no-deps --no-build-isolation -w "$DIR" . 2>/dev/null \
    || python3 -m pip wheel -q --no-deps -w "$DIR" .
ls "$DIR"
du -sh "$DIR"
