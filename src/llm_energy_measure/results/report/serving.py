"""The serving figures of the study report (only for studies with serving results).

Latency (TTFT and ITL p50/p99), J/output token and goodput against the offered load, the
Pareto front of J/token against TTFT p99 over every (config, load), and one run's power with
the requests in flight. Configs are grouped and named by ``analysis.serving`` (tags A, B, ...);
each figure's numbers come from its ``analysis.serving_figures`` table, embedded under the
figure and written by ``study export`` as ``<table name>.csv`` (and ``.parquet``).

Goodput: the dashed grey line is goodput = offered rate (every request sent meets the SLO;
open loop only); a green halo marks a load where every run met the SLO, a red one where
some run missed it, and "max in SLO" labels each config's highest SLO-meeting load, the
load at which ``results compare`` judges it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from llm_energy_measure.results.analysis import serving_figures as tables
from llm_energy_measure.results.analysis.serving import (
    LoadKind,
    ServingConfig,
    ServingGroup,
    slo_text,
)
from llm_energy_measure.results.analysis.serving_figures import ServingTimeline
from llm_energy_measure.results.export.exporters import Scalar
from llm_energy_measure.results.report.svg import MUTED, PALETTE, Chart, Series, render_chart

#: At most this many rows of the power timeline are embedded (the export holds them all).
MAX_EMBEDDED_ROWS = 200
_MET, _MISSED = "#A8DDB5", "#F4B6B6"


@dataclass(frozen=True)
class ServingReport:
    """What the serving section shows: the configs with their groups, the power timeline
    (None when no run has power samples) and every figure's table."""

    configs: tuple[ServingConfig, ...]
    timeline: ServingTimeline | None
    tables: Mapping[str, Sequence[Mapping[str, Scalar]]]


def build_serving_report(configs: Sequence[ServingConfig],
                         timeline: ServingTimeline | None) -> ServingReport:
    return ServingReport(tuple(configs), timeline,
                         tables.figure_tables(configs, timeline))


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _x_label(kind: LoadKind) -> str:
    return ("offered load (req/s)" if kind == "rate"
            else "offered load: concurrency (requests in flight)")


def _estimated(config: ServingConfig) -> bool:
    return any(g.energy_estimated for g in config.groups)


def _energy_name(config: ServingConfig) -> str:
    return config.name + (" [estimate]" if _estimated(config) else "")


def _estimate_caption(configs: Sequence[ServingConfig]) -> str:
    est = [c.tag for c in configs if _estimated(c)]
    if not est:
        return ""
    return (f" Energy of config {', '.join(est)} is an ESTIMATE (marked [estimate]), not a "
            "measurement.")


def _energy_scale(values: Sequence[float]) -> tuple[float, str]:
    return (1000.0, "mJ") if values and max(abs(v) for v in values) < 0.1 else (1.0, "J")


def _fmt(value: Scalar) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if not math.isfinite(value):
        return "n/a"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        return f"{value:.3e}"
    return f"{value:.4g}"


def _data_table(name: str, rows: Sequence[Mapping[str, Scalar]]) -> str:
    """The figure's table in a collapsed ``<details>`` (stored units, 4 significant digits)."""
    if not rows:
        return ""
    columns = list(rows[0])
    shown = rows[:MAX_EMBEDDED_ROWS]
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td class='num'>{escape(_fmt(r.get(c)))}</td>"
                                    for c in columns) + "</tr>" for r in shown)
    more = (f" (first {len(shown)} of {len(rows)} rows)" if len(rows) > len(shown) else "")
    return (f"<details><summary class='note'>Data: <code>{escape(name)}.csv</code>{more}, "
            "written by <code>llm-energy-measure study export</code></summary>"
            f"<div class='wrap'><table><tr>{head}</tr>{body}</table></div></details>")


def _figure(report: ServingReport, chart: Chart, caption: str, table: str | None) -> str:
    data = "" if table is None else _data_table(table, report.tables.get(table, ()))
    return (f"<figure>{render_chart(chart)}<figcaption>{escape(caption)}</figcaption>"
            f"</figure>{data}")


def _per_config(configs: Sequence[ServingConfig], kind: LoadKind, key: str, *, scale: float,
                name: Callable[[ServingConfig], str], dash: str = "", width: float = 2.0,
                radius: float = 4.0) -> list[Series]:
    """One series per config: mean of ``key`` x ``scale`` against offered load, CI bars."""
    out = []
    for i, config in enumerate(configs):
        groups = [g for g in config.groups if g.load_kind == kind and g.mean(key) is not None]
        if not groups:
            continue
        errors = []
        for g in groups:
            ci = g.ci(key)
            errors.append(None if ci is None else (ci[0] * scale, ci[1] * scale))
        out.append(Series(name(config), [(g.offered_load, (g.mean(key) or 0.0) * scale)
                                         for g in groups],
                          color=_color(i), errors=errors, dash=dash, line_width=width,
                          marker_radius=radius))
    return out


