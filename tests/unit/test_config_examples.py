"""Every example config the project ships loads, validates and makes sense."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_energy_measure.config import config_warnings, load_config, read_config_file

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "configs" / "examples"
EXAMPLES = [  # study-*.yaml are study files, checked in tests/unit/test_study_config.py
    path for path in sorted(EXAMPLES_DIR.glob("*.y*ml")) + sorted(EXAMPLES_DIR.glob("*.json"))
    if not path.name.startswith("study-")
]


def test_examples_are_present() -> None:
    names = {path.name for path in EXAMPLES}
    assert {
        "quickstart.yaml",
        "base.yaml",
        "smollm2-gguf.yaml",
        "quantized-4bit.yaml",
        "sampling.yaml",
        "traffic-poisson.yaml",
        "multi-gpu.yaml",
    } <= names
    assert read_config_file(EXAMPLES_DIR / "base-bf16-batch16.yaml")["_extends"] == "base.yaml"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_loads_and_draws_no_warning_but_the_single_cycle(path: Path) -> None:
    config = load_config(path)
    unexpected = [w for w in config_warnings(config) if not w.startswith("cycles is 1")]
    assert unexpected == []


def test_quickstart_is_small_cpu_offline_run() -> None:
    config = load_config(EXAMPLES_DIR / "quickstart.yaml")
    assert config.model.name == "builtin:tiny-llama"
    assert config.model.device == "cpu"
    assert config.prompts.source == "builtin"
    assert (config.prompts.num_prompts, config.batching.batch_size) == (16, 4)
    assert config.decoder.preset == "benchmark"
    assert (config.decoder.max_new_tokens, config.decoder.fixed_length) == (16, True)
    assert config.warmup.runs == 1
    assert config.energy.baseline.duration_s == 1.0
    assert config.energy.backend == "auto"
    assert config.cycles == 1


def test_sweep_child_inherits_base_and_overrides_precision_and_batching() -> None:
    base = load_config(EXAMPLES_DIR / "base.yaml")
    child = load_config(EXAMPLES_DIR / "base-bf16-batch16.yaml")
    assert (child.model.precision, child.batching.batch_size) == ("bfloat16", 16)
    assert base.model.precision == "float32"
    assert child.model.name == base.model.name
    assert child.decoder == base.decoder
    assert child.energy == base.energy


def test_specialised_examples_set_what_their_name_says() -> None:
    gguf = load_config(EXAMPLES_DIR / "smollm2-gguf.yaml")
    assert (gguf.model.name, gguf.model.gguf_file) == ("gguf:smollm2-135m-instruct", None)
    quant = load_config(EXAMPLES_DIR / "quantized-4bit.yaml")
    assert quant.quantization.load_in_4bit and quant.model.device == "cuda"
    sampling = load_config(EXAMPLES_DIR / "sampling.yaml")
    assert sampling.decoder.mode == "sampling" and sampling.decoder.min_p == 0.05
    traffic = load_config(EXAMPLES_DIR / "traffic-poisson.yaml")
    assert traffic.traffic.enabled and traffic.traffic.mode == "poisson"
    assert load_config(EXAMPLES_DIR / "multi-gpu.yaml").launch.num_processes == 2
