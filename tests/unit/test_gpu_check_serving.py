"""The serving GPU check's experiment is a valid managed-vLLM serving config on both
devices (the script itself runs where a GPU and vLLM are)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from llm_energy_measure.config import ExperimentConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check_serving.py"


def _config(device: str) -> ExperimentConfig:
    spec = importlib.util.spec_from_file_location("gpu_check_serving", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = argparse.Namespace(device=device, model="builtin:small-llama", rate=16.0,
                              requests=256, new_tokens=128, gpu_memory_utilization=0.5)
    return ExperimentConfig.model_validate(module.experiment_config(args))


def test_gpu_serving_check_measures_the_server_gpu_with_the_nvml_counter() -> None:
    gpu = _config("cuda")
    assert gpu.engine == "openai" and gpu.server is not None and gpu.server.engine == "vllm"
    assert gpu.energy.backend == "nvml" and gpu.model.precision == "float16"
    assert gpu.vllm.gpu_memory_utilization == 0.5 and gpu.decoder.fixed_length
    cpu = _config("cpu")
    assert cpu.energy.backend == "auto" and cpu.vllm.kv_cache_space_gib == 1
