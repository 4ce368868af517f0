"""User mistakes end in one line naming the key, flag or folder and exit 2, never in Python's
internal text; resource problems are refused or warned about before anything starts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_energy_measure.cli import app
from llm_energy_measure.config import load_config, validate_config
from llm_energy_measure.config.study import load_study_config
from llm_energy_measure.config.validation import config_warnings, resource_warnings
from llm_energy_measure.constants import MAX_SWEEP_POINTS
from llm_energy_measure.core.builtin_model import ensure_builtin_model
from llm_energy_measure.exceptions import ConfigurationError

runner = CliRunner()


def _config(tmp_path: Path, text: str = "cycles: 2\n") -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_one_prompt_for_two_processes_is_refused_naming_the_keys(tmp_path: Path) -> None:
    config = _config(tmp_path, "launch:\n  num_processes: 2\n")
    base = tmp_path / "results"
    result = runner.invoke(app, ["run", str(config), "-n", "1", "--results-dir", str(base)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {config}: prompts.num_prompts (1) must be at least launch.num_processes (2): "
        "every process measures a share of the prompts; raise prompts.num_prompts or lower "
        "launch.num_processes")
    assert not base.exists()  # refused before any state (and a resume hint) is written


def test_prompts_are_counted_over_every_machine() -> None:
    cfg = {"prompts": {"num_prompts": 3}, "launch": {"num_processes": 2, "num_machines": 2,
                                                      "main_process_ip": "10.0.0.1"}}
    with pytest.raises(ConfigurationError, match=(
            r"prompts.num_prompts \(3\) must be at least launch.num_processes \(2\) x "
            r"launch.num_machines \(2\)")):
        validate_config(cfg)


def test_results_dir_that_is_a_file_exits_2_naming_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    not_a_dir = tmp_path / "results.txt"
    not_a_dir.write_text("x")
    result = runner.invoke(app, ["run", str(config), "--results-dir", str(not_a_dir)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: results folder {not_a_dir} is a file, not a folder; pass --results-dir with "
        "a folder")


def test_results_dir_below_a_file_exits_2_naming_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "f").write_text("x")
    below = tmp_path / "f" / "results"
    result = runner.invoke(app, ["run", str(config), "--results-dir", str(below)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: results folder {below} cannot be written (Not a directory); pass "
        "--results-dir with a writable folder")


def _unwritable_folder() -> Path:
    """/sys/kernel refuses new files even to root; skip where it does not exist or accepts."""
    folder = Path("/sys/kernel")
    if not folder.is_dir():
        pytest.skip("no /sys/kernel")
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return folder
    os.close(fd)
    os.unlink(probe)
    pytest.skip("/sys/kernel accepts new files here")


def test_a_read_only_results_dir_exits_2_naming_it(tmp_path: Path) -> None:
    folder = _unwritable_folder()
    result = runner.invoke(app, ["run", str(_config(tmp_path)), "--results-dir", str(folder)])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert line.startswith(f"error: results folder {folder} cannot be written (")
    assert line.endswith("); pass --results-dir with a writable folder")


def test_a_cache_dir_that_cannot_hold_the_builtin_model_is_a_config_error(
        tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.write_text("a file, not a folder")
    with pytest.raises(ConfigurationError) as caught:
        ensure_builtin_model("builtin:tiny-llama", cache_dir=cache)
    assert str(caught.value) == (
        f"cannot write the builtin model cache at '{cache / 'builtin'}': Not a directory; set "
        "LLM_ENERGY_MEASURE_CACHE_DIR to a writable directory")
    assert caught.value.exit_code == 2


def test_results_list_of_a_missing_folder_names_it(tmp_path: Path) -> None:
    typo = tmp_path / "typo"
    result = runner.invoke(app, ["results", "list", "--results-dir", str(typo)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: results folder {typo} does not exist; check --results-dir (or "
        "$LLM_ENERGY_MEASURE_RESULTS_DIR)")


def test_an_empty_existing_results_folder_still_lists_no_results(tmp_path: Path) -> None:
    result = runner.invoke(app, ["results", "list", "--results-dir", str(tmp_path)])
    assert (result.exit_code, result.stdout.strip()) == (0, "no results")


def test_more_processes_than_cores_draws_a_warning() -> None:
    cfg = validate_config({"launch": {"num_processes": 64}, "prompts": {"num_prompts": 64}})
    expected = ("launch.num_processes (64) exceeds the 2 CPU core(s) of this machine: the "
                "processes contend for cores and the figures measure that contention; use at "
                "most 2")
    assert resource_warnings(cfg, cpu_count=2) == [expected]
    assert expected in config_warnings(cfg, cpu_count=2)
    assert resource_warnings(cfg, cpu_count=64) == []
    assert expected not in config_warnings(cfg)  # validation alone reads nothing of the host


def test_run_and_config_validate_print_the_cores_warning(tmp_path: Path) -> None:
    cores = os.cpu_count() or 1
    config = _config(tmp_path, f"launch:\n  num_processes: {cores + 1}\nprompts:\n"
                     f"  num_prompts: {cores + 1}\n")
    warning = (f"warning: launch.num_processes ({cores + 1}) exceeds the {cores} CPU core(s) "
               "of this machine")
    validated = runner.invoke(app, ["config", "validate", str(config)])
    assert validated.exit_code == 0 and warning in validated.stderr
    # `run` warns before it starts (here it then stops: the results folder is a file).
    (tmp_path / "file").write_text("x")
    ran = runner.invoke(app, ["run", str(config), "--results-dir", str(tmp_path / "file")])
    assert ran.exit_code == 2
    assert ran.stderr.splitlines()[0].startswith(warning)


def test_a_sweep_of_ten_billion_points_is_refused_at_once(tmp_path: Path) -> None:
    keys = ["decoder.max_new_tokens", "decoder.top_k", "decoder.min_new_tokens",
            "batching.batch_size", "warmup.runs", "cycles", "seed", "prompts.num_prompts",
            "decoder.temperature", "decoder.top_p"]  # 10 keys x 10 values: 10**10 points
    values = ", ".join(str(v) for v in range(1, 11))
    lines = ["study_name: big", "base_config: {}", "sweep:"]
    lines += [f"  {key}: [{values}]" for key in keys]
    path = tmp_path / "study.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigurationError) as caught:
        load_study_config(path)
    assert str(caught.value) == (
        f"{path}: the study has 10000000000 points (sweep {' x '.join(['10'] * 10)} = "
        f"10000000000, plus 0 listed), more than the limit of {MAX_SWEEP_POINTS}; sweep fewer "
        "values or split it into several studies")


def test_a_sweep_within_the_limit_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text("study_name: ok\nbase_config: {}\nsweep:\n  seed: [1, 2, 3]\n"
                    "points:\n  - {cycles: 2}\n")
    study = load_study_config(path)
    assert (len(study.sweep["seed"]), len(study.points)) == (3, 1)


def test_config_validate_still_loads_a_normal_config(tmp_path: Path) -> None:
    assert load_config(_config(tmp_path)).cycles == 2