def _tagged(suffix: str) -> Callable[[ServingConfig], str]:
    def name(config: ServingConfig) -> str:
        return f"{config.tag} {suffix}"

    return name


def _latency_charts(report: ServingReport, kind: LoadKind, suffix: str) -> str:
    configs = report.configs
    out = []
    for what, label in (("ttft", "TTFT"), ("itl", "ITL (per token gap)")):
        series = []
        for percentile, dash, width in (("p99", "", 2.0), ("p50", "6 4", 1.5)):
            series += _per_config(configs, kind, f"{what}_{percentile}_s", scale=1000.0,
                                  name=_tagged(percentile), dash=dash, width=width,
                                  radius=3.0 if percentile == "p50" else 4.0)
        chart = Chart(title=f"{label} vs offered load{suffix}", x_label=_x_label(kind),
                      y_label=f"{label} (ms)", series=series, y_from_zero=True,
                      note="solid: p99, dashed: p50; error bars: 95% CI over runs")
        # One table holds both charts' data: shown once, under the second.
        out.append(_figure(report, chart, f"{label} percentiles of each config (mean over "
                           "the runs at each offered load; each run's own percentile).",
                           tables.LATENCY if what == "itl" else None))
    return "".join(out)


def _energy_chart(report: ServingReport, kind: LoadKind, suffix: str) -> str:
    configs = report.configs
    keys = ("energy_per_output_token_j", "steady_energy_per_output_token_j")
    scale, unit = _energy_scale([v for c in configs for g in c.groups for k in keys
                                 for v in g.values[k]])
    series = _per_config(configs, kind, keys[0], scale=scale, name=_energy_name)
    series += _per_config(configs, kind, keys[1], scale=scale, dash="6 4", width=1.5,
                          radius=3.0, name=_tagged("steady"))
    chart = Chart(title=f"Energy per output token vs offered load{suffix}",
                  x_label=_x_label(kind), y_label=f"energy per output token ({unit})",
                  series=series, y_from_zero=True,
                  note="solid: whole window, dashed: steady window; bars: 95% CI over runs")
    return _figure(report, chart, "J per output token of each config against the offered "
                   "load." + _estimate_caption(configs), tables.ENERGY)


def _goodput_chart(report: ServingReport, kind: LoadKind, suffix: str) -> str:
    configs = report.configs
    groups = [(i, c, g) for i, c in enumerate(configs) for g in c.groups
              if g.load_kind == kind and g.mean("goodput_per_s") is not None]
    if not groups:
        return ('<p class="note">No run has an SLO (<code>slo:</code> in the config), so '
                "there is no goodput to plot.</p>")

    def halo(name: str, color: str, pick: Callable[[ServingGroup], bool]) -> Series:
        return Series(name, [(g.offered_load, g.mean("goodput_per_s") or 0.0)
                             for _, _, g in groups if pick(g)],
                      color=color, line=False, marker_radius=8.0)

    series = [halo("SLO met (every run)", _MET, lambda g: bool(g.slo_met)),
              halo("SLO missed", _MISSED, lambda g: g.slo_met is False)]
    if kind == "rate" and groups:
        loads = sorted({g.offered_load for _, _, g in groups})
        series.append(Series("goodput = offered rate", [(loads[0], loads[0]),
                                                        (loads[-1], loads[-1])],
                             color=MUTED, marker=False, dash="6 4", line_width=1.5))
    for i, config in enumerate(configs):
        own = [g for _, c, g in groups if c is config]
        if own:
            best = config.sustained()
            series.append(Series(config.name, [(g.offered_load, g.mean("goodput_per_s") or 0.0)
                                               for g in own], color=_color(i),
                                 labels=["max in SLO" if g is best else "" for g in own]))
    slos = sorted({slo_text(c.slo) if c.slo is not None else "mixed" for c in configs})
    chart = Chart(title=f"Goodput vs offered load{suffix}", x_label=_x_label(kind),
                  y_label="goodput (SLO-meeting requests/s)", series=series,
                  y_from_zero=True, note=f"SLO: {'; '.join(slos)}")
    ideal = (" The dashed grey line is goodput = offered rate (every request meets the SLO)."
             if kind == "rate" else "")
    return _figure(report, chart, "Requests meeting the SLO per second of the whole window "
                   "(mean over runs). Green halo: every run at that load met the SLO; red: "
                   "some run missed it; 'max in SLO': the config's highest load meeting it."
                   + ideal,
                   tables.GOODPUT)


