"""Models larger than one device: the sharding strategy is recorded in the result, and
combinations `run` cannot launch are refused before anything starts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.model_loader import sharding_label
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration.experiment import needs_launch, run_experiment


def test_sharding_label_names_the_strategy_and_device_map_devices() -> None:
    assert sharding_label("none", object()) == "none"
    assert sharding_label("tensor_parallel", object()) == "tensor_parallel"
    model = SimpleNamespace(hf_device_map={"embed": 0, "layers.0": 0, "layers.1": 1,
                                           "lm_head": "cpu"})
    assert sharding_label("device_map", model) == "device_map:0,1,cpu"
    assert sharding_label("device_map", SimpleNamespace()) == "device_map"


def test_needs_launch_for_several_processes_or_machines() -> None:
    assert not needs_launch(ExperimentConfig())
    assert needs_launch(ExperimentConfig.model_validate({"launch": {"num_processes": 2}}))
    assert needs_launch(ExperimentConfig.model_validate(
        {"launch": {"num_machines": 2, "machine_rank": 1}}))


def test_tensor_parallel_processes_are_refused_by_run(tmp_path: Path) -> None:
    cfg = ExperimentConfig.model_validate(
        {"launch": {"num_processes": 2}, "sharding": {"strategy": "tensor_parallel"}})
    with pytest.raises(ConfigurationError, match="device_map"):
        run_experiment(cfg, results_dir=tmp_path)
    assert not (tmp_path / "state").exists()  # nothing created


def test_several_machines_need_one_shared_experiment_id(tmp_path: Path) -> None:
    cfg = ExperimentConfig.model_validate({"launch": {"num_machines": 2}})
    with pytest.raises(ConfigurationError, match="--experiment-id"):
        run_experiment(cfg, results_dir=tmp_path)


@pytest.mark.gpu
@pytest.mark.slow
def test_device_map_sharding_is_recorded_on_a_gpu(tiny_model_dir: Path) -> None:
    from llm_energy_measure.core.model_loader import load_model_tokenizer

    cfg = ExperimentConfig.model_validate({
        "model": {"name": str(tiny_model_dir), "device": "cuda"},
        "sharding": {"strategy": "device_map"},
    })
    loaded = load_model_tokenizer(cfg)
    assert loaded.device == "auto"
    assert loaded.info.sharding is not None and loaded.info.sharding.startswith("device_map:0")
