"""The parent of a multi-process run: starts ``accelerate launch``, watches it, stops it.

``accelerate launch`` (torch's elastic agent) runs one launcher process per rank. The
supervisor starts it in its own session and polls every ``poll_interval_s``:

- the agent exited: success when its status is 0;
- a rank recorded a failure in the experiment state (an error, out of memory): stop all;
- a rank's process vanished without recording anything (SIGKILL, the kernel's OOM killer);
- a rank made no progress for ``launch.process_timeout_s`` seconds (hung; waiting at a
  barrier for the others does not count).

Stopping sends SIGTERM to the agent and every process under it (ranks run in sessions of
their own, so they are found through the process tree and the heartbeats), waits at most
``grace_s`` seconds, then sends SIGKILL: a stop is bounded in time. The cause is recorded in
the experiment state; ranks that were stopped, not failed, go back to pending so that
``run --resume`` runs them again. Ctrl+C stops the launch the same way and marks the
experiment interrupted.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from llm_energy_measure.config.models import LaunchConfig
from llm_energy_measure.orchestration.launch.base import LaunchOutcome, ProgressCallback, RankJob
from llm_energy_measure.processes import stop_process_group
from llm_energy_measure.state import ExperimentState, pid_is_alive
from llm_energy_measure.state.heartbeat import Heartbeat, heartbeat_age_s, read_heartbeats
from llm_energy_measure.storage.workspace import Workspace

LAUNCHER_MODULE = "llm_energy_measure.orchestration.launch.rank"
#: Seconds a rank may take from launch to its first heartbeat, on top of process_timeout_s
#: (python, torch and the rendezvous start first).
STARTUP_ALLOWANCE_S = 120.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LaunchSpec:
    """One ``accelerate launch`` of the launcher module on this machine."""

    config_file: Path
    experiment_id: str
    results_dir: Path
    launch: LaunchConfig
    #: Processes started on this machine (launch.num_processes, or the missing ranks).
    local_processes: int
    #: Experiment ranks the launched processes measure (resume); None: ranks 0..N-1.
    ranks: tuple[int, ...] | None = None
    num_ranks: int | None = None
    port: int | None = None

    @property
    def world_size(self) -> int:
        return self.local_processes * self.launch.num_machines

    def local_ranks(self) -> list[int]:
        """Experiment ranks that run on this machine."""
        if self.ranks is not None:
            return list(self.ranks)
        first = self.launch.machine_rank * self.local_processes
        return list(range(first, first + self.local_processes))


def build_command(spec: LaunchSpec, python: str = sys.executable) -> list[str]:
    """The ``accelerate launch`` command line for ``spec``.

    ``--multi_gpu`` selects torch's distributed launcher for CPU runs too: ranks then use
    gloo (``--cpu`` would start a single process). accelerate refuses it for one process:
    a world of one runs as a plain process.
    """
    launch = spec.launch
    port = spec.port or launch.main_process_port or free_port()
    cmd = [
        python, "-m", "accelerate.commands.launch",
        # A world of one (resuming a single missing rank) is a plain process.
        *(["--multi_gpu"] if spec.world_size > 1 else []),
        "--num_processes", str(spec.world_size),
        "--num_machines", str(launch.num_machines),
        "--machine_rank", str(launch.machine_rank),
        "--main_process_port", str(port),
        "--mixed_precision", "no",
        "--dynamo_backend", "no",
        "--monitor_interval", "0.2",
    ]
    if launch.num_machines > 1 or launch.main_process_ip:
        cmd += ["--main_process_ip", launch.main_process_ip or "127.0.0.1"]
    cmd += [
        "-m", LAUNCHER_MODULE,
        "--config", str(spec.config_file),
        "--experiment-id", spec.experiment_id,
        "--results-dir", str(spec.results_dir),
        # Ranks stop by themselves when this process is gone (killed, even by SIGKILL).
        "--supervisor-pid", str(os.getpid()),
    ]
    if spec.ranks is not None:
        cmd += ["--ranks", ",".join(map(str, spec.ranks)),
                "--num-processes", str(spec.num_ranks or max(spec.ranks) + 1)]
    return cmd


def build_env(spec: LaunchSpec, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the launch: ours, plus the visible GPUs (``launch.gpus``) and
    each rank's share of the CPU cores (``OMP_NUM_THREADS`` and the launcher's thread
    setting). The share is that of ``launch.num_processes`` ranks per machine, also when a
    resume runs fewer, so that resumed ranks measure under the same conditions."""
    from llm_energy_measure.orchestration.launch.distributed import THREADS_ENV, torch_threads_for

    env = dict(os.environ if base is None else base)
    if spec.launch.gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in spec.launch.gpus)
    threads = str(torch_threads_for(os.cpu_count(), spec.launch.num_processes))
    env.setdefault("OMP_NUM_THREADS", threads)
    env.setdefault(THREADS_ENV, threads)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


