"""A single-file, offline HTML report of a study: statistics table and inline SVG plots
(the plots are drawn by ``report_figures``).

The page has no script, no external stylesheet, font or image: inline CSS and inline SVG drawn
by ``report_svg``. Every text from results or configs is escaped. The same inputs give the same
bytes (no clock is read; dates come from the manifest).

Per-point figures are means over the point's completed runs with a Student t 95% CI
(``study_stats.point_statistics``); a point with one run shows its value with no interval.
Estimated energy is marked ``*`` and announced in a banner; it is never presented as measured.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from llm_energy_measure.domain import AggregatedResult, EnvironmentInfo, MetricStats
from llm_energy_measure.results.analysis.study_stats import METRICS_BY_KEY, internal_cycle_stats
from llm_energy_measure.results.export.exporters import check_output_path
from llm_energy_measure.results.export.study import swept_keys
from llm_energy_measure.results.report.data import StudyReportData, load_study_report_data
from llm_energy_measure.results.report.figures import (
    Figures,
    compute_figures,
    labels_plot,
    parameter_plot,
    pareto_plot,
    throughput_power_plot,
    timeseries_plot,
)
from llm_energy_measure.results.report.serving import serving_section
from llm_energy_measure.storage.atomic import atomic_write_text

if TYPE_CHECKING:
    from llm_energy_measure.state.study_models import StudyManifest
    from llm_energy_measure.storage.repository import FileSystemRepository

#: At most this many swept keys get their own "energy per token vs parameter" plot.
MAX_PARAMETER_PLOTS = 4

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;
color:#202124;background:#fafafa;max-width:1200px}
h1{font-size:24px;margin:0 0 8px}h3{font-size:15px;margin:16px 0 6px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #dadce0;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;background:#fff}
th,td{border:1px solid #dadce0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f1f3f4}td.num{text-align:right;white-space:nowrap}
.ci{color:#5f6368;font-size:11px}.hv{color:#b06000;font-weight:600}
.banner{background:#fce8e6;border:1px solid #d93025;color:#a50e0e;padding:10px 14px;
margin:12px 0;border-radius:4px}
.note{color:#5f6368;font-size:13px}.wrap{overflow-x:auto}
figure{margin:16px 0;background:#fff;border:1px solid #dadce0;display:inline-block}
figcaption{font-size:12px;color:#5f6368;padding:4px 8px;max-width:740px}
code{background:#f1f3f4;padding:0 3px}
"""


def write_study_report(manifest: StudyManifest, repo: FileSystemRepository, path: Path) -> Path:
    """Render the study's report and write it atomically to ``path``; returns ``path``."""
    path = check_output_path(Path(path))
    html = render_study_report(load_study_report_data(manifest, repo))
    atomic_write_text(path, html)
    return path


# --------------------------------------------------------------------------- formatting


