"""HTML study report: content, escaping, estimate banner, determinism, offline-ness.

The study is ``tests.fakes.study.build_study``'s: a 4 x 2 sweep of batching.batch_size x
model.precision, 3 runs per point, with energy, latency and a power time series whose values
are known.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.fakes.study import build_study

from llm_energy_measure.results import FileSystemRepository
from llm_energy_measure.results.report.data import StudyReportData, load_study_report_data
from llm_energy_measure.results.report.page import render_study_report, write_study_report
from llm_energy_measure.state.study_models import StudyManifest


@pytest.fixture
def study(tmp_path: Path) -> tuple[StudyManifest, FileSystemRepository]:
    return build_study(tmp_path)


def _text(html: str) -> str:
    """Visible text, tags removed, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_report_holds_header_statistics_and_all_plots(study):
    manifest, repo = study
    html = render_study_report(load_study_report_data(manifest, repo))
    text = _text(html)
    assert "Study report: batch x precision" in text
    assert "abc123def" in text
    assert "2023-11-14 22:13:20 UTC" in text  # created_at 1_700_000_000
    assert "24 of 24" in text  # runs completed
    # Per-point mean of energy per token for batch 1, float32: runs of 150, 153, 156 J over
    # 80 tokens -> mean 1.9125 J/token (shown to 4 significant digits), CI half-width
    # t(0.975, 2) * std / sqrt(3) = 4.302653 * 0.0375 / 1.7320508 = 0.09316.
    assert "1.912 ± 0.093 [1.819, 2.006] n=3" in text
    # Plots: one per swept key, throughput/power, two Pareto charts, the time series.
    titles = re.findall(r"<svg[^>]*aria-label=\"([^\"]+)\"", html)
    assert titles == [
        "Energy per output token vs batching.batch_size",
        "Energy per output token vs model.precision",
        "Output throughput vs mean power",
        "Pareto frontier: energy per token vs end-to-end latency p50",
        "Pareto frontier: energy per token vs output throughput",
        "Power during run st-b1-float32-c0",
    ]
    # Axis labels with units and a legend entry per other-parameter combination.
    assert "energy per output token (J)" in text
    assert "model.precision=float32" in text and "model.precision=float16" in text
    assert "mean power (W)" in text and "output throughput (tok/s)" in text
    assert "time since first sample (s)" in text and "power (W)" in text
    assert "Estimated energy" not in text


def test_report_is_offline_and_script_free(study):
    manifest, repo = study
    html = render_study_report(load_study_report_data(manifest, repo))
    assert "<script" not in html.lower()
    assert not re.search(r"(?:src|href)\s*=", html, re.IGNORECASE)
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert "@import" not in html and "url(" not in html


def test_report_is_deterministic(tmp_path):
    first = build_study(tmp_path / "a")
    second = build_study(tmp_path / "b")
    assert render_study_report(load_study_report_data(*first)) == render_study_report(
        load_study_report_data(*second))


def test_estimated_energy_gets_banner_and_star(tmp_path):
    manifest, repo = build_study(tmp_path, estimated_points=("b2-float16",))
    html = render_study_report(load_study_report_data(manifest, repo))
    text = _text(html)
    assert "Estimated energy." in text
    # b2-float16 is the 4th point in manifest order.
    assert "Energy figures of points #4 are ESTIMATES" in text
    # Its J/token cell carries the star: 100/sqrt(2)/80 * (1, 1.02, 1.04) mean = 0.9016.
    assert "0.9016* ±" in text
    assert "1.912 ±" in text  # a measured point: no star


def test_text_is_escaped(tmp_path):
    manifest, repo = build_study(tmp_path, study_name="<script>alert(1)</script>",
                                 label_suffix=" <b>&amp</b>")
    html = render_study_report(load_study_report_data(manifest, repo))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;&amp;amp&lt;/b&gt;" in html


def test_single_run_points_show_value_without_ci_and_no_timeseries_note(tmp_path):
    manifest, repo = build_study(tmp_path, with_timeseries=False)
    first_only = manifest.model_copy(update={"runs": [r for r in manifest.runs if r.cycle == 0]})
    data = load_study_report_data(first_only, repo)
    html = render_study_report(data)
    text = _text(html)
    assert "n=1, no CI" in text
    assert re.search(r"± \d", text) is None
    assert "No run of this study recorded a power time series." in text
    assert data.timeseries == ()


def test_utilisation_is_plotted_when_no_power_samples(study):
    manifest, repo = study
    data = load_study_report_data(manifest, repo)
    no_power = tuple(s.model_copy(update={"power_w": None}) for s in data.timeseries)
    html = render_study_report(StudyReportData(data.manifest, data.results_by_point,
                                               data.timeseries_experiment_id, no_power))
    assert 'aria-label="Utilisation during run st-b1-float32-c0"' in html
    assert "utilisation (%)" in html


def test_write_study_report_writes_file_and_checks_folder(study, tmp_path):
    manifest, repo = study
    out = write_study_report(manifest, repo, tmp_path / "report.html")
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    from llm_energy_measure.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="does not exist"):
        write_study_report(manifest, repo, tmp_path / "missing" / "report.html")


def test_completed_run_without_aggregated_result_is_an_error(study):
    manifest, repo = study
    repo.delete_experiment("st-b4-float16-c1")
    from llm_energy_measure.exceptions import ResultsError

    with pytest.raises(ResultsError, match="st-b4-float16-c1"):
        load_study_report_data(manifest, repo)


def test_cli_study_report_and_export(study, tmp_path):
    from typer.testing import CliRunner

    from llm_energy_measure.cli import app

    _, repo = study
    results_dir = str(repo.base_dir)
    runner = CliRunner()
    out = runner.invoke(app, ["study", "report", "study-1", "--output",
                              str(tmp_path / "r.html"), "--results-dir", results_dir])
    assert out.exit_code == 0, out.stderr
    assert (tmp_path / "r.html").read_text(encoding="utf-8").count("<svg") == 6
    out = runner.invoke(app, ["study", "export", "study-1", "--format", "csv", "--output",
                              str(tmp_path / "runs.csv"), "--point-stats",
                              str(tmp_path / "points.csv"), "--results-dir", results_dir])
    assert out.exit_code == 0, out.stderr
    assert len((tmp_path / "runs.csv").read_text().splitlines()) == 1 + 24
    assert len((tmp_path / "points.csv").read_text().splitlines()) == 1 + 8
    missing = runner.invoke(app, ["study", "report", "nope", "--output",
                                  str(tmp_path / "x.html"), "--results-dir", results_dir])
    assert missing.exit_code == 2
    assert missing.stderr.startswith("error: no study 'nope'")


def test_every_plot_is_well_formed_svg(study):
    import xml.etree.ElementTree as ET

    manifest, repo = study
    html = render_study_report(load_study_report_data(manifest, repo))
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 6
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_a_noisy_point_shows_a_positive_log_scale_interval_and_cannot_rank():
    from llm_energy_measure.results.analysis.stats import metric_stats
    from llm_energy_measure.results.report.page import _stat_cell

    values = [0.1, 0.2, 0.84]  # t interval [-0.617, 1.377]; log scale [0.027536, 5.2440]
    cell = _stat_cell(values, metric_stats(values), 1.0, estimated=False)
    assert "[0.02754, 5.244] n=3 (log-scale CI)" in cell
    assert "too noisy to rank" in cell and "±" not in cell and "-0.6" not in cell
    steady = [1.0, 1.1, 0.9]
    assert "± " in _stat_cell(steady, metric_stats(steady), 1.0, estimated=False)
