"""Export results to CSV, JSON and Parquet.

CSV and Parquet hold one row per result with flattened dotted columns
(``energy.total_energy_j``, ``inference.ttft.p50_s``, ``cycle_stats.energy_j.mean``...). The
column order follows the result schema (free-form maps such as ``effective_config`` by sorted
key), so it is the same for every export of the same kind of results. Sequences (devices,
per-process summaries, warnings) are stored as one JSON text cell. JSON export writes the full
results as a list. Values keep their units (seconds, joules, bytes) as named in the columns.
"""

from __future__ import annotations

import csv
import io
import json
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel

from llm_energy_measure.domain import AggregatedResult, RawProcessResult
from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError
from llm_energy_measure.storage.atomic import atomic_write_bytes, atomic_write_text, write_target

Scalar = str | int | float | bool | None
ExportableResult = AggregatedResult | RawProcessResult
#: Bulky per-request and per-sample sequences left out of flat (CSV/Parquet) rows by default.
DEFAULT_FLAT_EXCLUDE = ("requests", "timeseries")
#: Formats ``export_aggregated`` understands.
EXPORT_FORMATS = ("csv", "json", "parquet")
#: The first column: which kind of result a row is.
RESULT_TYPE_COLUMN = "result_type"

_SortKey = tuple[tuple[int, str], ...]