def _date(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "n/a"
    moment = _dt.datetime.fromtimestamp(epoch_s, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.{digits - 1}e}"
    return f"{value:.{digits}g}"


#: Display scale and unit of each headline metric in the table.
_DISPLAY: dict[str, tuple[float, str]] = {
    "output_tokens_per_s": (1.0, "tok/s"),
    "total_tokens_per_s": (1.0, "tok/s"),
    "energy_per_output_token_j": (1.0, "J"),
    "total_energy_j": (1.0, "J"),
    "mean_power_w": (1.0, "W"),
    "ttft_p50_s": (1000.0, "ms"),
    "ttft_p99_s": (1000.0, "ms"),
    "itl_p50_s": (1000.0, "ms"),
    "itl_p99_s": (1000.0, "ms"),
    "tpot_p50_s": (1000.0, "ms"),
    "tpot_p99_s": (1000.0, "ms"),
    "e2e_p50_s": (1000.0, "ms"),
    "mfu": (100.0, "%"),
}
_ENERGY_KEYS = {"energy_per_output_token_j", "total_energy_j", "mean_power_w"}


def _stat_cell(values: Sequence[float], stats: MetricStats | None, scale: float,
               estimated: bool) -> str:
    star = "*" if estimated else ""
    if not values:
        return '<td class="num">n/a</td>'
    if stats is None:
        return (f'<td class="num">{escape(_fmt(values[0] * scale))}{star}'
                f'<div class="ci">n=1, no CI</div></td>')
    hv = ""
    if stats.high_variance:
        cv = "" if stats.cv is None else f" cv {stats.cv * 100:.0f}%"
        hv = f'<div class="hv">high variance{escape(cv)}</div>'
    interval = (f'<div class="ci">[{escape(_fmt(stats.ci95_low * scale))}, '
                f'{escape(_fmt(stats.ci95_high * scale))}] n={stats.n}')
    if stats.ci_method != "student_t":
        # Asymmetric interval: no "±"; say which interval it is and that it cannot rank.
        method = "log-scale CI" if stats.ci_method == "log_scale" else "t CI floored at 0"
        return (
            f'<td class="num">{escape(_fmt(stats.mean * scale))}{star}{interval} '
            f'({method})</div><div class="hv">too noisy to rank</div>{hv}</td>'
        )
    half = (stats.ci95_high - stats.ci95_low) / 2 * scale
    if half <= abs(stats.mean * scale) * 1e-9:  # rounding noise of identical values
        half = 0.0
    return (
        f'<td class="num">{escape(_fmt(stats.mean * scale))}{star} ± {escape(_fmt(half, 2))}'
        f'{interval}</div>{hv}</td>'
    )


# --------------------------------------------------------------------------- sections


def _points_with_runs(data: StudyReportData) -> list[tuple[int, str, str]]:
    """(tag number, point id, label) of points with at least one run, in manifest order."""
    out: list[tuple[int, str, str]] = []
    for point in data.manifest.points:
        if data.results_by_point.get(point.point_id):
            out.append((len(out) + 1, point.point_id, point.label))
    return out


def _estimated_points(data: StudyReportData) -> set[str]:
    return {
        pid for pid, results in data.results_by_point.items()
        if any(r.energy is not None and r.energy.estimated for r in results)
    }


def _header(data: StudyReportData) -> str:
    m = data.manifest
    completed = sum(1 for r in m.runs if r.status == "completed")
    rows = [
        ("study id", m.study_id),
        ("study hash", m.study_hash),
        ("created", _date(m.created_at)),
        ("last updated", _date(m.updated_at)),
        ("status", m.status),
        ("points", str(len(m.points))),
        ("runs completed", f"{completed} of {len(m.runs)}"),
        ("executor", m.executor),
    ]
    if m.base_config_path:
        rows.append(("base config", m.base_config_path))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<h1>Study report: {escape(m.study_name)}</h1><table>{body}</table>"


def _environment(results: Iterable[AggregatedResult]) -> str:
    envs: dict[str, EnvironmentInfo] = {}
    for r in results:
        if r.environment is not None:
            envs.setdefault(r.environment.model_dump_json(), r.environment)
    if not envs:
        return '<h2>Environment</h2><p class="note">No environment recorded.</p>'
    env = next(iter(envs.values()))
    gpu_names: dict[str, int] = {}
    for gpu in env.gpus:
        gpu_names[gpu.name] = gpu_names.get(gpu.name, 0) + 1
    gpus = ", ".join(f"{n} x {name}" for name, n in gpu_names.items()) or "none"
    rows = [
        ("host", env.hostname), ("OS", env.os), ("CPU", env.cpu_model or "n/a"),
        ("GPUs", gpus), ("GPU driver", env.driver_version or "n/a"),
        ("CUDA", env.cuda_version or "n/a"), ("Python", env.python_version),
        ("torch", env.torch_version or "n/a"),
        ("transformers", env.transformers_version or "n/a"),
        ("llm-energy-measure", env.package_version),
        ("energy counters", ", ".join(env.energy_counters) or "none"),
    ]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    note = ""
    if len(envs) > 1:
        hosts = sorted({e.hostname for e in envs.values()})
        note = (f'<p class="note">The runs used {len(envs)} different environments (hosts: '
                f"{escape(', '.join(hosts))}); the first is shown.</p>")
    return f"<h2>Environment</h2><table>{body}</table>{note}"


def _banners(data: StudyReportData, tags: Mapping[str, int], estimated: set[str]) -> str:
    out = []
    if estimated:
        names = ", ".join(f"#{tags[p]}" for p in sorted(estimated, key=lambda p: tags.get(p, 0))
                          if p in tags)
        out.append(
            '<div class="banner"><strong>Estimated energy.</strong> Energy figures of points '
            f"{escape(names)} are ESTIMATES (no hardware counter or power sensor was "
            "available), not measurements. They are marked * and must not be compared with "
            "measured figures.</div>"
        )
    missing = sorted(tags[pid] for pid, results in data.results_by_point.items()
                     if pid in tags and any(r.energy is None for r in results))
    if missing:
        out.append('<div class="banner">No energy was measured for some runs of points '
                   f"{escape(', '.join(f'#{t}' for t in missing))}.</div>")
    return "".join(out)


#: The statistics are shown as two tables (so that each fits the page width).
_TABLE_GROUPS = (
    ("Throughput, energy and compute",
     ("output_tokens_per_s", "total_tokens_per_s", "energy_per_output_token_j",
      "total_energy_j", "mean_power_w", "mfu")),
    ("Latency per request",
     ("ttft_p50_s", "ttft_p99_s", "itl_p50_s", "itl_p99_s", "tpot_p50_s", "tpot_p99_s",
      "e2e_p50_s")),
)


def _stats_table(data: StudyReportData, points: Sequence[tuple[int, str, str]],
                 fig: Figures) -> str:
    tables = []
    for title, keys in _TABLE_GROUPS:
        metrics = [METRICS_BY_KEY[k] for k in keys]
        head = "".join(
            f"<th>{escape(m.label)} ({escape(_DISPLAY[m.key][1])})</th>" for m in metrics
        )
        rows = []
        for tag, pid, label in points:
            cells = "".join(
                _stat_cell(fig.values[pid][m.key], fig.stats[pid].get(m.key),
                           _DISPLAY[m.key][0], pid in fig.estimated and m.key in _ENERGY_KEYS)
                for m in metrics
            )
            runs = len(data.results_by_point[pid])
            rows.append(f"<tr><td>#{tag}</td><td>{escape(label)}<div class='ci'>"
                        f"{escape(pid)}</div></td><td class='num'>{runs}</td>{cells}</tr>")
        tables.append(
            f"<h3>{escape(title)}</h3><div class='wrap'><table><tr><th>#</th><th>point</th>"
            f"<th>runs</th>{head}</tr>{''.join(rows)}</table></div>"
        )
    inner = internal_cycle_stats(data.results_by_point)
    with_cycles = sum(len(v) for v in inner.values())
    cycles_note = (
        f'<p class="note">{with_cycles} run(s) also repeated their workload internally; those '
        "within-run cycle statistics stay in each experiment's result and are not mixed into "
        "the run-to-run figures above.</p>" if with_cycles else ""
    )
    return (
        "<h2>Per-point statistics</h2>"
        '<p class="note">Mean ± half-width of the 95% confidence interval (Student t) over '
        "each point's completed runs (one run = one cycle of the study); the interval and the "
        "number of runs are below each value. Where the t interval would reach below zero, the "
        "interval is taken on the log scale of the mean (marked <em>log-scale CI</em>, no ±) "
        "and the point is marked <span class='hv'>too noisy to rank</span>. "
        "<span class='hv'>high variance</span> marks a "
        "coefficient of variation above 10%. TTFT: time to first token; ITL: inter-token "
        "latency over every token gap; TPOT: each request's mean gap; e2e: until the request's "
        "batch returned. * = estimated energy.</p>"
        f"{''.join(tables)}{cycles_note}"
    )


def _warnings(results: Iterable[AggregatedResult]) -> str:
    counts: dict[tuple[str, str], int] = {}
    for r in results:
        for w in r.warnings:
            counts[(w.severity, w.code)] = counts.get((w.severity, w.code), 0) + 1
    if not counts:
        return ""
    body = "".join(
        f"<tr><td>{escape(sev)}</td><td><code>{escape(code)}</code></td>"
        f"<td class='num'>{n}</td></tr>"
        for (sev, code), n in sorted(counts.items())
    )
    return ("<h2>Measurement warnings</h2><table><tr><th>severity</th><th>code</th>"
            f"<th>runs</th></tr>{body}</table>")


def _points_legend(data: StudyReportData, points: Sequence[tuple[int, str, str]]) -> str:
    rows = "".join(
        f"<tr><td>#{tag}</td><td>{escape(label)}</td>"
        f"<td>{escape(', '.join(r.experiment_id for r in data.results_by_point[pid]))}</td></tr>"
        for tag, pid, label in points
    )
    return ("<h2>Runs of each point</h2><div class='wrap'><table><tr><th>#</th><th>point</th>"
            f"<th>experiments</th></tr>{rows}</table></div>")


def render_study_report(data: StudyReportData) -> str:
    """The complete HTML page (a string) for a study; deterministic for the same inputs."""
    from llm_energy_measure import __version__

    points = _points_with_runs(data)
    tags = {pid: tag for tag, pid, _ in points}
    estimated = _estimated_points(data)
    all_results = [r for _, pid, _ in points for r in data.results_by_point[pid]]
    parts = [_header(data), _banners(data, tags, estimated), _environment(all_results)]
    if not points:
        parts.append('<p class="note">No completed runs yet: nothing to report.</p>')
    else:
        fig = compute_figures(data, points, estimated)
        parts.append(_stats_table(data, points, fig))
        parts.append("<h2>Energy per output token</h2>")
        keys = swept_keys(data.manifest)
        if keys:
            parts.extend(parameter_plot(data, points, fig, k, keys)
                         for k in keys[:MAX_PARAMETER_PLOTS])
            if len(keys) > MAX_PARAMETER_PLOTS:
                parts.append(f'<p class="note">{len(keys) - MAX_PARAMETER_PLOTS} more swept '
                             "parameters are not plotted.</p>")
        else:
            parts.append(labels_plot(points, fig))
        parts.append("<h2>Throughput and power</h2>")
        parts.append(throughput_power_plot(data, points, fig.means))
        parts.append("<h2>Pareto frontiers</h2>")
        parts.append(pareto_plot(fig.means, x_key="e2e_p50_s",
                                  x_label="end-to-end latency p50 (ms)", x_scale=1000.0,
                                  maximize_x=False))
        parts.append(pareto_plot(fig.means, x_key="output_tokens_per_s",
                                  x_label="output throughput (tok/s)", x_scale=1.0,
                                  maximize_x=True))
        parts.append("<h2>Time series</h2>")
        parts.append(timeseries_plot(data))
        if data.serving is not None:
            parts.append(serving_section(data.serving))
        parts.append(_warnings(all_results))
        parts.append(_points_legend(data, points))
    parts.append(f'<p class="note">Generated by llm-energy-measure {escape(__version__)} from '
                 f"study manifest {escape(data.manifest.study_id)}.</p>")
    title = escape(f"Study report: {data.manifest.study_name}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        + "\n".join(p for p in parts if p)
        + "</body></html>\n"
    )
