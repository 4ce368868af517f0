"""Lightweight rows for `results list`, and the cache that keeps listing fast.

Listing 10,000 experiments must not parse 10,000 result files. The repository keeps a cache
of summary rows in the results folder:

* ``.summary_index.json``: a compacted map ``key -> (file signature, row)``, rewritten
  atomically by ``list_summaries`` whenever it found anything new, changed or gone;
* ``.summary_journal.jsonl``: one line appended by every ``save_aggregated``, folded into the
  index by the next listing.

A row is trusted only while its file's signature (mtime in ns and size) is unchanged; any
other file is parsed again. A damaged index or journal line is ignored, so the cache can
never make a listing wrong or crash it: at worst the listing is slower once.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from llm_energy_measure.bounded import read_regular_file
from llm_energy_measure.constants import MAX_STATE_BYTES
from llm_energy_measure.domain import AggregatedResult, RawProcessResult
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.storage.atomic import atomic_write_text

#: Version of the index layout; an index of another version is rebuilt.
INDEX_FORMAT = 1

#: A file's identity for the cache: flattened (mtime_ns, size) of every file a row came from.
Signature = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ExperimentSummary:
    """One `results list` row. Figures of an aggregated experiment are system figures.

    For an experiment with raw results only, ``num_processes`` is the number of raw files,
    ``output_tokens`` their sum, and throughput/energy are None (they need aggregation).
    ``started_at`` is the start of the measured window (Unix epoch seconds). ``problem`` says
    why a file could not be read (the other fields are then None).
    """

    experiment_id: str
    aggregated: bool
    config_name: str | None = None
    model_name: str | None = None
    num_processes: int | None = None
    output_tokens: int | None = None
    output_tokens_per_s: float | None = None
    energy_j: float | None = None
    estimated: bool | None = None
    started_at: float | None = None
    problem: str | None = None


_FIELD_TYPES: tuple[tuple[type, ...], ...] = (
    (str,),
    (bool,),
    (str, type(None)),
    (str, type(None)),
    (int, type(None)),
    (int, type(None)),
    (float, int, type(None)),
    (float, int, type(None)),
    (bool, type(None)),
    (float, int, type(None)),
    (str, type(None)),
)


_FIELD_NAMES = tuple(f.name for f in fields(ExperimentSummary))


def summary_to_row(summary: ExperimentSummary) -> list[Any]:
    """The summary as a JSON-ready list (field order of ``ExperimentSummary``)."""
    return [getattr(summary, name) for name in _FIELD_NAMES]


def summary_from_row(row: Any) -> ExperimentSummary:
    """Inverse of ``summary_to_row``; ValueError when the row is malformed."""
    if not isinstance(row, list) or len(row) != len(_FIELD_TYPES):
        raise ValueError("malformed summary row")
    for value, types in zip(row, _FIELD_TYPES, strict=True):
        # bool is an int subclass: refuse it where a count is expected.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError("malformed summary row")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("malformed summary row")
    return ExperimentSummary(*row)


def summarize_aggregated(result: AggregatedResult) -> ExperimentSummary:
    """The listing row of an aggregated result."""
    energy = result.energy
    return ExperimentSummary(
        experiment_id=result.experiment_id,
        aggregated=True,
        config_name=result.config_name,
        model_name=result.model.name,
        num_processes=result.aggregation.num_processes,
        output_tokens=result.inference.output_tokens,
        output_tokens_per_s=result.inference.output_tokens_per_s,
        energy_j=energy.total_energy_j if energy is not None else None,
        estimated=energy.estimated if energy is not None else None,
        started_at=result.timestamps.start,
    )


def summarize_raw(experiment_id: str, raws: Sequence[RawProcessResult]) -> ExperimentSummary:
    """The listing row of an experiment that has raw results only (not yet aggregated)."""
    if not raws:
        return ExperimentSummary(experiment_id, aggregated=False, num_processes=0)
    first = min(raws, key=lambda r: r.process_index)
    return ExperimentSummary(
        experiment_id=experiment_id,
        aggregated=False,
        config_name=first.config_name,
        model_name=first.model.name,
        num_processes=len(raws),
        output_tokens=sum(r.inference.output_tokens for r in raws),
        started_at=min(r.timestamps.start for r in raws),
    )


def problem_summary(experiment_id: str, *, aggregated: bool, problem: str) -> ExperimentSummary:
    """A row for an experiment whose file could not be read."""
    return ExperimentSummary(experiment_id, aggregated=aggregated, problem=problem)


def file_signature(stat: os.stat_result) -> Signature:
    """The part of a file's stat that changes when the file is rewritten."""
    return (stat.st_mtime_ns, stat.st_size)


class SummaryCache:
    """The index + journal pair of one results folder (see the module docstring)."""

    def __init__(self, index_path: Path, journal_path: Path) -> None:
        self.index_path = index_path
        self.journal_path = journal_path

    def load(self) -> tuple[dict[str, tuple[Signature, ExperimentSummary]], bool]:
        """(entries, journal_had_lines): the index with the journal applied in order."""
        entries: dict[str, tuple[Signature, ExperimentSummary]] = {}
        try:
            data = _loads(read_regular_file(self.index_path, MAX_STATE_BYTES))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("format") == INDEX_FORMAT:
            items = data.get("entries")
            if isinstance(items, list):
                _apply(entries, items)
        try:
            journal = read_regular_file(self.journal_path, MAX_STATE_BYTES).splitlines()
        except OSError:
            journal = []
        lines: list[Any] = []
        for line in journal:
            try:
                lines.append(_loads(line))
            except ValueError:
                continue  # a torn or hand-edited line: the file is parsed again instead
        _apply(entries, lines)
        return entries, bool(journal)

    def record(self, key: str, signature: Signature, summary: ExperimentSummary) -> None:
        """Append one entry to the journal (best effort: the cache is only an accelerator)."""
        line = json.dumps([key, list(signature), summary_to_row(summary)]) + "\n"
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK  # a FIFO never blocks
        with contextlib.suppress(OSError):
            # One write of a short line in append mode: concurrent writers do not interleave.
            fd = os.open(self.journal_path, flags, 0o666)
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)

    def save(self, entries: dict[str, tuple[Signature, ExperimentSummary]]) -> None:
        """Write the compacted index atomically, then drop the journal it includes.

        A journal line appended between the read and the removal is lost; its file is then
        simply parsed again by the next listing.
        """
        payload = {
            "format": INDEX_FORMAT,
            "entries": [
                [key, list(sig), summary_to_row(summary)]
                for key, (sig, summary) in entries.items()
            ],
        }
        with contextlib.suppress(OSError, ConfigurationError):
            atomic_write_text(
                self.index_path, json.dumps(payload, separators=(",", ":")), durable=False
            )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.journal_path)


def _loads(data: bytes) -> Any:
    """JSON of a cache file or line; ValueError for anything unusable, including nesting too
    deep for the parser (a damaged line must never crash a listing)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deep") from None


def _apply(entries: dict[str, tuple[Signature, ExperimentSummary]], items: Iterable[Any]) -> None:
    for item in items:
        try:
            key, sig, row = item
            if not isinstance(key, str) or not isinstance(sig, list):
                continue
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in sig):
                continue
            entries[key] = (tuple(sig), summary_from_row(row))
        except (TypeError, ValueError):
            continue
