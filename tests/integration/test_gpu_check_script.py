"""The GPU validation script of the accelerate path, checked on CPU: the same launch (one
process through ``accelerate launch`` running the launcher module) with placement on CPU.

On a GPU the script loads with ``device_map``; what differs there (the sharded placement) is
covered by the placement tests and the GPU-marked loader test."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from llm_energy_measure.config import ExperimentConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check_sharded.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check_sharded", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_configs_shard_with_device_map_and_cap_the_gpu() -> None:
    script = _script()
    common = {"model": "m", "device": "cuda", "precision": "bfloat16", "prompts": 8,
              "new_tokens": 4, "batch": 4}
    whole = ExperimentConfig.model_validate(script.experiment_config(max_memory=None, **common))
    split = ExperimentConfig.model_validate(
        script.experiment_config(max_memory={"0": "150MiB", "cpu": "32GiB"}, **common))
    assert whole.sharding.strategy == split.sharding.strategy == "device_map"
    assert whole.sharding.max_memory is None
    assert split.sharding.max_memory == {"0": "150MiB", "cpu": "32GiB"}
    assert whole.launch.num_processes == 1


@pytest.mark.slow
def test_accelerate_path_on_cpu_prints_exact_token_counts() -> None:
    prompts, new_tokens = 4, 3
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--model", "builtin:tiny-llama",
         "--precision", "float32", "--prompts", str(prompts), "--new-tokens", str(new_tokens),
         "--batch-size", "2"],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = [line for line in out.stdout.splitlines() if line.startswith("| ")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["cpu", "none", str(prompts * new_tokens)]
    assert float(cells[4]) > 0  # output tokens per second