def _pareto_chart(report: ServingReport) -> str:
    configs = report.configs
    rows = [r for r in report.tables.get(tables.PARETO, ()) if r["on_front"] is not None]
    scale, unit = _energy_scale([float(r["energy_per_output_token_j"] or 0.0) for r in rows])

    def xy(r: Mapping[str, Scalar]) -> tuple[float, float]:
        return (float(r["ttft_p99_s"] or 0.0) * 1000.0,
                float(r["energy_per_output_token_j"] or 0.0) * scale)

    series = []
    for i, config in enumerate(configs):
        own = [r for r in rows if r["config"] == config.tag]
        if own:
            series.append(Series(_energy_name(config), [xy(r) for r in own], color=_color(i),
                                 line=False, labels=[f"{config.tag}@{_fmt(r['offered_load'])}"
                                                     for r in own]))
    front = sorted((xy(r) for r in rows if r["on_front"]), key=lambda p: p)
    series.append(Series("Pareto front", front, color="#202124", marker=False,
                         line_width=1.5))
    chart = Chart(title="Pareto front: energy per token vs TTFT p99",
                  x_label="TTFT p99 (ms)", y_label=f"energy per output token ({unit})",
                  series=series, note="better: lower J/token and lower TTFT p99 "
                  "(means over runs; label: config@offered load)")
    return _figure(report, chart, "Every (config, offered load) of the study; the line joins "
                   "those that no other beats on both whole-window J/token and TTFT p99."
                   + _estimate_caption(configs), tables.PARETO)


def _timeline_chart(report: ServingReport) -> str:
    timeline = report.timeline
    if timeline is None:
        return '<p class="note">No serving run of this study recorded power samples.</p>'
    power = [(t, p) for t, p, _, _ in timeline.points]
    flight = [(t, float(n)) for t, _, n, _ in timeline.points if n is not None]
    many = len(power) >= 40
    series = [Series("power, all devices (W)", power, color=PALETTE[0], marker=not many,
                     marker_radius=2.5, line_width=1.5)]
    if flight:
        series.append(Series("requests in flight", flight, color=PALETTE[1], marker=not many,
                             marker_radius=2.5, line_width=1.5, axis="y2"))
    c = timeline.choice
    chart = Chart(title=f"Power and requests in flight during run {c.experiment_id}",
                  x_label="time since the window start (s)", y_label="power (W)",
                  y2_label="requests in flight", series=series, y_from_zero=True)
    return _figure(report, chart, f"Run {c.experiment_id} (config {c.config_tag} at "
                   f"{c.load_label}): {c.reason}. Power summed over the devices sampled at "
                   "each time; requests in flight on the right-hand axis.", tables.TIMELINE)


def _configs_table(configs: Sequence[ServingConfig]) -> str:
    rows = []
    for c in configs:
        best = c.sustained()
        loads = ", ".join(g.load_label for g in c.groups)
        rows.append(
            f"<tr><td>{escape(c.tag)}</td><td>{escape(c.label)}<div class='ci'>"
            f"{escape(c.key)}</div></td><td>{escape(loads)}</td>"
            f"<td class='num'>{sum(g.runs for g in c.groups)}</td>"
            f"<td>{escape(slo_text(c.slo) if c.slo is not None else 'mixed') or 'none'}</td>"
            f"<td>{escape(best.load_label if best is not None else 'none')}</td></tr>")
    return ("<div class='wrap'><table><tr><th>config</th><th>what sets it apart</th>"
            "<th>offered loads</th><th>runs</th><th>SLO</th><th>highest load meeting the SLO"
            f"</th></tr>{''.join(rows)}</table></div>")


def serving_section(report: ServingReport) -> str:
    """The report's serving section (HTML)."""
    configs = report.configs
    kinds: list[LoadKind] = sorted({g.load_kind for c in configs for g in c.groups})
    parts = [
        "<h2>Serving: energy at a latency target</h2>",
        '<p class="note">Runs are grouped by config (the effective config without the load '
        "axis: offered rate or concurrency, number of requests, duration) and offered load; "
        "each figure is the mean over the runs of a group, error bars its 95% CI (Student t, "
        "none with one run). A load meets the SLO when every run there met it.</p>",
        _configs_table(configs),
    ]
    for kind in kinds:
        suffix = "" if len(kinds) == 1 else (" (open loop)" if kind == "rate"
                                             else " (closed loop)")
        parts.append(f"<h3>Latency{escape(suffix)}</h3>")
        parts.append(_latency_charts(report, kind, suffix))
        parts.append(f"<h3>Energy per token{escape(suffix)}</h3>")
        parts.append(_energy_chart(report, kind, suffix))
        parts.append(f"<h3>Goodput{escape(suffix)}</h3>")
        parts.append(_goodput_chart(report, kind, suffix))
    parts.append("<h3>Pareto front</h3>")
    parts.append(_pareto_chart(report))
    parts.append("<h3>Power timeline</h3>")
    parts.append(_timeline_chart(report))
    return "".join(parts)
