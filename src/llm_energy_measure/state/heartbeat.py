"""Per-rank heartbeats of a launched experiment, read by the supervisor.

Each rank rewrites ``<results>/state/<experiment_id>.launch/rank_<r>.heartbeat.json`` (atomic
rename, no fsync) when it changes stage, after every measured batch and around every barrier.
The supervisor reads them to show progress, to notice a rank whose process vanished, and to
notice a rank that made no progress for ``launch.process_timeout_s`` seconds (a hang). A rank
waiting at a barrier is waiting for the others, not hung: its heartbeat says so.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from llm_energy_measure.bounded import read_regular_file
from llm_energy_measure.constants import MAX_STATE_BYTES
from llm_energy_measure.storage.atomic import atomic_write_text
from llm_energy_measure.storage.layout import HEARTBEAT_FILE_PATTERN, ResultsLayout


@dataclass(frozen=True)
class Heartbeat:
    """A rank's last sign of life. ``time_s`` is epoch seconds; ``done``/``total`` count
    measured requests (0/0 outside the measured loop)."""

    rank: int
    pid: int
    hostname: str
    stage: str
    time_s: float
    done: int = 0
    total: int = 0
    waiting: bool = False
    #: The rank stopped because of the others (it was told to stop, or lost contact with a
    #: rank that died): it is not the cause of a failure.
    stopped: bool = False


def write_heartbeat(base_dir: Path, experiment_id: str, beat: Heartbeat) -> None:
    """Store ``beat`` as the rank's latest heartbeat (atomically replaced)."""
    path = ResultsLayout(base_dir).heartbeat_file(experiment_id, beat.rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(asdict(beat)), durable=False)


def read_heartbeats(base_dir: Path, experiment_id: str) -> dict[int, Heartbeat]:
    """Latest heartbeat of every rank that wrote one; unreadable files are skipped."""
    folder = ResultsLayout(base_dir).launch_dir(experiment_id)
    beats: dict[int, Heartbeat] = {}
    try:
        paths = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return beats
    for path in paths:
        if not HEARTBEAT_FILE_PATTERN.fullmatch(path.name):
            continue
        try:
            beat = Heartbeat(**json.loads(read_regular_file(path, MAX_STATE_BYTES)))
        except (OSError, ValueError, TypeError, RecursionError):
            continue  # replaced or half-visible on a network file system: next poll
        beats[beat.rank] = beat
    return beats


def clear_heartbeats(base_dir: Path, experiment_id: str) -> None:
    """Remove the heartbeats of an earlier launch (before a resume)."""
    folder = ResultsLayout(base_dir).launch_dir(experiment_id)
    if folder.is_dir():
        for path in folder.iterdir():
            if HEARTBEAT_FILE_PATTERN.fullmatch(path.name):
                path.unlink(missing_ok=True)


def heartbeat_age_s(beat: Heartbeat, now_s: float | None = None) -> float:
    """Seconds since ``beat`` was written."""
    return (time.time() if now_s is None else now_s) - beat.time_s
