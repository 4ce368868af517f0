"""Serving results grouped by config and offered load, and the data tables of the serving
figures, on hand-built results with known figures (``tests.fakes.serving_study``)."""

from __future__ import annotations

import pytest
from tests.fakes.serving_study import (
    build_serving_study,
    make_serving_raw,
    make_serving_result,
)

from llm_energy_measure.results.analysis.serving import (
    config_identity,
    config_key,
    group_serving,
    has_serving,
    offered_load,
)
from llm_energy_measure.results.analysis.serving_figures import (
    FIGURE_TABLES,
    figure_tables,
    load_timeline,
    study_serving,
    timeline_candidates,
    timeline_points,
)
from llm_energy_measure.results.analysis.study_stats import load_study_results

#: Student t 0.975 quantile with 1 degree of freedom.
T1 = 12.706204736174704


def _study_results():
    results = []
    for precision in ("float16", "float32"):
        for rate in (1.0, 2.0, 4.0, 8.0):
            results += [make_serving_result(f"{precision}-{rate:g}-{c}", precision, rate, c)
                        for c in (0, 1)]
    return results


def test_config_identity_leaves_out_the_load_axis_names_and_slo():
    a = make_serving_result("a", "float16", 1.0)
    b = make_serving_result("b", "float16", 8.0, slo=False)
    c = make_serving_result("c", "float32", 1.0)
    assert config_identity(a) == {"engine": "openai", "model": {"precision": "float16"},
                                  "load": {"arrival": "poisson"}}
    assert config_key(a) == config_key(b) != config_key(c)
    assert offered_load(a.serving) == ("rate", 1.0)
    assert has_serving([a]) and not has_serving([])


def test_groups_by_config_and_rate_with_means_and_cis():
    configs = group_serving(_study_results())
    assert [(c.tag, c.label) for c in configs] == [("A", "model.precision=float16"),
                                                  ("B", "model.precision=float32")]
    a = configs[0]
    assert [g.offered_load for g in a.groups] == [1.0, 2.0, 4.0, 8.0]
    g4 = a.groups[2]
    assert g4.experiment_ids == ("float16-4-0", "float16-4-1") and g4.runs == 2
    # TTFT p99 0.3 and 0.31 s; J/token 0.2 and 0.204 (std 0.002 x sqrt 2).
    assert g4.mean("ttft_p99_s") == pytest.approx(0.305, rel=1e-12)
    assert g4.mean("ttft_p50_s") == pytest.approx(0.75 * 0.305, rel=1e-12)
    assert g4.mean("energy_per_output_token_j") == pytest.approx(0.202, rel=1e-12)
    assert g4.ci("energy_per_output_token_j") == pytest.approx(
        (0.202 - T1 * 0.002, 0.202 + T1 * 0.002), rel=1e-9)
    assert g4.mean("steady_energy_per_output_token_j") == pytest.approx(0.1818, rel=1e-12)
    assert g4.mean("goodput_per_s") == pytest.approx(3.8)
    assert g4.slo_met is True and g4.slo_runs_met == 2
    assert a.groups[3].slo_met is False
    assert a.sustained() is g4
    assert configs[1].sustained().offered_load == 2.0


def test_a_load_met_in_some_runs_only_is_not_sustained():
    # float16 at 4 req/s meets the SLO (TTFT p99 0.3 s); at 8 req/s it does not (0.9 s).
    met = make_serving_result("x0", "float16", 4.0)
    missed = make_serving_result("x1", "float16", 8.0)
    mixed = missed.model_copy(update={"serving": missed.serving.model_copy(
        update={"rate_per_s": 4.0})})
    (config,) = group_serving([met, mixed])
    (group,) = config.groups
    assert group.slo_met is False and group.slo_runs_met == 1 and config.sustained() is None


def test_closed_loop_results_group_by_concurrency():
    r = make_serving_result("c", "float16", 2.0)
    closed = r.model_copy(update={"serving": r.serving.model_copy(
        update={"arrival": "concurrency", "rate_per_s": None, "concurrency": 8})})
    (config,) = group_serving([closed])
    assert [(g.load_kind, g.offered_load, g.load_label) for g in config.groups] == [
        ("concurrency", 8.0, "concurrency 8")]
    assert config.label == "tiny"  # one config: its served model


