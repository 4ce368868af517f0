"""Command-line interface: a thin map from commands to library functions.

Every command turns our typed errors into one line on stderr and an exit code (2 for usage and
configuration mistakes, 1 for runtime failures, 130 when interrupted); ``--verbose`` adds the
traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from llm_energy_measure.exceptions import ConfigurationError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="llm-energy-measure",
    help="Measure the energy, throughput, latency, FLOPs and memory of LLM inference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Validate and show experiment configs.", no_args_is_help=True)
results_app = typer.Typer(help="List, show and export stored results.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(results_app, name="results")
study_app = typer.Typer(help="Run sweeps of experiments (studies); check and resume them.",
                        no_args_is_help=True)
app.add_typer(study_app, name="study")

_state: dict[str, Any] = {"verbose": 0}

ResultsDirOpt = typer.Option(
    None, "--results-dir", help="Results directory (default: $LLM_ENERGY_MEASURE_RESULTS_DIR "
    "or ./results)."
)


def _fail(exc: BaseException) -> typer.Exit:
    from llm_energy_measure.console.support import error_line
    from llm_energy_measure.exceptions import exit_code_for

    if isinstance(exc, KeyboardInterrupt):
        signame = str(exc) if str(exc).startswith("SIG") else ""
        typer.echo(f"interrupted{f' ({signame})' if signame else ''}", err=True)
    else:
        typer.echo(f"error: {error_line(exc)}", err=True)
    if _state["verbose"]:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    return typer.Exit(exit_code_for(exc))


def handle_errors(fn: F) -> F:
    """Turn our errors (and Ctrl+C) into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from llm_energy_measure.exceptions import LLMBenchError

        try:
            return fn(*args, **kwargs)
        except (LLMBenchError, KeyboardInterrupt) as exc:
            raise _fail(exc) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # an unexpected failure: still one line, traceback on -v
            raise _fail(exc) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        from llm_energy_measure import __version__

        typer.echo(f"llm-energy-measure {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More detail "
                                "(debug logs, tracebacks)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Measure the energy, throughput, latency, FLOPs and memory of LLM inference."""
    from llm_energy_measure.logging import setup_logging

    _state["verbose"] = verbose
    setup_logging(verbosity=verbose, quiet=quiet)


@app.command()
@handle_errors
def run(
    config: Path | None = typer.Argument(None, help="Experiment config (YAML or JSON); not "
                                         "with --resume."),
    model: str | None = typer.Option(None, "--model", help="Model: Hub id, folder, .gguf file "
                                     "or builtin:tiny-llama."),
    dataset: str | None = typer.Option(None, "--dataset", help="Prompts: builtin, synthetic, "
                                       "a .txt/.jsonl file or a Hugging Face dataset id."),
    num_prompts: int | None = typer.Option(None, "-n", "--num-prompts", help="Prompts to run."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Prompts per batch."),
    precision: str | None = typer.Option(None, "--precision", help="float32, float16 or "
                                         "bfloat16."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help="Tokens to "
                                              "generate per prompt."),
    results_dir: Path | None = ResultsDirOpt,
    set_: list[str] = typer.Option([], "--set", help="Override any key: --set "
                                   "decoder.temperature=0.7 (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved plan and a "
                                 "memory estimate; run nothing."),
    resume: str | None = typer.Option(None, "--resume", help="Rerun only the unfinished "
                                      "processes of this experiment id (its saved config)."),
    experiment_id: str | None = typer.Option(None, "--experiment-id", help="Id of the new "
                                             "experiment (the same on every machine of a "
                                             "multi-node run)."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="Measure a running "
                                        "OpenAI-compatible server at this base URL (e.g. "
                                        "http://127.0.0.1:8000/v1), without a config file."),
) -> None:
    """Run an experiment: load, warm up, measure, store and summarise.

    With launch.num_processes > 1 the processes are started with accelerate launch. With
    engine openai (or --endpoint) a server is measured under load.
    """
    from llm_energy_measure.console import rendering
    from llm_energy_measure.console.serving import print_serving
    from llm_energy_measure.console.support import (
        endpoint_run_config,
        load_run_config,
        run_or_resume,
        run_warnings,
    )
    from llm_energy_measure.orchestration.plan import build_plan

    cfg = None
    if endpoint is not None:
        if config is not None or resume is not None or any(v is not None for v in (
                dataset, batch_size, precision)):
            raise ConfigurationError("--endpoint measures a running server without a config "
                                     "file: give only --model, -n, --max-new-tokens, "
                                     "--results-dir and --set with it")
        cfg = endpoint_run_config(endpoint, model=model, num_prompts=num_prompts,
                                  max_new_tokens=max_new_tokens, results_dir=results_dir,
                                  sets=set_)
    elif resume is None:
        if config is None:
            raise ConfigurationError("give an experiment config file, or --resume ID")
        cfg = load_run_config(
            config, model=model, dataset=dataset, num_prompts=num_prompts,
            batch_size=batch_size, precision=precision, max_new_tokens=max_new_tokens,
            results_dir=results_dir, sets=set_,
        )
    elif config is not None or set_ or any(v is not None for v in (
            model, dataset, num_prompts, batch_size, precision, max_new_tokens)):
        raise ConfigurationError("--resume uses the experiment's saved config: give no config "
                                 "file or config flags with it")
    elif dry_run:
        raise ConfigurationError("--dry-run plans a new experiment from a config file; it "
                                 "cannot be combined with --resume")
    if dry_run and cfg is not None:
        rendering.print_plan(build_plan(cfg))
        return
    for warning in run_warnings(cfg) if cfg is not None else []:
        typer.echo(f"warning: {warning}", err=True)
    with rendering.progress() as on_progress:
        report = run_or_resume(cfg, resume_id=resume, experiment_id=experiment_id,
                               results_dir=results_dir, config_path=config,
                               on_progress=on_progress)
    if report.aggregated is None:
        typer.echo(report.note)
        return
    rendering.print_summary(report.aggregated)
    print_serving(report.aggregated)
    rendering.print_process_table(report.aggregated)


@app.command()
@handle_errors
def aggregate(
    experiment_id: str | None = typer.Argument(None, help="Experiment to aggregate."),
    all_: bool = typer.Option(False, "--all", help="Aggregate every experiment not yet "
                              "aggregated."),
    force: bool = typer.Option(False, "--force", help="Re-aggregate even if done already."),
    allow_partial: bool = typer.Option(False, "--allow-partial", help="Accept missing "
                                       "processes (marked partial)."),
    results_dir: Path | None = ResultsDirOpt,
) -> None:
    """Combine the raw per-process results of experiments (late aggregation)."""
    from llm_energy_measure.console import rendering
    from llm_energy_measure.console.support import aggregate_experiments

    outcomes = aggregate_experiments(
        results_dir, experiment_id, all_=all_, force=force, allow_partial=allow_partial
    )
    rendering.print_aggregate_outcomes(outcomes)


@config_app.command("validate")
@handle_errors
def config_validate(path: Path = typer.Argument(..., help="Config file.")) -> None:
    """Check a config; print its warnings. Exit 2 when invalid."""
    from llm_energy_measure.config import config_hash, config_warnings, load_config

    cfg = load_config(path)
    for warning in config_warnings(cfg, cpu_count=os.cpu_count()):
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"{path}: valid (config hash {config_hash(cfg)})")


@config_app.command("show")
@handle_errors
def config_show(
    path: Path = typer.Argument(..., help="Config file."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of YAML."),
) -> None:
    """Print the resolved config (inheritance and defaults applied)."""
    from llm_energy_measure.config import load_config
    from llm_energy_measure.console import rendering

    rendering.print_config(load_config(path), as_json=as_json)


@results_app.command("list")
@handle_errors
def results_list(
    all_: bool = typer.Option(False, "--all", help="Include raw experiments not aggregated."),
    results_dir: Path | None = ResultsDirOpt,
) -> None:
    """List stored experiments, newest first."""
    from llm_energy_measure.console import rendering
    from llm_energy_measure.console.support import repository

    rendering.print_listing(repository(results_dir), include_raw=all_)


@results_app.command("show")
@handle_errors
def results_show(
    experiment_id: str = typer.Argument(..., help="Experiment id."),
    raw: bool = typer.Option(False, "--raw", help="Show each process's raw result."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    results_dir: Path | None = ResultsDirOpt,
) -> None:
    """Show one experiment's result."""
    from llm_energy_measure.console import rendering
    from llm_energy_measure.console.support import repository

    rendering.print_result(repository(results_dir), experiment_id, raw=raw, as_json=as_json)


@results_app.command("export")
@handle_errors
def results_export(
    experiment_ids: list[str] = typer.Argument(None, help="Experiments (default: all "
                                               "aggregated)."),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv, json or parquet."),
    output: Path = typer.Option(..., "--output", "-o", help="File to write."),
    results_dir: Path | None = ResultsDirOpt,
) -> None:
    """Export aggregated results to CSV, JSON or Parquet."""
    from llm_energy_measure.console.support import export_results

    path, count = export_results(results_dir, experiment_ids or [], fmt, output)
    typer.echo(f"exported {count} experiment(s) to {path}")


ExecutorOpt = typer.Option(None, "--executor", help="local, slurm or submitit-local "
                           "(default: the study file's executor).")


@study_app.command("run")
@handle_errors
def study_run(
    study_config: Path = typer.Argument(..., help="Study file (YAML or JSON)."),
    executor: str | None = ExecutorOpt,
    results_dir: Path | None = ResultsDirOpt,
) -> None:
    """Run every point x cycle of a study, each in its own process; exit 1 if any failed."""
    from llm_energy_measure.console import rendering
    from llm_energy_measure.orchestration.study.runner import StudyHooks, run_study

    rendering.print_study_outcome(run_study(
        study_config, results_dir=results_dir, executor=executor,
        hooks=StudyHooks(on_event=typer.echo),
    ))


@study_app.command("status")
@handle_errors
def study_status(
    study_id: str | None = typer.Argument(None, help="Study id (default: list studies)."),
    poll_jobs: bool = typer.Option(False, "--poll-jobs", help="Ask Slurm for the state of "
                                   "the study's unfinished jobs."),
    results_dir: Path | None = ResultsDirOpt,
) -> None:
    """Show a study's points, runs by status and failures (or list the studies)."""
    from llm_energy_measure.orchestration.study.status import describe_study

    typer.echo(describe_study(study_id, results_dir, poll_jobs=poll_jobs))


@study_app.command("resume")
@handle_errors
def study_resume(
    study_id: str = typer.Argument(..., help="Study id."),
    executor: str | None = ExecutorOpt,
    results_dir: Path | None = ResultsDirOpt,
) -> None:
    """Run the runs of a study that did not complete (no run is done twice)."""
    from llm_energy_measure.console import rendering
    from llm_energy_measure.orchestration.study.runner import StudyHooks, resume_study

    rendering.print_study_outcome(resume_study(
        study_id, results_dir=results_dir, executor=executor,
        hooks=StudyHooks(on_event=typer.echo),
    ))


@results_app.command("compare")
@handle_errors
def results_compare(
    experiment_ids: list[str] | None = typer.Argument(None, help="Experiments to compare."),
    study: str | None = typer.Option(None, "--study", help="Also compare every completed run "
                                     "of this study."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    results_dir: Path | None = ResultsDirOpt,
) -> None:
    """Compare experiments side by side: headline figures and config differences; for
    serving runs, each config at its highest SLO-meeting load and which spends less energy
    per token at equal latency."""
    from llm_energy_measure.config.precedence import effective_results_dir
    from llm_energy_measure.console import rendering
    from llm_energy_measure.console.support import repository
    from llm_energy_measure.results.analysis.compare import load_compared_results
    from llm_energy_measure.results.analysis.study_stats import load_manifest

    manifest = (load_manifest(effective_results_dir(flag_value=results_dir), study)
                if study is not None else None)
    results = load_compared_results(repository(results_dir), experiment_ids or [], manifest)
    rendering.print_comparison(results, as_json=as_json)


@results_app.command("export-mlflow")
@handle_errors
def results_export_mlflow(
    experiment_ids: list[str] = typer.Argument(..., help="Experiments to export."),
    tracking_uri: str = typer.Option(..., "--tracking-uri", help="MLflow tracking URI, e.g. "
                                     "file:///path/to/mlruns or http://host:5000."),
    experiment_name: str = typer.Option("llm-energy-measure", "--experiment-name",
                                        help="MLflow experiment (created when absent)."),
    results_dir: Path | None = ResultsDirOpt,
) -> None:
    """Log aggregated results to MLflow, one run each (needs the mlflow extra)."""
    from llm_energy_measure.console import rendering
    from llm_energy_measure.console.support import repository
    from llm_energy_measure.results.analysis.compare import load_aggregated_results
    from llm_energy_measure.results.export.mlflow import export_to_mlflow

    results = load_aggregated_results(repository(results_dir), experiment_ids)
    outcomes = export_to_mlflow(results, tracking_uri=tracking_uri,
                                experiment_name=experiment_name)
    rendering.print_mlflow_outcomes(outcomes, tracking_uri)


@study_app.command("report")
@handle_errors
def study_report(
    study_id: str = typer.Argument(..., help="Study id."),
    output: Path = typer.Option(..., "--output", "-o", help="HTML file to write."),
    results_dir: Path | None = ResultsDirOpt,
) -> None:
    """Write a single-file offline HTML report of a study (statistics and plots)."""
    from llm_energy_measure.config.precedence import effective_results_dir
    from llm_energy_measure.console.support import repository
    from llm_energy_measure.results.analysis.study_stats import load_manifest
    from llm_energy_measure.results.report.page import write_study_report

    manifest = load_manifest(effective_results_dir(flag_value=results_dir), study_id)
    path = write_study_report(manifest, repository(results_dir), output)
    typer.echo(f"report of study {manifest.study_id} written to {path}")


@study_app.command("export")
@handle_errors
def study_export(
    study_id: str = typer.Argument(..., help="Study id."),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv, json or parquet."),
    output: Path = typer.Option(..., "--output", "-o", help="File for one row per run."),
    point_stats: Path | None = typer.Option(None, "--point-stats", help="Also write the "
                                            "per-point statistics (csv/parquet) to this file."),
    figures_dir: Path | None = typer.Option(None, "--figures-dir", help="Folder for the data "
                                            "of the serving figures (default: the folder of "
                                            "--output)."),
    results_dir: Path | None = ResultsDirOpt,
) -> None:
    """Export a study's runs (and per-point statistics) to CSV, JSON or Parquet; a serving
    study also gets one CSV (and Parquet) per serving figure of the report."""
    from llm_energy_measure.config.precedence import effective_results_dir
    from llm_energy_measure.console.support import repository
    from llm_energy_measure.results.analysis.study_stats import load_manifest
    from llm_energy_measure.results.export.study import export_serving_figures, export_study

    manifest = load_manifest(effective_results_dir(flag_value=results_dir), study_id)
    repo = repository(results_dir)
    path = export_study(manifest, repo, fmt, output, point_stats_path=point_stats)
    typer.echo(f"exported study {manifest.study_id} to {path}")
    for written in export_serving_figures(manifest, repo, figures_dir or output.parent):
        typer.echo(f"serving figure data: {written}")


def main() -> None:
    """Console-script entry point: SIGTERM stops a run as Ctrl+C does (see interrupts)."""
    from llm_energy_measure.interrupts import install_stop_handlers

    install_stop_handlers()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
