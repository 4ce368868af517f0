"""The results store on a file system.

Paths come from ``storage.layout.ResultsLayout`` (raw, aggregated, summary cache). Every
experiment id passes ``security.sanitize_experiment_id`` and every path is checked with
``security.is_safe_path`` (symlinks resolved), so nothing is read or written outside
``base_dir``. Writes go to a temporary file in the same folder, are fsynced and renamed into
place: a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TypeVar

from loguru import logger
from pydantic import ValidationError

from llm_energy_measure.bounded import read_regular_file
from llm_energy_measure.constants import (
    MAX_RESULT_BYTES,
    RESULTS_DIR_ENV,
    SUPPORTED_SCHEMA_VERSIONS,
)
from llm_energy_measure.domain import AggregatedResult, RawProcessResult
from llm_energy_measure.exceptions import ConfigurationError, ResultsError
from llm_energy_measure.security import ensure_safe_path, is_safe_path, sanitize_experiment_id
from llm_energy_measure.storage.atomic import TEMP_SUFFIX, atomic_write_text
from llm_energy_measure.storage.layout import (
    MARKER_FILE_PATTERN,
    RAW_FILE_PATTERN,
    ResultsLayout,
)
from llm_energy_measure.storage.summaries import (
    ExperimentSummary,
    Signature,
    SummaryCache,
    file_signature,
    problem_summary,
    summarize_aggregated,
    summarize_raw,
)

_SUPPORTED = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))


def ensure_results_dir(base: Path, *, create: bool = True) -> Path:
    """``base`` as a folder this process can write into, created when absent (``create``);
    else ConfigurationError naming it: a file in its place, a file among its parents, or a
    folder that refuses a new file (read-only, no permission). Checked by writing and
    removing a probe file, which also holds for root and for read-only mounts."""
    if base.exists() and not base.is_dir():
        raise ConfigurationError(
            f"results folder {base} is a file, not a folder; pass --results-dir with a folder"
        )
    if not base.exists() and not create:
        raise ConfigurationError(
            f"results folder {base} does not exist; check --results-dir (or "
            f"${RESULTS_DIR_ENV})"
        )
    try:
        base.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigurationError(
            f"results folder {base} cannot be written ({exc.strerror}); pass --results-dir "
            "with a writable folder"
        ) from None
    return base


def existing_results_dir(base: Path) -> Path:
    """``base`` when it is an existing folder (the commands that only read results); else
    ConfigurationError naming it, so that a mistyped --results-dir is not 'no results'."""
    if not base.is_dir():
        what = "is not a folder" if base.exists() else "does not exist"
        raise ConfigurationError(
            f"results folder {base} {what}; check --results-dir (or ${RESULTS_DIR_ENV})"
        )
    return base


def _is_valid_id(name: str) -> bool:
    try:
        sanitize_experiment_id(name)
    except ConfigurationError:
        return False
    return True


def _describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "file"
    return f"{where}: {first.get('msg', 'invalid')}"


def _check_schema_version(data: bytes, path: Path) -> None:
    """Raise ResultsError naming the version when the file is of a schema we cannot read."""
    try:
        head = json.loads(data)
    except ValueError as exc:
        raise ResultsError(
            f"{path}: not valid JSON ({exc}); the file is truncated or damaged"
        ) from None
    if not isinstance(head, dict):
        raise ResultsError(f"{path}: not a result object")
    version = head.get("schema_version")
    if isinstance(version, int) and version < min(SUPPORTED_SCHEMA_VERSIONS):
        raise ResultsError(
            f"{path}: schema_version {version} was written by an older llm-energy-measure "
            f"(this one reads {_SUPPORTED}: latency and energy fields changed meaning); re-run "
            "the experiment, or read it with the version that wrote it"
        )
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ResultsError(
            f"{path}: unknown schema_version {version!r} (this llm-energy-measure reads "
            f"{_SUPPORTED}); upgrade llm-energy-measure to read it"
        )


def _checked_json(result: RawProcessResult | AggregatedResult, path: Path) -> str:
    """The JSON to store for ``result``, read back through the same model first.

    A figure that got past construction (``model_copy(update=...)`` does not validate) and
    that the model refuses (NaN or infinity, which JSON would store as ``null``, a negative
    or absurd count) is refused here, naming the file and the field, so that nothing is
    written that cannot be read again.
    """
    text = result.model_dump_json(indent=2)
    try:
        type(result).model_validate(result.model_dump())  # names NaN as "finite number"
        type(result).model_validate_json(text)
    except ValidationError as exc:
        raise ResultsError(
            f"{path}: refusing to write an invalid result ({_describe_validation_error(exc)})"
        ) from None
    return text


_Result = TypeVar("_Result", RawProcessResult, AggregatedResult)


def _parse(model: type[_Result], data: bytes, path: Path, what: str, hint: str) -> _Result:
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        _check_schema_version(data, path)
        raise ResultsError(
            f"{path}: not a valid {what} ({_describe_validation_error(exc)}); the file is "
            f"truncated or was edited by hand{hint}"
        ) from None


def _parse_raw(data: bytes, path: Path) -> RawProcessResult:
    return _parse(RawProcessResult, data, path, "raw result", "")


def _parse_aggregated(data: bytes, path: Path) -> AggregatedResult:
    return _parse(AggregatedResult, data, path, "aggregated result",
                  "; re-create it with `llm-energy-measure aggregate --force`")


class FileSystemRepository:
    """Raw and aggregated results under one base directory (implements ResultsRepository).

    ``durable=False`` skips fsync (for benchmarks and throw-away stores only).
    """

    def __init__(self, base_dir: Path | str | ResultsLayout, *, durable: bool = True) -> None:
        self.layout = base_dir if isinstance(base_dir, ResultsLayout) else \
            ResultsLayout(base_dir)
        self.base_dir = self.layout.root
        self.raw_dir = self.layout.raw_dir
        self.aggregated_dir = self.layout.aggregated_dir
        self._durable = durable
        self._cache = SummaryCache(self.layout.summary_index, self.layout.summary_journal)

    # --- paths ----------------------------------------------------------------------------

    def _safe(self, path: Path) -> Path:
        ensure_safe_path(self.base_dir, path)
        return path

    def _raw_experiment_dir(self, experiment_id: str) -> Path:
        return self.layout.raw_experiment_dir(experiment_id)

    def _aggregated_path(self, experiment_id: str) -> Path:
        return self.layout.aggregated_file(experiment_id)

    def raw_path(self, experiment_id: str, process_index: int) -> Path:
        """Where the raw result of ``process_index`` is stored."""
        if process_index < 0:
            raise ConfigurationError(f"process index must be >= 0, got {process_index}")
        return self.layout.raw_file(experiment_id, process_index)

    def aggregated_path(self, experiment_id: str) -> Path:
        """Where the aggregated result of ``experiment_id`` is stored."""
        return self._aggregated_path(experiment_id)

    def _make_dir(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._safe(directory)  # a directory replaced by a symlink after the first check

    # --- raw results ----------------------------------------------------------------------

    def save_raw(self, result: RawProcessResult) -> Path:
        """Store one process's result, then its completion marker; returns the json path."""
        path = self.raw_path(result.experiment_id, result.process_index)
        text = _checked_json(result, path)
        self._make_dir(path.parent)
        atomic_write_text(path, text, durable=self._durable)
        marker = self.layout.completion_marker(result.experiment_id, result.process_index)
        atomic_write_text(
            marker,
            json.dumps({"file": path.name, "completed_at": time.time()}),
            durable=self._durable,
        )
        return path

    def load_raw(self, experiment_id: str, process_index: int) -> RawProcessResult | None:
        """One process's result; None when absent, ResultsError naming the file when unreadable."""
        path = self.raw_path(experiment_id, process_index)
        try:
            data = read_regular_file(path, MAX_RESULT_BYTES)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ResultsError(f"{path}: cannot be read ({exc.strerror})") from None
        result = _parse_raw(data, path)
        self._check_raw_identity(result, experiment_id, process_index, path)
        return result

    @staticmethod
    def _check_raw_identity(
        result: RawProcessResult, experiment_id: str, process_index: int, path: Path
    ) -> None:
        if result.experiment_id != experiment_id or result.process_index != process_index:
            raise ResultsError(
                f"{path}: holds experiment {result.experiment_id!r} process "
                f"{result.process_index}, not {experiment_id!r} process {process_index}; "
                "the file was moved or edited by hand"
            )

    def _raw_files(self, directory: Path) -> list[tuple[int, Path, bool]]:
        """(rank, path, is_symlink) of the process files in ``directory``, by rank."""
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return []
        found = []
        for entry in entries:
            match = RAW_FILE_PATTERN.fullmatch(entry.name)
            if match:
                found.append((int(match.group(1)), Path(entry.path), entry.is_symlink()))
        return sorted(found)

    def load_all_raw(self, experiment_id: str) -> list[RawProcessResult]:
        """Every readable process result of the experiment, sorted by process index.

        A damaged, truncated, hand-edited or misplaced file, or one of an unknown schema
        version, is skipped with a warning naming it (aggregation then reports the rank as
        missing).
        """
        directory = self._raw_experiment_dir(experiment_id)  # checked: only links can escape
        results = []
        for rank, path, is_link in self._raw_files(directory):
            try:
                if is_link and not is_safe_path(self.base_dir, path):
                    raise ResultsError(f"{path}: resolves outside {self.base_dir}")
                data = read_regular_file(path, MAX_RESULT_BYTES)
                result = _parse_raw(data, path)
                self._check_raw_identity(result, experiment_id, rank, path)
            except ResultsError as exc:
                logger.warning(f"skipping raw result: {exc}")
                continue
            except OSError as exc:
                logger.warning(f"skipping raw result: {path}: cannot be read ({exc.strerror})")
                continue
            results.append(result)
        return sorted(results, key=lambda r: r.process_index)

    def completed_ranks(self, experiment_id: str) -> set[int]:
        """Ranks whose completion marker exists (their raw result was fully written)."""
        directory = self._raw_experiment_dir(experiment_id)
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return set()
        ranks = set()
        for name in names:
            match = MARKER_FILE_PATTERN.fullmatch(name)
            if match:
                ranks.add(int(match.group(1)))
        return ranks

    def missing_ranks(self, experiment_id: str, num_ranks: int) -> tuple[int, ...]:
        """Ranks ``0..num_ranks-1`` without a completion marker, in order."""
        return tuple(sorted(set(range(num_ranks)) - self.completed_ranks(experiment_id)))

    def has_raw(self, experiment_id: str) -> bool:
        """True when at least one process result file exists."""
        return bool(self._raw_files(self._raw_experiment_dir(experiment_id)))

    # --- aggregated results ---------------------------------------------------------------

    def save_aggregated(self, result: AggregatedResult) -> Path:
        """Store the aggregated result (replacing an older one); returns its path."""
        path = self._aggregated_path(result.experiment_id)
        text = _checked_json(result, path)
        self._make_dir(path.parent)
        stat = atomic_write_text(path, text, durable=self._durable)
        self._cache.record(_agg_key(result.experiment_id), file_signature(stat),
                           summarize_aggregated(result))
        return path

    def load_aggregated(self, experiment_id: str) -> AggregatedResult | None:
        """The aggregated result; None when absent, ResultsError naming the file when unreadable."""
        return self._read_aggregated(experiment_id, self._aggregated_path(experiment_id))

    @staticmethod
    def _read_aggregated(experiment_id: str, path: Path) -> AggregatedResult | None:
        """Read an aggregated file whose path was already checked (a regular file only: a
        FIFO or device in its place is refused, never waited on)."""
        try:
            data = read_regular_file(path, MAX_RESULT_BYTES)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ResultsError(f"{path}: cannot be read ({exc.strerror})") from None
        result = _parse_aggregated(data, path)
        if result.experiment_id != experiment_id:
            raise ResultsError(
                f"{path}: holds experiment {result.experiment_id!r}, not {experiment_id!r}; the "
                "file was renamed or edited by hand"
            )
        return result

    def has_aggregated(self, experiment_id: str) -> bool:
        """True when the aggregated result file exists."""
        return self._aggregated_path(experiment_id).is_file()

    def stored_paths(self, experiment_id: str) -> list[Path]:
        """Every file or folder stored for the experiment: its raw folder when it holds
        anything, and whatever sits at its aggregated path (of any kind)."""
        raw = self._raw_experiment_dir(experiment_id)
        aggregated = self._aggregated_path(experiment_id)
        found = []
        try:
            if raw.is_symlink() or (raw.is_dir() and any(os.scandir(raw))):
                found.append(raw)
        except OSError:
            found.append(raw)  # there, though unreadable: still taken
        if aggregated.is_symlink() or aggregated.exists():
            found.append(aggregated)
        return found

    def ensure_unused_id(self, experiment_id: str) -> None:
        """ConfigurationError when any raw or aggregated file exists for ``experiment_id``:
        the id is taken, and a new experiment under it would overwrite finished results."""
        found = self.stored_paths(experiment_id)
        if found:
            raise ConfigurationError(
                f"experiment id {experiment_id!r} is taken: results exist at {found[0]}; "
                "choose another id (stored results are never overwritten)"
            )

    # --- listing and deletion -------------------------------------------------------------

    def list_experiments(self) -> list[str]:
        """Ids of experiments with a raw results folder, sorted."""
        try:
            entries = list(os.scandir(self.raw_dir))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(e.name for e in entries if _is_valid_id(e.name) and e.is_dir())

    def list_aggregated(self) -> list[str]:
        """Ids of experiments with an aggregated result, sorted."""
        return sorted(self._aggregated_files())

    def _aggregated_files(self) -> dict[str, os.DirEntry[str]]:
        try:
            entries = list(os.scandir(self.aggregated_dir))
        except (FileNotFoundError, NotADirectoryError):
            return {}
        found = {}
        for entry in entries:
            name = entry.name
            if name.endswith(".json") and not name.endswith(TEMP_SUFFIX):
                exp_id = name[:-5]
                if _is_valid_id(exp_id):
                    found[exp_id] = entry
        return found

    def delete_experiment(self, experiment_id: str) -> None:
        """Remove the experiment's raw folder and aggregated result.

        Raises ResultsError when neither exists (a mistyped id should not pass silently).
        """
        raw = self._raw_experiment_dir(experiment_id)
        aggregated = self._aggregated_path(experiment_id)
        found = False
        if raw.is_symlink():
            raw.unlink()
            found = True
        elif raw.is_dir():
            shutil.rmtree(raw)
            found = True
        if aggregated.is_symlink() or aggregated.exists():
            aggregated.unlink()
            found = True
        if not found:
            raise ResultsError(
                f"no results for experiment {experiment_id!r} in {self.base_dir}; "
                "see `llm-energy-measure results list --all`"
            )

    def list_summaries(self, *, include_raw: bool = True) -> list[ExperimentSummary]:
        """One lightweight row per experiment, newest first (fast: see summaries.py).

        Rows are ordered by ``started_at`` descending (unknown last), then by id.

        Aggregated experiments come from their aggregated file; with ``include_raw``,
        experiments that have raw results only are listed too. An unreadable file gives a row
        whose ``problem`` says why; it never aborts the listing.
        """
        cached, dirty = self._cache.load()
        fresh: dict[str, tuple[Signature, ExperimentSummary]] = {}
        aggregated = self._aggregated_files()
        # Checked once here; then only symlinked entries can lead elsewhere.
        folder_safe = is_safe_path(self.base_dir, self.aggregated_dir)
        for exp_id, entry in aggregated.items():
            key = _agg_key(exp_id)
            try:
                signature = file_signature(entry.stat())
            except OSError:
                continue  # deleted meanwhile, or a dangling symlink
            hit = cached.get(key)
            if hit is not None and hit[0] == signature:
                fresh[key] = hit
            else:
                path = Path(entry.path)
                safe = folder_safe and (
                    not entry.is_symlink() or is_safe_path(self.base_dir, path)
                )
                fresh[key] = (signature, self._summarize_aggregated_file(exp_id, path, safe))
                dirty = True
        if include_raw:
            for exp_id in self.list_experiments():
                if exp_id not in aggregated:
                    key = _raw_key(exp_id)
                    fresh[key] = self._raw_summary(exp_id, cached.get(key))
                    dirty = dirty or fresh[key] is not cached.get(key)
        else:
            fresh.update((k, v) for k, v in cached.items() if k.startswith("raw:"))
        if dirty or fresh.keys() != cached.keys():
            self._cache.save(fresh)
        rows = [summary for key, (_, summary) in fresh.items()
                if include_raw or key.startswith("agg:")]
        rows.sort(key=lambda s: s.experiment_id)
        rows.sort(key=lambda s: -s.started_at if s.started_at is not None else math.inf)
        return rows

    def _summarize_aggregated_file(
        self, experiment_id: str, path: Path, safe: bool
    ) -> ExperimentSummary:
        try:
            if not safe:
                ensure_safe_path(self.base_dir, path)  # raises, naming the path
            result = self._read_aggregated(experiment_id, path)
        except (ResultsError, ConfigurationError) as exc:
            logger.warning(f"results list: {exc}")
            return problem_summary(experiment_id, aggregated=True, problem=str(exc))
        if result is None:
            return problem_summary(experiment_id, aggregated=True, problem="file vanished")
        return summarize_aggregated(result)

    def _raw_summary(
        self, experiment_id: str, hit: tuple[Signature, ExperimentSummary] | None
    ) -> tuple[Signature, ExperimentSummary]:
        try:
            directory = self._raw_experiment_dir(experiment_id)
        except ConfigurationError as exc:
            return (), problem_summary(experiment_id, aggregated=False, problem=str(exc))
        signature: list[int] = []
        for rank, path, _ in self._raw_files(directory):
            try:
                stat = path.stat()
            except OSError:
                continue
            signature.extend((rank, *file_signature(stat)))
        sig = tuple(signature)
        if hit is not None and hit[0] == sig:
            return hit
        return sig, summarize_raw(experiment_id, self.load_all_raw(experiment_id))


def _agg_key(experiment_id: str) -> str:
    return f"agg:{experiment_id}"


def _raw_key(experiment_id: str) -> str:
    return f"raw:{experiment_id}"
