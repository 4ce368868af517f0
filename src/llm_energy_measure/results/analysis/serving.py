"""Serving results grouped by config and offered load, with per-group means and CIs.

A serving study sweeps the offered load of one or more configs. Here each result is placed
by two things:

- its **config**: the effective config without the load axis and without what does not change
  the measurement. Left out: the fields the config hash leaves out (``config_name``, ``slo``,
  ``results_dir``, ``decoder.preset``, per-machine launch details) and every ``load`` key but
  ``load.arrival`` (``rate_per_s``, ``concurrency``, ``num_requests``, ``duration_s``,
  warm-up and limits: how much load, for how long). Results whose remaining configs are equal
  share a config (``config_key``: 16 hex digits of the sha256 of its canonical JSON).
- its **offered load**: ``serving.rate_per_s`` (req/s, open loop) or ``serving.concurrency``
  (requests kept in flight, closed loop).

The results of one (config, offered load) are repeats (study cycles, or repeated runs): each
metric is the mean over them, with the Student t 95% CI of ``stats.metric_stats`` when at
least two report it (as ``study_stats`` does for study points). Latency percentiles are
each run's own percentile, averaged over runs. The SLO counts as met at a load when every run
there met it (``slo.met``): a load met in some runs only is not sustained.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from llm_energy_measure.domain import AggregatedResult, MetricStats
from llm_energy_measure.domain.serving import ServingMetrics, SloTarget
from llm_energy_measure.results.analysis.compare import flatten_config
from llm_energy_measure.results.analysis.stats import metric_stats

LoadKind = Literal["rate", "concurrency"]

#: Top-level config sections and nested keys that do not change what a serving run measures
#: (mirrors ``config.hashing.HASH_EXCLUDED_FIELDS``), left out of the config identity.
_NOT_MEASURED: dict[str, Any] = {
    "config_name": True,
    "slo": True,
    "results_dir": True,
    "decoder": {"preset"},
    "launch": {"machine_rank", "main_process_ip", "main_process_port", "process_timeout_s"},
}
#: The one ``load`` key kept in the config identity: the shape of the traffic.
_LOAD_KEPT = ("arrival",)


@dataclass(frozen=True)
class ServingMetric:
    """A per-run serving figure: key (unit in its name), label and how to read it."""

    key: str
    label: str
    read: Callable[[AggregatedResult, ServingMetrics], float | None]
    #: Derived from the energy figures: an estimate wherever the energy is.
    from_energy: bool = False


def _latency(name: str, field_name: str) -> Callable[[AggregatedResult, ServingMetrics],
                                                      float | None]:
    def read(result: AggregatedResult, _: ServingMetrics) -> float | None:
        stats = getattr(result.inference, name)
        return None if stats is None else float(getattr(stats, field_name))

    return read


def _steady_epj(_: AggregatedResult, s: ServingMetrics) -> float | None:
    return None if s.steady is None else s.steady.energy_per_output_token_j


#: Figures averaged per (config, offered load). Units: s, J, req/s, tok/s, W, fraction.
SERVING_METRICS: tuple[ServingMetric, ...] = (
    ServingMetric("ttft_p50_s", "TTFT p50", _latency("ttft", "p50_s")),
    ServingMetric("ttft_p99_s", "TTFT p99", _latency("ttft", "p99_s")),
    ServingMetric("itl_p50_s", "ITL p50 (per token gap)", _latency("itl", "p50_s")),
    ServingMetric("itl_p99_s", "ITL p99 (per token gap)", _latency("itl", "p99_s")),
    ServingMetric("e2e_p99_s", "e2e p99", _latency("e2e", "p99_s")),
    ServingMetric("energy_per_output_token_j", "energy per output token (whole window)",
                  lambda _, s: s.whole.energy_per_output_token_j, from_energy=True),
    ServingMetric("steady_energy_per_output_token_j",
                  "energy per output token (steady window)", _steady_epj, from_energy=True),
    ServingMetric("mean_power_w", "mean power (whole window)",
                  lambda _, s: s.whole.mean_power_w, from_energy=True),
    ServingMetric("requests_per_s", "completed requests per second (whole window)",
                  lambda _, s: s.whole.requests_per_s),
    ServingMetric("output_tokens_per_s", "output throughput (whole window)",
                  lambda _, s: s.whole.output_tokens_per_s),
    ServingMetric("goodput_per_s", "goodput (SLO-meeting requests per second)",
                  lambda _, s: None if s.slo is None else s.slo.goodput_per_s),
    ServingMetric("slo_attainment", "SLO attainment (share of requests sent)",
                  lambda _, s: None if s.slo is None else s.slo.attainment),
)
SERVING_METRICS_BY_KEY = {m.key: m for m in SERVING_METRICS}


def config_identity(result: AggregatedResult) -> dict[str, Any]:
    """The result's effective config without the load axis and the unmeasured fields (see
    the module docstring), as plain JSON data."""
    data = json.loads(json.dumps(result.effective_config, default=str))
    for key, rule in _NOT_MEASURED.items():
        if rule is True:
            data.pop(key, None)
        elif isinstance(data.get(key), dict):
            for nested in rule:
                data[key].pop(nested, None)
    if isinstance(data.get("load"), dict):
        data["load"] = {k: v for k, v in data["load"].items() if k in _LOAD_KEPT}
    return dict(data)


def config_key(result: AggregatedResult) -> str:
    """16 hex digits of the sha256 of the canonical JSON of ``config_identity``."""
    text = json.dumps(config_identity(result), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def offered_load(serving: ServingMetrics) -> tuple[LoadKind, float] | None:
    """(``rate``, req/s) in open loop, (``concurrency``, requests) in closed loop; None when
    the result records neither."""
    if serving.arrival == "concurrency":
        return None if serving.concurrency is None else ("concurrency", float(serving.concurrency))
    return None if serving.rate_per_s is None else ("rate", float(serving.rate_per_s))


def load_text(kind: LoadKind, value: float) -> str:
    """``8 req/s`` or ``concurrency 16``."""
    number = f"{value:g}"
    return f"{number} req/s" if kind == "rate" else f"concurrency {number}"


def slo_text(targets: Sequence[SloTarget]) -> str:
    """``TTFT p99 <= 500 ms, ITL p99 <= 50 ms`` (empty without targets)."""
    return ", ".join(f"{t.metric.upper()} {t.percentile} <= {t.target_s * 1000:g} ms"
                     for t in targets)


def _slo_signature(s: ServingMetrics) -> tuple[tuple[str, str, float], ...]:
    if s.slo is None:
        return ()
    return tuple(sorted((t.metric, t.percentile, t.target_s) for t in s.slo.targets))


@dataclass(frozen=True)
class ServingGroup:
    """The runs of one config at one offered load.

    ``values``: each metric of each run that reports it (run order); ``stats``: MetricStats
    where at least two runs report it. ``slo_met``: every run met its SLO (None when no run
    has one); ``slo_runs_met``: how many did. ``energy_estimated``: some run's energy is an
    estimate (None when no run has energy)."""

    config_tag: str
    load_kind: LoadKind
    offered_load: float
    experiment_ids: tuple[str, ...]
    values: dict[str, list[float]]
    stats: dict[str, MetricStats]
    slo_met: bool | None
    slo_runs_met: int
    energy_estimated: bool | None

    def mean(self, key: str) -> float | None:
        """The metric's mean over the runs that report it (None when none does)."""
        found = self.values.get(key) or []
        return math.fsum(found) / len(found) if found else None

    def ci(self, key: str) -> tuple[float, float] | None:
        """The metric's 95% CI (None with fewer than two runs)."""
        s = self.stats.get(key)
        return None if s is None else (s.ci95_low, s.ci95_high)

    @property
    def runs(self) -> int:
        return len(self.experiment_ids)

    @property
    def load_label(self) -> str:
        return load_text(self.load_kind, self.offered_load)


