"""One rank of a launched experiment: the module ``accelerate launch`` (or torchrun) starts.

Started by ``llm-energy-measure run`` when ``launch.num_processes > 1`` (see supervisor.py),
or directly::

    accelerate launch --multi_gpu --num_processes 2 \\
        -m llm_energy_measure.orchestration.launch.rank \\
        --config experiment.yaml [--experiment-id ID] [--results-dir DIR]

Each rank joins a gloo control group, agrees on the experiment id (rank 0 creates it, with
its state, when none is given, and broadcasts it: there is no shared counter file), measures
its shard of the prompts (balanced by tokens) on its own device, and writes
``process_<rank>.json`` plus a completion marker. Measured windows open and close at
barriers. A rank that fails records its cause in the experiment state before exiting. When
every rank succeeded, rank 0 aggregates the experiment; only then is it completed (an
aggregation error is recorded as the experiment's error, and rank 0 exits with status 1).

``--ranks 1,3 --num-processes 4`` (used by ``run --resume``) makes launched process ``i``
measure the shard of rank ``ranks[i]`` out of 4.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from loguru import logger

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.exceptions import (
    ConfigurationError,
    DistributedError,
    LLMBenchError,
    describe_failure,
)
from llm_energy_measure.orchestration.launch.distributed import (
    THREADS_ENV,
    ControlGroup,
    DistributedInfo,
    discover_distributed,
    torch_threads_for,
)
from llm_energy_measure.orchestration.launch.faults import Fault, fault_from_env

#: Exit status of a rank stopped by SIGTERM / SIGINT (the supervisor records why).
EXIT_STOPPED = 143


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line arguments of one rank."""
    parser = argparse.ArgumentParser(
        prog="python -m llm_energy_measure.orchestration.launch.rank",
        description="Run one rank of a multi-process llm-energy-measure experiment.",
    )
    parser.add_argument("--config", required=True, type=Path,
                        help="experiment config (YAML/JSON, or the resolved config.json)")
    parser.add_argument("--experiment-id", default=None,
                        help="experiment id (default: rank 0 creates one and broadcasts it)")
    parser.add_argument("--results-dir", default=None, type=Path, help="results directory")
    parser.add_argument("--ranks", default=None,
                        help="comma-separated ranks to run (resume); one per launched process")
    parser.add_argument("--num-processes", default=None, type=int,
                        help="ranks of the whole experiment (with --ranks)")
    parser.add_argument("--supervisor-pid", default=None, type=int,
                        help="stop when this process (the `run` that launched us) is gone")
    return parser.parse_args(argv)


#: How often a rank checks that its supervisor is alive (s): it stops at most this long
#: after the supervisor died (plus the time to record it).
SUPERVISOR_CHECK_INTERVAL_S = 1.0


def watch_supervisor(
    supervisor_pid: int, on_gone: Callable[[], None],
    interval_s: float = SUPERVISOR_CHECK_INTERVAL_S,
) -> threading.Thread:
    """Call ``on_gone`` (which must end the process) once ``supervisor_pid`` has died."""
    from llm_energy_measure.state.liveness import pid_is_alive

    def watch() -> None:
        while pid_is_alive(supervisor_pid):
            time.sleep(interval_s)
        on_gone()

    thread = threading.Thread(target=watch, name="supervisor-watch", daemon=True)
    thread.start()
    return thread


def _stop_orphaned_rank(base: Path, experiment_id: str | None, rank: int) -> None:
    """The supervisor died: record the experiment interrupted and leave at once (the
    measurement is void; nothing is left running)."""
    with contextlib.suppress(Exception):
        logger.error(f"rank {rank}: the `run` process that launched this rank is gone; "
                     "stopping")
        if experiment_id is not None:
            from llm_energy_measure.state import StateStore

            StateStore(base).mark_interrupted(experiment_id)
    os._exit(EXIT_STOPPED)


@dataclass(frozen=True)
class RankPlan:
    """Which shard this process measures: ``rank`` of ``num_processes``."""

    rank: int
    num_processes: int


