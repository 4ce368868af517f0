"""Side-by-side comparison of aggregated results: headline rows, config diff, caveat notes.

The rows keep each figure in its stored unit (tok/s, J, s, W, MFU as a fraction); the text
table converts latencies to milliseconds and MFU to percent, and marks every figure derived
from estimated energy (J/token, power) with ``*``. The notes say when figures are not like
for like (estimated against measured energy, different energy coverage), because such a
comparison must not pass silently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from llm_energy_measure.console.textable import format_table
from llm_energy_measure.domain import AggregatedResult
from llm_energy_measure.exceptions import ConfigurationError

if TYPE_CHECKING:
    from llm_energy_measure.state.study_models import StudyManifest
    from llm_energy_measure.storage.repository import FileSystemRepository

#: Marks a missing key in a config diff (rendered as ``<absent>``).
ABSENT = "<absent>"


@dataclass(frozen=True)
class ComparisonRow:
    """Headline figures of one experiment. Units: tok/s, J per output token, s, W, fraction.
    ``itl_p50_s`` is ITL per token gap, ``tpot_p50_s`` TPOT per request."""

    experiment_id: str
    model: str
    precision: str
    batch_size: int | None
    output_tokens_per_s: float
    energy_per_output_token_j: float | None
    energy_estimated: bool | None
    ttft_p50_s: float | None
    itl_p50_s: float | None
    tpot_p50_s: float | None
    mean_power_w: float | None
    mfu: float | None


def config_value(config: Mapping[str, Any], dotted_key: str) -> Any:
    """The value at ``a.b.c`` in a nested mapping, or ``ABSENT``."""
    node: Any = config
    for part in dotted_key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return ABSENT
        node = node[part]
    return node


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{dotted key: leaf value}`` (empty mappings are leaves)."""
    flat: dict[str, Any] = {}
    for key in sorted(config, key=str):
        value = config[key]
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_config(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _row(result: AggregatedResult) -> ComparisonRow:
    cfg = result.effective_config
    precision = config_value(cfg, "model.precision")
    batch = config_value(cfg, "batching.batch_size")
    energy = result.energy
    inf = result.inference
    return ComparisonRow(
        experiment_id=result.experiment_id,
        model=result.model.name,
        precision=str(precision) if precision is not ABSENT else result.model.dtype,
        batch_size=batch if isinstance(batch, int) and not isinstance(batch, bool) else None,
        output_tokens_per_s=inf.output_tokens_per_s,
        energy_per_output_token_j=None if energy is None else energy.energy_per_output_token_j,
        energy_estimated=None if energy is None else energy.estimated,
        ttft_p50_s=None if inf.ttft is None else inf.ttft.p50_s,
        itl_p50_s=None if inf.itl is None else inf.itl.p50_s,
        tpot_p50_s=None if inf.tpot is None else inf.tpot.p50_s,
        mean_power_w=None if energy is None else energy.mean_power_w,
        mfu=result.compute.mfu,
    )


def compare_results(results: Sequence[AggregatedResult]) -> list[ComparisonRow]:
    """One ``ComparisonRow`` per result, in the given order."""
    return [_row(r) for r in results]


def config_diff(results: Sequence[AggregatedResult]) -> dict[str, list[Any]]:
    """Effective-config keys whose values differ between the results.

    ``{dotted key: [value in result 0, value in result 1, ...]}``, keys sorted; a key missing
    from a result's config has the value ``ABSENT``. Empty for fewer than two results.
    """
    if len(results) < 2:
        return {}
    flats = [flatten_config(r.effective_config) for r in results]
    keys = sorted(set().union(*flats))
    diff: dict[str, list[Any]] = {}
    for key in keys:
        values = [flat.get(key, ABSENT) for flat in flats]
        canonical = {json.dumps(v, sort_keys=True, default=str) for v in values}
        if len(canonical) > 1:
            diff[key] = values
    return diff


def comparison_notes(results: Sequence[AggregatedResult]) -> list[str]:
    """Caveats that make some figures not directly comparable (empty when none)."""
    notes: list[str] = []
    estimated = [r.experiment_id for r in results if r.energy is not None and r.energy.estimated]
    measured = [r.experiment_id for r in results if r.energy is not None and not r.energy.estimated]
    missing = [r.experiment_id for r in results if r.energy is None]
    if estimated and measured:
        notes.append(
            f"energy of {', '.join(estimated)} is an ESTIMATE and of {', '.join(measured)} a "
            "measurement: their J/token figures are not comparable"
        )
    elif estimated:
        notes.append("all energy figures are estimates, not measurements")
    if missing:
        notes.append(f"no energy was measured for {', '.join(missing)}")
    coverage = {
        r.experiment_id: tuple(sorted({d.kind for d in r.energy.devices}))
        for r in results
        if r.energy is not None and r.energy.devices
    }
    if len(set(coverage.values())) > 1:
        parts = [f"{eid}: {'+'.join(kinds)}" for eid, kinds in coverage.items()]
        notes.append(f"energy covers different devices ({'; '.join(parts)})")
    return notes


def _num(value: float | None, fmt: str, scale: float = 1.0) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return format(value * scale, fmt)


def _cell(value: Any) -> str:
    if value is ABSENT:
        return ABSENT
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def format_comparison(results: Sequence[AggregatedResult]) -> str:
    """The text of ``results compare``: headline table, notes, then the config diff."""
    rows = compare_results(results)
    table = format_table(
        ("experiment", "model", "precision", "batch", "out tok/s", "J/token", "TTFT p50 ms",
         "ITL p50 ms", "TPOT p50 ms", "power W", "MFU %"),
        [
            (
                r.experiment_id, r.model, r.precision,
                "n/a" if r.batch_size is None else r.batch_size,
                _num(r.output_tokens_per_s, ".2f"),
                _num(r.energy_per_output_token_j, ".4g") + ("*" if r.energy_estimated else ""),
                _num(r.ttft_p50_s, ".2f", 1000.0),
                _num(r.itl_p50_s, ".2f", 1000.0),
                _num(r.tpot_p50_s, ".2f", 1000.0),
                _num(r.mean_power_w, ".1f") + ("*" if r.energy_estimated else ""),
                _num(r.mfu, ".2f", 100.0),
            )
            for r in rows
        ],
    )
    lines = [table]
    if any(r.energy_estimated for r in rows):
        lines.append("* energy is an estimate, not a measurement")
    lines += [f"note: {n}" for n in comparison_notes(results)]
    diff = config_diff(results)
    if len(results) >= 2:
        lines.append("")
        if diff:
            lines.append("config differences:")
            lines.append(format_table(
                ("key", *[r.experiment_id for r in results]),
                [(key, *[_cell(v) for v in values]) for key, values in diff.items()],
            ))
        else:
            lines.append("config differences: none")
    return "\n".join(lines)


def comparison_json(results: Sequence[AggregatedResult]) -> dict[str, Any]:
    """The comparison as plain JSON data: rows, config diff and notes (stored units)."""
    return {
        "rows": [asdict(r) for r in compare_results(results)],
        "config_diff": config_diff(results),
        "notes": comparison_notes(results),
    }


def load_aggregated_results(
    repo: FileSystemRepository, experiment_ids: Sequence[str]
) -> list[AggregatedResult]:
    """The aggregated results of these experiments, in order (ConfigurationError naming the
    first id that has none, with the command that makes it)."""
    from llm_energy_measure.security import sanitize_experiment_id

    if not experiment_ids:
        raise ConfigurationError("give at least one experiment id")
    results = []
    for raw_id in experiment_ids:
        exp_id = sanitize_experiment_id(raw_id)
        result = repo.load_aggregated(exp_id)
        if result is None:
            raise ConfigurationError(
                f"experiment {exp_id!r} has no aggregated result; run "
                f"`llm-energy-measure aggregate {exp_id}` (list results with "
                "`llm-energy-measure results list --all`)"
            )
        results.append(result)
    return results


def load_compared_results(
    repo: FileSystemRepository, experiment_ids: Sequence[str],
    manifest: StudyManifest | None = None,
) -> list[AggregatedResult]:
    """The results to compare: those of ``experiment_ids`` (in order), then every completed
    run of the study of ``manifest`` (point order, then cycle order) when one is given."""
    results = load_aggregated_results(repo, experiment_ids) if experiment_ids else []
    if manifest is not None:
        from llm_energy_measure.results.analysis.study_stats import load_study_results

        by_point = load_study_results(manifest, repo)
        results += [r for point in manifest.points for r in by_point.get(point.point_id, ())]
        if not results:
            raise ConfigurationError(f"study {manifest.study_id!r} has no completed run to "
                                     "compare yet")
    elif not results:
        raise ConfigurationError("give at least one experiment id, or --study STUDY_ID")
    return results