_ROOT_CAUSE = re.compile(
    r"Root Cause.*?rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)[^\n]*?(?:\((SIG\w+)\))?",
    re.DOTALL,
)


def root_cause_from_log(text: str) -> tuple[int, str] | None:
    """(launched rank, description) from torch elastic's "Root Cause" report, if any."""
    match = _ROOT_CAUSE.search(text)
    if match is None:
        return None
    rank, code, sig = int(match.group(1)), int(match.group(2)), match.group(3)
    if code < 0:
        try:
            sig = sig or signal.Signals(-code).name
        except ValueError:
            sig = sig or f"signal {-code}"
        return rank, f"killed by {sig}"
    return rank, f"exited with status {code}"


def find_culprit(
    state: ExperimentState | None,
    beats: Mapping[int, Heartbeat],
    ranks: Sequence[int],
    *,
    hostname: str,
    limit_s: float,
    elapsed_s: float,
    now_s: float | None = None,
    alive: Callable[[int], bool] = pid_is_alive,
) -> tuple[int, str] | None:
    """The rank that caused a failure, and why, in this order of evidence:

    1. a rank that recorded its failure in the state (the earliest one);
    2. a rank on this host whose process is gone without a record, and which was not
       stopped because of the others (its heartbeat says so): killed by a signal;
    3. a rank whose heartbeat is older than ``limit_s`` while not waiting at a barrier, or
       that wrote none within ``limit_s + STARTUP_ALLOWANCE_S`` of the launch: hung.

    None when every rank is fine (running, waiting or completed).
    """
    processes = state.processes if state is not None else {}
    recorded = [(p.finished_at is None, p.finished_at, r) for r in ranks
                if (p := processes.get(r)) is not None and p.status == "failed"]
    if recorded:
        rank = min(recorded)[2]
        return rank, processes[rank].error or "failed"
    unfinished = [r for r in ranks
                  if (p := processes.get(r)) is None or p.status != "completed"]
    for rank in unfinished:
        beat = beats.get(rank)
        if beat is not None and beat.hostname == hostname and not beat.stopped \
                and not alive(beat.pid):
            return rank, (f"process {beat.pid} died during '{beat.stage}' without recording "
                          "a result (killed by a signal, e.g. SIGKILL or the OOM killer)")
    for rank in unfinished:
        beat = beats.get(rank)
        if beat is None:
            if elapsed_s > limit_s + STARTUP_ALLOWANCE_S:
                return rank, f"did not start within {limit_s + STARTUP_ALLOWANCE_S:g} s"
        elif not beat.waiting and not beat.stopped and heartbeat_age_s(beat, now_s) > limit_s:
            return rank, (f"hung: no progress for {heartbeat_age_s(beat, now_s):.0f} s during "
                          f"'{beat.stage}' (launch.process_timeout_s={limit_s:g})")
    return None


