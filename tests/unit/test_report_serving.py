"""The serving figures of the study report and their exported data, on the serving study of
``tests.fakes.serving_study`` (float16 = config A, float32 = B; 1, 2, 4, 8 req/s; 2 runs)."""

from __future__ import annotations

import csv
import importlib.util
import re
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path

import pytest
from tests.fakes.serving_study import build_serving_study
from tests.fakes.study import build_study

from llm_energy_measure.results.analysis.serving_figures import FIGURE_TABLES
from llm_energy_measure.results.export.study import export_serving_figures
from llm_energy_measure.results.report.data import load_study_report_data
from llm_energy_measure.results.report.page import render_study_report

SERVING_TITLES = [
    "TTFT vs offered load",
    "ITL (per token gap) vs offered load",
    "Energy per output token vs offered load",
    "Goodput vs offered load",
    "Pareto front: energy per token vs TTFT p99",
    "Power and requests in flight during run sv-float16-r4-c0",
]


def _text(html: str) -> str:
    """Visible text, tags removed, entities decoded, whitespace collapsed."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def _svg(html: str, title: str) -> str:
    match = re.search(rf'<svg[^>]*aria-label="{re.escape(title)}".*?</svg>', html, re.S)
    assert match is not None, title
    return match.group(0)


def test_serving_study_report_has_the_serving_figures(tmp_path):
    manifest, repo = build_serving_study(tmp_path)
    html = render_study_report(load_study_report_data(manifest, repo))
    titles = re.findall(r"<svg[^>]*aria-label=\"([^\"]+)\"", html)
    assert titles[-6:] == SERVING_TITLES
    for svg in re.findall(r"<svg.*?</svg>", html, re.S):
        ET.fromstring(svg)
    text = _text(html)
    assert "Serving: energy at a latency target" in text
    # Config table: tags, what sets them apart, highest SLO-meeting load.
    assert "A model.precision=float16" in text and "B model.precision=float32" in text
    assert "TTFT p99 <= 500 ms 4 req/s" in text and "TTFT p99 <= 500 ms 2 req/s" in text
    # Axes with units and a legend per config.
    assert "offered load (req/s)" in text and "TTFT (ms)" in text
    assert "energy per output token (J)" in text and "goodput (SLO-meeting requests/s)" in text
    assert "TTFT p99 (ms)" in text and "requests in flight" in text
    goodput = _svg(html, "Goodput vs offered load")
    assert "A: model.precision=float16" in goodput and "SLO met (every run)" in goodput
    assert goodput.count(">max in SLO<") == 2 and "goodput = offered rate" in goodput
    assert "SLO: TTFT p99 &lt;= 500 ms" in goodput
    pareto = _svg(html, "Pareto front: energy per token vs TTFT p99")
    assert ">A@4<" in pareto and ">B@8<" in pareto
    assert ("Run sv-float16-r4-c0 (config A at 4 req/s): the highest offered load meeting the "
            "SLO (TTFT p99 <= 500 ms)") in text
    # Each figure's data, embedded: the J/token table holds B at 2 req/s: 0.4545 J/token.
    for name in FIGURE_TABLES:
        assert f"{name}.csv" in text
    assert "0.4545" in text
    assert "[estimate]" not in html
    assert "<script" not in html.lower()


def test_estimated_energy_is_marked_on_the_serving_figures(tmp_path):
    manifest, repo = build_serving_study(tmp_path, estimated=("float32",))
    html = render_study_report(load_study_report_data(manifest, repo))
    energy = _svg(html, "Energy per output token vs offered load")
    assert "B: model.precision=float32 [estimate]" in energy
    assert "A: model.precision=float16 [estimate]" not in energy
    assert "Energy of config B is an ESTIMATE" in _text(html)


def test_report_without_serving_results_has_no_serving_section(tmp_path):
    manifest, repo = build_study(tmp_path)
    data = load_study_report_data(manifest, repo)
    assert data.serving is None
    assert "Serving:" not in render_study_report(data)


def test_export_writes_one_csv_and_parquet_per_serving_figure(tmp_path):
    manifest, repo = build_serving_study(tmp_path / "results")
    out = tmp_path / "out"
    out.mkdir()
    written = export_serving_figures(manifest, repo, out)
    names = sorted(p.name for p in written)
    parquet = importlib.util.find_spec("pyarrow") is not None
    expected = [f"{n}.csv" for n in FIGURE_TABLES]
    expected += [f"{n}.parquet" for n in FIGURE_TABLES] if parquet else []
    assert names == sorted(expected)
    with (out / "serving_energy_per_token_vs_rate.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "config", "config_label", "config_key", "load_kind", "offered_load", "runs",
        "energy_per_output_token_j.mean", "energy_per_output_token_j.ci95_low",
        "energy_per_output_token_j.ci95_high", "steady_energy_per_output_token_j.mean",
        "steady_energy_per_output_token_j.ci95_low", "steady_energy_per_output_token_j.ci95_high",
        "energy_estimated"]
    assert len(rows) == 8
    assert (rows[2]["config"], rows[2]["offered_load"]) == ("A", "4.0")
    assert float(rows[2]["energy_per_output_token_j.mean"]) == pytest.approx(0.202)
    with (out / "serving_power_timeline.csv").open() as f:
        timeline = list(csv.DictReader(f))
    assert [float(r["power_w"]) for r in timeline] == [150, 160, 170, 180, 190, 200]
    assert [r["in_flight"] for r in timeline] == ["0", "1", "2", "0", "1", "2"]
    if not parquet:
        return
    import pyarrow.parquet as pq

    table = pq.read_table(out / "serving_goodput_vs_rate.parquet")
    assert table.column("highest_slo_load").to_pylist() == [
        False, False, True, False, False, True, False, False]
    assert table.column("goodput_per_s.mean").to_pylist()[2] == pytest.approx(3.8)


def test_export_without_serving_results_writes_nothing(tmp_path):
    manifest, repo = build_study(tmp_path)
    assert export_serving_figures(manifest, repo, tmp_path) == []


def test_cli_study_export_writes_the_serving_figure_data(tmp_path: Path):
    from typer.testing import CliRunner

    from llm_energy_measure.cli import app

    _, repo = build_serving_study(tmp_path / "results")
    figures = tmp_path / "figures"
    figures.mkdir()
    out = CliRunner().invoke(app, [
        "study", "export", "serve-1", "--output", str(tmp_path / "runs.csv"),
        "--figures-dir", str(figures), "--results-dir", str(repo.base_dir)])
    assert out.exit_code == 0, out.stderr
    assert f"serving figure data: {figures / 'serving_latency_vs_rate.csv'}" in out.stdout
    assert (figures / "serving_pareto.csv").exists()
    assert len((tmp_path / "runs.csv").read_text().splitlines()) == 1 + 16


def test_without_an_slo_the_goodput_figure_is_a_note(tmp_path):
    from tests.fakes.serving_study import make_serving_result

    from llm_energy_measure.results.analysis.serving import group_serving
    from llm_energy_measure.results.report.serving import build_serving_report, serving_section

    results = [make_serving_result(f"n{r:g}", "float16", r, slo=False) for r in (1.0, 2.0)]
    html = serving_section(build_serving_report(group_serving(results), None))
    assert "there is no goodput to plot" in html
    assert 'aria-label="Goodput vs offered load"' not in html
    assert "No serving run of this study recorded power samples." in html
    assert 'aria-label="Energy per output token vs offered load"' in html
