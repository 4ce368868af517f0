"""ManagedServer against a real process (tests/fakes/server.py): health waited for, log
written, the whole process group stopped (SIGTERM, grace, SIGKILL), start-up failures
reported with the exit code and the log's last lines, and no process left behind."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_energy_measure.core.serving.server import (
    ManagedServer,
    ServerError,
    free_port,
    log_tail,
)

psutil = pytest.importorskip("psutil")
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "server.py"


def _gone(pid: int) -> bool:
    """True if ``pid`` has exited (a zombie counts: this container's init does not reap)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _all_gone(pids: list[int], timeout_s: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return all(_gone(p) for p in pids)


@pytest.fixture
def servers() -> Iterator[list[ManagedServer]]:
    """Servers made by a test, stopped at its end whatever happened."""
    made: list[ManagedServer] = []
    yield made
    for server in made:
        server.stop()


def _server(
    servers: list[ManagedServer], tmp_path: Path, *args: str, startup_timeout_s: float = 5.0,
    stop_grace_s: float = 2.0,
) -> ManagedServer:
    port = free_port()
    server = ManagedServer(
        [sys.executable, str(FAKE), "--port", str(port), *args],
        base_url=f"http://127.0.0.1:{port}/v1",
        health_url=f"http://127.0.0.1:{port}/health",
        log_path=tmp_path / "logs" / "server.log",
        startup_timeout_s=startup_timeout_s,
        stop_grace_s=stop_grace_s,
    )
    servers.append(server)
    return server


def _group(server: ManagedServer) -> list[int]:
    assert server.pid is not None
    leader = psutil.Process(server.pid)
    return [server.pid, *(c.pid for c in leader.children(recursive=True))]


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_start_waits_for_health_and_logs(servers: list[ManagedServer], tmp_path: Path) -> None:
    server = _server(servers, tmp_path, "--ready-after-s", "0.4")
    started = time.monotonic()
    server.start()
    assert time.monotonic() - started >= 0.4
    assert server.alive() and server.returncode is None
    import httpx

    assert httpx.get(server.health_url, trust_env=False).status_code == 200
    text = server.log_path.read_text()
    assert f"server pid={server.pid}" in text
    assert "GET /health" in text  # the 503 answers before ready, then the 200
    assert server.stop() == -15
    assert not server.alive()


def test_stop_kills_the_whole_group(servers: list[ManagedServer], tmp_path: Path) -> None:
    server = _server(servers, tmp_path, "--child")
    server.start()
    pids = _group(server)
    assert len(pids) == 2
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.5  # obeying SIGTERM: no grace waited
    assert _all_gone(pids)


def test_ignoring_sigterm_is_killed_after_the_grace(
    servers: list[ManagedServer], tmp_path: Path
) -> None:
    server = _server(servers, tmp_path, "--child", "--ignore-term", stop_grace_s=0.4)
    server.start()
    pids = _group(server)
    started = time.monotonic()
    assert server.stop() == -9
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 2.0
    assert _all_gone(pids)


def test_a_child_ignoring_sigterm_does_not_outlive_the_server(
    servers: list[ManagedServer], tmp_path: Path
) -> None:
    server = _server(servers, tmp_path, "--child", "--child-ignores-term", stop_grace_s=5.0)
    server.start()
    pids = _group(server)
    started = time.monotonic()
    assert server.stop() == -15
    assert time.monotonic() - started < 2.0  # the grace is the server's own
    assert _all_gone(pids)


def test_a_server_that_died_leaves_no_child(
    servers: list[ManagedServer], tmp_path: Path
) -> None:
    server = _server(servers, tmp_path, "--child")
    server.start()
    pids = _group(server)
    psutil.Process(server.pid).kill()
    assert _all_gone(pids[:1])
    assert not server.alive() and server.returncode == -9
    assert not _gone(pids[1])  # the orphan, still in the server's process group
    assert server.stop() == -9
    assert _all_gone(pids)


def test_stop_is_idempotent_and_context_manager_stops(
    servers: list[ManagedServer], tmp_path: Path
) -> None:
    server = _server(servers, tmp_path, "--child")
    with pytest.raises(RuntimeError, match="inside"), server:
        pids = _group(server)
        raise RuntimeError("inside")
    assert _all_gone(pids)
    assert server.stop() == server.stop() == -15
    assert ManagedServer(["x"], base_url="", health_url="", log_path=tmp_path / "l",
                         startup_timeout_s=1, stop_grace_s=1).stop() is None


def test_exit_during_start_up_names_code_and_log_tail(
    servers: list[ManagedServer], tmp_path: Path
) -> None:
    server = _server(servers, tmp_path, "--exit-code", "3")
    with pytest.raises(ServerError) as info:
        server.start()
    message = str(info.value)
    assert "exited with code 3 during start-up" in message
    assert "fatal: cannot load the model" in message
    assert "start-up line 7" in message and "start-up line 3" not in message  # last 5 lines
    assert "\n" not in message
    assert server.returncode == 3 and not server.alive()


def test_not_healthy_in_time_stops_it(servers: list[ManagedServer], tmp_path: Path) -> None:
    server = _server(servers, tmp_path, "--child", "--ready-after-s", "60",
                     startup_timeout_s=0.6)
    seen: set[int] = set()

    def watch(delay_s: float) -> None:  # the group as it is while start-up waits
        seen.update(_group(server))
        time.sleep(delay_s)

    server._sleep = watch
    started = time.monotonic()
    with pytest.raises(ServerError, match=r"did not answer 200 .* within 0.6 s \(last answer: "
                                          r"HTTP 503\)"):
        server.start()
    assert time.monotonic() - started < 2.5
    assert len(seen) == 2 and _all_gone(list(seen))


def test_a_command_that_cannot_run(servers: list[ManagedServer], tmp_path: Path) -> None:
    server = ManagedServer([str(tmp_path / "no-such-server")], base_url="", health_url="",
                           log_path=tmp_path / "s.log", startup_timeout_s=1, stop_grace_s=1)
    with pytest.raises(ServerError, match="cannot start the server"):
        server.start()
    assert server.stop() is None


def test_log_appends_and_tail(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("one\n\ntwo\nthree\n")
    assert log_tail(log, 2) == ["two", "three"]
    assert log_tail(tmp_path / "missing.log") == []