class Supervisor:
    """Runs one launch to its end and records how it ended in the experiment state."""

    def __init__(
        self,
        spec: LaunchSpec,
        *,
        poll_interval_s: float = 0.2,
        grace_s: float = 10.0,
        on_progress: Callable[[str, int, int], None] | None = None,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        workspace: Workspace | None = None,
    ) -> None:
        self.spec = spec
        self.workspace = workspace or Workspace(spec.results_dir)
        self.poll_interval_s = poll_interval_s
        self.grace_s = grace_s
        self.on_progress = on_progress
        self.env = build_env(spec, env)
        self.python = python
        self.states = self.workspace.states
        self.hostname = socket.gethostname()

    @property
    def log_file(self) -> Path:
        return self.workspace.layout.launch_log(self.spec.experiment_id)

    def run(self) -> LaunchOutcome:
        """Launch, watch and, on a failure, hang or Ctrl+C, stop every rank."""
        cmd = build_command(self.spec, self.python)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        logger.debug("launching: {}", " ".join(cmd))
        started = time.monotonic()
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
            try:
                outcome = self._watch(proc, started)
            except KeyboardInterrupt:
                self._stop(proc)
                self._record_interrupted()
                raise
            except BaseException:
                self._stop(proc)
                raise
        outcome.duration_s = time.monotonic() - started
        outcome.log_file = self.log_file
        if outcome.status == "failed":
            self._record_failure(outcome)
        return outcome

    # --- watching -------------------------------------------------------------------------

    def _watch(self, proc: subprocess.Popen[bytes], started: float) -> LaunchOutcome:
        while True:
            code = proc.poll()
            if code is not None:
                return self._ended(code)
            problem = self._check_ranks(time.monotonic() - started)
            if problem is not None:
                rank, cause = problem
                logger.error(f"rank {rank}: {cause}; stopping the other ranks")
                self._stop(proc)
                return LaunchOutcome("failed", proc.poll(), cause=cause, failed_rank=rank)
            time.sleep(self.poll_interval_s)

    def _check_ranks(self, elapsed_s: float) -> tuple[int, str] | None:
        """The rank that failed, died or hung, with the cause; None when all is well."""
        state = self.states.load(self.spec.experiment_id)
        beats = read_heartbeats(self.spec.results_dir, self.spec.experiment_id)
        self._report_progress(beats)
        return find_culprit(
            state, beats, self.spec.local_ranks(), hostname=self.hostname,
            limit_s=self.spec.launch.process_timeout_s, elapsed_s=elapsed_s,
        )

    def _report_progress(self, beats: dict[int, Heartbeat]) -> None:
        if self.on_progress is None or not beats:
            return
        local = [beats[r] for r in self.spec.local_ranks() if r in beats]
        if not local:
            return
        done = sum(b.done for b in local)
        total = sum(b.total for b in local)
        stage = min(local, key=lambda b: b.time_s).stage
        self.on_progress(f"{len(local)} rank(s): {stage}", done, total)

    def _finished_ranks(self) -> set[int]:
        """Local ranks whose completion marker exists (their raw result is complete)."""
        done = self.workspace.repository.completed_ranks(self.spec.experiment_id)
        return done & set(self.spec.local_ranks())

    def _ended(self, code: int) -> LaunchOutcome:
        if code == 0:
            return LaunchOutcome("completed", code)
        state = self.states.load(self.spec.experiment_id)
        if self._finished_ranks() == set(self.spec.local_ranks()):
            # Every rank's result is complete: what failed came after (the aggregation).
            if state is not None and state.aggregated:
                logger.warning(f"accelerate launch exited with status {code} after the "
                               f"experiment was aggregated; see {self.log_file}")
                return LaunchOutcome("completed", code)
            cause = state.error if state is not None and state.error else (
                f"every rank finished, but accelerate launch exited with status {code}; see "
                f"{self.log_file}")
            return LaunchOutcome("failed", code, cause=cause)
        beats = read_heartbeats(self.spec.results_dir, self.spec.experiment_id)
        found = find_culprit(state, beats, self.spec.local_ranks(), hostname=self.hostname,
                             limit_s=self.spec.launch.process_timeout_s, elapsed_s=0.0)
        if found is not None and not found[1].startswith("hung"):
            return LaunchOutcome("failed", code, cause=found[1], failed_rank=found[0])
        reported = root_cause_from_log(self._log_tail())
        if reported is not None:
            launched, cause = reported
            ranks = self.spec.local_ranks() if self.spec.ranks is not None else None
            rank = ranks[launched] if ranks is not None and launched < len(ranks) else launched
            return LaunchOutcome("failed", code, cause=cause, failed_rank=rank)
        return LaunchOutcome(
            "failed", code, cause=f"accelerate launch exited with status {code}; see "
                                  f"{self.log_file}")

    def _log_tail(self, max_bytes: int = 200_000) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(max(0, self.log_file.stat().st_size - max_bytes))
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # --- stopping and recording -----------------------------------------------------------

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        beats = read_heartbeats(self.spec.results_dir, self.spec.experiment_id)
        rank_pids = [b.pid for b in beats.values() if b.hostname == self.hostname]
        stop_process_group(proc, self.grace_s, extra_pids=rank_pids, tree=True)

    def _reset_unfinished(self, keep_failed: int | None) -> None:
        """Ranks stopped before finishing go back to pending (their attempt is void)."""
        from llm_energy_measure.state.models import derive_status

        def change(state: ExperimentState) -> None:
            for rank in self.spec.local_ranks():
                process = state.processes.get(rank)
                if process is None or process.status == "completed" or rank == keep_failed:
                    continue
                process.status, process.error, process.finished_at = "pending", None, None
            state.status, state.error = derive_status(state)

        self.states.update(self.spec.experiment_id, change)

    def _record_failure(self, outcome: LaunchOutcome) -> None:
        """The cause becomes the experiment's error; the failed rank is marked failed unless
        its completion marker exists (its result is complete: it did not fail)."""
        rank = outcome.failed_rank
        cause = outcome.cause or "unknown failure"
        self._reset_unfinished(keep_failed=rank)
        if rank is not None and rank not in self._finished_ranks():
            state = self.states.load(self.spec.experiment_id)
            current = state.processes.get(rank) if state is not None else None
            if current is not None and current.status != "failed":
                self.states.mark_process(self.spec.experiment_id, rank, "failed", error=cause)
        self.states.mark_failed(
            self.spec.experiment_id, f"rank {rank}: {cause}" if rank is not None else cause
        )

    def _record_interrupted(self) -> None:
        self._reset_unfinished(keep_failed=None)
        self.states.mark_interrupted(self.spec.experiment_id)


class AccelerateLauncher:
    """Runs a job's local ranks under ``accelerate launch`` (see ``Supervisor``)."""

    def __init__(
        self,
        *,
        poll_interval_s: float = 0.2,
        grace_s: float = 10.0,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.poll_interval_s = poll_interval_s
        self.grace_s = grace_s
        self.env = env
        self.python = python

    def launch(self, job: RankJob, on_progress: ProgressCallback | None = None) -> LaunchOutcome:
        ranks = job.local_ranks()
        spec = LaunchSpec(
            config_file=job.config_file, experiment_id=job.experiment_id,
            results_dir=job.workspace.root, launch=job.config.launch,
            local_processes=len(ranks), ranks=job.ranks, num_ranks=job.num_ranks,
        )
        supervisor = Supervisor(
            spec, poll_interval_s=self.poll_interval_s, grace_s=self.grace_s,
            on_progress=on_progress, env=self.env, python=self.python,
            workspace=job.workspace,
        )
        logger.info(f"experiment {job.experiment_id}: launching {len(ranks)} process(es) on "
                    f"this machine; ranks' output in {supervisor.log_file}")
        return supervisor.run()
