"""Helpers shared by the multi-process integration tests (no tests here).

Every launch runs the real CLI in a subprocess (so that signals and process groups are
real), offline, with the package cache of the test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

NUM_PROMPTS = 6
MAX_NEW = 4


def write_config(
    folder: Path, *, name: str = "mp", num_processes: int = 2, timeout_s: float = 60,
    baseline: bool = False, backend: str = "auto", extra: str = "",
) -> Path:
    """A tiny 2-process experiment on the embedded model (fixed-length outputs)."""
    path = folder / f"{name}.yaml"
    baseline_cfg = "{enabled: true, duration_s: 0.2}" if baseline else "{enabled: false}"
    path.write_text(
        f"config_name: {name}\n"
        "model: {name: 'builtin:tiny-llama', device: cpu}\n"
        f"prompts: {{source: builtin, num_prompts: {NUM_PROMPTS}, max_input_tokens: 32}}\n"
        "batching: {strategy: fixed, batch_size: 2}\n"
        f"decoder: {{preset: benchmark, max_new_tokens: {MAX_NEW}}}\n"
        "warmup: {runs: 1}\n"
        f"energy: {{backend: '{backend}', baseline: {baseline_cfg}, sample_interval_ms: 50,"
        " carbon_intensity_g_per_kwh: 100}\n"
        f"launch: {{num_processes: {num_processes}, process_timeout_s: {timeout_s}}}\n"
        + extra
    )
    return path


def cli_env(cache_dir: Path, fault: str | None = None) -> dict[str, str]:
    """Environment of a CLI subprocess: offline, test cache, optional injected fault."""
    env = dict(os.environ)
    env.update({
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "LLM_ENERGY_MEASURE_CACHE_DIR": str(cache_dir),
    })
    env.pop("LLM_ENERGY_MEASURE_FAULT", None)
    env.pop("LLM_ENERGY_MEASURE_RESULTS_DIR", None)
    if fault:
        env["LLM_ENERGY_MEASURE_FAULT"] = fault
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "llm_energy_measure.cli", *args]


def run_cli(
    *args: str, cache_dir: Path, fault: str | None = None, timeout_s: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to its end; returns the completed process (text output)."""
    return subprocess.run(
        cli_command(*args), env=cli_env(cache_dir, fault), capture_output=True, text=True,
        timeout=timeout_s, check=False,
    )


def only_experiment(results: Path) -> str:
    """The id of the single experiment under ``results``."""
    (state,) = [p for p in (results / "state").glob("*.json")]
    return state.stem


def load_state(results: Path, exp_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((results / "state" / f"{exp_id}.json").read_text())
    return data


def load_raws(results: Path, exp_id: str) -> list[dict[str, Any]]:
    folder = results / "raw" / exp_id
    return [json.loads(p.read_text()) for p in sorted(folder.glob("process_*.json"))]


def request_ids(raws: list[dict[str, Any]]) -> list[int]:
    """Every request id measured, over all processes, sorted (duplicates kept)."""
    return sorted(r["request_id"] for raw in raws for r in raw["requests"])
