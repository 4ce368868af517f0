"""`results compare`: headline rows, config diff keys, estimate notes, the text table."""

from __future__ import annotations

import json

import pytest
from tests.factories import make_device, make_raw, make_request

from llm_energy_measure.domain import FlopsResult
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.results import FileSystemRepository, aggregate_results
from llm_energy_measure.results.analysis.compare import (
    ABSENT,
    compare_results,
    comparison_json,
    comparison_notes,
    config_diff,
    format_comparison,
    load_aggregated_results,
)


def _agg(exp_id, *, config, energy_j=160.0, estimated=False, kinds=("gpu",), with_energy=True):
    devices = [
        make_device(f"{k}:dev-{exp_id}", energy_j / len(kinds), kind=k,
                    method="estimate" if estimated else "counter", estimated=estimated)
        for k in kinds
    ]
    raw = make_raw(
        exp_id, duration_s=10.0, devices=devices, with_energy=with_energy,
        requests=[make_request(i, ttft_s=0.02, tpot_s=0.005) for i in range(4)],
        effective_config=config,
        flops=FlopsResult(total_flops=5e11, prefill_flops=1e11, decode_flops=4e11,
                          method="analytic", confidence="high"),
        peak_flops_per_s=1e12,
    )
    return aggregate_results([raw], now=0.0)


CFG_A = {"model": {"name": "m", "precision": "float16"}, "batching": {"batch_size": 4},
         "decoder": {"temperature": 1.0, "top_k": 0}, "seed": 1}
CFG_B = {"model": {"name": "m", "precision": "float32"}, "batching": {"batch_size": 8},
         "decoder": {"temperature": 1.0}, "seed": 1, "traffic": {"enabled": True}}


def test_rows_hold_headline_figures():
    [row] = compare_results([_agg("a", config=CFG_A)])
    assert row.experiment_id == "a"
    assert row.precision == "float16"
    assert row.batch_size == 4
    assert row.output_tokens_per_s == pytest.approx(8.0)
    assert row.energy_per_output_token_j == pytest.approx(2.0)
    assert row.energy_estimated is False
    assert row.ttft_p50_s == pytest.approx(0.02)
    assert row.itl_p50_s == pytest.approx(0.005)
    assert row.tpot_p50_s == pytest.approx(0.005)
    assert row.mean_power_w == pytest.approx(16.0)
    assert row.mfu == pytest.approx(0.05)


def test_precision_falls_back_to_model_dtype():
    [row] = compare_results([_agg("a", config={"model": {"name": "m"}})])
    assert row.precision == "float32"  # make_model_info dtype
    assert row.batch_size is None


def test_config_diff_lists_only_differing_keys():
    diff = config_diff([_agg("a", config=CFG_A), _agg("b", config=CFG_B)])
    assert list(diff) == ["batching.batch_size", "decoder.top_k", "model.precision",
                          "traffic.enabled"]
    assert diff["batching.batch_size"] == [4, 8]
    assert diff["decoder.top_k"] == [0, ABSENT]
    assert diff["traffic.enabled"] == [ABSENT, True]
    assert config_diff([_agg("a", config=CFG_A)]) == {}


def test_estimated_against_measured_gets_a_note():
    results = [_agg("meas", config=CFG_A), _agg("est", config=CFG_B, estimated=True)]
    notes = comparison_notes(results)
    assert notes == ["energy of est is an ESTIMATE and of meas a measurement: their J/token "
                     "figures are not comparable"]
    text = format_comparison(results)
    assert "2*" in text.splitlines()[3]  # the est row: J/token 2 with the star
    assert "* energy is an estimate, not a measurement" in text
    assert "note: energy of est is an ESTIMATE" in text


def test_notes_for_missing_energy_and_different_coverage():
    results = [
        _agg("gpu", config=CFG_A),
        _agg("all", config=CFG_A, kinds=("gpu", "cpu", "dram")),
        _agg("none", config=CFG_A, with_energy=False),
    ]
    notes = comparison_notes(results)
    assert "no energy was measured for none" in notes
    assert "energy covers different devices (gpu: gpu; all: cpu+dram+gpu)" in notes


def test_text_table_columns_and_diff():
    text = format_comparison([_agg("a", config=CFG_A), _agg("b", config=CFG_B)])
    lines = text.splitlines()
    assert lines[0].split() == ["experiment", "model", "precision", "batch", "out", "tok/s",
                                "J/token", "TTFT", "p50", "ms", "ITL", "p50", "ms", "TPOT",
                                "p50", "ms", "power", "W", "MFU", "%"]
    assert lines[2].split() == ["a", "builtin:tiny-llama", "float16", "4", "8.00", "2", "20.00",
                                "5.00", "5.00", "16.0", "5.00"]
    assert "config differences:" in lines
    assert any(line.split() == ["model.precision", "float16", "float32"] for line in lines)
    same = format_comparison([_agg("a", config=CFG_A), _agg("b", config=CFG_A)])
    assert "config differences: none" in same


