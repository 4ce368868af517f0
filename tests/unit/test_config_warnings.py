"""config_warnings: soft problems of valid configs, separate from errors."""

from __future__ import annotations

import pytest

from llm_energy_measure.config import config_warnings, validate_config

#: A config that draws no warning; each case below changes it in one way.
CLEAN: dict[str, object] = {"cycles": 3, "prompts": {"num_prompts": 16}}


def _warnings(**changes: object) -> list[str]:
    data = {**CLEAN, **changes}
    return config_warnings(validate_config(data))


def test_clean_config_has_no_warnings() -> None:
    assert _warnings() == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"decoder": {"mode": "greedy", "temperature": 0.7, "top_k": 40}},
            "decoder.temperature, decoder.top_k ignored: decoder.mode is 'greedy'",
        ),
        (
            {"decoder": {"preset": "standard", "mode": "greedy"}},
            "decoder.temperature, decoder.top_p, decoder.top_k ignored",
        ),
        (
            {"decoder": {"fixed_length": True, "min_new_tokens": 4}},
            "decoder.min_new_tokens is ignored: decoder.fixed_length",
        ),
        (
            {"model": {"device": "cpu"}, "quantization": {"load_in_4bit": True}},
            "quantization (bitsandbytes) needs a CUDA GPU but model.device is 'cpu'",
        ),
        (
            {"model": {"device": "cpu", "attn_implementation": "flash_attention_2"}},
            "'flash_attention_2' needs CUDA",
        ),
        ({"model": {"device": "cpu", "precision": "float16"}}, "'float16' on CPU"),
        (
            {"model": {"device": "cpu"}, "energy": {"backend": "nvml"}},
            "energy.backend 'nvml' measures GPUs",
        ),
        (
            {"prompts": {"num_prompts": 3}, "batching": {"batch_size": 8}},
            "prompts.num_prompts gives 3 prompt(s), fewer than batching.batch_size (8)",
        ),
        (
            {"prompts": {"num_prompts": 16}, "launch": {"num_processes": 8}},
            "gives 2 prompt(s) per process (8), fewer than batching.batch_size (4)",
        ),
        (
            {"traffic": {"enabled": True}, "batching": {"batch_size": 4}},
            "traffic.enabled with batching.batch_size 4",
        ),
        ({"warmup": {"runs": 0}}, "warmup.runs is 0"),
        ({"cycles": 1}, "cycles is 1: no confidence interval"),
        (
            {"energy": {"baseline": {"enabled": False}}},
            "energy.baseline.enabled is false: energy is reported as a total only",
        ),
        (
            {"launch": {"num_machines": 2}},
            "launch.num_machines is 2 but launch.main_process_ip is not set",
        ),
    ],
)
def test_each_soft_problem_draws_exactly_its_warning(
    changes: dict[str, object], expected: str
) -> None:
    warnings = _warnings(**changes)
    assert len(warnings) == 1, warnings
    assert expected in warnings[0]
    assert "\n" not in warnings[0]


def test_sampling_parameters_are_fine_in_sampling_mode() -> None:
    assert _warnings(decoder={"mode": "sampling", "temperature": 0.7, "top_p": 0.9}) == []


def test_traffic_with_batch_size_one_is_fine() -> None:
    assert _warnings(traffic={"enabled": True}, batching={"batch_size": 1}) == []
