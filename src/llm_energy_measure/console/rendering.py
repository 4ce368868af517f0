"""What the CLI prints: summaries, listings, plans. Formatting only, no measuring."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

from llm_energy_measure.console.textable import cell, format_pairs, format_table, si

if TYPE_CHECKING:
    from llm_energy_measure.config.models import ExperimentConfig
    from llm_energy_measure.domain import (
        AggregatedResult,
        EngineInfo,
        LatencyStats,
        RawProcessResult,
    )
    from llm_energy_measure.orchestration.aggregate import AggregateOutcome
    from llm_energy_measure.results import FileSystemRepository
    from llm_energy_measure.state.study_models import StudyManifest


#: Appended to every figure derived from estimated energy.
ESTIMATE_MARK = " (estimate)"


def _ms(stats: LatencyStats | None, field: str) -> str:
    if stats is None:
        return "n/a"
    return f"{getattr(stats, field) * 1000:.2f} ms"


def _pct(x: float | None) -> str:
    return "n/a (device peak unknown)" if x is None else f"{x * 100:.2f} %"


def _bytes(n: int | None) -> str:
    return "n/a" if n is None else si(float(n), "B")


def engine_label(engine: EngineInfo) -> str:
    """``name version (batching)``, e.g. ``transformers 4.57.1 (static batches ...)``."""
    label = engine.name + (f" {engine.version}" if engine.version else "")
    return label + (f" ({engine.batching})" if engine.batching else "")


def summary_pairs(result: AggregatedResult | RawProcessResult) -> list[tuple[str, object]]:
    """Headline figures of a result as (label, value) rows."""
    inf = result.inference
    pairs: list[tuple[str, object]] = [
        ("experiment", result.experiment_id),
        ("engine", engine_label(result.engine)),
        ("model", f"{result.model.name} ({result.model.dtype}, "
                  f"{si(result.model.num_parameters, 'params')})"),
        ("requests", inf.num_requests),
        ("tokens in / out", f"{inf.input_tokens} / {inf.output_tokens}"),
        ("inference time", f"{inf.inference_time_s:.3f} s"),
        ("throughput", f"{inf.output_tokens_per_s:.2f} out tok/s, "
                       f"{inf.total_tokens_per_s:.2f} total tok/s, {inf.requests_per_s:.3f} req/s"),
        ("TTFT p50 / p99", f"{_ms(inf.ttft, 'p50_s')} / {_ms(inf.ttft, 'p99_s')}"),
        ("ITL p50 / p99 (per token gap)",
         f"{_ms(inf.itl, 'p50_s')} / {_ms(inf.itl, 'p99_s')}"),
        ("TPOT p50 / p99 (per request)",
         f"{_ms(inf.tpot, 'p50_s')} / {_ms(inf.tpot, 'p99_s')}"),
        ("e2e p50 / p99 (batch return)", f"{_ms(inf.e2e, 'p50_s')} / {_ms(inf.e2e, 'p99_s')}"),
        ("own completion p50 / p99",
         f"{_ms(inf.completion, 'p50_s')} / {_ms(inf.completion, 'p99_s')}"),
    ]
    e = result.energy
    if e is None:
        pairs.append(("energy", "not measured"))
    else:
        kind = "ESTIMATE, not a measurement" if e.estimated else "measured"
        mark = ESTIMATE_MARK if e.estimated else ""
        dyn = "n/a (no baseline)" if e.dynamic_energy_j is None else f"{e.dynamic_energy_j:.3f} J"
        devices = ", ".join(f"{d.kind}:{d.method}" for d in e.devices)
        pairs += [
            ("energy total", f"{e.total_energy_j:.3f} J ({kind}; {devices})"),
            ("energy dynamic", dyn + (mark if e.dynamic_energy_j is not None else "")),
            ("energy per output token", si(e.energy_per_output_token_j, "J") + mark),
            ("mean power", si(e.mean_power_w, "W") + mark),
        ]
        if e.emissions_g is not None:
            pairs.append(("emissions", f"{e.emissions_g:.4f} gCO2eq "
                                       f"({e.carbon_intensity_g_per_kwh} g/kWh)" + mark))
    c = result.compute
    if c.flops is not None:
        pairs += [
            ("FLOPs", f"{si(c.flops.total_flops, 'FLOP')} ({c.flops.method})"),
            ("achieved", si(c.achieved_flops_per_s, "FLOP/s")),
        ]
    pairs += [("MFU", _pct(c.mfu)), ("MBU", _pct(c.mbu))]
    m = result.memory
    pairs += [
        ("peak memory", f"GPU {_bytes(m.gpu_peak_allocated_bytes)}, "
                        f"CPU RSS {_bytes(m.cpu_peak_rss_bytes)}"),
        ("weights", _bytes(m.model_weights_bytes)),
    ]
    return pairs


def cycle_stat_lines(result: AggregatedResult) -> list[str]:
    """One line per metric summarised over cycles; energy figures carry the estimate mark."""
    estimated = result.energy is not None and result.energy.estimated
    lines = []
    for stat_name, stat in sorted(result.cycle_stats.items()):
        mark = ESTIMATE_MARK if estimated and stat_name.startswith("energy") else ""
        lines.append(f"{stat_name}: mean {stat.mean:.4g}{mark} ± CI95 [{stat.ci95_low:.4g}, "
                     f"{stat.ci95_high:.4g}] over {stat.n} cycles"
                     + _CI_NOTES.get(stat.ci_method, "")
                     + (" (high variance)" if stat.high_variance else ""))
    return lines


#: How a CI other than Student t is named where it is shown.
_CI_NOTES = {
    "log_scale": " (log-scale CI: the t interval crossed 0; too noisy to rank)",
    "student_t_floor": " (t CI floored at 0; too noisy to rank)",
}


def print_summary(result: AggregatedResult) -> None:
    """The run summary table, then every warning."""
    typer.echo(format_pairs(summary_pairs(result)))
    for line in cycle_stat_lines(result):
        typer.echo(line)
    for w in result.warnings:
        typer.echo(cell(f"{w.severity}: [{w.code}] {w.message}"), err=True)
    for figure, reason in sorted(result.engine.unreported.items()):
        typer.echo(cell(f"info: [not_reported] {figure}: {reason}"), err=True)


def print_plan(plan: dict[str, Any]) -> None:
    """The resolved dry-run plan."""
    import yaml

    typer.echo(yaml.safe_dump(plan, sort_keys=False).rstrip())


def print_config(config: ExperimentConfig, *, as_json: bool) -> None:
    """A resolved config as YAML (default) or JSON."""
    data = config.model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        import yaml

        typer.echo(yaml.safe_dump(data, sort_keys=False).rstrip())


def print_aggregate_outcomes(outcomes: Sequence[AggregateOutcome]) -> None:
    """One line per experiment; exits 1 when any failed."""
    for o in outcomes:
        typer.echo(cell(f"{o.experiment_id}: {o.status}" + (f" ({o.detail})" if o.detail
                                                            else "")))
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


def print_listing(repo: FileSystemRepository, *, include_raw: bool) -> None:
    """The `results list` table."""
    rows = repo.list_summaries(include_raw=include_raw)
    if not rows:
        typer.echo("no results")
        return
    table = [
        (
            r.experiment_id, r.config_name, r.model_name, r.num_processes, r.output_tokens,
            "" if r.output_tokens_per_s is None else f"{r.output_tokens_per_s:.1f}",
            "" if r.energy_j is None else f"{r.energy_j:.2f}" + ("*" if r.estimated else ""),
            "yes" if r.aggregated else "no",
        )
        for r in rows
    ]
    sys.stdout.write(format_table(
        ("id", "config", "model", "procs", "out tokens", "tok/s", "energy J", "aggregated"),
        table,
    ) + "\n* energy is an estimate\n")


def print_result(
    repo: FileSystemRepository, experiment_id: str, *, raw: bool, as_json: bool
) -> None:
    """One experiment: aggregated summary, or each process's raw result."""
    from llm_energy_measure.exceptions import ConfigurationError
    from llm_energy_measure.results.analysis.compare import load_aggregated_results
    from llm_energy_measure.security import sanitize_experiment_id

    exp_id = sanitize_experiment_id(experiment_id)
    if raw:
        raws = repo.load_all_raw(exp_id)
        if not raws:
            raise ConfigurationError(f"no raw results for experiment {exp_id!r}")
        if as_json:
            typer.echo(json.dumps([r.model_dump(mode="json") for r in raws], indent=2))
            return
        for r in raws:
            typer.echo(cell(f"== process {r.process_index} on {r.hostname}"))
            typer.echo(format_pairs(summary_pairs(r)))
        return
    result = load_aggregated_results(repo, [exp_id])[0]
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    print_summary(result)
    if result.serving is not None:
        from llm_energy_measure.console.serving import print_serving

        print_serving(result)
    print_process_table(result)


