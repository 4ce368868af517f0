"""`llm-energy-measure run` end to end on the embedded tiny model, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llm_energy_measure.cli import app

pytestmark = pytest.mark.slow

NUM_PROMPTS = 5
MAX_NEW = 6
MAX_INPUT = 64


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    base = tmp_path_factory.mktemp("e2e")
    cfg = base / "exp.yaml"
    cfg.write_text(
        "config_name: e2e\n"
        "model: {name: 'builtin:tiny-llama', device: cpu}\n"
        f"prompts: {{source: builtin, num_prompts: {NUM_PROMPTS}, max_input_tokens: {MAX_INPUT}}}\n"
        "batching: {strategy: fixed, batch_size: 2}\n"
        f"decoder: {{preset: benchmark, max_new_tokens: {MAX_NEW}}}\n"
        "warmup: {runs: 1}\n"
        "energy: {backend: auto, baseline: {duration_s: 0.3}, sample_interval_ms: 50,"
        " carbon_intensity_g_per_kwh: 100}\n"
    )
    results = base / "results"
    out = CliRunner().invoke(app, ["run", str(cfg), "--results-dir", str(results)])
    assert out.exit_code == 0, out.output
    (exp_id,) = [p.name for p in (results / "raw").iterdir()]
    return results, exp_id, out


def test_files_and_state_are_written(finished_run) -> None:  # type: ignore[no-untyped-def]
    results, exp_id, _ = finished_run
    assert (results / "raw" / exp_id / "process_0.json").is_file()
    assert (results / "raw" / exp_id / ".completed_0").is_file()
    assert (results / "aggregated" / f"{exp_id}.json").is_file()
    state = json.loads((results / "state" / f"{exp_id}.json").read_text())
    assert state["status"] == "completed"
    assert (results / "logs" / f"{exp_id}.log").stat().st_size > 0


def test_token_counts_match_an_independent_count(finished_run, tiny_model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    from llm_energy_measure.config.models import PromptsConfig
    from llm_energy_measure.core.prompts import load_prompts

    results, exp_id, _ = finished_run
    agg = json.loads((results / "aggregated" / f"{exp_id}.json").read_text())
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompts = load_prompts(PromptsConfig(source="builtin", num_prompts=NUM_PROMPTS), seed=0)
    expected_in = sum(min(len(tok(p.text)["input_ids"]), MAX_INPUT) for p in prompts)
    inf = agg["inference"]
    assert inf["input_tokens"] == expected_in
    assert inf["output_tokens"] == NUM_PROMPTS * MAX_NEW  # fixed-length mode
    assert inf["num_requests"] == NUM_PROMPTS
    assert inf["output_tokens_per_s"] == pytest.approx(
        inf["output_tokens"] / inf["inference_time_s"])
    assert inf["total_tokens_per_s"] == pytest.approx(
        (inf["input_tokens"] + inf["output_tokens"]) / inf["inference_time_s"])


def test_energy_is_labelled_an_estimate_here(finished_run) -> None:  # type: ignore[no-untyped-def]
    results, exp_id, out = finished_run
    agg = json.loads((results / "aggregated" / f"{exp_id}.json").read_text())
    energy = agg["energy"]
    if any(d["method"] == "counter" for d in energy["devices"]):
        pytest.skip("this machine has a hardware energy counter")
    assert energy["estimated"] is True
    assert "estimated_energy" in {w["code"] for w in agg["warnings"]}
    assert "ESTIMATE" in out.stdout
    assert energy["energy_per_output_token_j"] == pytest.approx(
        energy["total_energy_j"] / (NUM_PROMPTS * MAX_NEW))
    assert energy["emissions_g"] == pytest.approx(energy["total_energy_j"] / 3.6e6 * 100)


def test_flops_and_latency_are_reported(finished_run) -> None:  # type: ignore[no-untyped-def]
    results, exp_id, _ = finished_run
    raw = json.loads((results / "raw" / exp_id / "process_0.json").read_text())
    assert raw["compute"]["flops"]["method"] == "analytic"
    assert raw["compute"]["flops"]["total_flops"] > 0
    assert raw["compute"]["mfu"] is None  # CPU: no known peak, so not reported
    for r in raw["requests"]:
        assert r["output_tokens"] == MAX_NEW
        assert 0 <= r["ttft_s"] <= r["e2e_s"]
    assert raw["model"]["random_weights"] is True
    assert raw["warmup_runs"] == 1



def test_the_engine_is_recorded_and_shown(finished_run) -> None:  # type: ignore[no-untyped-def]
    results, exp_id, out = finished_run
    agg = json.loads((results / "aggregated" / f"{exp_id}.json").read_text())
    assert agg["engine"]["name"] == "transformers"
    assert agg["engine"]["batching"].startswith("static batches")
    assert agg["engine"]["unreported"] == {}
    assert "engine" in out.stdout and "transformers" in out.stdout
