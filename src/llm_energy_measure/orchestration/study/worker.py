"""The worker of one study run: one experiment, in its own process.

    python -m llm_energy_measure.orchestration.study.worker --config POINT.json \\
        --experiment-id ID --results-dir DIR [--parent-pid PID]

Exit codes: 0 done (also when the experiment already has an aggregated result: a worker
run twice for one id does the work once; an earlier attempt that stored raw results is
resumed, never measured over), 75 a transient failure worth retrying, 71 the
process that started it disappeared (checked every second: a killed ``study run`` leaves no
orphan worker measuring), otherwise the CLI's codes (2 configuration, 1 runtime, 130
interrupted). A failure ends with one ``error: <cause>`` line, which the study records.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from llm_energy_measure.orchestration.study.executors.base import (
    EXIT_ORPHANED,
    EXIT_RETRYABLE,
)

PARENT_CHECK_INTERVAL_S = 1.0


def _exit_when_orphaned(parent_pid: int, interval_s: float = PARENT_CHECK_INTERVAL_S) -> None:
    """Exit at once (code 71) when our parent is no longer ``parent_pid``."""

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                sys.stderr.write("error: the process that started this worker is gone\n")
                sys.stderr.flush()
                os._exit(EXIT_ORPHANED)
            time.sleep(interval_s)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def previous_attempt(results_dir: Path, experiment_id: str) -> str:
    """What an earlier attempt of this run left: ``"done"`` (an aggregated result),
    ``"resume"`` (its state and finished raw results: resume it, so that no stored result is
    measured over) or ``"fresh"`` (nothing of value: any state it left is removed so that the
    experiment can start again under its id)."""
    from loguru import logger

    from llm_energy_measure.results import FileSystemRepository
    from llm_energy_measure.state import StateStore

    repo = FileSystemRepository(results_dir)
    if repo.has_aggregated(experiment_id):  # written atomically
        return "done"
    states = StateStore(results_dir)
    previous = states.load(experiment_id)
    if previous is not None and repo.completed_ranks(experiment_id):
        logger.info("experiment {} was left {} by an earlier attempt with finished results; "
                    "resuming it", experiment_id, previous.status)
        return "resume"
    if previous is not None:
        from llm_energy_measure.state.lease import ExperimentLease

        # Only a dead attempt's state is removed: a live one holds the lease (refused here,
        # with one line naming its PID).
        with ExperimentLease(results_dir, experiment_id):
            logger.info("experiment {} was left {} by an earlier attempt; starting it again",
                        experiment_id, previous.status)
            states.delete(experiment_id)
    return "fresh"


def run(config_path: Path, experiment_id: str, results_dir: Path) -> None:
    """Run the experiment of ``config_path`` (a resolved config JSON) unless already done."""
    from llm_energy_measure.config import validate_config
    from llm_energy_measure.orchestration import run_experiment
    from llm_energy_measure.orchestration.experiment import resume_experiment

    config = validate_config(json.loads(config_path.read_text(encoding="utf-8")),
                             source=str(config_path))
    previous = previous_attempt(results_dir, experiment_id)
    if previous == "done":
        print(f"experiment {experiment_id} already has an aggregated result; nothing to do")
        return
    if previous == "resume":
        resume_experiment(experiment_id, results_dir=results_dir)
        return
    run_experiment(config, experiment_id=experiment_id, results_dir=results_dir,
                   config_path=config_path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="study_worker", description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--experiment-id", required=True)
    parser.add_argument("--results-dir", type=Path, required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)

    from llm_energy_measure.exceptions import RetryableError, exit_code_for
    from llm_energy_measure.logging import setup_logging

    if args.parent_pid is not None:
        if os.getppid() != args.parent_pid:
            sys.stderr.write("error: the process that started this worker is gone\n")
            return EXIT_ORPHANED
        _exit_when_orphaned(args.parent_pid)
    setup_logging(verbosity=0)
    try:
        run(args.config, args.experiment_id, args.results_dir)
    except BaseException as exc:  # every failure ends with one cause line for the study
        traceback.print_exc()
        text = str(exc).strip()
        cause = text.splitlines()[0] if text else type(exc).__name__
        if isinstance(exc, KeyboardInterrupt):
            cause = "interrupted"
        sys.stderr.write(f"error: {cause}\n")
        sys.stderr.flush()
        return EXIT_RETRYABLE if isinstance(exc, RetryableError) else exit_code_for(exc)
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a module by the executors
    sys.exit(main())
