"""The supervisor: its accelerate command, environment, diagnosis of a failed launch and what
it records in the experiment state (stopping is tested in test_processes)."""

from __future__ import annotations

import os
from pathlib import Path

from llm_energy_measure.config.models import LaunchConfig
from llm_energy_measure.orchestration.launch.accelerate import (
    LaunchOutcome,
    LaunchSpec,
    Supervisor,
    build_command,
    build_env,
    find_culprit,
    root_cause_from_log,
)
from llm_energy_measure.state import StateStore
from llm_energy_measure.state.heartbeat import Heartbeat, read_heartbeats, write_heartbeat

NOW = 10_000.0


def _spec(tmp_path: Path, **launch: object) -> LaunchSpec:
    cfg = LaunchConfig(**launch)  # type: ignore[arg-type]
    return LaunchSpec(config_file=tmp_path / "config.json", experiment_id="exp-1",
                      results_dir=tmp_path, launch=cfg, local_processes=cfg.num_processes)


def _flag(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_command_launches_the_launcher_module_with_gloo_capable_flags(tmp_path: Path) -> None:
    cmd = build_command(_spec(tmp_path, num_processes=2, main_process_port=29555), "py")
    assert cmd[:3] == ["py", "-m", "accelerate.commands.launch"]
    assert "--multi_gpu" in cmd and "--cpu" not in cmd
    assert _flag(cmd, "--num_processes") == "2" and _flag(cmd, "--main_process_port") == "29555"
    assert "--main_process_ip" not in cmd
    tail = cmd[cmd.index("-m", 3):]
    assert tail == ["-m", "llm_energy_measure.orchestration.launch.rank",
                    "--config", str(tmp_path / "config.json"), "--experiment-id", "exp-1",
                    "--results-dir", str(tmp_path), "--supervisor-pid", str(os.getpid())]


def test_command_for_two_machines_counts_every_process(tmp_path: Path) -> None:
    cmd = build_command(_spec(tmp_path, num_processes=2, num_machines=2, machine_rank=1,
                              main_process_ip="10.0.0.1", main_process_port=29500), "py")
    assert _flag(cmd, "--num_processes") == "4"  # accelerate counts all machines
    assert _flag(cmd, "--machine_rank") == "1"
    assert _flag(cmd, "--main_process_ip") == "10.0.0.1"


def test_resume_command_names_the_missing_ranks_and_a_single_one_is_a_plain_process(
    tmp_path: Path,
) -> None:
    spec = LaunchSpec(config_file=tmp_path / "c.json", experiment_id="exp-1",
                      results_dir=tmp_path, launch=LaunchConfig(num_processes=4),
                      local_processes=1, ranks=(2,), num_ranks=4, port=29501)
    cmd = build_command(spec, "py")
    assert "--multi_gpu" not in cmd  # accelerate refuses it for one process
    assert _flag(cmd, "--ranks") == "2" and _flag(cmd, "--num-processes") == "4"
    assert spec.local_ranks() == [2]
    assert _spec(tmp_path, num_processes=2, num_machines=2, machine_rank=1).local_ranks() == \
        [2, 3]


def test_a_free_port_is_chosen_when_none_is_configured(tmp_path: Path) -> None:
    port = int(_flag(build_command(_spec(tmp_path, num_processes=2), "py"),
                     "--main_process_port"))
    assert 1 <= port <= 65_535


def test_environment_sets_visible_gpus_and_thread_shares(tmp_path: Path) -> None:
    env = build_env(_spec(tmp_path, num_processes=2, gpus=[3, 5]), {"PATH": "/bin"})
    assert env["CUDA_VISIBLE_DEVICES"] == "3,5"
    import os

    share = str(max(1, (os.cpu_count() or 1) // 2))
    assert env["OMP_NUM_THREADS"] == share
    assert env["LLM_ENERGY_MEASURE_TORCH_THREADS"] == share
    assert env["PATH"] == "/bin"
    assert build_env(_spec(tmp_path, num_processes=2), {"OMP_NUM_THREADS": "7"})[
        "OMP_NUM_THREADS"] == "7"  # the user's setting wins


ELASTIC_REPORT = """
Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : 143 (pid: 23446)
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-11-27_05:30:35
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 23447)  (SIGKILL)
  error_file: <N/A>
"""


def test_root_cause_is_read_from_torch_elastic_report() -> None:
    assert root_cause_from_log(ELASTIC_REPORT) == (1, "killed by SIGKILL")
    assert root_cause_from_log(ELASTIC_REPORT.replace("-9 (pid: 23447)  (SIGKILL)",
                                                      "3 (pid: 23447)")) == \
        (1, "exited with status 3")
    assert root_cause_from_log("nothing here") is None


def _beat(rank: int, *, age_s: float = 1.0, pid: int = 100, waiting: bool = False,
          stopped: bool = False, stage: str = "measuring") -> Heartbeat:
    return Heartbeat(rank=rank, pid=pid, hostname="h", stage=stage, time_s=NOW - age_s,
                     waiting=waiting, stopped=stopped)


def _state(tmp_path: Path, statuses: dict[int, tuple[str, str | None]]):  # type: ignore[no-untyped-def]
    store = StateStore(tmp_path)
    store.create("exp-1", config_name="c", num_processes=len(statuses))
    for rank, (status, error) in statuses.items():
        if status != "pending":
            store.mark_process("exp-1", rank, status, error=error)  # type: ignore[arg-type]
    return store.load("exp-1")


def _culprit(state, beats, alive=lambda pid: True, elapsed_s=5.0):  # type: ignore[no-untyped-def]
    return find_culprit(state, {b.rank: b for b in beats}, [0, 1], hostname="h", limit_s=30,
                        elapsed_s=elapsed_s, now_s=NOW, alive=alive)


def test_all_well_means_no_culprit(tmp_path: Path) -> None:
    state = _state(tmp_path, {0: ("completed", None), 1: ("running", None)})
    assert _culprit(state, [_beat(0, pid=1), _beat(1, pid=2)]) is None


def test_a_recorded_failure_wins_over_other_evidence(tmp_path: Path) -> None:
    state = _state(tmp_path, {0: ("running", None), 1: ("failed", "out of memory: boom")})
    beats = [_beat(0, pid=1, age_s=100), _beat(1, pid=2)]
    assert _culprit(state, beats, alive=lambda pid: False) == (1, "out of memory: boom")


def test_a_vanished_process_is_blamed_not_the_rank_it_left_behind(tmp_path: Path) -> None:
    state = _state(tmp_path, {0: ("running", None), 1: ("running", None)})
    beats = [_beat(0, pid=1, stopped=True, stage="stopped: lost contact"),
             _beat(1, pid=2, stage="window_open")]
    rank, cause = _culprit(state, beats, alive=lambda pid: False)
    assert rank == 1 and "process 2 died during 'window_open'" in cause


def test_a_silent_rank_is_hung_but_one_waiting_at_a_barrier_is_not(tmp_path: Path) -> None:
    state = _state(tmp_path, {0: ("running", None), 1: ("running", None)})
    beats = [_beat(0, pid=1, age_s=100, waiting=True), _beat(1, pid=2, age_s=31)]
    rank, cause = _culprit(state, beats)
    assert rank == 1 and cause.startswith("hung: no progress for 31 s during 'measuring'")
    assert _culprit(state, [_beat(0, age_s=100, waiting=True), _beat(1, age_s=29)]) is None


def test_a_rank_that_never_starts_is_reported_after_the_startup_allowance(tmp_path: Path) -> None:
    state = _state(tmp_path, {0: ("running", None), 1: ("pending", None)})
    assert _culprit(state, [_beat(0)], elapsed_s=100) is None
    rank, cause = _culprit(state, [_beat(0)], elapsed_s=1000)
    assert rank == 1 and cause.startswith("did not start")


def test_a_failure_is_recorded_and_stopped_ranks_go_back_to_pending(tmp_path: Path) -> None:
    _state(tmp_path, {0: ("completed", None), 1: ("running", None), 2: ("running", None)})
    spec = LaunchSpec(config_file=tmp_path / "c.json", experiment_id="exp-1",
                      results_dir=tmp_path, launch=LaunchConfig(num_processes=3),
                      local_processes=3)
    supervisor = Supervisor(spec)
    supervisor._record_failure(LaunchOutcome("failed", 1, cause="hung: no progress",
                                             failed_rank=2))
    state = StateStore(tmp_path).load("exp-1")
    assert state is not None
    assert state.status == "failed" and state.error == "rank 2: hung: no progress"
    assert {r: p.status for r, p in state.processes.items()} == {
        0: "completed", 1: "pending", 2: "failed"}
    assert state.processes[2].error == "hung: no progress"


def test_an_interrupt_is_recorded_and_finished_ranks_stay_finished(tmp_path: Path) -> None:
    _state(tmp_path, {0: ("completed", None), 1: ("running", None)})
    spec = LaunchSpec(config_file=tmp_path / "c.json", experiment_id="exp-1",
                      results_dir=tmp_path, launch=LaunchConfig(num_processes=2),
                      local_processes=2)
    Supervisor(spec)._record_interrupted()
    state = StateStore(tmp_path).load("exp-1")
    assert state is not None and state.status == "interrupted"
    assert {r: p.status for r, p in state.processes.items()} == {0: "completed", 1: "pending"}


def test_heartbeats_round_trip(tmp_path: Path) -> None:
    beat = Heartbeat(rank=3, pid=42, hostname="h", stage="measuring", time_s=1.5, done=2,
                     total=8, waiting=False, stopped=False)
    write_heartbeat(tmp_path, "exp-1", beat)
    (tmp_path / "state" / "exp-1.launch" / "rank_9.heartbeat.json").write_text("{broken")
    assert read_heartbeats(tmp_path, "exp-1") == {3: beat}
    assert read_heartbeats(tmp_path, "other") == {}
