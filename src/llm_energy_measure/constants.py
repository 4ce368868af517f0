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

# Input limits: a config, a stored file or a prompt source beyond one of these is refused with
# one line naming it (exit 2 for configs and flags), before it can exhaust memory, time or the
# interpreter's stack. docs/reliability.md lists them with the test that proves each.

#: Largest config file (YAML/JSON, each ``_extends`` parent and study file included), in bytes.
MAX_CONFIG_BYTES = 1024 * 1024
#: Alias references (``*name``) in one YAML document.
MAX_YAML_ALIASES = 1_000
#: Nodes one YAML document may expand to when every alias counts at its full size (what
#: merging and copying the settings would build): an alias bomb is refused while it is read.
MAX_YAML_EXPANDED_NODES = 100_000
#: Nesting depth of mappings and lists in a config file, a ``--set`` value, a prompts JSONL
#: line and a stored JSON file's cache line.
MAX_NESTING_DEPTH = 64
#: Digits of an integer written in a config or a ``--set`` value.
MAX_INT_DIGITS = 100
#: Files in one ``_extends`` chain (a file, its parent, the parent's parent, ...).
MAX_EXTENDS_DEPTH = 32
#: Config files read for one config, its ``_extends`` parents and theirs, repeats counted.
MAX_EXTENDS_FILES = 256
#: Points of one study (the sweep grid plus the explicit points).
MAX_SWEEP_POINTS = 10_000
#: Largest prompt file (prompts.path, text or JSONL), in bytes.
MAX_PROMPT_FILE_BYTES = 2 * 1024**3
#: Largest stored result file (raw or aggregated JSON) read back, in bytes.
MAX_RESULT_BYTES = 1024**3
#: Largest state, heartbeat, manifest or summary-cache file read back, in bytes.
MAX_STATE_BYTES = 256 * 1024 * 1024
#: Largest token, request or byte count a stored result may hold: 2**53, the largest integer
#: every JSON reader (and a float column) holds exactly; any real run is far below it.
MAX_COUNT = 2**53

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
