"""Export aggregated results to MLflow: one MLflow run per experiment.

- params: the flattened effective config (``model.precision``, ``batching.batch_size``...),
  values cut to MLflow's length limit (the cut is marked with ``...``);
- metrics: every finite numeric headline figure of the result, keyed by its dotted column
  name in stored units (``inference.output_tokens_per_s``, ``energy.total_energy_j``,
  ``cycle_stats.energy_j.mean``...);
- tags: experiment id, config hash, config name, model, whether energy is estimated, schema
  version (``llm_energy_measure.*``);
- artifact: the aggregated result JSON (``aggregated_result.json``).

Needs the ``mlflow`` extra (mlflow-skinny). Only the given tracking URI is contacted; MLflow's
usage telemetry is switched off (``MLFLOW_DISABLE_TELEMETRY``) before MLflow is imported. A
``file:`` URI (or a plain folder path) uses MLflow's file store, which MLflow 3 only opens when
``MLFLOW_ALLOW_FILE_STORE`` is true: it is set for the duration of the export. An experiment
already exported to the same MLflow experiment (same id tag) is skipped, not duplicated.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from llm_energy_measure.domain import AggregatedResult
from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError, ResultsError
from llm_energy_measure.results.analysis.compare import flatten_config
from llm_energy_measure.results.export.exporters import flatten_result

TAG_PREFIX = "llm_energy_measure."
DEFAULT_EXPERIMENT_NAME = "llm-energy-measure"
ARTIFACT_NAME = "aggregated_result.json"
#: MLflow's limits (mlflow.utils.validation): key length, param value length, batch sizes.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
#: Result sections whose numbers become metrics (identity, config and environment do not).
METRIC_SECTIONS = ("inference", "energy", "compute", "memory", "cycle_stats", "timestamps")
_KEY_BAD_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


@dataclass(frozen=True)
class MlflowExportOutcome:
    """What happened to one experiment: ``exported`` (new MLflow run) or ``skipped``."""

    experiment_id: str
    status: str
    run_id: str


def mlflow_key(key: str) -> str:
    """A key MLflow accepts: other characters become ``_``; at most 250 characters."""
    return _KEY_BAD_CHARS.sub("_", key)[:MAX_KEY_LENGTH]


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple, dict)):
        import json

        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def mlflow_params(result: AggregatedResult) -> dict[str, str]:
    """The flattened effective config as MLflow params (values cut to 6000 characters)."""
    return {
        mlflow_key(key): _truncate(_param_text(value), MAX_PARAM_VALUE_LENGTH)
        for key, value in flatten_config(result.effective_config).items()
    }


def mlflow_metrics(result: AggregatedResult) -> dict[str, float]:
    """Finite numbers of the metric sections, keyed by dotted column (stored units).

    Booleans and text are left out (flags go to tags); MFU/MBU appear only when known.
    """
    flat = flatten_result(result, exclude=())
    metrics: dict[str, float] = {}
    for key, value in flat.items():
        if key.split(".", 1)[0] not in METRIC_SECTIONS:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            metrics[mlflow_key(key)] = float(value)
    return metrics


def mlflow_tags(result: AggregatedResult) -> dict[str, str]:
    """Identity and provenance tags of the run."""
    estimated = "n/a" if result.energy is None else str(result.energy.estimated).lower()
    tags = {
        f"{TAG_PREFIX}experiment_id": result.experiment_id,
        f"{TAG_PREFIX}config_hash": result.config_hash,
        f"{TAG_PREFIX}config_name": result.config_name,
        f"{TAG_PREFIX}model": result.model.name,
        f"{TAG_PREFIX}energy_estimated": estimated,
        f"{TAG_PREFIX}schema_version": str(result.schema_version),
        f"{TAG_PREFIX}partial": str(result.aggregation.partial).lower(),
    }
    return {k: _truncate(v, MAX_TAG_VALUE_LENGTH) for k, v in tags.items()}


def _is_file_uri(uri: str) -> bool:
    return uri.startswith("file:") or "://" not in uri


@contextmanager
def _file_store_allowed(uri: str) -> Iterator[None]:
    """Let MLflow 3 open a file store for an explicit ``file:`` URI, for this export only."""
    name = "MLFLOW_ALLOW_FILE_STORE"
    if not _is_file_uri(uri) or name in os.environ:
        yield
        return
    os.environ[name] = "true"
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _import_mlflow() -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow import MlflowClient
    except ImportError:
        raise MissingExtraError("mlflow", "mlflow-skinny", "MLflow export") from None
    return MlflowClient


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _existing_run(client: Any, mlflow_experiment_id: str, experiment_id: str) -> str | None:
    quoted = experiment_id.replace("'", "\\'")
    runs = client.search_runs(
        [mlflow_experiment_id],
        filter_string=f"tags.`{TAG_PREFIX}experiment_id` = '{quoted}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def _log_run(client: Any, mlflow_experiment_id: str, result: AggregatedResult) -> str:
    from mlflow.entities import Metric, Param, RunTag

    start_ms = int(result.timestamps.start * 1000)
    end_ms = int(result.timestamps.end * 1000)
    run = client.create_run(mlflow_experiment_id, start_time=start_ms,
                            tags=mlflow_tags(result), run_name=result.experiment_id)
    run_id = run.info.run_id
    params = [Param(k, v) for k, v in mlflow_params(result).items()]
    metrics = [Metric(k, v, end_ms, 0) for k, v in mlflow_metrics(result).items()]
    for chunk in _chunks(params, MAX_PARAMS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=chunk)
    client.log_batch(run_id, tags=[RunTag("mlflow.note.content",
                                          f"llm-energy-measure experiment {result.experiment_id}")])
    client.log_text(run_id, result.model_dump_json(indent=2), ARTIFACT_NAME)
    client.set_terminated(run_id, status="FINISHED", end_time=end_ms)
    return str(run_id)


def export_to_mlflow(
    results: Sequence[AggregatedResult],
    *,
    tracking_uri: str,
    experiment_name: str = DEFAULT_EXPERIMENT_NAME,
) -> list[MlflowExportOutcome]:
    """Log each result as one MLflow run in ``experiment_name`` (created when absent).

    Returns one outcome per result, in order. An experiment id already present in that MLflow
    experiment is skipped. Raises MissingExtraError without mlflow-skinny, ConfigurationError
    for an empty tracking URI or experiment name, ResultsError when MLflow refuses a write.
    """
    if not tracking_uri.strip():
        raise ConfigurationError("--tracking-uri is empty; give e.g. file:///path/to/mlruns")
    if not experiment_name.strip():
        raise ConfigurationError("--experiment-name is empty")
    client_cls = _import_mlflow()
    from mlflow.exceptions import MlflowException

    outcomes: list[MlflowExportOutcome] = []
    with _file_store_allowed(tracking_uri):
        try:
            client = client_cls(tracking_uri=tracking_uri)
            found = client.get_experiment_by_name(experiment_name)
            mlflow_experiment_id = (
                found.experiment_id if found is not None
                else client.create_experiment(experiment_name)
            )
            for result in results:
                existing = _existing_run(client, mlflow_experiment_id, result.experiment_id)
                if existing is not None:
                    outcomes.append(MlflowExportOutcome(result.experiment_id, "skipped", existing))
                    continue
                run_id = _log_run(client, mlflow_experiment_id, result)
                outcomes.append(MlflowExportOutcome(result.experiment_id, "exported", run_id))
        except MlflowException as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ResultsError(f"MLflow at {tracking_uri!r} refused the export: {message}") from exc
    return outcomes
