"""StudyStore: study manifests and their files, updated atomically under a file lock.

Layout under ``<results>/studies/<study_id>/``::

    manifest.json          the StudyManifest (rewritten atomically after every transition)
    manifest.json.lock     its inter-process lock
    study.json             the validated study config (policy used by ``study resume``)
    configs/<point>.json   the resolved experiment config of every valid point
    logs/<experiment>.log  each run's worker output (all attempts, appended)
    submitit/              submitit job files (Slurm / submitit-local executors)
    logs/shared-server.log the managed server shared by the study's runs (if any)
    search_base.json       a search's base settings (probes derive from it)
    search_result.json     a search's outcome
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loguru import logger
from pydantic import ValidationError

from llm_energy_measure.bounded import read_regular_file
from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.config.study import StudyConfig
from llm_energy_measure.constants import MAX_STATE_BYTES
from llm_energy_measure.exceptions import ConfigurationError, ResultsError
from llm_energy_measure.state.storage import state_lock
from llm_energy_measure.state.study_models import STUDY_SCHEMA_VERSION, StudyManifest
from llm_energy_measure.storage.atomic import atomic_write_text
from llm_energy_measure.storage.layout import STUDY_MANIFEST_NAME, ResultsLayout

if TYPE_CHECKING:
    from llm_energy_measure.storage.repository import FileSystemRepository

#: ``update`` callbacks mutate the given copy (and return None) or return a new manifest.
ManifestUpdate = Callable[[StudyManifest], "StudyManifest | None"]


class StudyStore:
    """Studies under ``results_dir/studies``. Reads need no lock; every write takes it."""

    def __init__(self, results_dir: Path | str, *, lock_timeout_s: float = 60.0) -> None:
        self.layout = ResultsLayout(results_dir)
        self.results_dir = self.layout.root
        self.studies_dir = self.layout.studies_dir
        self._lock_timeout_s = lock_timeout_s

    # ------------------------------------------------------------------ paths

    def layout_repository(self) -> FileSystemRepository:
        """The results repository of the folder this study store lives in."""
        from llm_energy_measure.storage.repository import FileSystemRepository

        return FileSystemRepository(self.layout)

    def study_dir(self, study_id: str) -> Path:
        """Folder of one study (the id is validated like an experiment id)."""
        return self.layout.study_dir(study_id)

    def manifest_path(self, study_id: str) -> Path:
        return self.layout.study_manifest(study_id)

    def point_config_path(self, study_id: str, point_id: str) -> Path:
        return self.layout.study_point_config(study_id, point_id)

    def run_log_path(self, study_id: str, experiment_id: str) -> Path:
        return self.layout.study_run_log(study_id, experiment_id)

    def submitit_dir(self, study_id: str) -> Path:
        return self.layout.study_submitit_dir(study_id)

    def server_log_path(self, study_id: str) -> Path:
        return self.layout.study_server_log(study_id)

    def search_base_path(self, study_id: str) -> Path:
        return self.layout.study_search_base(study_id)

    def search_result_path(self, study_id: str) -> Path:
        return self.layout.study_search_result(study_id)

    # ------------------------------------------------------------------ manifest

    def create(self, manifest: StudyManifest) -> StudyManifest:
        """Store a new manifest; ConfigurationError if the study id is taken."""
        path = self.manifest_path(manifest.study_id)
        with state_lock(path, self._lock_timeout_s):
            if path.exists():
                raise ConfigurationError(
                    f"study id {manifest.study_id!r} already exists at {path}; "
                    "resume it with `llm-energy-measure study resume` or delete it"
                )
            atomic_write_text(path, manifest.model_dump_json(indent=2) + "\n")
        return manifest

    def load(self, study_id: str) -> StudyManifest:
        """The stored manifest; ConfigurationError when there is none, ResultsError when the
        file is unreadable."""
        path = self.manifest_path(study_id)
        try:
            data = read_regular_file(path, MAX_STATE_BYTES)
        except FileNotFoundError:
            raise ConfigurationError(
                f"no study {study_id!r} under {self.studies_dir}; check the id and "
                "--results-dir (list studies with `llm-energy-measure study status`)"
            ) from None
        except OSError as exc:
            raise ResultsError(f"study manifest {path} cannot be read ({exc.strerror})") \
                from None
        try:
            manifest = StudyManifest.model_validate(json.loads(data.decode("utf-8")))
        except (ValueError, ValidationError) as exc:
            reason = str(exc).splitlines()[0]
            raise ResultsError(f"study manifest {path} is unreadable ({reason})") from exc
        if manifest.schema_version != STUDY_SCHEMA_VERSION:
            raise ResultsError(
                f"study manifest {path} has schema version {manifest.schema_version}; this "
                f"version reads {STUDY_SCHEMA_VERSION}"
            )
        if manifest.study_id != study_id:
            raise ResultsError(f"study manifest {path} holds study {manifest.study_id!r}")
        return manifest

    def update(self, study_id: str, fn: ManifestUpdate) -> StudyManifest:
        """Apply ``fn`` to the stored manifest under the lock; re-validate; write atomically.

        ``updated_at`` is set here. A change that fails validation leaves the file untouched.
        """
        path = self.manifest_path(study_id)
        with state_lock(path, self._lock_timeout_s):
            draft = self.load(study_id).model_copy(deep=True)
            returned = fn(draft)
            new = draft if returned is None else returned
            new.updated_at = time.time()
            validated = StudyManifest.model_validate(new.model_dump())
            if validated.study_id != study_id:
                raise ResultsError(f"an update may not change the study id of {path}")
            atomic_write_text(path, validated.model_dump_json(indent=2) + "\n")
        return validated

    def list_studies(self) -> list[StudyManifest]:
        """Every readable manifest, oldest first (unreadable ones are skipped with a warning)."""
        found: list[StudyManifest] = []
        if not self.studies_dir.is_dir():
            return found
        for folder in sorted(self.studies_dir.iterdir()):
            if not (folder / STUDY_MANIFEST_NAME).is_file():
                continue
            try:
                found.append(self.load(folder.name))
            except (ConfigurationError, ResultsError) as exc:
                logger.warning("skipping study {}: {}", folder.name, exc)
        return sorted(found, key=lambda m: (m.created_at, m.study_id))

    # ------------------------------------------------------------------ study files

    def save_study_config(self, study_id: str, study: StudyConfig) -> Path:
        path = self.study_dir(study_id) / "study.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, study.model_dump_json(indent=2) + "\n")
        return path

    def load_study_config(self, study_id: str) -> StudyConfig:
        path = self.study_dir(study_id) / "study.json"
        try:
            return StudyConfig.model_validate_json(read_regular_file(path, MAX_STATE_BYTES))
        except FileNotFoundError:
            raise ResultsError(f"{path} is missing; the study cannot be resumed") from None
        except OSError as exc:
            raise ResultsError(f"{path} cannot be read ({exc.strerror})") from None
        except ValidationError as exc:
            raise ResultsError(f"{path} is unreadable ({str(exc).splitlines()[0]})") from exc

    def save_point_config(self, study_id: str, point_id: str, config: ExperimentConfig) -> Path:
        """Store a point's resolved experiment config (what its worker runs)."""
        path = self.point_config_path(study_id, point_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, config.model_dump_json(indent=2) + "\n")
        return path