def rank_plan(info: DistributedInfo, ranks: str | None, num_processes: int | None) -> RankPlan:
    """Map the launched process onto the experiment's rank (identity unless ``--ranks``)."""
    if ranks is None:
        return RankPlan(info.rank, num_processes or info.world_size)
    try:
        chosen = [int(r) for r in ranks.split(",") if r.strip()]
    except ValueError:
        raise ConfigurationError(f"--ranks {ranks!r}: give comma-separated integers") from None
    if len(chosen) != info.world_size or len(set(chosen)) != len(chosen):
        raise ConfigurationError(
            f"--ranks {ranks!r} must list {info.world_size} distinct ranks, one per launched "
            "process"
        )
    total = num_processes or (max(chosen) + 1)
    if not all(0 <= r < total for r in chosen):
        raise ConfigurationError(f"--ranks {ranks!r}: ranks must be in 0..{total - 1}")
    return RankPlan(chosen[info.rank], total)


def configure_threads(info: DistributedInfo) -> int:
    """Give this rank its share of the host's cores for torch; returns the thread count."""
    import torch

    override = os.environ.get(THREADS_ENV, "").strip()
    threads = int(override) if override.isdigit() and int(override) > 0 else \
        torch_threads_for(os.cpu_count(), info.local_world_size)
    torch.set_num_threads(threads)
    return threads


def prepare_builtin_model(config: ExperimentConfig) -> None:
    """Build the embedded model (if asked for and not cached) before joining the process
    group: transformers' ``save_pretrained`` writes nothing on ranks other than 0 once
    torch.distributed is initialised, which would leave a half-built cache folder. The
    build is safe when several ranks ask at once (file lock)."""
    from llm_energy_measure.constants import BUILTIN_MODEL_PREFIX

    if config.model.name.strip().startswith(BUILTIN_MODEL_PREFIX):
        from llm_energy_measure.core.builtin_model import ensure_builtin_model

        ensure_builtin_model(config.model.name.strip())


def _raise_on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(EXIT_STOPPED)


class _Rank:
    """Everything one rank does once it knows the experiment id."""

    def __init__(
        self, group: ControlGroup, plan: RankPlan, base: Path, experiment_id: str,
        fault: Fault | None,
    ) -> None:
        from llm_energy_measure.storage.workspace import Workspace

        self.group = group
        self.plan = plan
        self.base = base
        self.workspace = Workspace(base)
        self.exp_id = experiment_id
        self.fault = fault
        self.states = self.workspace.states
        self.hostname = socket.gethostname()

    def beat(
        self, stage: str, done: int = 0, total: int = 0, *, waiting: bool = False,
        stopped: bool = False,
    ) -> None:
        import time

        from llm_energy_measure.state.heartbeat import Heartbeat, write_heartbeat

        write_heartbeat(self.base, self.exp_id, Heartbeat(
            rank=self.plan.rank, pid=os.getpid(), hostname=self.hostname, stage=stage,
            time_s=time.time(), done=done, total=total, waiting=waiting, stopped=stopped,
        ))

    def checkpoint(self, point: str) -> None:
        if self.fault is not None:
            self.fault.maybe_fire(self.plan.rank, point)

    def barrier(self, label: str) -> None:
        self.beat(f"waiting for the other ranks ({label})", waiting=True)
        self.group.barrier(label)
        self.beat(label)
        self.checkpoint(label)

    def run(self, config: ExperimentConfig) -> int:
        from llm_energy_measure.orchestration.launch.worker import run_rank
        from llm_energy_measure.orchestration.orchestrator import ProcessContext

        info = self.group.info
        ctx = ProcessContext(
            process_index=self.plan.rank, num_processes=self.plan.num_processes,
            local_rank=info.local_rank, hostname=self.hostname, barrier=self.barrier,
        )
        self.beat("starting")
        try:
            self.checkpoint("start")
            run_rank(config, self.exp_id, self.workspace, ctx, on_progress=self.beat)
        except (KeyboardInterrupt, SystemExit):
            logger.warning(f"rank {self.plan.rank}: stopped")
            self.beat("stopped by a signal", stopped=True)
            return EXIT_STOPPED
        except DistributedError as exc:
            # Another rank died or hung: that rank, not this one, is the cause (the supervisor
            # records it; after a direct launch its heartbeat and state say which one).
            logger.error(f"rank {self.plan.rank}: stopping: {exc}")
            self.beat(f"stopped: {exc}", stopped=True)
            return 1
        except BaseException as exc:
            # run_rank recorded the failure in the state.
            cause = describe_failure(exc)
            logger.error(f"rank {self.plan.rank} failed: {cause}")
            self.beat(f"failed: {cause}")
            return 1
        self.beat("completed")
        self.group.barrier("finished")
        if info.is_main:
            try:
                self.aggregate_if_complete()
            except Exception as exc:
                # Recorded as the experiment's error; the ranks' results stay complete.
                logger.error(
                    f"experiment {self.exp_id}: aggregation failed: {exc}; the raw results are "
                    f"kept: `llm-energy-measure run --resume {self.exp_id}` aggregates again"
                )
                return 1
        return 0

    def aggregate_if_complete(self) -> None:
        """Aggregate when every rank's marker is here (not on machines that see only their
        own ranks' files: then `llm-energy-measure aggregate` runs after collecting them)."""
        from llm_energy_measure.orchestration.aggregate import aggregate_if_complete

        done = aggregate_if_complete(
            self.workspace.repository, self.states, self.exp_id, self.plan.num_processes
        )
        if done.aggregated is None:
            logger.info(
                f"experiment {self.exp_id}: raw results of ranks {list(done.missing_ranks)} "
                f"are not in {self.base}; collect them there and run `llm-energy-measure "
                f"aggregate {self.exp_id}`"
            )
            return
        logger.info(f"experiment {self.exp_id} aggregated in {self.base}")