def test_json_form():
    data = comparison_json([_agg("a", config=CFG_A), _agg("b", config=CFG_B)])
    assert [r["experiment_id"] for r in data["rows"]] == ["a", "b"]
    assert data["config_diff"]["model.precision"] == ["float16", "float32"]
    assert data["notes"] == []


def test_load_aggregated_results_names_the_missing_id(tmp_path):
    repo = FileSystemRepository(tmp_path)
    repo.save_aggregated(_agg("a", config=CFG_A))
    assert [r.experiment_id for r in load_aggregated_results(repo, ["a"])] == ["a"]
    with pytest.raises(ConfigurationError, match="'nope' has no aggregated result"):
        load_aggregated_results(repo, ["a", "nope"])
    with pytest.raises(ConfigurationError):
        load_aggregated_results(repo, ["../etc"])


def test_cli_results_compare(tmp_path):
    from typer.testing import CliRunner

    from llm_energy_measure.cli import app

    repo = FileSystemRepository(tmp_path)
    repo.save_aggregated(_agg("a", config=CFG_A))
    repo.save_aggregated(_agg("b", config=CFG_B, estimated=True))
    runner = CliRunner()
    out = runner.invoke(app, ["results", "compare", "a", "b", "--results-dir", str(tmp_path)])
    assert out.exit_code == 0, out.stderr
    assert "note: energy of b is an ESTIMATE and of a a measurement" in out.stdout
    assert "config differences:" in out.stdout
    as_json = runner.invoke(app, ["results", "compare", "a", "b", "--json",
                                  "--results-dir", str(tmp_path)])
    assert json.loads(as_json.stdout)["config_diff"]["batching.batch_size"] == [4, 8]
    missing = runner.invoke(app, ["results", "compare", "a", "zz", "--results-dir",
                                  str(tmp_path)])
    assert missing.exit_code == 2
    assert missing.stderr.strip().splitlines() == [
        "error: experiment 'zz' has no aggregated result; run `llm-energy-measure aggregate "
        "zz` (list results with `llm-energy-measure results list --all`)"]


def test_every_estimated_energy_figure_is_marked_in_the_table():
    text = format_comparison([_agg("a", config=CFG_A), _agg("b", config=CFG_B, estimated=True)])
    rows = {line.split()[0]: line.split() for line in text.splitlines()[2:4]}
    # J/token 160 J / 80 tokens = 2, power 160 J / 10 s = 16.0 W: both marked for b only.
    assert rows["a"][5:10] == ["2", "20.00", "5.00", "5.00", "16.0"]
    assert rows["b"][5:10] == ["2*", "20.00", "5.00", "5.00", "16.0*"]


def test_cli_summary_marks_every_figure_derived_from_estimated_energy():
    from llm_energy_measure.console.rendering import cycle_stat_lines, summary_pairs

    def rows(result):
        return {label: str(value) for label, value in summary_pairs(result)}

    raw = make_raw("e", duration_s=10.0, carbon_intensity_g_per_kwh=400.0, devices=[
        make_device("h:estimate:cpu", 100.0, kind="cpu", method="estimate", estimated=True,
                    baseline_power_w=4.0),
        make_device("h:estimate:ram", 200.0, kind="dram", method="estimate", estimated=True,
                    baseline_power_w=20.0)])
    estimated = rows(aggregate_results([raw], now=0.0))
    # 300 J, dynamic 100 - 40 + 200 - 200 = 60 J, 80 tokens: 3.75 J/token, 300 J / 10 s = 30 W.
    assert estimated["energy total"].startswith("300.000 J (ESTIMATE, not a measurement")
    assert estimated["energy dynamic"] == "60.000 J (estimate)"
    assert estimated["energy per output token"] == "3.75 J (estimate)"
    assert estimated["mean power"] == "30 W (estimate)"
    assert estimated["emissions"].endswith("(estimate)")
    measured = rows(_agg("a", config=CFG_A))
    assert "estimate" not in " ".join(measured.values()).lower()
    from tests.factories import make_cycle

    cycled = raw.model_copy(update={"cycles": (
        make_cycle(0, start=1000.0, duration_s=5.0, output_tokens=40,
                   device_energy_j={"h:estimate:cpu": 50.0, "h:estimate:ram": 100.0}),
        make_cycle(1, start=1005.0, duration_s=5.0, output_tokens=40,
                   device_energy_j={"h:estimate:cpu": 50.0, "h:estimate:ram": 100.0}),
    )})
    lines = {line.split(":")[0]: line for line in cycle_stat_lines(
        aggregate_results([cycled], now=0.0))}
    assert lines["energy_j"].startswith("energy_j: mean 150 (estimate) ± CI95")
    assert "(estimate)" in lines["energy_per_output_token_j"]
    assert "(estimate)" not in lines["output_tokens_per_s"]
