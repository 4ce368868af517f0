"""Study export: run rows (CSV, Parquet, JSON) and the per-point statistics table."""

from __future__ import annotations

import csv
import json

import pytest
from tests.fakes.study import CYCLES, build_study, point_energy_j

from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError
from llm_energy_measure.results.export.study import export_study, swept_keys


@pytest.fixture
def study(tmp_path):
    return build_study(tmp_path / "results")


def _read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_csv_has_one_row_per_run_with_param_columns(study, tmp_path):
    manifest, repo = study
    path = export_study(manifest, repo, "csv", tmp_path / "runs.csv")
    rows = _read_csv(path)
    assert len(rows) == 8 * CYCLES
    header = list(rows[0])
    assert header[:6] == ["study_id", "point_id", "point_label", "param.batching.batch_size",
                          "param.model.precision", "cycle"]
    assert header[6] == "result_type"
    assert "experiment_id" in header and "energy.energy_per_output_token_j" in header
    first = rows[0]
    assert (first["point_id"], first["cycle"], first["experiment_id"]) == (
        "b1-float32", "0", "st-b1-float32-c0")
    assert first["param.batching.batch_size"] == "1"
    assert first["param.model.precision"] == "float32"
    assert float(first["energy.total_energy_j"]) == pytest.approx(point_energy_j(1, "float32", 0))
    # GPU-only runs: the CPU figure is null with its reason, never 0.
    assert first["energy.cpu_energy_j"] == ""
    assert first["energy.unmeasured.cpu_energy_j"] == "not measured by any process"
    assert [r["cycle"] for r in rows[:3]] == ["0", "1", "2"]


def test_point_stats_table(study, tmp_path):
    manifest, repo = study
    export_study(manifest, repo, "csv", tmp_path / "runs.csv",
                 point_stats_path=tmp_path / "points.csv")
    rows = _read_csv(tmp_path / "points.csv")
    assert [r["point_id"] for r in rows][:2] == ["b1-float32", "b1-float16"]
    first = rows[0]
    assert list(first)[:5] == ["point_id", "point_label", "param.batching.batch_size",
                               "param.model.precision", "runs"]
    assert first["runs"] == "3"
    # 150, 153, 156 J over 80 tokens: mean 1.9125, CI half-width t(.975,2)*0.0375/sqrt(3).
    assert float(first["energy_per_output_token_j.mean"]) == pytest.approx(1.9125)
    half = 4.302652729911275 * 0.0375 / 3 ** 0.5
    assert float(first["energy_per_output_token_j.ci95_low"]) == pytest.approx(1.9125 - half)
    assert float(first["energy_per_output_token_j.ci95_high"]) == pytest.approx(1.9125 + half)
    assert first["energy_per_output_token_j.n"] == "3"
    assert first["mfu.n"] == "0" and first["mfu.mean"] == ""


def test_parquet_matches_csv_rows(study, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    manifest, repo = study
    export_study(manifest, repo, "parquet", tmp_path / "runs.parquet",
                 point_stats_path=tmp_path / "points.parquet")
    table = pq.read_table(tmp_path / "runs.parquet")
    assert table.num_rows == 8 * CYCLES
    assert table.column_names[:6] == ["study_id", "point_id", "point_label",
                                      "param.batching.batch_size", "param.model.precision",
                                      "cycle"]
    assert table.column("param.batching.batch_size").to_pylist()[::CYCLES * 2] == [1, 2, 4, 8]
    points = pq.read_table(tmp_path / "points.parquet")
    assert points.column("runs").to_pylist() == [3] * 8


def test_json_holds_runs_and_points(study, tmp_path):
    manifest, repo = study
    export_study(manifest, repo, "json", tmp_path / "study.json")
    data = json.loads((tmp_path / "study.json").read_text())
    assert data["study"]["swept_keys"] == ["batching.batch_size", "model.precision"]
    assert len(data["runs"]) == 24 and len(data["points"]) == 8
    assert data["points"][0]["energy_per_output_token_j.mean"] == pytest.approx(1.9125)


def test_bad_format_and_folder(study, tmp_path):
    manifest, repo = study
    with pytest.raises(ConfigurationError, match="--format must be one of csv, json, parquet"):
        export_study(manifest, repo, "xlsx", tmp_path / "x.xlsx")
    with pytest.raises(ConfigurationError, match="does not exist"):
        export_study(manifest, repo, "csv", tmp_path / "nope" / "x.csv")


def test_parquet_without_pyarrow(study, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    manifest, repo = study
    with pytest.raises(MissingExtraError, match=r"llm-energy-measure\[parquet\]"):
        export_study(manifest, repo, "parquet", tmp_path / "x.parquet")


def test_swept_keys_first_seen_order(study):
    manifest, _ = study
    assert swept_keys(manifest) == ["batching.batch_size", "model.precision"]


def test_point_stats_say_which_energy_figures_are_estimates(tmp_path):
    from tests.unit.test_report import build_study

    manifest, repo = build_study(tmp_path / "results", estimated_points=("b2-float16",))
    export_study(manifest, repo, "json", tmp_path / "study.json",
                 point_stats_path=tmp_path / "points.json")
    points = {p["point_id"]: p for p in json.loads((tmp_path / "points.json").read_text())}
    for key in ("energy_per_output_token_j", "total_energy_j", "mean_power_w"):
        assert points["b2-float16"][f"{key}.estimated"] is True
        assert points["b1-float32"][f"{key}.estimated"] is False
    assert "output_tokens_per_s.estimated" not in points["b2-float16"]  # not from energy
    export_study(manifest, repo, "csv", tmp_path / "runs.csv",
                 point_stats_path=tmp_path / "points.csv")
    rows = {r["point_id"]: r for r in _read_csv(tmp_path / "points.csv")}
    assert rows["b2-float16"]["mean_power_w.estimated"] == "True"
    assert rows["b1-float32"]["mean_power_w.estimated"] == "False"


def test_point_stats_name_the_interval_method():
    from llm_energy_measure.results.analysis.stats import metric_stats

    noisy = metric_stats([0.1, 0.2, 0.84])
    steady = metric_stats([1.0, 1.1, 0.9])
    assert (noisy.ci_method, noisy.too_noisy) == ("log_scale", True)
    assert (steady.ci_method, steady.too_noisy) == ("student_t", False)


def test_point_stats_columns_carry_the_interval_method(study, tmp_path):
    manifest, repo = study
    export_study(manifest, repo, "csv", tmp_path / "runs.csv",
                 point_stats_path=tmp_path / "points.csv")
    first = _read_csv(tmp_path / "points.csv")[0]
    # 150, 153, 156 J over 80 tokens: a tight interval, Student t, rankable.
    assert first["energy_per_output_token_j.ci_method"] == "student_t"
    assert first["energy_per_output_token_j.too_noisy"] == "False"
    assert float(first["energy_per_output_token_j.ci95_low"]) > 0
