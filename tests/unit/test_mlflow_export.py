"""MLflow export against a real local file store (read back with MlflowClient)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from tests.factories import make_device, make_raw

from llm_energy_measure.exceptions import MissingExtraError
from llm_energy_measure.results import aggregate_results
from llm_energy_measure.results.export.mlflow import (
    ARTIFACT_NAME,
    MAX_PARAM_VALUE_LENGTH,
    export_to_mlflow,
    mlflow_key,
    mlflow_metrics,
    mlflow_params,
)

# Importing mlflow starts its usage telemetry unless this is set first: no network in tests.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
mlflow = pytest.importorskip("mlflow")


def _result(exp_id: str = "exp-mlf", *, estimated: bool = False, config=None):
    raw = make_raw(
        exp_id, duration_s=10.0,
        devices=[make_device("gpu:GPU-0", 200.0, duration_s=10.0,
                             method="estimate" if estimated else "counter",
                             estimated=estimated)],
        effective_config=config or {"model": {"name": "tiny", "precision": "float16"},
                                    "batching": {"batch_size": 8}},
    )
    return aggregate_results([raw], now=2_000.0)


@pytest.fixture
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    return "file://" + str(tmp_path / "mlruns")


def _client(uri: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return mlflow.MlflowClient(tracking_uri=uri)


def test_export_writes_params_metrics_tags_and_artifact(uri, monkeypatch, tmp_path):
    result = _result()
    [outcome] = export_to_mlflow([result], tracking_uri=uri, experiment_name="bench")
    assert outcome.status == "exported"

    client = _client(uri, monkeypatch)
    run = client.get_run(outcome.run_id)
    data = run.data
    assert data.params["model.precision"] == "float16"
    assert data.params["batching.batch_size"] == "8"
    assert data.params["model.name"] == "tiny"
    # 4 requests x 20 output tokens over 10 s; 200 J over 80 tokens.
    assert data.metrics["inference.output_tokens_per_s"] == pytest.approx(8.0)
    assert data.metrics["energy.total_energy_j"] == pytest.approx(200.0)
    assert data.metrics["energy.energy_per_output_token_j"] == pytest.approx(2.5)
    assert data.metrics["energy.mean_power_w"] == pytest.approx(20.0)
    assert data.tags["llm_energy_measure.experiment_id"] == "exp-mlf"
    assert data.tags["llm_energy_measure.config_hash"] == result.config_hash
    assert data.tags["llm_energy_measure.energy_estimated"] == "false"
    assert data.tags["llm_energy_measure.schema_version"] == str(result.schema_version)
    assert run.info.run_name == "exp-mlf"
    assert run.info.status == "FINISHED"
    assert run.info.start_time == int(result.timestamps.start * 1000)
    local = client.download_artifacts(outcome.run_id, ARTIFACT_NAME, str(tmp_path))
    stored = json.loads(Path(local).read_text())
    assert stored["experiment_id"] == "exp-mlf"
    assert stored["energy"]["total_energy_j"] == 200.0


def test_second_export_skips_existing_and_adds_new(uri, monkeypatch):
    first = export_to_mlflow([_result("a")], tracking_uri=uri, experiment_name="bench")
    again = export_to_mlflow([_result("a"), _result("b", estimated=True)], tracking_uri=uri,
                             experiment_name="bench")
    assert [o.status for o in again] == ["skipped", "exported"]
    assert again[0].run_id == first[0].run_id
    client = _client(uri, monkeypatch)
    exp = client.get_experiment_by_name("bench")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["llm_energy_measure.experiment_id"] for r in runs) == ["a", "b"]
    estimated = {r.data.tags["llm_energy_measure.experiment_id"]:
                 r.data.tags["llm_energy_measure.energy_estimated"] for r in runs}
    assert estimated == {"a": "false", "b": "true"}


def test_file_store_permission_is_scoped_to_the_export(uri):
    export_to_mlflow([_result()], tracking_uri=uri)
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    assert os.environ.get("MLFLOW_DISABLE_TELEMETRY") == "true"


def test_long_param_values_are_truncated_and_keys_sanitised():
    result = _result(config={"prompts": {"path": "x" * 7000}, "odd key!": {"a": 1}})
    params = mlflow_params(result)
    assert len(params["prompts.path"]) == MAX_PARAM_VALUE_LENGTH
    assert params["prompts.path"].endswith("...")
    assert params["odd key_.a"] == "1"
    assert mlflow_key("a:b@c") == "a_b_c"


def test_metrics_are_numeric_sections_only():
    metrics = mlflow_metrics(_result())
    assert "inference.num_requests" in metrics and metrics["inference.num_requests"] == 4.0
    assert not any(k.startswith(("effective_config", "model.", "environment")) for k in metrics)
    assert "energy.estimated" not in metrics  # a flag, kept as a tag


def test_missing_mlflow_names_the_extra(monkeypatch, uri):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError, match=r'llm-energy-measure\[mlflow\]'):
        export_to_mlflow([_result()], tracking_uri=uri)


def test_cli_export_mlflow(uri, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from llm_energy_measure.cli import app
    from llm_energy_measure.results import FileSystemRepository

    results_dir = tmp_path / "results"
    FileSystemRepository(results_dir).save_aggregated(_result("cli-exp"))
    out = CliRunner().invoke(app, ["results", "export-mlflow", "cli-exp", "--tracking-uri", uri,
                                   "--experiment-name", "cli", "--results-dir",
                                   str(results_dir)])
    assert out.exit_code == 0, out.stderr
    assert out.stdout.startswith("cli-exp: exported as run ")
    client = _client(uri, monkeypatch)
    runs = client.search_runs([client.get_experiment_by_name("cli").experiment_id])
    assert [r.info.run_name for r in runs] == ["cli-exp"]
