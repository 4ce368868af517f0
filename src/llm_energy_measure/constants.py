"""Project-wide constants and defaults (units in names)."""

from __future__ import annotations

import os
from pathlib import Path

#: Version of the on-disk result format. Bump when a stored field changes meaning.
#: 2: latency per request is TPOT (``tpot_s``) plus token gaps (ITL per token gap), e2e is
#: the batch's return and ``completion_s`` the row's own last token; figures of unmeasured
#: devices are null with a reason; cycles record their energy-window edges.
SCHEMA_VERSION = 2
#: Schema versions this code can read.
SUPPORTED_SCHEMA_VERSIONS = frozenset({2})

#: Environment variable that overrides the results directory (precedence: config.precedence).
RESULTS_DIR_ENV = "LLM_ENERGY_MEASURE_RESULTS_DIR"
DEFAULT_RESULTS_DIR = Path("results")

#: Environment variable for the cache of the embedded default model.
CACHE_DIR_ENV = "LLM_ENERGY_MEASURE_CACHE_DIR"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "llm-energy-measure"

#: The embedded default model: generated deterministically, random weights, offline.
BUILTIN_MODEL_PREFIX = "builtin:"
DEFAULT_MODEL = "builtin:tiny-llama"

# Inference defaults
DEFAULT_MAX_NEW_TOKENS = 32
DEFAULT_BATCH_SIZE = 4
DEFAULT_NUM_PROMPTS = 16
DEFAULT_MAX_INPUT_TOKENS = 512
DEFAULT_WARMUP_RUNS = 2
DEFAULT_SAMPLE_INTERVAL_MS = 100.0
DEFAULT_BASELINE_DURATION_S = 2.0
DEFAULT_SEED = 42

#: NVIDIA's energy counter updates roughly every 100 ms; shorter windows are unreliable.
NVML_COUNTER_UPDATE_PERIOD_S = 0.1
#: Windows shorter than this many counter periods draw a warning.
MIN_WINDOW_COUNTER_PERIODS = 10

# The layout of the results directory is defined in storage/layout.py.

#: Environment variables whose values are secrets: never written to results or logs.
SECRET_ENV_VARS = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HUGGINGFACE_TOKEN",
    "WANDB_API_KEY",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "OPENAI_API_KEY",
)


def resolve_cache_dir() -> Path:
    """Cache directory for generated artefacts such as the embedded model."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env) if env else DEFAULT_CACHE_DIR
