"""config_hash: stable across key order, file format and settings that do not change results."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from llm_energy_measure.config import (
    ExperimentConfig,
    canonical_config,
    config_hash,
    load_config,
    validate_config,
)


def test_hash_is_first_16_hex_of_sha256_of_sorted_compact_json() -> None:
    config = ExperimentConfig()
    text = json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"))
    assert config_hash(config) == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert len(config_hash(config)) == 16
    assert "config_name" not in canonical_config(config)
    assert "results_dir" not in canonical_config(config)


def test_hash_ignores_key_order_and_file_format(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "decoder:\n  top_k: 5\n  max_new_tokens: 12\nmodel:\n  precision: bfloat16\ncycles: 2\n"
    )
    (tmp_path / "b.yaml").write_text(
        "cycles: 2\nmodel:\n  precision: bfloat16\ndecoder:\n  max_new_tokens: 12\n  top_k: 5\n"
    )
    (tmp_path / "c.json").write_text(
        json.dumps(
            {
                "model": {"precision": "bfloat16"},
                "cycles": 2,
                "decoder": {"max_new_tokens": 12, "top_k": 5},
            }
        )
    )
    hashes = {config_hash(load_config(tmp_path / name)) for name in ("a.yaml", "b.yaml", "c.json")}
    assert len(hashes) == 1


def test_hash_ignores_names_places_and_per_machine_launch_details() -> None:
    base = config_hash(ExperimentConfig())
    same = validate_config(
        {
            "config_name": "another-name",
            "results_dir": "/somewhere/else",
            "launch": {
                "num_machines": 2,
                "machine_rank": 1,
                "main_process_ip": "10.0.0.1",
                "main_process_port": 29500,
                "process_timeout_s": 60,
            },
        }
    )
    rank0 = validate_config({"launch": {"num_machines": 2, "machine_rank": 0}})
    assert config_hash(same) == config_hash(rank0) != base  # num_machines does matter


def test_hash_treats_explicit_defaults_and_int_for_float_as_equal() -> None:
    implicit = validate_config({})
    explicit = validate_config({"decoder": {"temperature": 1, "max_new_tokens": 32}, "seed": 42})
    assert config_hash(implicit) == config_hash(explicit)


def test_preset_hashes_like_its_expanded_values() -> None:
    by_preset = validate_config({"decoder": {"preset": "benchmark"}})
    by_hand = validate_config({"decoder": {"mode": "greedy", "fixed_length": True}})
    assert config_hash(by_preset) == config_hash(by_hand)


def test_hash_changes_when_a_measured_setting_changes() -> None:
    base = config_hash(ExperimentConfig())
    changed = [
        {"decoder": {"max_new_tokens": 33}},
        {"model": {"precision": "bfloat16"}},
        {"batching": {"batch_size": 8}},
        {"seed": 43},
        {"energy": {"baseline": {"duration_s": 3.0}}},
        {"launch": {"num_processes": 2}},
    ]
    hashes = {config_hash(validate_config(data)) for data in changed}
    assert len(hashes) == len(changed)
    assert base not in hashes