def _model_class(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X`` or ``X | None``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        for arg in typing.get_args(annotation):
            found = _model_class(arg)
            if found is not None:
                return found
    return None


def to_cell(value: Any) -> Scalar:
    """One value as a CSV/Parquet cell: scalars as they are, anything else as JSON text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json"), sort_keys=True)
    if isinstance(value, (list, tuple)):
        return json.dumps(
            [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value],
            sort_keys=True,
            default=str,
        )
    return json.dumps(value, sort_keys=True, default=str)


class _Flattener:
    def __init__(self) -> None:
        self.cells: dict[str, Scalar] = {}
        self.order: dict[str, _SortKey] = {}

    def put(self, key: str, sort_key: _SortKey, value: Any) -> None:
        self.cells[key] = to_cell(value)
        self.order[key] = sort_key

    def model(
        self, obj: BaseModel, prefix: str, sort_key: _SortKey, exclude: Collection[str] = ()
    ) -> None:
        for index, (name, info) in enumerate(type(obj).model_fields.items()):
            if name in exclude:
                continue
            self.value(getattr(obj, name), info.annotation, f"{prefix}{name}",
                       (*sort_key, (index, "")))

    def empty(self, cls: type[BaseModel], prefix: str, sort_key: _SortKey) -> None:
        """Columns of an absent sub-model, all empty, so that every row has them."""
        for index, (name, info) in enumerate(cls.model_fields.items()):
            nested = _model_class(info.annotation)
            key = f"{prefix}{name}"
            if nested is not None:
                self.empty(nested, f"{key}.", (*sort_key, (index, "")))
            else:
                self.put(key, (*sort_key, (index, "")), None)

    def value(self, value: Any, annotation: Any, key: str, sort_key: _SortKey) -> None:
        if isinstance(value, BaseModel):
            self.model(value, f"{key}.", sort_key)
        elif value is None and (cls := _model_class(annotation)) is not None:
            self.empty(cls, f"{key}.", sort_key)
        elif isinstance(value, dict):
            self.mapping(value, key, sort_key)
        else:
            self.put(key, sort_key, value)

    def mapping(self, value: dict[Any, Any], key: str, sort_key: _SortKey) -> None:
        for name in sorted(value, key=str):
            item = value[name]
            child_key = f"{key}.{name}"
            child_sort = (*sort_key, (0, str(name)))
            if isinstance(item, BaseModel):
                self.model(item, f"{child_key}.", child_sort)
            elif isinstance(item, dict) and item:
                self.mapping(item, child_key, child_sort)
            else:
                self.put(child_key, child_sort, item)


def _flatten(result: ExportableResult, exclude: Collection[str]) -> _Flattener:
    flat = _Flattener()
    kind = "aggregated" if isinstance(result, AggregatedResult) else "raw"
    flat.put(RESULT_TYPE_COLUMN, ((-1, ""),), kind)
    flat.model(result, "", (), exclude)
    return flat


def flatten_result(
    result: ExportableResult, *, exclude: Collection[str] = DEFAULT_FLAT_EXCLUDE
) -> dict[str, Scalar]:
    """One result as ``{dotted column: scalar}`` in schema order.

    Nested models become dotted columns (an absent one gives empty columns); maps such as
    ``effective_config`` and ``cycle_stats`` are flattened by key; sequences become one JSON
    text cell. Top-level fields named in ``exclude`` are left out.
    """
    flat = _flatten(result, exclude)
    return {key: flat.cells[key] for key in sorted(flat.cells, key=flat.order.__getitem__)}


def flatten_results(
    results: Sequence[ExportableResult], *, exclude: Collection[str] = DEFAULT_FLAT_EXCLUDE
) -> tuple[list[str], list[dict[str, Scalar]]]:
    """(columns, rows): the union of every row's columns in schema order, and the rows."""
    order: dict[str, _SortKey] = {}
    rows = []
    for result in results:
        flat = _flatten(result, exclude)
        order.update(flat.order)
        rows.append(flat.cells)
    columns = sorted(order, key=order.__getitem__)
    return columns, rows


def check_output_path(path: Path) -> Path:
    """``path`` as a Path when its folder exists and it is absent or a regular file (a
    symlink is followed to the file it names); else ConfigurationError naming it. Checked
    before anything is computed; the atomic write checks again."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ConfigurationError(
            f"output folder {str(path.parent)!r} does not exist; create it or choose another "
            "output path"
        )
    if path.is_dir():
        raise ConfigurationError(f"output {str(path)!r} is a folder; give a file name")
    write_target(path)
    return path


def write_rows_csv(
    columns: Sequence[str], rows: Sequence[Mapping[str, Scalar]], path: Path
) -> None:
    """Write rows as CSV with these columns (a missing or None cell is empty), atomically.

    Floats are written with full precision (``repr``).
    """
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def export_csv(
    results: Sequence[ExportableResult],
    path: Path,
    *,
    exclude: Collection[str] = DEFAULT_FLAT_EXCLUDE,
) -> Path:
    """Write one CSV row per result (flattened columns, see ``flatten_result``); returns path.

    Empty cells are None; floats are written with full precision (``repr``).
    """
    path = check_output_path(path)
    columns, rows = flatten_results(results, exclude=exclude)
    write_rows_csv(columns, rows, path)
    return path


def export_json(results: Sequence[ExportableResult], path: Path) -> Path:
    """Write the full results as a JSON list (the stored format of each); returns path."""
    path = check_output_path(path)
    payload = [r.model_dump(mode="json") for r in results]
    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")
    return path


def _column_values(values: list[Scalar]) -> list[Scalar]:
    """One Arrow-friendly type per column: ints with floats become floats; other mixes text."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int, float} and float in kinds:
        return [None if v is None else float(v) for v in values]  # type: ignore[arg-type]
    if len(kinds) > 1:
        return [None if v is None else str(v) for v in values]
    return values


def _columnar_rows(
    columns: Sequence[str], rows: Sequence[Mapping[str, Scalar]]
) -> dict[str, list[Scalar]]:
    return {c: _column_values([row.get(c) for row in rows]) for c in columns}


def columnar(
    results: Sequence[ExportableResult], *, exclude: Collection[str] = DEFAULT_FLAT_EXCLUDE
) -> dict[str, list[Scalar]]:
    """Flattened results as ``{column: values}`` with one value type per column."""
    return _columnar_rows(*flatten_results(results, exclude=exclude))


def write_rows_parquet(
    columns: Sequence[str], rows: Sequence[Mapping[str, Scalar]], path: Path
) -> None:
    """Write rows as a Parquet table with these columns, atomically (needs the ``parquet``
    extra). A column mixing ints and floats becomes float; any other mix becomes text."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtraError("parquet", "pyarrow", "Parquet export") from None
    table = pa.table(_columnar_rows(columns, rows))
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def export_parquet(
    results: Sequence[ExportableResult],
    path: Path,
    *,
    exclude: Collection[str] = DEFAULT_FLAT_EXCLUDE,
) -> Path:
    """Write the flattened results as a Parquet table (needs the ``parquet`` extra)."""
    path = check_output_path(path)
    columns, rows = flatten_results(results, exclude=exclude)
    write_rows_parquet(columns, rows, path)
    return path


def export_aggregated(results: Sequence[ExportableResult], fmt: str, path: Path) -> Path:
    """Export results (aggregated, raw, or both) in ``fmt`` (csv, json or parquet)."""
    fmt = fmt.lower()
    if fmt == "csv":
        return export_csv(results, path)
    if fmt == "json":
        return export_json(results, path)
    if fmt == "parquet":
        return export_parquet(results, path)
    raise ConfigurationError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, "
                             f"got {fmt!r}")