@dataclass(frozen=True)
class ServingConfig:
    """One config: its tag (``A``, ``B``...), key, label (what sets it apart from the other
    configs), SLO targets (None when its runs were judged against different ones) and its
    groups in ascending offered load."""

    tag: str
    key: str
    label: str
    slo: tuple[SloTarget, ...] | None
    groups: tuple[ServingGroup, ...] = field(default=())

    @property
    def name(self) -> str:
        """``A: model.precision=float16``."""
        return f"{self.tag}: {self.label}"

    def sustained(self) -> ServingGroup | None:
        """The group at the highest offered load whose SLO was met in every run (None when
        no load met it)."""
        met = [g for g in self.groups if g.slo_met]
        return max(met, key=lambda g: g.offered_load) if met else None


def _tag(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _labels(identities: Sequence[Mapping[str, Any]], results: Sequence[AggregatedResult]
            ) -> list[str]:
    """What sets each config apart: ``key=value`` of every differing config key; with one
    config, its served model."""
    if len(identities) == 1:
        s = results[0].serving
        return [s.served_model if s is not None else results[0].config_name]
    flats = [flatten_config(i) for i in identities]
    keys = sorted(set().union(*flats))
    differing = [k for k in keys
                 if len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]
    return [", ".join(f"{k}={f.get(k, '<absent>')}" for k in differing) for f in flats]


def _group(tag: str, kind: LoadKind, load: float, runs: Sequence[AggregatedResult]
           ) -> ServingGroup:
    values: dict[str, list[float]] = {m.key: [] for m in SERVING_METRICS}
    for result in runs:
        assert result.serving is not None
        for metric in SERVING_METRICS:
            value = metric.read(result, result.serving)
            if value is not None and math.isfinite(value):
                values[metric.key].append(float(value))
    slos = [r.serving.slo for r in runs if r.serving is not None and r.serving.slo is not None]
    energies = [r.energy for r in runs if r.energy is not None]
    return ServingGroup(
        config_tag=tag, load_kind=kind, offered_load=load,
        experiment_ids=tuple(r.experiment_id for r in runs), values=values,
        stats={k: metric_stats(v) for k, v in values.items() if len(v) >= 2},
        slo_met=(len(slos) == len(runs) and all(s.met for s in slos)) if slos else None,
        slo_runs_met=sum(1 for s in slos if s.met),
        energy_estimated=any(e.estimated for e in energies) if energies else None,
    )


def group_serving(results: Sequence[AggregatedResult]) -> list[ServingConfig]:
    """The serving results (others are skipped) by config, in order of first appearance,
    each with its groups by offered load (see the module docstring)."""
    by_config: dict[str, list[AggregatedResult]] = {}
    identities: dict[str, dict[str, Any]] = {}
    for result in results:
        if result.serving is None or offered_load(result.serving) is None:
            continue
        key = config_key(result)
        by_config.setdefault(key, []).append(result)
        identities.setdefault(key, config_identity(result))
    keys = list(by_config)
    labels = _labels([identities[k] for k in keys], [by_config[k][0] for k in keys])
    configs = []
    for index, key in enumerate(keys):
        tag = _tag(index)
        by_load: dict[tuple[LoadKind, float], list[AggregatedResult]] = {}
        for result in by_config[key]:
            assert result.serving is not None
            load = offered_load(result.serving)
            assert load is not None
            by_load.setdefault(load, []).append(result)
        signatures = {_slo_signature(r.serving) for r in by_config[key] if r.serving}
        first = by_config[key][0].serving
        assert first is not None
        slo = (first.slo.targets if first.slo is not None else ()) if len(signatures) == 1 \
            else None
        groups = tuple(_group(tag, kind, load, runs)
                       for (kind, load), runs in sorted(by_load.items()))
        configs.append(ServingConfig(tag, key, labels[index], slo, groups))
    return configs


def has_serving(results: Sequence[AggregatedResult]) -> bool:
    """Whether any result is a serving run with an offered load."""
    return any(r.serving is not None and offered_load(r.serving) is not None for r in results)
