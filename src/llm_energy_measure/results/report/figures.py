"""The figures of the study report: per-point means and inline SVG plots (energy per token
against each swept parameter, throughput and power, Pareto frontiers, a power time series).

Values come from ``study_stats`` once per report (:func:`compute_figures`); drawing is
``report_svg``'s. Estimated energy is said so in every caption that plots it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from llm_energy_measure.domain import MetricStats
from llm_energy_measure.results.analysis.pareto import pareto_mask
from llm_energy_measure.results.analysis.study_stats import (
    HEADLINE_METRICS,
    point_statistics,
    point_values,
)
from llm_energy_measure.results.report.data import StudyReportData
from llm_energy_measure.results.report.svg import MUTED, PALETTE, Chart, Series, render_chart

_BASE = "(base)"


@dataclass(frozen=True)
class Figures:
    """Per-point figures, computed once per report: headline values of each run
    (``point_values``), statistics (``point_statistics``), the points with estimated energy,
    and one row of means per point with runs (see ``_means``)."""

    values: dict[str, dict[str, list[float]]]
    stats: dict[str, dict[str, MetricStats]]
    estimated: set[str]
    means: list[dict[str, Any]]


def compute_figures(data: StudyReportData, points: Sequence[tuple[int, str, str]],
             estimated: set[str]) -> Figures:
    values = point_values(data.results_by_point)
    return Figures(values, point_statistics(data.results_by_point), estimated,
                    _means(values, points, estimated))


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _energy_scale(values: Iterable[float]) -> tuple[float, str]:
    """Joules, or millijoules when every value is below 0.1 J (readable tick labels)."""
    vals = [abs(v) for v in values]
    return (1000.0, "mJ") if vals and max(vals) < 0.1 else (1.0, "J")


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _estimate_caption(fig: Figures) -> str:
    if not fig.estimated:
        return ""
    return " Some plotted energy figures are estimates (points marked * in the table)."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _value_text(value: Any) -> str:
    if value is None:
        return _BASE
    return str(value)


def parameter_plot(data: StudyReportData, points: Sequence[tuple[int, str, str]],
                    fig: Figures, key: str, keys: Sequence[str]) -> str:
    m = data.manifest
    epj = [v for _, pid, _ in points for v in fig.values[pid]["energy_per_output_token_j"]]
    scale, unit = _energy_scale(epj)
    raw_x: dict[str, Any] = {pid: m.point(pid).overrides.get(key) for _, pid, _ in points}
    numeric = all(_is_number(v) for v in raw_x.values())
    labels: list[str] = []
    for v in raw_x.values():
        if _value_text(v) not in labels:
            labels.append(_value_text(v))

    def x_of(pid: str) -> float:
        value = raw_x[pid]
        return float(value) if numeric else float(labels.index(_value_text(value)))
    others = [k for k in keys if k != key]
    groups: dict[str, list[str]] = {}
    for _, pid, _ in points:
        ov = m.point(pid).overrides
        name = ", ".join(f"{k}={_value_text(ov.get(k))}" for k in others) or "all points"
        groups.setdefault(name, []).append(pid)
    series = []
    for i, (name, pids) in enumerate(groups.items()):
        rows = []
        for pid in pids:
            mean = _mean(fig.values[pid]["energy_per_output_token_j"])
            if mean is None:
                continue
            s = fig.stats[pid].get("energy_per_output_token_j")
            err = None if s is None else (s.ci95_low * scale, s.ci95_high * scale)
            rows.append((x_of(pid), mean * scale, err))
        rows.sort(key=lambda r: r[0])
        series.append(Series(
            name=name, points=[(x, y) for x, y, _ in rows], errors=[e for _, _, e in rows],
            color=PALETTE[i % len(PALETTE)],
        ))
    chart = Chart(
        title=f"Energy per output token vs {key}",
        x_label=key, y_label=f"energy per output token ({unit})", series=series,
        categories=None if numeric else labels,
        note="error bars: 95% CI over runs (none with a single run)",
    )
    return _figure(render_chart(chart), f"Mean energy per output token of each point against "
                   f"{key}; one line per combination of the other swept parameters."
                   + _estimate_caption(fig))


def labels_plot(points: Sequence[tuple[int, str, str]], fig: Figures) -> str:
    """Energy per token per point, when there is no swept parameter to put on the x axis."""
    epj = [v for _, pid, _ in points for v in fig.values[pid]["energy_per_output_token_j"]]
    scale, unit = _energy_scale(epj)
    xy, errs = [], []
    for i, (_, pid, _) in enumerate(points):
        mean = _mean(fig.values[pid]["energy_per_output_token_j"])
        if mean is None:
            continue
        s = fig.stats[pid].get("energy_per_output_token_j")
        xy.append((float(i), mean * scale))
        errs.append(None if s is None else (s.ci95_low * scale, s.ci95_high * scale))
    chart = Chart(
        title="Energy per output token by point", x_label="point",
        y_label=f"energy per output token ({unit})",
        series=[Series("mean over runs", xy, errors=errs, line=False)],
        categories=[f"#{tag}" for tag, _, _ in points],
        note="error bars: 95% CI over runs (none with a single run)",
    )
    return _figure(render_chart(chart), "Mean energy per output token of each point."
                   + _estimate_caption(fig))


def _means(values: Mapping[str, Mapping[str, Sequence[float]]],
           points: Sequence[tuple[int, str, str]], estimated: set[str]) -> list[dict[str, Any]]:
    """One row per point: its tag (``*`` for estimated energy), id and headline means."""
    out = []
    for tag, pid, _ in points:
        star = "*" if pid in estimated else ""
        row: dict[str, Any] = {"tag": f"#{tag}{star}", "point_id": pid}
        for m in HEADLINE_METRICS:
            row[m.key] = _mean(values[pid][m.key])
        out.append(row)
    return out


def throughput_power_plot(data: StudyReportData, points: Sequence[tuple[int, str, str]],
                           means: Sequence[dict[str, Any]]) -> str:
    runs = [
        (r.energy.mean_power_w, r.inference.output_tokens_per_s)
        for _, pid, _ in points for r in data.results_by_point[pid]
        if r.energy is not None and r.energy.mean_power_w is not None
    ]
    ok = [m for m in means if m["mean_power_w"] is not None]
    chart = Chart(
        title="Output throughput vs mean power",
        x_label="mean power (W)", y_label="output throughput (tok/s)",
        series=[
            Series("single runs", runs, color=MUTED, line=False, marker_radius=3),
            Series("point mean", [(m["mean_power_w"], m["output_tokens_per_s"]) for m in ok],
                   color=PALETTE[0], line=False, labels=[m["tag"] for m in ok]),
        ],
    )
    return _figure(render_chart(chart), "Each labelled marker is a point's mean over its runs "
                   "(labels as in the statistics table; * = estimated energy); grey markers are "
                   "single runs.")


def pareto_plot(all_means: Sequence[dict[str, Any]], *, x_key: str, x_label: str,
                 x_scale: float, maximize_x: bool) -> str:
    means = [m for m in all_means
             if m["energy_per_output_token_j"] is not None and m[x_key] is not None]
    scale, unit = _energy_scale(m["energy_per_output_token_j"] for m in means)
    mask = pareto_mask(
        means, minimize=("energy_per_output_token_j",) + (() if maximize_x else (x_key,)),
        maximize=(x_key,) if maximize_x else (),
    )
    front = sorted((m for m, on in zip(means, mask, strict=True) if on), key=lambda m: m[x_key])
    rest = [m for m, on in zip(means, mask, strict=True) if not on]

    def xy(rows: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
        return [(m[x_key] * x_scale, m["energy_per_output_token_j"] * scale) for m in rows]

    goal = "higher throughput" if maximize_x else "lower latency"
    chart = Chart(
        title=f"Pareto frontier: energy per token vs {x_label.split(' (')[0]}",
        x_label=x_label, y_label=f"energy per output token ({unit})",
        series=[
            Series("dominated", xy(rest), color=MUTED, line=False,
                   labels=[m["tag"] for m in rest]),
            Series("Pareto frontier", xy(front), color=PALETTE[3],
                   labels=[m["tag"] for m in front], marker_radius=5),
        ],
        note=f"better: lower energy per token and {goal} (point means over runs)",
    )
    return _figure(render_chart(chart), f"Points on the frontier are not beaten on both "
                   f"energy per token and {goal} by any other point.")


def timeseries_plot(data: StudyReportData) -> str:
    samples = data.timeseries
    if not samples:
        return '<p class="note">No run of this study recorded a power time series.</p>'
    use_power = any(s.power_w is not None for s in samples)
    field = "power_w" if use_power else "utilisation_pct"
    t0 = min(s.t_s for s in samples)
    by_device: dict[str, list[tuple[float, float]]] = {}
    for s in sorted(samples, key=lambda s: (s.device_id, s.t_s)):
        value = getattr(s, field)
        if value is not None:
            by_device.setdefault(s.device_id, []).append((s.t_s - t0, float(value)))
    series = [Series(dev, pts, color=PALETTE[i % len(PALETTE)], marker=len(pts) < 40,
                     marker_radius=2.5, line_width=1.5)
              for i, (dev, pts) in enumerate(sorted(by_device.items()))]
    what = "power (W)" if use_power else "utilisation (%)"
    chart = Chart(
        title=f"{'Power' if use_power else 'Utilisation'} during run "
              f"{data.timeseries_experiment_id}",
        x_label="time since first sample (s)", y_label=what, series=series,
        y_from_zero=True,
    )
    caption = ("Sampled power of each device during the first completed run with samples."
               if use_power else "No power samples were recorded; utilisation is shown instead.")
    return _figure(render_chart(chart), caption)
