"""Study files: loading, one-line errors naming the key, and the shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_energy_measure.config.study import load_study_config, resolve_base_path, validate_study
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration.study.expansion import base_config_data, plan_study
from llm_energy_measure.orchestration.study.search import search_base

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "configs" / "examples"
STUDY_EXAMPLES = sorted(EXAMPLES_DIR.glob("study-*.yaml"))

BASE = {"base_config": {"model": {"name": "builtin:tiny-llama"}}}


def _error(data: dict[str, object]) -> str:
    with pytest.raises(ConfigurationError) as info:
        validate_study(data, source="s.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults() -> None:
    study = validate_study({"study_name": "s", **BASE})
    assert (study.cycles, study.order, study.executor, study.retries) == (
        1, "interleaved", "local", 0)
    assert study.timeout_s is None and study.cooldown_s == 0.0
    assert study.slurm.job_array is True and study.slurm.array_parallelism == 8


def test_unknown_top_level_key_suggests_the_right_one() -> None:
    message = _error({"study_name": "s", "cycle": 2, **BASE})
    assert message == "s.yaml: unknown key 'cycle' (did you mean 'cycles'?)"


def test_unknown_nested_key_suggests_within_its_section() -> None:
    message = _error({"study_name": "s", "slurm": {"partion": "gpu"}, **BASE})
    assert message == "s.yaml: unknown key 'slurm.partion' (did you mean 'partition'?)"


def test_sweep_key_typo_names_the_key_and_the_fix() -> None:
    message = _error({"study_name": "s", "sweep": {"batching.batch_sise": [1, 2]}, **BASE})
    assert message.startswith("s.yaml: sweep: ")
    assert "'batching.batch_sise'" in message and "did you mean 'batch_size'" in message


def test_point_key_typo_names_the_point() -> None:
    message = _error({"study_name": "s", "points": [{"decoder.max_new_token": 4}], **BASE})
    assert message.startswith("s.yaml: points[0]: ")
    assert "did you mean 'max_new_tokens'" in message


def test_bad_values_name_their_key() -> None:
    assert "order: 'random' is not one of sequential, interleaved, shuffled" in _error(
        {"study_name": "s", "order": "random", **BASE})
    assert "sweep.batching.batch_size: expected a list, got 4" in _error(
        {"study_name": "s", "sweep": {"batching.batch_size": 4}, **BASE})
    assert "sweep.model.precision: give at least one value" in _error(
        {"study_name": "s", "sweep": {"model.precision": []}, **BASE})
    assert "timeout_s: must be > 0" in _error({"study_name": "s", "timeout_s": 0, **BASE})
    assert "executor: 'pbs' is not one of local, slurm, submitit-local" in _error(
        {"study_name": "s", "executor": "pbs", **BASE})


def test_exactly_one_base() -> None:
    assert "exactly one of 'base'" in _error({"study_name": "s"})
    assert "exactly one of 'base'" in _error({"study_name": "s", "base": "b.yaml", **BASE})


def test_base_is_resolved_relative_to_the_study_file(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "b.yaml").write_text("config_name: b\n")
    (tmp_path / "studies").mkdir()
    study_file = tmp_path / "studies" / "s.yaml"
    study_file.write_text("study_name: s\nbase: ../configs/b.yaml\n")
    study = load_study_config(study_file)
    assert resolve_base_path(study, study_file) == tmp_path / "configs" / "b.yaml"
    data, source = base_config_data(study, study_file)
    assert data == {"config_name": "b"} and source == str(tmp_path / "configs" / "b.yaml")


def test_missing_base_file_names_the_key(tmp_path: Path) -> None:
    study_file = tmp_path / "s.yaml"
    study_file.write_text("study_name: s\nbase: nowhere.yaml\n")
    with pytest.raises(ConfigurationError, match=r"s.yaml: base: 'nowhere.yaml' not found"):
        resolve_base_path(load_study_config(study_file), study_file)


def test_yaml_errors_use_the_config_loader_style(tmp_path: Path) -> None:
    study_file = tmp_path / "s.yaml"
    study_file.write_text("study_name: s\nstudy_name: t\n")
    with pytest.raises(ConfigurationError, match="duplicate key 'study_name'"):
        load_study_config(study_file)


def test_study_examples_are_shipped() -> None:
    assert {p.name for p in STUDY_EXAMPLES} >= {"study-batch-precision.yaml", "study-slurm.yaml",
                                                "study-serving-rates.yaml",
                                                "study-serving-search.yaml"}


@pytest.mark.parametrize("path", STUDY_EXAMPLES, ids=lambda p: p.name)
def test_every_study_example_expands_with_all_points_valid(path: Path) -> None:
    study = load_study_config(path)
    data, source = base_config_data(study, path)
    if study.search is not None:  # both bounds are valid configs with an slo section
        _, low, _ = search_base(study, data, base_source=source)
        assert low.slo is not None and low.cycles == study.cycles
        return
    plan = plan_study(study, data, base_source=source)
    assert [p.error for p in plan.points if not p.valid] == []
    assert len(plan.runs) == len(plan.points) * study.cycles


def test_serving_rates_example_shares_one_server() -> None:
    from llm_energy_measure.orchestration.study.shared_server import sharing_plan

    path = EXAMPLES_DIR / "study-serving-rates.yaml"
    study = load_study_config(path)
    data, source = base_config_data(study, path)
    plan = plan_study(study, data, base_source=source)
    assert [c.load.rate_per_s for c in plan.configs.values()] == [1, 2, 4]
    fingerprint, why_not = sharing_plan(plan.configs, study.executor)
    assert fingerprint is not None and why_not is None


def test_batch_precision_example_has_the_documented_shape() -> None:
    path = EXAMPLES_DIR / "study-batch-precision.yaml"
    study = load_study_config(path)
    data, source = base_config_data(study, path)
    plan = plan_study(study, data, base_source=source)
    assert len(plan.points) == 5 and len(plan.runs) == 15
    assert plan.configs["p004"].batching.batch_size == 8
    assert plan.configs["p004"].decoder.max_new_tokens == 8
