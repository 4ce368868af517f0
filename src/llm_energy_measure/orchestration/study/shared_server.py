"""One managed server for every run of a study, when all its points start the same server.

The coordinator starts the server before the first run (its output in the study's
``logs/shared-server.log``), hands it to each worker in the environment
(``core.serving.shared``), checks it before each run (starting it again, with a line in the
study log, if it died), and stops it at the end however the study ends (a failure, Ctrl+C):
no server outlives ``study run`` / ``study resume``. The server's load time is then paid
once per study, not once per point; each run still measures its idle baseline with the
server loaded and idle, right before its own load.

Sharing needs the local executor (the server runs on this host, next to the workers) and
points whose servers have equal fingerprints (``server_fingerprint``); otherwise each run
starts its own server, and the study log says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.serving.shared import SharedServer, server_fingerprint

if TYPE_CHECKING:
    from llm_energy_measure.core.serving.server import ManagedServer

#: Host the shared server listens on (loopback, like a run's own managed server).
SHARED_HOST = "127.0.0.1"


def sharing_plan(configs: Mapping[str, ExperimentConfig], executor: str) -> tuple[str | None,
                                                                                 str | None]:
    """``(fingerprint, None)`` when one server can serve every point (by point id), else
    ``(None, why not)``; ``(None, None)`` when no point has a managed server."""
    managed = {p: c for p, c in configs.items() if c.engine == "openai" and c.server}
    if not managed:
        return None, None
    if len(managed) < len(configs):
        return None, "not every point has a managed server"
    if executor != "local":
        return None, f"executor {executor} runs workers off this coordinator"
    by_print: dict[str | None, list[str]] = {}
    for point_id, config in managed.items():
        by_print.setdefault(server_fingerprint(config), []).append(point_id)
    if None in by_print:
        engine = next(iter(managed.values())).server
        assert engine is not None
        return None, f"server.engine {engine.engine} is not shared"
    if len(by_print) > 1:
        groups = "; ".join(f"{fp} ({', '.join(ids)})" for fp, ids in by_print.items())
        return None, f"the points start different servers (fingerprints {groups})"
    return next(iter(by_print)), None


class StudyServer:
    """The study's one server: ``start``, ``ensure_running`` before each run, ``stop``.

    ``config`` is the first point's (every point has the same fingerprint); ``owner`` names
    the study (``study <id>``) in each result that uses the server.
    """

    def __init__(self, config: ExperimentConfig, *, fingerprint: str, owner: str,
                 log_path: Path, on_event: Callable[[str], None]) -> None:
        self.config = config
        self.fingerprint = fingerprint
        self.owner = owner
        self.log_path = log_path
        self._on_event = on_event
        self._server: ManagedServer | None = None
        self.shared: SharedServer | None = None
        self.starts = 0

    @property
    def env(self) -> dict[str, str]:
        """The environment variable that hands the server to a worker ({} before start)."""
        return self.shared.to_env() if self.shared is not None else {}

    def start(self) -> None:
        """Start the server and wait until it is healthy (ServerError otherwise, nothing
        left running)."""
        from llm_energy_measure.core.serving import server as managed
        from llm_energy_measure.core.serving.server_args import managed_command, server_env
        from llm_energy_measure.core.serving.session import server_model_path

        config, server_config = self.config, self.config.server
        assert server_config is not None
        port = managed.free_port(SHARED_HOST)
        base_url = f"http://{SHARED_HOST}:{port}/v1"
        command = managed_command(config, model_path=server_model_path(config),
                                  host=SHARED_HOST, port=port)
        server = managed.ManagedServer(
            command, base_url=base_url,
            health_url=f"http://{SHARED_HOST}:{port}{server_config.health_path}",
            log_path=self.log_path, env=server_env(config),
            startup_timeout_s=server_config.startup_timeout_s,
            stop_grace_s=server_config.stop_grace_s,
        )
        started_s = time.monotonic()
        server.start()
        assert server.pid is not None
        self._server = server
        self.starts += 1
        self.shared = SharedServer(base_url=base_url, fingerprint=self.fingerprint,
                                   command=tuple(command), pid=server.pid, owner=self.owner,
                                   log_path=str(self.log_path))
        self._on_event(f"shared server started (pid {server.pid}, {base_url}) in "
                       f"{time.monotonic() - started_s:.1f} s; log {self.log_path}")

    def alive(self) -> bool:
        """Whether the server runs (False before ``start`` and after ``stop``)."""
        return self._server is not None and self._server.alive()

    def ensure_running(self) -> None:
        """Start the server again if it died since the last run (one line says so)."""
        server = self._server
        if self.alive():
            return
        if server is not None:
            self._on_event(f"shared server (pid {server.pid}) exited with code "
                           f"{server.returncode}; starting it again")
            server.stop()
        self.start()

    def stop(self) -> None:
        """Stop the server and every process of its group (safe twice)."""
        server, self._server = self._server, None
        if server is not None:
            code = server.stop()
            self._on_event(f"shared server stopped (pid {server.pid}, exit code {code})")


@contextmanager
def study_server(configs: Mapping[str, ExperimentConfig], *, executor: str, owner: str,
                 log_path: Path, on_event: Callable[[str], None]) -> Iterator[StudyServer | None]:
    """The study's shared server, started on entry and stopped on exit whatever happens;
    None (with a line saying why, when the points have managed servers) when each run
    starts its own."""
    fingerprint, why_not = sharing_plan(configs, executor)
    if fingerprint is None:
        if why_not is not None:
            on_event(f"each run starts its own server: {why_not}")
        yield None
        return
    first = next(iter(configs.values()))
    server = StudyServer(first, fingerprint=fingerprint, owner=owner, log_path=log_path,
                         on_event=on_event)
    try:
        server.start()
        yield server
    finally:
        server.stop()
