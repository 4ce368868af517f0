"""Export a study: one row per completed run, and a per-point statistics table.

Run rows start with ``study_id``, ``point_id``, ``point_label``, one ``param.<dotted key>``
column per swept key (the point's override; empty when the point does not set it) and
``cycle``, then the flattened aggregated result (``results.exporters.flatten_result``: units
in the column names). Point rows hold ``point_id``, ``point_label``, the ``param.*`` columns,
``runs`` and, for every headline metric (``study_stats.HEADLINE_METRICS``), ``<metric>.n``,
``.mean``, ``.std``, ``.cv``, ``.ci95_low``, ``.ci95_high``, ``.high_variance``, ``.ci_method``
(``student_t``, ``log_scale`` or ``student_t_floor``, see ``stats.metric_stats``) and
``.too_noisy`` (too noisy to rank) over the point's runs (only ``n`` and ``mean`` with a
single run); metrics derived from energy also have
``<metric>.estimated`` (true when any run's energy is an estimate, empty without energy).

A study with serving results also has the data of each serving figure of the report
(``export_serving_figures``): ``<name>.csv``, and ``<name>.parquet`` when pyarrow is
installed, for every name of ``serving_figures.FIGURE_TABLES``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_energy_measure.domain import AggregatedResult
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.results.analysis.serving_figures import (
    FIGURE_TABLES,
    TIMELINE_COLUMNS,
    figure_tables,
    study_serving,
)
from llm_energy_measure.results.analysis.study_stats import (
    HEADLINE_METRICS,
    energy_estimated,
    load_study_results,
    point_statistics,
    point_values,
)
from llm_energy_measure.results.export.exporters import (
    EXPORT_FORMATS,
    Scalar,
    check_output_path,
    flatten_result,
    to_cell,
    write_rows_csv,
    write_rows_parquet,
)
from llm_energy_measure.storage.atomic import atomic_write_text

if TYPE_CHECKING:
    from llm_energy_measure.state.study_models import StudyManifest
    from llm_energy_measure.storage.repository import FileSystemRepository

PARAM_PREFIX = "param."


def swept_keys(manifest: StudyManifest) -> list[str]:
    """Every override key of the study's valid points, in first-seen order."""
    keys: dict[str, None] = {}
    for point in manifest.points:
        if point.valid:
            for key in point.overrides:
                keys.setdefault(key, None)
    return list(keys)


def _params(overrides: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Scalar]:
    return {f"{PARAM_PREFIX}{k}": to_cell(overrides.get(k)) for k in keys}


def run_rows(
    manifest: StudyManifest, results_by_point: Mapping[str, Sequence[AggregatedResult]]
) -> list[dict[str, Scalar]]:
    """One flat row per completed run (point order of the manifest, then cycle order)."""
    keys = swept_keys(manifest)
    cycles = {r.experiment_id: r.cycle for r in manifest.runs if r.experiment_id}
    rows: list[dict[str, Scalar]] = []
    for point in manifest.points:
        for result in results_by_point.get(point.point_id, ()):
            row: dict[str, Scalar] = {
                "study_id": manifest.study_id,
                "point_id": point.point_id,
                "point_label": point.label,
                **_params(point.overrides, keys),
                "cycle": cycles.get(result.experiment_id),
            }
            row.update(flatten_result(result))
            rows.append(row)
    return rows


