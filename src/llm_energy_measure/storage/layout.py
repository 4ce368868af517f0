"""Where everything lives under a results directory: the one owner of those paths.

::

    raw/<experiment_id>/process_<rank>.json      one per process, written atomically
    raw/<experiment_id>/.completed_<rank>        completion marker, written after the json
    aggregated/<experiment_id>.json              the combined result
    .summary_index.json, .summary_journal.jsonl  cache for `results list` (storage.summaries)
    state/<experiment_id>.json (+ .lock)         experiment state, for resume
    state/<experiment_id>.lease (+ .lease.info)  held while a process measures the experiment
    state/<experiment_id>.launch/                resolved config, heartbeats, launch log
    logs/<experiment_id>.log                     the experiment's log
    studies/<study_id>/                          manifest.json, configs/, logs/, submitit/,
                                                 search_base.json, search_result.json

Every id passes ``security.sanitize_experiment_id`` and every path is checked with
``security.ensure_safe_path`` (symlinks resolved) so that nothing escapes the root.
"""

from __future__ import annotations

import re
from pathlib import Path

from llm_energy_measure.security import ensure_safe_path, sanitize_experiment_id

COMPLETION_MARKER_PREFIX = ".completed_"
RAW_FILE_PATTERN = re.compile(r"process_(\d+)\.json")
MARKER_FILE_PATTERN = re.compile(re.escape(COMPLETION_MARKER_PREFIX) + r"(\d+)")
HEARTBEAT_FILE_PATTERN = re.compile(r"rank_(\d+)\.heartbeat\.json")
SUMMARY_INDEX_NAME = ".summary_index.json"
SUMMARY_JOURNAL_NAME = ".summary_journal.jsonl"
LAUNCH_DIR_SUFFIX = ".launch"
RESOLVED_CONFIG_NAME = "config.json"
STUDY_MANIFEST_NAME = "manifest.json"


class ResultsLayout:
    """The paths under one results directory (nothing is created or read here)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.raw_dir = self.root / "raw"
        self.aggregated_dir = self.root / "aggregated"
        self.state_dir = self.root / "state"
        self.logs_dir = self.root / "logs"
        self.studies_dir = self.root / "studies"
        self.summary_index = self.root / SUMMARY_INDEX_NAME
        self.summary_journal = self.root / SUMMARY_JOURNAL_NAME

    def _safe(self, path: Path) -> Path:
        ensure_safe_path(self.root, path)
        return path

    @staticmethod
    def _id(experiment_id: str) -> str:
        return sanitize_experiment_id(experiment_id)

    # results ---------------------------------------------------------------------------

    def raw_experiment_dir(self, experiment_id: str) -> Path:
        return self._safe(self.raw_dir / self._id(experiment_id))

    def raw_file(self, experiment_id: str, rank: int) -> Path:
        return self._safe(self.raw_experiment_dir(experiment_id) / f"process_{rank}.json")

    def requests_file(self, experiment_id: str, rank: int) -> Path:
        """Per-request records of a serving run (JSONL), appended as each request ends."""
        return self.raw_experiment_dir(experiment_id) / f"requests_{rank}.jsonl"

    def completion_marker(self, experiment_id: str, rank: int) -> Path:
        return self._safe(
            self.raw_experiment_dir(experiment_id) / f"{COMPLETION_MARKER_PREFIX}{rank}")

    def aggregated_file(self, experiment_id: str) -> Path:
        return self._safe(self.aggregated_dir / f"{self._id(experiment_id)}.json")

    # state -----------------------------------------------------------------------------

    def state_file(self, experiment_id: str) -> Path:
        return self._safe(self.state_dir / f"{self._id(experiment_id)}.json")

    def lease_file(self, experiment_id: str, machine_rank: int = 0) -> Path:
        """The lock held while a process measures the experiment (one per machine of a
        multi-node run: ``<id>.machine<k>.lease``)."""
        machine = f".machine{machine_rank}" if machine_rank else ""
        return self._safe(self.state_dir / f"{self._id(experiment_id)}{machine}.lease")

    def lease_holder_file(self, experiment_id: str, machine_rank: int = 0) -> Path:
        """Who holds the lease (pid, host, since): read to name it in a refusal."""
        return self.lease_file(experiment_id, machine_rank).with_suffix(".lease.info")

    def launch_dir(self, experiment_id: str) -> Path:
        """Launch files of an experiment: resolved config, heartbeats, launch log."""
        return self._safe(self.state_dir / f"{self._id(experiment_id)}{LAUNCH_DIR_SUFFIX}")

    def resolved_config(self, experiment_id: str, machine_rank: int = 0) -> Path:
        """The resolved config saved before launching (``config.machine<k>.json`` for the
        other machines of a multi-node run, which share the folder)."""
        name = f"config.machine{machine_rank}.json" if machine_rank else RESOLVED_CONFIG_NAME
        return self.launch_dir(experiment_id) / name

    def heartbeat_file(self, experiment_id: str, rank: int) -> Path:
        return self.launch_dir(experiment_id) / f"rank_{rank}.heartbeat.json"

    def launch_log(self, experiment_id: str) -> Path:
        return self.launch_dir(experiment_id) / "launch.log"

    def experiment_log(self, experiment_id: str) -> Path:
        return self._safe(self.logs_dir / f"{self._id(experiment_id)}.log")

    def server_log(self, experiment_id: str) -> Path:
        """Output of the server a serving run started (its stdout and stderr)."""
        return self._safe(self.logs_dir / f"{self._id(experiment_id)}.server.log")

    # studies ---------------------------------------------------------------------------

    def study_dir(self, study_id: str) -> Path:
        return self._safe(self.studies_dir / self._id(study_id))

    def study_manifest(self, study_id: str) -> Path:
        return self.study_dir(study_id) / STUDY_MANIFEST_NAME

    def study_point_config(self, study_id: str, point_id: str) -> Path:
        return self.study_dir(study_id) / "configs" / f"{self._id(point_id)}.json"

    def study_run_log(self, study_id: str, experiment_id: str) -> Path:
        return self.study_dir(study_id) / "logs" / f"{self._id(experiment_id)}.log"

    def study_submitit_dir(self, study_id: str) -> Path:
        return self.study_dir(study_id) / "submitit"

    def study_server_log(self, study_id: str) -> Path:
        """Output of the managed server shared by the runs of a study."""
        return self.study_dir(study_id) / "logs" / "shared-server.log"

    def study_search_base(self, study_id: str) -> Path:
        """The base settings every probe of a search derives from (not validated alone)."""
        return self.study_dir(study_id) / "search_base.json"

    def study_search_result(self, study_id: str) -> Path:
        """The outcome of a study's search: the answer, its figures, every probe."""
        return self.study_dir(study_id) / "search_result.json"
