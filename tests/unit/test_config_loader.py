"""Loading: inheritance, relative paths, overrides and their precedence, decoder presets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from llm_energy_measure.config import (
    ExperimentConfig,
    apply_overrides,
    effective_results_dir,
    load_config,
    load_config_dict,
    parse_overrides,
    read_config_file,
)
from llm_energy_measure.constants import RESULTS_DIR_ENV
from llm_energy_measure.exceptions import ConfigurationError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_extends_deep_merges_mappings_and_replaces_lists(tmp_path: Path) -> None:
    _write(
        tmp_path / "base.yaml",
        "model:\n  name: base-model\n  precision: float16\n"
        "batching:\n  strategy: sorted\n  batch_size: 2\n"
        "launch:\n  num_processes: 1\n  gpus: [0, 1, 2]\n"
        "cycles: 3\n",
    )
    child = _write(
        tmp_path / "child.yaml",
        "_extends: base.yaml\nmodel:\n  precision: bfloat16\nlaunch:\n  gpus: [3]\n",
    )
    assert load_config_dict(child) == {
        "model": {"name": "base-model", "precision": "bfloat16"},
        "batching": {"strategy": "sorted", "batch_size": 2},
        "launch": {"num_processes": 1, "gpus": [3]},
        "cycles": 3,
    }


def test_later_parent_wins_and_child_wins_over_all(tmp_path: Path) -> None:
    _write(tmp_path / "p1.yaml", "cycles: 2\nseed: 1\ndecoder:\n  top_k: 5\n  top_p: 0.5\n")
    _write(tmp_path / "p2.yaml", "seed: 2\ndecoder:\n  top_k: 7\n")
    child = _write(tmp_path / "c.yaml", "_extends: [p1.yaml, p2.yaml]\ndecoder:\n  top_p: 0.9\n")
    assert load_config_dict(child) == {
        "cycles": 2,
        "seed": 2,
        "decoder": {"top_k": 7, "top_p": 0.9},
    }


def test_diamond_inheritance_is_not_a_cycle(tmp_path: Path) -> None:
    _write(tmp_path / "root.yaml", "cycles: 4\n")
    _write(tmp_path / "left.yaml", "_extends: root.yaml\nseed: 1\n")
    _write(tmp_path / "right.yaml", "_extends: root.yaml\ndecoder:\n  top_k: 3\n")
    top = _write(tmp_path / "top.yaml", "_extends: [left.yaml, right.yaml]\n")
    config = load_config(top)
    assert (config.cycles, config.seed, config.decoder.top_k) == (4, 1, 3)


def test_extends_resolves_relative_to_each_file_not_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path / "common" / "defaults.yaml", "seed: 7\ncycles: 2\n")
    _write(tmp_path / "common" / "base.yaml", "_extends: defaults.yaml\ncycles: 3\n")
    _write(
        tmp_path / "exps" / "deep" / "child.json",
        json.dumps({"_extends": "../../common/base.yaml", "batching": {"batch_size": 2}}),
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _write(elsewhere / "defaults.yaml", "seed: 999\n")  # must not be picked up
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "exps" / "deep" / "child.json")
    assert (config.seed, config.cycles, config.batching.batch_size) == (7, 3, 2)


def test_overrides_beat_child_which_beats_parent_which_beats_defaults(tmp_path: Path) -> None:
    _write(tmp_path / "p.yaml", "decoder:\n  max_new_tokens: 8\n  top_k: 5\nseed: 3\n")
    child = _write(tmp_path / "c.yaml", "_extends: p.yaml\ndecoder:\n  max_new_tokens: 16\n")
    config = load_config(child, {"decoder.max_new_tokens": "24", "model.gguf_file": "null"})
    assert config.decoder.max_new_tokens == 24  # override, coerced from the CLI string
    assert config.decoder.top_k == 5  # parent
    assert config.seed == 3  # parent
    assert config.decoder.min_p == 0.0  # default
    assert config.model.gguf_file is None
    assert load_config(child).decoder.max_new_tokens == 16


def test_override_values_are_coerced_from_command_line_strings(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "cycles: 2\n")
    overrides = parse_overrides(
        [
            "launch.gpus=[0, 1]",
            "launch.num_processes=2",
            "model.trust_remote_code=true",
            "decoder.top_p=0.5",
            'sharding.max_memory={"0": "20GiB"}',
            "model.revision=1234",
        ]
    )
    config = load_config(path, overrides)
    assert config.launch.gpus == [0, 1]
    assert config.launch.num_processes == 2
    assert config.model.trust_remote_code is True
    assert config.decoder.top_p == 0.5
    assert config.sharding.max_memory == {"0": "20GiB"}
    assert config.model.revision == "1234"  # stays a string, not the number 1234


def test_override_mapping_merges_into_section(tmp_path: Path) -> None:
    data = {"decoder": {"max_new_tokens": 8, "top_k": 5}}
    merged = apply_overrides(data, {"decoder": {"top_k": 1}})
    assert merged == {"decoder": {"max_new_tokens": 8, "top_k": 1}}
    assert data == {"decoder": {"max_new_tokens": 8, "top_k": 5}}  # input untouched


def test_error_names_the_file_that_set_the_key(tmp_path: Path) -> None:
    _write(tmp_path / "p.yaml", "decoder:\n  top_k: 5\n")
    child = _write(tmp_path / "c.yaml", "_extends: p.yaml\nbatching:\n  batch_size: 0\n")
    with pytest.raises(ConfigurationError) as info:
        load_config(child)
    assert str(info.value).startswith(f"{child}: batching.batch_size: must be >= 1")


def test_benchmark_preset_fills_fields_but_explicit_user_field_wins(tmp_path: Path) -> None:
    plain = load_config(_write(tmp_path / "a.yaml", "decoder:\n  preset: benchmark\n"))
    assert (plain.decoder.mode, plain.decoder.fixed_length) == ("greedy", True)
    explicit = load_config(
        _write(tmp_path / "b.yaml", "decoder:\n  preset: benchmark\n  fixed_length: false\n")
    )
    assert explicit.decoder.fixed_length is False
    assert ExperimentConfig().decoder.fixed_length is False  # no preset: model default


def test_preset_from_parent_and_explicit_field_from_child(tmp_path: Path) -> None:
    _write(tmp_path / "p.yaml", "decoder:\n  preset: standard\n")
    child = _write(tmp_path / "c.yaml", "_extends: p.yaml\ndecoder:\n  temperature: 0.3\n")
    decoder = load_config(child).decoder
    assert (decoder.mode, decoder.temperature, decoder.top_p, decoder.top_k) == (
        "sampling",
        0.3,
        0.9,
        50,
    )
    assert load_config(child, {"decoder.preset": "benchmark"}).decoder.fixed_length is True


def test_load_config_dict_keeps_presets_unexpanded_and_drops_extends(tmp_path: Path) -> None:
    _write(tmp_path / "p.yaml", "cycles: 2\n")
    child = _write(tmp_path / "c.yaml", "_extends: p.yaml\ndecoder:\n  preset: benchmark\n")
    assert load_config_dict(child) == {"cycles": 2, "decoder": {"preset": "benchmark"}}


def test_yaml_and_json_give_the_same_config(tmp_path: Path) -> None:
    data = {"model": {"precision": "bfloat16"}, "decoder": {"max_new_tokens": 12}, "cycles": 2}
    from_json = load_config(_write(tmp_path / "c.json", json.dumps(data)))
    from_yml = load_config(
        _write(
            tmp_path / "c.yml",
            "cycles: 2\ndecoder: {max_new_tokens: 12}\nmodel:\n  precision: bfloat16\n",
        )
    )
    assert from_json == from_yml
    assert from_json.decoder.max_new_tokens == 12


def test_yaml_merge_keys_may_be_overridden_without_duplicate_error(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "a.yaml", "x: &shared {top_k: 1, top_p: 0.5}\ny:\n  <<: *shared\n  top_k: 2\n"
    )
    assert read_config_file(path)["y"] == {"top_k": 2, "top_p": 0.5}


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfcycles: 4\n")
    assert load_config(path).cycles == 4


def test_max_memory_accepts_integer_device_keys_from_yaml(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", "sharding:\n  max_memory: {0: 20GiB, cpu: 64GiB}\n")
    assert load_config(path).sharding.max_memory == {"0": "20GiB", "cpu": "64GiB"}


def test_results_dir_precedence_flag_env_file_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RESULTS_DIR_ENV, raising=False)
    from_file = ExperimentConfig(results_dir=Path("file-dir"))
    assert effective_results_dir(ExperimentConfig()) == Path("results")
    assert effective_results_dir(from_file) == Path("file-dir")
    monkeypatch.setenv(RESULTS_DIR_ENV, str(tmp_path / "env-dir"))
    assert effective_results_dir(from_file) == tmp_path / "env-dir"
    assert effective_results_dir(from_file, "flag-dir") == Path("flag-dir")


def test_results_dir_without_a_config_is_flag_env_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RESULTS_DIR_ENV, raising=False)
    assert effective_results_dir() == Path("results")
    assert effective_results_dir(flag_value="") == Path("results")  # an empty flag is no flag
    monkeypatch.setenv(RESULTS_DIR_ENV, str(tmp_path / "env-dir"))
    assert effective_results_dir() == tmp_path / "env-dir"
    assert effective_results_dir(flag_value=tmp_path / "flag") == tmp_path / "flag"


def test_importing_config_does_not_import_torch() -> None:
    code = (
        "import sys, llm_energy_measure.config\n"
        "heavy = ('torch', 'transformers', 'codecarbon', 'pynvml')\n"
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    "yaml_value", ["null", "~", "none", "None", "NULL", "'null'", '"none"', "''"]
)
def test_no_energy_backend_is_named_none_however_yaml_writes_it(
    tmp_path: Path, yaml_value: str
) -> None:
    # Unquoted null/~ (and an empty value) are YAML's None; none/null as strings mean the same.
    path = _write(tmp_path / "c.yaml", f"energy:\n  backend: {yaml_value}\n")
    if yaml_value == "''":
        with pytest.raises(ConfigurationError, match=r"energy\.backend"):
            load_config(path)
        return
    assert load_config(path).energy.backend == "none"


@pytest.mark.parametrize("cli_value", ["null", "none", "~", "NONE"])
def test_no_energy_backend_from_the_command_line(tmp_path: Path, cli_value: str) -> None:
    path = _write(tmp_path / "c.yaml", "energy:\n  backend: auto\n")
    config = load_config(path, parse_overrides([f"energy.backend={cli_value}"]))
    assert config.energy.backend == "none"