def agree_on_experiment_id(
    group: ControlGroup, given: str | None, config: ExperimentConfig, base: Path,
    num_processes: int, config_path: Path,
) -> str:
    """The experiment id on every rank: ``given``, else made by rank 0 and broadcast.

    Rank 0 creates the state (and saves the resolved config) when it does not exist yet, so
    a directly launched experiment can be resumed like one started by ``run``.
    """
    from llm_energy_measure.orchestration.start import start_experiment
    from llm_energy_measure.security import sanitize_experiment_id
    from llm_energy_measure.storage.workspace import Workspace

    message: tuple[str, str]
    if group.info.is_main:
        try:
            workspace = Workspace(base)
            exp_id = sanitize_experiment_id(given) if given else None
            existing = workspace.states.load(exp_id) if exp_id is not None else None
            done = existing is not None and (
                existing.status == "completed" or existing.aggregated
                or workspace.repository.has_aggregated(existing.experiment_id))
            if done:
                raise ConfigurationError(
                    f"experiment {exp_id} already completed; its results are kept: choose a "
                    "new --experiment-id"
                )
            if exp_id is None or existing is None:
                exp_id, _ = start_experiment(
                    workspace, config, experiment_id=exp_id, num_ranks=num_processes,
                    config_path=config_path,
                )
            message = ("ok", exp_id)
        except LLMBenchError as exc:
            message = ("error", str(exc))
    else:
        message = ("", "")
    message = group.broadcast(message)
    if message[0] != "ok":
        raise ConfigurationError(f"rank 0 could not set up the experiment: {message[1]}")
    return message[1]


def main(argv: Sequence[str] | None = None) -> int:
    """Run this rank; returns the exit status (0 success, 1 failure, 2 usage, 143 stopped)."""
    from llm_energy_measure.config import effective_results_dir
    from llm_energy_measure.logging import setup_logging
    from llm_energy_measure.orchestration.resume import load_resolved_config

    args = parse_args(argv)
    setup_logging(verbosity=int(os.environ.get("LLM_ENERGY_MEASURE_VERBOSE", "0") or 0))
    signal.signal(signal.SIGTERM, _raise_on_term)
    try:
        info = discover_distributed()
        plan = rank_plan(info, args.ranks, args.num_processes)
        config = load_resolved_config(args.config)
        base = effective_results_dir(config, args.results_dir).absolute()
        fault = fault_from_env()
        if args.supervisor_pid is not None:
            watch_supervisor(args.supervisor_pid, lambda: _stop_orphaned_rank(
                base, args.experiment_id, plan.rank))
        threads = configure_threads(info)
        prepare_builtin_model(config)
        logger.debug(f"rank {plan.rank}/{plan.num_processes}: {threads} torch thread(s)")
        # Barriers wait up to twice the supervisor's hang limit: the supervisor names a hung
        # rank first; the barrier timeout is the backstop for launches without it.
        with ControlGroup(info, timeout_s=2 * config.launch.process_timeout_s) as group:
            exp_id = agree_on_experiment_id(
                group, args.experiment_id, config, base, plan.num_processes, args.config
            )
            return _Rank(group, plan, base, exp_id, fault).run(config)
    except (KeyboardInterrupt, SystemExit):
        return EXIT_STOPPED
    except LLMBenchError as exc:
        logger.error(str(exc))
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