def test_figure_tables_hold_known_numbers():
    configs = group_serving(_study_results())
    t = figure_tables(configs, None)
    assert list(t) == list(FIGURE_TABLES)
    lat = t["serving_latency_vs_rate"]
    assert len(lat) == 8
    row = lat[2]
    assert (row["config"], row["config_label"], row["load_kind"], row["offered_load"],
            row["runs"]) == ("A", "model.precision=float16", "rate", 4.0, 2)
    assert row["ttft_p99_s.mean"] == pytest.approx(0.305)
    assert row["ttft_p99_s.ci95_low"] == pytest.approx(0.305 - T1 * 0.005, rel=1e-9)
    assert row["itl_p50_s.mean"] == pytest.approx(0.01)
    assert row["itl_p99_s.mean"] == pytest.approx(0.02)
    assert lat[5]["itl_p99_s.mean"] == pytest.approx(0.04)  # B at 2 req/s: gap 0.02 s
    energy = t["serving_energy_per_token_vs_rate"]
    assert energy[5]["energy_per_output_token_j.mean"] == pytest.approx(0.4545)
    assert energy[5]["steady_energy_per_output_token_j.mean"] == pytest.approx(0.40905)
    assert energy[5]["energy_estimated"] is False
    good = t["serving_goodput_vs_rate"]
    assert [(r["config"], r["offered_load"], r["slo_met"], r["highest_slo_load"])
            for r in good] == [
        ("A", 1.0, True, False), ("A", 2.0, True, False), ("A", 4.0, True, True),
        ("A", 8.0, False, False), ("B", 1.0, True, False), ("B", 2.0, True, True),
        ("B", 4.0, False, False), ("B", 8.0, False, False)]
    assert good[3]["goodput_per_s.mean"] == pytest.approx(8 * 0.4)
    assert good[0]["slo"] == "TTFT p99 <= 500 ms"
    pareto = t["serving_pareto"]
    assert [r["on_front"] for r in pareto] == [True] * 4 + [False] * 4
    assert pareto[3]["ttft_p99_s"] == pytest.approx(0.905)
    assert pareto[3]["energy_per_output_token_j"] == pytest.approx(0.1515)
    assert t["serving_power_timeline"] == []


def test_timeline_sums_devices_per_sample_time():
    raw = make_serving_raw("t", "float16", 4.0)
    # Two GPUs per sample time: 100 + 10k W and 50 W; in flight k % 3.
    points = timeline_points(raw.timeseries, raw.timestamps.start)
    assert points == tuple((0.5 * k, 150.0 + 10 * k, k % 3, 2) for k in range(6))


def test_timeline_run_is_the_highest_slo_meeting_load_else_the_last(tmp_path):
    manifest, repo = build_serving_study(tmp_path)
    found = study_serving(manifest, load_study_results(manifest, repo), repo)
    assert found is not None
    configs, timeline = found
    assert timeline is not None
    assert timeline.choice.experiment_id == "sv-float16-r4-c0"
    assert timeline.choice.config_tag == "A" and timeline.choice.load_label == "4 req/s"
    assert "highest offered load meeting the SLO (TTFT p99 <= 500 ms)" in timeline.choice.reason
    rows = figure_tables(configs, timeline)["serving_power_timeline"]
    assert rows[1] == {"experiment_id": "sv-float16-r4-c0", "t_s": 0.5, "power_w": 160.0,
                       "in_flight": 1, "devices": 2}
    # Without an SLO anywhere: the last run in execution order.
    no_slo = [make_serving_result(f"n{i}", "float16", r, slo=False)
              for i, r in enumerate((1.0, 2.0))]
    choice = timeline_candidates(group_serving(no_slo), ["n0", "n1"])[0]
    assert (choice.experiment_id, choice.reason) == (
        "n1", "the last run (no offered load met the SLO)")
    assert load_timeline(group_serving(no_slo), ["n0", "n1"], repo) is None  # no raw saved


def test_config_key_of_real_effective_configs_ignores_only_the_load_axis():
    from llm_energy_measure.config.models import ExperimentConfig

    def dumped(**over):
        base = {"config_name": "c", "engine": "openai",
                "endpoint": {"base_url": "http://127.0.0.1:8000/v1"},
                "load": {"arrival": "poisson", "rate_per_s": 1.0, "num_requests": 10},
                "slo": {"ttft_ms": {"p99": 500}}}
        for key, value in over.items():
            section, _, leaf = key.partition("__")
            base.setdefault(section, {})
            if leaf:
                base[section][leaf] = value  # type: ignore[index]
            else:
                base[section] = value
        return ExperimentConfig.model_validate(base).model_dump(mode="json")

    r = make_serving_result("r", "float16", 1.0)

    def key(config):
        return config_key(r.model_copy(update={"effective_config": config}))

    same = key(dumped())
    assert key(dumped(load={"arrival": "poisson", "rate_per_s": 8.0, "duration_s": 30.0},
                      config_name="other", slo={"e2e_ms": {"p99": 900}})) == same
    assert key(dumped(model__precision="bfloat16")) != same
    assert key(dumped(load={"arrival": "constant", "rate_per_s": 1.0})) != same
