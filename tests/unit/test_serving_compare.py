"""`results compare` for serving results: each config at its highest SLO-meeting load and the
verdict at equal latency, on the known figures of ``tests.fakes.serving_study``.

float16 (A) meets TTFT p99 <= 500 ms up to 4 req/s (J/token 0.2 and 0.204 over two runs),
float32 (B) up to 2 req/s (0.45 and 0.459): A spends 1 - 0.202 / 0.4545 = 5/9 = 55.6 % less.
"""

from __future__ import annotations

import json

import pytest
from tests.fakes.serving_study import build_serving_study, make_serving_result

from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.results.analysis.compare import load_compared_results
from llm_energy_measure.results.analysis.serving_compare import (
    compare_serving,
    comparison_payload,
    comparison_text,
    format_serving_comparison,
)


def _results(precisions=("float16", "float32"), rates=(1.0, 2.0, 4.0, 8.0), **kw):
    return [make_serving_result(f"{p}-{r:g}-{c}", p, r, c, **kw.get(p, {}))
            for p in precisions for r in rates for c in (0, 1)]


def test_rows_hold_each_config_at_its_highest_slo_meeting_load():
    cmp = compare_serving(_results())
    a, b = cmp.rows
    assert (a.config, a.config_label, a.offered_load, a.runs) == (
        "A", "model.precision=float16", 4.0, 2)
    assert a.energy_per_output_token_j == pytest.approx(0.202)
    assert a.steady_energy_per_output_token_j == pytest.approx(0.1818)
    assert a.goodput_per_s == pytest.approx(3.8)
    assert a.ttft_p99_s == pytest.approx(0.305)
    assert (b.offered_load, b.energy_per_output_token_j) == (2.0, pytest.approx(0.4545))
    assert b.goodput_per_s == pytest.approx(1.9)


def test_verdict_at_equal_latency_has_the_exact_percentage():
    (verdict,) = compare_serving(_results()).verdicts
    assert (verdict.better, verdict.worse) == ("A", "B")
    assert verdict.percent_less == pytest.approx(500 / 9, rel=1e-12)
    assert verdict.text == (
        "at equal latency (TTFT p99 <= 500 ms) config A spends 55.6% less energy per token "
        "than B (0.202 vs 0.4545 J/token, whole window, at 4 req/s vs 2 req/s)")


def test_the_winner_is_the_lowest_energy_config_whatever_the_order():
    results = _results(precisions=("float32", "float16"))
    (verdict,) = compare_serving(results).verdicts
    # float32 now comes first (tag A), float16 is B and wins.
    assert (verdict.better, verdict.worse) == ("B", "A")
    assert verdict.percent_less == pytest.approx(500 / 9, rel=1e-12)


def test_a_config_that_never_meets_the_slo_gets_a_note_and_no_verdict():
    results = _results(rates=(8.0,))
    cmp = compare_serving(results)
    assert cmp.verdicts == []
    assert "config A meets the SLO at none of the 1 offered loads tested" in cmp.notes
    assert "none" in format_serving_comparison(cmp)


def test_no_verdict_without_an_slo_or_with_different_slos():
    no_slo = compare_serving(_results(float32={"slo": False}))
    assert no_slo.verdicts == []
    assert any("some configs have no SLO" in n for n in no_slo.notes)
    other = [r.model_copy(update={"serving": r.serving.model_copy(update={
        "slo": r.serving.slo.model_copy(update={"targets": tuple(
            t.model_copy(update={"target_s": 0.8}) for t in r.serving.slo.targets)})})})
        for r in _results(precisions=("float32",))]
    cmp = compare_serving(_results(precisions=("float16",)) + other)
    assert cmp.verdicts == []
    assert any("judged against different SLOs" in n for n in cmp.notes)


def test_estimated_energy_is_marked_in_rows_verdict_and_notes():
    cmp = compare_serving(_results(float32={"estimated": True}))
    (verdict,) = cmp.verdicts
    assert "0.202* vs 0.4545* J/token" in verdict.text
    assert "figures marked * come from ESTIMATED energy, not measurements" in cmp.notes
    text = format_serving_comparison(cmp)
    assert "0.4545*" in text and "0.202 " in text


def test_text_and_json_of_results_compare():
    results = _results()
    text = comparison_text(results)
    assert text.index("config differences:") < text.index("serving: each config")
    assert "55.6% less energy per token than B" in text.splitlines()[-1]
    payload = comparison_payload(results)
    serving = payload["serving"]
    assert [r["offered_load"] for r in serving["rows"]] == [4.0, 2.0]
    assert serving["verdicts"][0]["percent_less"] == pytest.approx(500 / 9)
    assert json.loads(json.dumps(payload))["serving"]["verdicts"][0]["better"] == "A"
    # Results without serving figures: the comparison as before.
    from tests.factories import make_raw

    from llm_energy_measure.results import aggregate_results

    plain = [aggregate_results([make_raw("p")], now=0.0)]
    assert "serving" not in comparison_payload(plain)
    assert "serving:" not in comparison_text(plain)


def test_load_compared_results_from_ids_and_a_study(tmp_path):
    manifest, repo = build_serving_study(tmp_path)
    both = load_compared_results(repo, ["sv-float16-r1-c0"], manifest)
    assert len(both) == 1 + 16 and both[0].experiment_id == "sv-float16-r1-c0"
    with pytest.raises(ConfigurationError, match="--study"):
        load_compared_results(FileSystemRepository(tmp_path), [], None)


def test_cli_results_compare_a_study(tmp_path):
    from typer.testing import CliRunner

    from llm_energy_measure.cli import app

    _, repo = build_serving_study(tmp_path)
    runner = CliRunner()
    out = runner.invoke(app, ["results", "compare", "--study", "serve-1",
                              "--results-dir", str(repo.base_dir)])
    assert out.exit_code == 0, out.stderr
    assert ("at equal latency (TTFT p99 <= 500 ms) config A spends 55.6% less energy per "
            "token than B") in out.stdout
    as_json = runner.invoke(app, ["results", "compare", "--study", "serve-1", "--json",
                                  "--results-dir", str(repo.base_dir)])
    assert as_json.exit_code == 0, as_json.stderr
    verdict = json.loads(as_json.stdout)["serving"]["verdicts"][0]
    assert verdict["percent_less"] == pytest.approx(500 / 9)
    nothing = runner.invoke(app, ["results", "compare", "--results-dir", str(repo.base_dir)])
    assert nothing.exit_code == 2
    assert "give at least one experiment id, or --study STUDY_ID" in nothing.stderr
