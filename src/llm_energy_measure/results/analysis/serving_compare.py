"""``results compare`` for serving results: each config at the highest offered load that meets
its SLO, and which config spends less energy per token at equal latency.

*Equal latency* (docs/methodology.md 12.6): configs are compared where each meets the same
latency objective, at the highest offered load it sustains within it, i.e. the highest load
at which every run met the SLO (``ServingConfig.sustained``). There each config's p99 (or
other target percentile) is at most the same bound X, so "at equal latency" means "both
within X", each pushed as hard as it goes. The verdict compares the whole-window J/output
token (mean over the runs there; the whole window is always measured, the steady one may be
missing): ``N = (1 - J_best / J_other) x 100`` % less energy per token for the config with the
lowest J/token, against every other config. No verdict is given when the configs were judged
against different SLOs, when a config has no SLO, or when its energy is missing; estimated
energy is marked and named in a note.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from llm_energy_measure.console.textable import format_table
from llm_energy_measure.domain import AggregatedResult
from llm_energy_measure.results.analysis.compare import comparison_json, format_comparison
from llm_energy_measure.results.analysis.serving import (
    LoadKind,
    ServingConfig,
    group_serving,
    has_serving,
    load_text,
    slo_text,
)


@dataclass(frozen=True)
class SustainedRow:
    """One config at its highest SLO-meeting offered load (``offered_load`` None: no load
    met the SLO). Units: req/s (or requests in flight), J per output token, s."""

    config: str
    config_label: str
    slo: str | None
    load_kind: LoadKind | None
    offered_load: float | None
    runs: int
    energy_per_output_token_j: float | None
    steady_energy_per_output_token_j: float | None
    goodput_per_s: float | None
    ttft_p99_s: float | None
    energy_estimated: bool | None
    loads_tested: int


@dataclass(frozen=True)
class Verdict:
    """``better`` spends ``percent_less`` % less energy per output token than ``worse`` at
    equal latency (both within ``slo``), at their highest SLO-meeting loads."""

    better: str
    worse: str
    slo: str
    percent_less: float
    better_energy_per_output_token_j: float
    worse_energy_per_output_token_j: float
    better_load: str
    worse_load: str
    estimated: bool

    @property
    def text(self) -> str:
        star = "*" if self.estimated else ""
        return (f"at equal latency ({self.slo}) config {self.better} spends "
                f"{self.percent_less:.1f}% less energy per token than {self.worse} "
                f"({self.better_energy_per_output_token_j:.4g}{star} vs "
                f"{self.worse_energy_per_output_token_j:.4g}{star} J/token, whole window, at "
                f"{self.better_load} vs {self.worse_load})")


@dataclass(frozen=True)
class ServingComparison:
    """The rows, the verdicts and the notes (why a verdict is missing, estimates)."""

    rows: list[SustainedRow]
    verdicts: list[Verdict]
    notes: list[str]
    configs: list[ServingConfig]


def _row(config: ServingConfig) -> SustainedRow:
    group = config.sustained()
    slo = None if config.slo is None else slo_text(config.slo) or None
    if group is None:
        return SustainedRow(config.tag, config.label, slo, None, None, 0, None, None, None, None,
                            None, len(config.groups))
    return SustainedRow(
        config=config.tag, config_label=config.label, slo=slo, load_kind=group.load_kind,
        offered_load=group.offered_load, runs=group.runs,
        energy_per_output_token_j=group.mean("energy_per_output_token_j"),
        steady_energy_per_output_token_j=group.mean("steady_energy_per_output_token_j"),
        goodput_per_s=group.mean("goodput_per_s"), ttft_p99_s=group.mean("ttft_p99_s"),
        energy_estimated=group.energy_estimated, loads_tested=len(config.groups),
    )


def _verdicts(rows: Sequence[SustainedRow], notes: list[str]) -> list[Verdict]:
    if len(rows) < 2:
        return []
    if any(r.slo is None for r in rows):
        notes.append("no verdict at equal latency: some configs have no SLO (or runs judged "
                     "against different SLOs); set the same slo: for every run")
        return []
    if len({r.slo for r in rows}) > 1:
        notes.append("no verdict at equal latency: the configs were judged against different "
                     "SLOs (" + "; ".join(f"{r.config}: {r.slo}" for r in rows) + ")")
        return []
    for r in rows:
        if r.offered_load is None:
            notes.append(f"config {r.config} meets the SLO at none of the {r.loads_tested} "
                         "offered loads tested")
    ranked = [r for r in rows if r.energy_per_output_token_j is not None]
    for r in rows:
        if r.offered_load is not None and r.energy_per_output_token_j is None:
            notes.append(f"config {r.config}: no energy was measured at "
                         f"{load_text(r.load_kind or 'rate', r.offered_load)}")
    if len(ranked) < 2:
        return []
    ranked.sort(key=lambda r: r.energy_per_output_token_j or 0.0)
    best = ranked[0]
    assert best.energy_per_output_token_j is not None and best.slo is not None
    out = []
    for other in ranked[1:]:
        assert other.energy_per_output_token_j is not None
        assert other.offered_load is not None and best.offered_load is not None
        percent = (1.0 - best.energy_per_output_token_j / other.energy_per_output_token_j) * 100
        out.append(Verdict(
            better=best.config, worse=other.config, slo=best.slo, percent_less=percent,
            better_energy_per_output_token_j=best.energy_per_output_token_j,
            worse_energy_per_output_token_j=other.energy_per_output_token_j,
            better_load=load_text(best.load_kind or "rate", best.offered_load),
            worse_load=load_text(other.load_kind or "rate", other.offered_load),
            estimated=bool(best.energy_estimated or other.energy_estimated),
        ))
    return out


def compare_serving(results: Sequence[AggregatedResult]) -> ServingComparison:
    """Group the serving results by config and offered load (``analysis.serving``), take each
    config at its highest SLO-meeting load, and the verdicts at equal latency."""
    configs = group_serving(results)
    rows = [_row(c) for c in configs]
    notes: list[str] = []
    verdicts = _verdicts(rows, notes)
    if any(r.energy_estimated for r in rows):
        notes.append("figures marked * come from ESTIMATED energy, not measurements")
    return ServingComparison(rows, verdicts, notes, configs)


def _num(value: float | None, fmt: str, scale: float = 1.0) -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value * scale, fmt)


def format_serving_comparison(comparison: ServingComparison) -> str:
    """The serving part of ``results compare``: one row per config, notes, verdicts."""
    table = format_table(
        ("config", "SLO-meeting load", "runs", "J/token whole", "J/token steady",
         "goodput req/s", "TTFT p99 ms", "what sets it apart"),
        [
            (r.config,
             "none" if r.offered_load is None else load_text(r.load_kind or "rate",
                                                             r.offered_load),
             r.runs,
             _num(r.energy_per_output_token_j, ".4g") + ("*" if r.energy_estimated else ""),
             _num(r.steady_energy_per_output_token_j, ".4g")
             + ("*" if r.energy_estimated else ""),
             _num(r.goodput_per_s, ".3g"), _num(r.ttft_p99_s, ".1f", 1000.0), r.config_label)
            for r in comparison.rows
        ],
    )
    slos = sorted({r.slo for r in comparison.rows if r.slo})
    lines = [f"serving: each config at its highest offered load meeting the SLO "
             f"({'; '.join(slos) or 'none set'}); means over the runs there", table]
    lines += [f"note: {n}" for n in comparison.notes]
    lines += [v.text for v in comparison.verdicts]
    return "\n".join(lines)


def serving_comparison_json(comparison: ServingComparison) -> dict[str, Any]:
    """The serving comparison as plain JSON data (stored units)."""
    return {
        "rows": [asdict(r) for r in comparison.rows],
        "verdicts": [{**asdict(v), "text": v.text} for v in comparison.verdicts],
        "notes": list(comparison.notes),
        "equal_latency_rule": "each config at the highest offered load where every run met "
                              "the SLO; whole-window J/output token compared",
    }


def comparison_text(results: Sequence[AggregatedResult]) -> str:
    """The whole ``results compare`` text: the per-experiment comparison, then the serving
    comparison when some results are serving runs."""
    text = format_comparison(results)
    if has_serving(results):
        text += "\n\n" + format_serving_comparison(compare_serving(results))
    return text


def comparison_payload(results: Sequence[AggregatedResult]) -> dict[str, Any]:
    """``results compare --json``: the per-experiment comparison, with ``serving`` (see
    ``serving_comparison_json``) when some results are serving runs."""
    payload = comparison_json(results)
    if has_serving(results):
        payload["serving"] = serving_comparison_json(compare_serving(results))
    return payload
