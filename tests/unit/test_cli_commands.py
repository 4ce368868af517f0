"""CLI commands that need no model: exit codes, one-line errors, listings, aggregation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.factories import make_raw
from typer.testing import CliRunner

from llm_energy_measure import __version__
from llm_energy_measure.cli import app
from llm_energy_measure.console.helptext import render_top_level_help
from llm_energy_measure.console.prerendered_help import TOP_LEVEL_HELP
from llm_energy_measure.results import FileSystemRepository

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def _one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert lines[0].startswith("error: ")
    return lines[0]


def test_version_is_the_package_version() -> None:
    result = _invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"llm-energy-measure {__version__}"


def test_fast_help_equals_what_the_app_renders() -> None:
    assert render_top_level_help() == TOP_LEVEL_HELP, "run scripts/refresh_cli_help.py"


def test_help_entrypoint_does_not_import_torch_or_typer() -> None:
    code = ("import sys; sys.argv=['llm-energy-measure','--help'];"
            "from llm_energy_measure.entrypoint import main; main();"
            "print('torch' in sys.modules, 'typer' in sys.modules, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout == TOP_LEVEL_HELP
    assert proc.stderr.strip() == "False False"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("decoder:\n  max_new_token: 3\n", "did you mean 'max_new_tokens'"),
        ("batching:\n  batch_size: -1\n", "batching.batch_size"),
        ("model: [unclosed\n", "YAML"),
        ("", "empty"),
        ("_extends: missing.yaml\n", "missing.yaml"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    for command in (["config", "validate", str(path)], ["run", str(path)]):
        result = _invoke(*command)
        assert result.exit_code == 2, result.output
        assert needle in _one_line_error(result)


def test_bad_config_through_the_console_script_has_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\x00\xff\xfe junk \x81")
    exe = Path(sys.executable).parent / "llm-energy-measure"
    proc = subprocess.run([str(exe), "config", "validate", str(path)], capture_output=True,
                          text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_config_validate_and_show(tmp_path: Path) -> None:
    result = _invoke("config", "validate", "configs/examples/quickstart.yaml")
    assert result.exit_code == 0 and "valid (config hash" in result.stdout
    shown = _invoke("config", "show", "configs/examples/base-bf16-batch16.yaml", "--json")
    data = json.loads(shown.stdout)
    assert data["model"]["precision"] == "bfloat16"  # from the child
    assert data["batching"]["batch_size"] == 16


def test_odd_experiment_ids_are_refused(tmp_path: Path) -> None:
    for bad in ("../etc", "a/b", "..", "x" * 300):
        result = _invoke("results", "show", bad, "--results-dir", str(tmp_path))
        assert result.exit_code == 2, bad
        _one_line_error(result)


def test_results_list_survives_truncated_and_edited_files(tmp_path: Path) -> None:
    repo = FileSystemRepository(tmp_path)
    repo.save_raw(make_raw("good", 0, 1))
    repo.save_raw(make_raw("trunc", 0, 1))
    repo.save_raw(make_raw("edited", 0, 1))
    raw_trunc = repo.raw_path("trunc", 0)
    raw_trunc.write_text(raw_trunc.read_text()[:100])
    edited = repo.raw_path("edited", 0)
    edited.write_text(edited.read_text().replace('"schema_version": 2', '"schema_version": 99'))
    result = _invoke("results", "list", "--all", "--results-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    for exp_id in ("good", "trunc", "edited"):
        assert exp_id in result.stdout


def test_aggregate_refuses_missing_ranks_then_allows_partial(tmp_path: Path) -> None:
    repo = FileSystemRepository(tmp_path)
    repo.save_raw(make_raw("exp", 0, 3, start=1000.0))
    repo.save_raw(make_raw("exp", 2, 3, start=1000.0))
    refused = _invoke("aggregate", "exp", "--results-dir", str(tmp_path))
    assert refused.exit_code == 1
    assert "1" in _one_line_error(refused) and not repo.has_aggregated("exp")
    partial = _invoke("aggregate", "exp", "--allow-partial", "--results-dir", str(tmp_path))
    assert partial.exit_code == 0 and "partial" in partial.stdout
    agg = repo.load_aggregated("exp")
    assert agg is not None and agg.aggregation.missing_ranks == (1,)
    again = _invoke("aggregate", "--all", "--results-dir", str(tmp_path))
    assert again.exit_code == 0 and "skipped" in again.stdout


def test_results_show_and_export(tmp_path: Path) -> None:
    repo = FileSystemRepository(tmp_path)
    repo.save_raw(make_raw("e1", 0, 1))
    assert _invoke("aggregate", "e1", "--results-dir", str(tmp_path)).exit_code == 0
    shown = _invoke("results", "show", "e1", "--json", "--results-dir", str(tmp_path))
    data = json.loads(shown.stdout)
    assert data["inference"]["output_tokens"] == 80  # 4 requests x 20 tokens
    text = _invoke("results", "show", "e1", "--raw", "--results-dir", str(tmp_path))
    assert "process 0" in text.stdout
    out = tmp_path / "out.csv"
    exported = _invoke("results", "export", "--format", "csv", "-o", str(out),
                       "--results-dir", str(tmp_path))
    assert exported.exit_code == 0
    header, row = out.read_text().splitlines()[:2]
    cols = dict(zip(header.split(","), row.split(","), strict=False))
    assert cols["inference.output_tokens"] == "80"
    bad = _invoke("results", "export", "--format", "xml", "-o", str(out),
                  "--results-dir", str(tmp_path))
    assert bad.exit_code == 2 and "csv, json or parquet" in _one_line_error(bad)


def test_show_unknown_experiment_exits_2(tmp_path: Path) -> None:
    result = _invoke("results", "show", "nope", "--results-dir", str(tmp_path))
    assert result.exit_code == 2
    assert "nope" in _one_line_error(result)