def point_rows(
    manifest: StudyManifest, results_by_point: Mapping[str, Sequence[AggregatedResult]]
) -> list[dict[str, Scalar]]:
    """One row per point with runs: mean, std, cv and 95% CI of every headline metric."""
    keys = swept_keys(manifest)
    values = point_values(results_by_point)
    stats = point_statistics(results_by_point)
    rows: list[dict[str, Scalar]] = []
    for point in manifest.points:
        runs = results_by_point.get(point.point_id)
        if not runs:
            continue
        row: dict[str, Scalar] = {
            "point_id": point.point_id,
            "point_label": point.label,
            **_params(point.overrides, keys),
            "runs": len(runs),
        }
        estimated = energy_estimated(runs)
        for metric in HEADLINE_METRICS:
            found = values[point.point_id][metric.key]
            s = stats[point.point_id].get(metric.key)
            row[f"{metric.key}.n"] = len(found)
            if metric.from_energy:
                row[f"{metric.key}.estimated"] = estimated
            row[f"{metric.key}.mean"] = (
                s.mean if s is not None else (found[0] if found else None)
            )
            row[f"{metric.key}.std"] = None if s is None else s.std
            row[f"{metric.key}.cv"] = None if s is None else s.cv
            row[f"{metric.key}.ci95_low"] = None if s is None else s.ci95_low
            row[f"{metric.key}.ci95_high"] = None if s is None else s.ci95_high
            row[f"{metric.key}.high_variance"] = None if s is None else s.high_variance
            row[f"{metric.key}.ci_method"] = None if s is None else s.ci_method
            row[f"{metric.key}.too_noisy"] = None if s is None else s.too_noisy
        rows.append(row)
    return rows


def _columns(rows: Sequence[Mapping[str, Scalar]]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        for key in row:
            columns.setdefault(key, None)
    return list(columns)


def export_study(
    manifest: StudyManifest,
    repo: FileSystemRepository,
    fmt: str,
    path: Path,
    *,
    point_stats_path: Path | None = None,
) -> Path:
    """Write the study's run rows to ``path`` as csv, parquet or json; returns ``path``.

    JSON holds ``{"study": {...}, "runs": [...], "points": [...]}`` (points = per-point
    statistics). For CSV and Parquet, ``point_stats_path`` (optional) receives the per-point
    statistics table in the same format. Parquet needs the ``parquet`` extra.
    """
    fmt = fmt.lower()
    if fmt not in EXPORT_FORMATS:
        raise ConfigurationError(
            f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}"
        )
    path = check_output_path(path)
    if point_stats_path is not None:
        point_stats_path = check_output_path(point_stats_path)
    results_by_point = load_study_results(manifest, repo)
    runs = run_rows(manifest, results_by_point)
    points = point_rows(manifest, results_by_point)
    if fmt == "json":
        payload = {
            "study": {
                "study_id": manifest.study_id,
                "study_name": manifest.study_name,
                "study_hash": manifest.study_hash,
                "swept_keys": swept_keys(manifest),
            },
            "runs": runs,
            "points": points,
        }
        atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
        if point_stats_path is not None:
            atomic_write_text(point_stats_path, json.dumps(points, indent=2) + "\n")
        return path
    writer = write_rows_csv if fmt == "csv" else write_rows_parquet
    writer(_columns(runs), runs, path)
    if point_stats_path is not None:
        writer(_columns(points), points, point_stats_path)
    return path


def _pyarrow_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def export_serving_figures(
    manifest: StudyManifest, repo: FileSystemRepository, folder: Path
) -> list[Path]:
    """Write the data of every serving figure of the report to ``folder``: ``<name>.csv``
    and, when pyarrow is installed, ``<name>.parquet`` (names in ``FIGURE_TABLES``; columns in
    ``analysis.serving_figures``). Returns the paths written; none when the study has no
    serving results. The timeline without power samples is a header-only CSV (no Parquet)."""
    found = study_serving(manifest, load_study_results(manifest, repo), repo)
    if found is None:
        return []
    tables = figure_tables(*found)
    parquet = _pyarrow_available()
    written: list[Path] = []
    for name in FIGURE_TABLES:
        rows = tables[name]
        columns = _columns(rows) or list(TIMELINE_COLUMNS)
        csv_path = check_output_path(Path(folder) / f"{name}.csv")
        write_rows_csv(columns, rows, csv_path)
        written.append(csv_path)
        if parquet and rows:
            parquet_path = check_output_path(Path(folder) / f"{name}.parquet")
            write_rows_parquet(columns, rows, parquet_path)
            written.append(parquet_path)
    return written
