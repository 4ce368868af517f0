"""A study's shared managed server: the fingerprint rule, the sharing plan, the hand-over in
the environment, and a run's session on it (the scripted server, in this process)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.streaming_server import ScriptedServer

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.serving.session import close_session, open_session
from llm_energy_measure.core.serving.shared import (
    SHARED_SERVER_ENV,
    SharedServer,
    SharedServerHandle,
    process_alive,
    server_fingerprint,
)
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.orchestration.study.shared_server import sharing_plan


def _config(server: dict[str, Any] | None = None, **sections: Any) -> ExperimentConfig:
    data: dict[str, Any] = {
        "engine": "openai", "model": {"name": "org/m"},
        "server": server or {"engine": "vllm"},
        "load": {"arrival": "poisson", "rate_per_s": 1},
    }
    data.update(sections)
    return ExperimentConfig.model_validate(data)


def test_points_differing_only_in_the_load_or_measurement_share_a_fingerprint() -> None:
    base = server_fingerprint(_config())
    assert base is not None and len(base) == 16
    same = [
        _config(load={"arrival": "constant", "rate_per_s": 8}),
        _config(load={"arrival": "concurrency", "concurrency": 4}),
        _config(slo={"ttft_ms": {"p99": 100}}, cycles=3),
        _config(prompts={"num_prompts": 50}, decoder={"max_new_tokens": 7}),
        _config(energy={"backend": "none"}),
    ]
    assert {server_fingerprint(c) for c in same} == {base}


def test_what_the_vllm_command_holds_changes_the_fingerprint() -> None:
    base = server_fingerprint(_config())
    changed = [
        _config(model={"name": "org/m", "precision": "bfloat16"}),
        _config(vllm={"max_num_seqs": 8}),
        _config(seed=1),
        _config(endpoint={"model": "served-name"}),
        _config(server={"engine": "vllm", "args": ["--max-logprobs", "5"]}),
        _config(server={"engine": "vllm", "env": {"VLLM_X": "1"}}),
        _config(model={"name": "org/other"}),
        _config(model={"name": "org/m", "revision": "abc"}),
    ]
    prints = [server_fingerprint(c) for c in changed]
    assert base not in prints and len(set(prints)) == len(prints)


def test_a_command_server_is_defined_by_its_command_alone() -> None:
    command = {"engine": "command", "command": ["srv", "--port", "{port}", "{model}"]}
    base = server_fingerprint(_config(command))
    assert server_fingerprint(_config(command, model={"name": "org/m",
                                                      "precision": "float16"})) == base
    assert server_fingerprint(_config({**command, "command": ["srv", "--port", "{port}"]})) \
        != base


def test_no_fingerprint_without_a_managed_server_or_for_llama_cpp() -> None:
    unmanaged = ExperimentConfig.model_validate({
        "engine": "openai", "endpoint": {"base_url": "http://h:1/v1"}})
    assert server_fingerprint(unmanaged) is None
    assert server_fingerprint(_config({"engine": "llama_cpp"})) is None


def test_sharing_plan_says_why_each_run_starts_its_own_server() -> None:
    a, b = _config(), _config(load={"arrival": "constant", "rate_per_s": 4})
    fingerprint, why = sharing_plan({"p000": a, "p001": b}, "local")
    assert fingerprint == server_fingerprint(a) and why is None
    fingerprint, why = sharing_plan({"p000": a, "p001": _config(seed=9)}, "local")
    assert fingerprint is None and why is not None
    assert why.startswith("the points start different servers") and "(p001)" in why
    assert sharing_plan({"p000": a}, "slurm") == (
        None, "executor slurm runs workers off this coordinator")
    plain = ExperimentConfig.model_validate({"model": {"name": "builtin:tiny-llama"}})
    assert sharing_plan({"p000": plain}, "local") == (None, None)
    assert sharing_plan({"p000": a, "p001": plain}, "local")[1] == \
        "not every point has a managed server"


def test_the_hand_over_round_trips_and_a_bad_value_is_one_line() -> None:
    shared = SharedServer(base_url="http://127.0.0.1:9/v1", fingerprint="f" * 16,
                          command=("srv", "--port", "9"), pid=123, owner="study s1",
                          log_path="/tmp/x.log")
    env = shared.to_env()
    assert SharedServer.from_env(env) == shared
    assert SharedServer.from_env({}) is None
    with pytest.raises(ConfigurationError, match=f"^{SHARED_SERVER_ENV} is set but unreadable"):
        SharedServer.from_env({SHARED_SERVER_ENV: "{not json"})


def test_process_alive_is_false_for_a_zombie_and_a_reaped_process() -> None:
    assert process_alive(os.getpid())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    while True:  # exited but not reaped: a zombie
        try:
            stat = Path(f"/proc/{proc.pid}/stat").read_text()
        except OSError:
            break
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            break
    assert not process_alive(proc.pid)
    proc.wait()
    assert not process_alive(proc.pid)


def test_a_run_uses_the_shared_server_and_leaves_it_running(
        monkeypatch: pytest.MonkeyPatch) -> None:
    command = {"engine": "command", "command": ["srv", "--port", "{port}"]}
    config = _config(command, endpoint={"model": "fake-model"})
    with ScriptedServer(ttft_s=0, gap_s=0, tokens=1) as server:
        shared = SharedServer(base_url=server.base_url, fingerprint=str(
            server_fingerprint(config)), command=("srv", "--port", str(server.port)),
            pid=os.getpid(), owner="study s1")
        monkeypatch.setenv(SHARED_SERVER_ENV, shared.to_env()[SHARED_SERVER_ENV])
        session = open_session(config, model_path=None, server_log=None)
        assert isinstance(session.managed, SharedServerHandle)
        assert session.base_url == server.base_url and session.shared_by == "study s1"
        assert session.command == shared.command and session.managed.alive()
        assert close_session(session) is None
        # Another server's fingerprint: the run would start its own (here: not a command
        # that exists, so the start fails: proof that it did not use the shared one).
        other = _config({**command, "command": ["no-such-server-xyz", "{port}"]},
                        endpoint={"model": "fake-model"})
        with pytest.raises(Exception, match="cannot start the server 'no-such-server-xyz'"):
            open_session(other, model_path=None, server_log=None)


def test_the_study_server_starts_again_if_it_died_and_stops_whatever_happens(
        tmp_path: Path) -> None:
    import signal

    from llm_energy_measure.orchestration.study.shared_server import study_server

    repo = Path(__file__).resolve().parents[2]
    command = {"engine": "command", "startup_timeout_s": 30, "stop_grace_s": 5,
               "env": {"PYTHONPATH": str(repo)},
               "command": [sys.executable, str(repo / "tests" / "fakes" / "streaming_server.py"),
                           "--forever", "--port", "{port}"]}
    configs = {"p000": _config(command), "p001": _config(command, load={
        "arrival": "constant", "rate_per_s": 3})}
    events: list[str] = []
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="a failing study"), study_server(
            configs, executor="local", owner="study s1", log_path=tmp_path / "server.log",
            on_event=events.append) as server:
        assert server is not None and server.shared is not None
        pids.append(server.shared.pid)
        assert SharedServer.from_env(server.env) == server.shared
        os.kill(server.shared.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server.alive() and time.monotonic() < deadline:  # every thread has to exit
            time.sleep(0.01)
        server.ensure_running()
        assert server.starts == 2 and server.shared.pid != pids[0]
        pids.append(server.shared.pid)
        raise RuntimeError("a failing study")
    assert not any(process_alive(pid) for pid in pids)
    assert [e.split(" (")[0] for e in events] == [
        "shared server started", "shared server", "shared server started",
        "shared server stopped"]
    assert "exited with code -9; starting it again" in events[1]
    assert (tmp_path / "server.log").read_text().count("PORT ") == 2