def print_process_table(result: AggregatedResult) -> None:
    """One row per process of a multi-process result (nothing for a single process)."""
    if len(result.processes) > 1:
        star = "*" if result.energy is not None and result.energy.estimated else ""
        typer.echo(format_table(
            ("process", "host", "out tokens", "tok/s", "energy J"),
            [(p.process_index, p.hostname, p.output_tokens, f"{p.output_tokens_per_s:.1f}",
              "" if p.energy_j is None else f"{p.energy_j:.2f}{star}")
             for p in result.processes],
        ) + ("\n* energy is an estimate" if star else ""))


@contextmanager
def progress() -> Iterator[Callable[[str, int, int], None]]:
    """A progress display on stderr; yields the callback the orchestrator reports to."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task("starting", total=None)

    def update(stage: str, done: int, total: int) -> None:
        bar.update(task, description=stage, completed=done, total=total or None)

    with bar:
        yield update


def print_comparison(results: Sequence[AggregatedResult], *, as_json: bool) -> None:
    """The `results compare` output: headline table, caveat notes, config differences and,
    for serving results, each config at its highest SLO-meeting load with the verdict."""
    from llm_energy_measure.results.analysis.serving_compare import (
        comparison_payload,
        comparison_text,
    )

    if as_json:
        typer.echo(json.dumps(comparison_payload(results), indent=2, default=str))
    else:
        typer.echo(comparison_text(results))


def print_mlflow_outcomes(outcomes: Sequence[Any], tracking_uri: str) -> None:
    """One line per experiment exported to (or already in) MLflow."""
    for o in outcomes:
        verb = "exported as" if o.status == "exported" else "already in MLflow as"
        typer.echo(f"{o.experiment_id}: {verb} run {o.run_id}")
    typer.echo(f"MLflow tracking URI: {tracking_uri}")


def print_study_outcome(manifest: StudyManifest) -> None:
    """A study's summary after `study run` / `study resume`; exits 1 unless it completed."""
    from llm_energy_measure.orchestration.study.status import study_summary_text

    typer.echo(study_summary_text(manifest))
    if manifest.status != "completed":
        raise typer.Exit(1)
