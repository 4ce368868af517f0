"""Small adapters between CLI flags and the library (no measuring logic here)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_energy_measure.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Callable

    from llm_energy_measure.config.models import ExperimentConfig
    from llm_energy_measure.orchestration.aggregate import AggregateOutcome
    from llm_energy_measure.orchestration.experiment import ExperimentReport
    from llm_energy_measure.results import FileSystemRepository


def error_line(exc: BaseException) -> str:
    """The one line a failed command prints after ``error: ``: the first line of the message
    (an OSError as ``<file>: <reason>``, so the file is always named), secrets redacted as in
    the state file and control characters escaped."""
    from llm_energy_measure.security import escape_controls, redact_text

    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return escape_controls(redact_text(line))


def dataset_overrides(dataset: str) -> dict[str, Any]:
    """Map the --dataset flag onto prompts.* keys."""
    if dataset in ("builtin", "synthetic"):
        return {"prompts.source": dataset}
    if dataset.endswith(".jsonl"):
        return {"prompts.source": "jsonl", "prompts.path": dataset}
    if dataset.endswith(".txt") or Path(dataset).is_file():
        return {"prompts.source": "file", "prompts.path": dataset}
    return {"prompts.source": "huggingface", "prompts.dataset": dataset}


def load_run_config(
    path: Path,
    *,
    model: str | None = None,
    dataset: str | None = None,
    num_prompts: int | None = None,
    batch_size: int | None = None,
    precision: str | None = None,
    max_new_tokens: int | None = None,
    results_dir: Path | None = None,
    sets: list[str] | None = None,
) -> ExperimentConfig:
    """Load a config with CLI flags applied on top (flags > --set > file > defaults)."""
    from llm_energy_measure.config import load_config, parse_overrides

    overrides: dict[str, Any] = dict(parse_overrides(sets or []))
    flags: dict[str, Any] = {
        "model.name": model,
        "prompts.num_prompts": num_prompts,
        "batching.batch_size": batch_size,
        "model.precision": precision,
        "decoder.max_new_tokens": max_new_tokens,
        "results_dir": str(results_dir) if results_dir is not None else None,
    }
    if dataset is not None:
        overrides.update(dataset_overrides(dataset))
    overrides.update({k: v for k, v in flags.items() if v is not None})
    return load_config(path, overrides=overrides)


def endpoint_run_config(
    endpoint: str,
    *,
    model: str | None = None,
    num_prompts: int | None = None,
    max_new_tokens: int | None = None,
    results_dir: Path | None = None,
    sets: list[str] | None = None,
) -> ExperimentConfig:
    """A serving measurement of a running server without a config file: engine ``openai``
    at ``endpoint`` (the served ``model``, else the only one it lists), one request in
    flight, the builtin prompts; ``--set`` adjusts anything (e.g. load.concurrency=8)."""
    from llm_energy_measure.config import apply_overrides, parse_overrides, validate_config

    data: dict[str, Any] = {
        "config_name": "endpoint", "engine": "openai",
        "endpoint": {"base_url": endpoint, **({"model": model} if model else {})},
        "load": {"arrival": "concurrency", "concurrency": 1},
    }
    if model:
        data["model"] = {"name": model}
    flags: dict[str, Any] = {
        "prompts.num_prompts": num_prompts, "decoder.max_new_tokens": max_new_tokens,
        "results_dir": str(results_dir) if results_dir is not None else None,
    }
    overrides: dict[str, Any] = dict(parse_overrides(sets or []))
    overrides.update({k: v for k, v in flags.items() if v is not None})
    return validate_config(apply_overrides(data, overrides), source="--endpoint")


def run_or_resume(
    config: ExperimentConfig | None,
    *,
    resume_id: str | None,
    experiment_id: str | None,
    results_dir: Path | None,
    config_path: Path | None,
    on_progress: Callable[[str, int, int], None],
) -> ExperimentReport:
    """Run a new experiment or resume one (see ``orchestration.experiment``)."""
    from llm_energy_measure.config import effective_results_dir
    from llm_energy_measure.orchestration.experiment import resume_experiment, run_experiment
    from llm_energy_measure.storage.repository import ensure_results_dir

    ensure_results_dir(effective_results_dir(None, results_dir) if config is None else
                       effective_results_dir(config, results_dir), create=config is not None)
    if resume_id is not None:
        if experiment_id is not None:
            raise ConfigurationError("--resume ID already names the experiment; drop "
                                     "--experiment-id")
        return resume_experiment(resume_id, results_dir=results_dir, on_progress=on_progress)
    assert config is not None
    return run_experiment(config, experiment_id=experiment_id, results_dir=results_dir,
                          config_path=config_path, on_progress=on_progress)


def repository(results_dir: Path | None) -> FileSystemRepository:
    """The results store at the resolved results directory, which must exist."""
    from llm_energy_measure.config.precedence import effective_results_dir
    from llm_energy_measure.results import FileSystemRepository
    from llm_energy_measure.storage.repository import existing_results_dir

    return FileSystemRepository(existing_results_dir(effective_results_dir(flag_value=results_dir)))


def run_warnings(config: ExperimentConfig) -> list[str]:
    """Warnings `run` prints before it starts: the machine cannot serve the config well."""
    import os

    from llm_energy_measure.config.validation import resource_warnings

    return resource_warnings(config, cpu_count=os.cpu_count())


def aggregate_experiments(
    results_dir: Path | None,
    experiment_id: str | None,
    *,
    all_: bool,
    force: bool,
    allow_partial: bool,
) -> list[AggregateOutcome]:
    """Aggregate one experiment or all of them."""
    from llm_energy_measure.orchestration.aggregate import aggregate_all, aggregate_one
    from llm_energy_measure.storage.repository import ensure_results_dir
    from llm_energy_measure.storage.workspace import Workspace

    if (experiment_id is None) == (not all_):
        raise ConfigurationError("give an experiment id or --all (not both)")
    workspace = Workspace(repository(results_dir).base_dir)
    ensure_results_dir(workspace.root, create=False)
    repo, states = workspace.repository, workspace.states
    if all_:
        return aggregate_all(repo, force=force, allow_partial=allow_partial, states=states)
    return [aggregate_one(repo, experiment_id or "", force=force, allow_partial=allow_partial,
                          states=states)]


def export_results(
    results_dir: Path | None, experiment_ids: list[str], fmt: str, output: Path
) -> tuple[Path, int]:
    """Export aggregated results; returns the file written and how many experiments."""
    from llm_energy_measure.results.analysis.compare import load_aggregated_results
    from llm_energy_measure.results.export.exporters import EXPORT_FORMATS, export_aggregated

    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        *head, last = EXPORT_FORMATS
        raise ConfigurationError(f"--format must be {', '.join(head)} or {last}, got {fmt!r}")
    repo = repository(results_dir)
    ids = experiment_ids or repo.list_aggregated()
    if not ids:
        raise ConfigurationError("no aggregated results to export")
    results = load_aggregated_results(repo, ids)
    return export_aggregated(results, fmt, output), len(results)
