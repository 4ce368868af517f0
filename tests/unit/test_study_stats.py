"""Per-point study statistics: values read from results, CI against scipy, the two cycle notions."""

from __future__ import annotations

import math

import pytest
from tests.factories import make_cycle, make_device, make_raw, make_request

from llm_energy_measure.domain import FlopsResult
from llm_energy_measure.exceptions import ResultsError
from llm_energy_measure.results import FileSystemRepository, aggregate_results
from llm_energy_measure.results.analysis.study_stats import (
    HEADLINE_METRICS,
    headline_values,
    internal_cycle_stats,
    load_study_results,
    point_statistics,
    point_values,
)
from llm_energy_measure.state.study_models import StudyManifest, StudyPoint, StudyRun


def _agg(exp_id: str, energy_j: float, *, duration_s: float = 10.0, e2e_s: float = 1.0,
         with_energy: bool = True, cycles=()):
    raw = make_raw(
        exp_id, duration_s=duration_s,
        requests=[make_request(i, ttft_s=0.1 * (i + 1), tpot_s=0.01, e2e_s=e2e_s)
                  for i in range(4)],
        devices=[make_device("gpu:GPU-0", energy_j, duration_s=duration_s)],
        with_energy=with_energy, cycles=cycles,
        flops=FlopsResult(total_flops=1e12, prefill_flops=4e11, decode_flops=6e11,
                          method="analytic", confidence="high"),
        peak_flops_per_s=1e12,
    )
    return aggregate_results([raw], now=0.0)


def test_headline_values_of_one_result():
    values = headline_values(_agg("a", 160.0, e2e_s=2.0))
    # 4 requests x 20 output + 10 input tokens over 10 s, 160 J.
    assert values["output_tokens_per_s"] == pytest.approx(8.0)
    assert values["total_tokens_per_s"] == pytest.approx(12.0)
    assert values["energy_per_output_token_j"] == pytest.approx(2.0)
    assert values["total_energy_j"] == pytest.approx(160.0)
    assert values["mean_power_w"] == pytest.approx(16.0)
    # TTFT samples 0.1, 0.2, 0.3, 0.4: p50 = 0.25, p99 = 0.3 + 0.97 * 0.1.
    assert values["ttft_p50_s"] == pytest.approx(0.25)
    assert values["ttft_p99_s"] == pytest.approx(0.397)
    assert values["itl_p50_s"] == pytest.approx(0.01)
    assert values["e2e_p50_s"] == pytest.approx(2.0)
    assert values["mfu"] == pytest.approx(0.1)  # 1e12 FLOPs / 10 s / 1e12 FLOP/s
    assert set(values) == {m.key for m in HEADLINE_METRICS}


def test_point_statistics_ci_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    energies = [100.0, 104.0, 98.0, 110.0]
    by_point = {"p": [_agg(f"r{i}", e) for i, e in enumerate(energies)]}
    stats = point_statistics(by_point)["p"]
    per_token = [e / 80 for e in energies]
    n = len(per_token)
    mean = sum(per_token) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in per_token) / (n - 1))
    low, high = scipy_stats.t.interval(0.95, n - 1, loc=mean, scale=std / math.sqrt(n))
    s = stats["energy_per_output_token_j"]
    assert s.n == 4
    assert s.mean == pytest.approx(1.2875)  # 103 J / 80 tokens
    assert s.std == pytest.approx(std)
    assert s.ci95_low == pytest.approx(low, rel=1e-9)
    assert s.ci95_high == pytest.approx(high, rel=1e-9)
    assert s.cv == pytest.approx(std / mean)
    assert not s.high_variance  # cv = sqrt(28) / 103 = 5.1%
    # Throughput is identical in every run: zero width, not high variance.
    tput = stats["output_tokens_per_s"]
    assert (tput.mean, tput.ci95_low, tput.ci95_high) == pytest.approx((8.0, 8.0, 8.0))


def test_high_variance_is_flagged():
    by_point = {"p": [_agg("a", 100.0), _agg("b", 200.0), _agg("c", 100.0)]}
    assert point_statistics(by_point)["p"]["total_energy_j"].high_variance


def test_metrics_use_the_runs_that_report_them_and_need_two():
    by_point = {
        "p": [_agg("a", 100.0), _agg("b", 120.0), _agg("c", 0.0, with_energy=False)],
        "single": [_agg("d", 100.0)],
    }
    values = point_values(by_point)
    assert values["p"]["total_energy_j"] == [100.0, 120.0]
    assert len(values["p"]["output_tokens_per_s"]) == 3
    stats = point_statistics(by_point)
    assert stats["p"]["total_energy_j"].n == 2
    assert stats["p"]["output_tokens_per_s"].n == 3
    assert stats["single"] == {}
    assert values["single"]["total_energy_j"] == [100.0]


def test_internal_cycles_stay_separate():
    cycles = [make_cycle(c, start=1_000.0 + 5 * c, duration_s=5.0, output_tokens=40,
                         device_energy_j={"gpu:GPU-0": 50.0 + c}) for c in range(2)]
    with_cycles = _agg("a", 101.0, cycles=cycles)
    plain = _agg("b", 120.0)
    by_point = {"p": [with_cycles, plain]}
    inner = internal_cycle_stats(by_point)
    assert list(inner["p"]) == ["a"]
    assert inner["p"]["a"]["energy_j"].mean == pytest.approx(50.5)
    # Between-run statistics use each run's whole-experiment total, not its cycles.
    assert point_statistics(by_point)["p"]["total_energy_j"].mean == pytest.approx(110.5)


def _manifest(runs):
    return StudyManifest(
        study_id="s", study_name="s", study_hash="h", created_at=0.0, updated_at=0.0,
        points=[StudyPoint(point_id="p0", label="p0"), StudyPoint(point_id="p1", label="p1")],
        runs=runs,
    )


def test_load_study_results_groups_completed_runs(tmp_path):
    repo = FileSystemRepository(tmp_path)
    for exp_id, e in (("x0", 100.0), ("x1", 110.0), ("y0", 90.0)):
        repo.save_aggregated(_agg(exp_id, e))
    manifest = _manifest([
        StudyRun(point_id="p0", cycle=1, order_index=2, status="completed", experiment_id="x1"),
        StudyRun(point_id="p0", cycle=0, order_index=0, status="completed", experiment_id="x0"),
        StudyRun(point_id="p1", cycle=0, order_index=1, status="completed", experiment_id="y0"),
        StudyRun(point_id="p1", cycle=1, order_index=3, status="failed", experiment_id="y1"),
    ])
    loaded = load_study_results(manifest, repo)
    assert {k: [r.experiment_id for r in v] for k, v in loaded.items()} == {
        "p0": ["x0", "x1"], "p1": ["y0"]}


def test_load_study_results_refuses_a_missing_result(tmp_path):
    repo = FileSystemRepository(tmp_path)
    manifest = _manifest([
        StudyRun(point_id="p0", cycle=0, order_index=0, status="completed", experiment_id="gone"),
    ])
    with pytest.raises(ResultsError, match="llm-energy-measure aggregate gone"):
        load_study_results(manifest, repo)
