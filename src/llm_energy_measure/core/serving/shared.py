"""A managed server shared by the runs of a study: its fingerprint and how runs find it.

A study whose points all start the same server (same ``server_fingerprint``) starts it once
(``orchestration.study.shared_server``) and hands it to each run's worker in the
environment variable ``LLM_ENERGY_MEASURE_SHARED_SERVER`` (JSON: base URL, fingerprint,
command, pid, owner, log). ``open_session`` uses it when the run's own fingerprint matches,
and then neither starts nor stops a server. Pure apart from reading /proc for liveness.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llm_energy_measure.exceptions import ConfigurationError

if TYPE_CHECKING:
    from llm_energy_measure.config.models import ExperimentConfig

SHARED_SERVER_ENV = "LLM_ENERGY_MEASURE_SHARED_SERVER"
#: Server engines whose command can be shared (their command is built from the config).
SHAREABLE_ENGINES = ("vllm", "command")
FINGERPRINT_LENGTH = 16
#: Stand-ins for what differs between two starts of one server (its port, its model folder).
_PORT_STANDIN = 0
#: Seconds a liveness answer is reused (``alive`` is polled before every send).
_ALIVE_CACHE_S = 0.2


def server_fingerprint(config: ExperimentConfig) -> str | None:
    """First 16 hex digits of the sha256 of what defines the managed server: its command line
    (with a stand-in port, and ``model.name`` for the model folder), the model's identity
    (name, revision, GGUF file), the added environment and the health path.

    Two configs with equal fingerprints start identical servers (``model.precision``, the
    ``vllm`` section, ``seed`` and ``endpoint.model`` count where the command holds them, as
    for engine ``vllm``). None without a ``server`` section or for an engine whose command
    cannot be shared (see ``SHAREABLE_ENGINES``).
    """
    from llm_energy_measure.core.serving.server_args import managed_command, server_env

    server = config.server
    if config.engine != "openai" or server is None or server.engine not in SHAREABLE_ENGINES:
        return None
    model = config.model
    canonical = {
        "command": managed_command(config, model_path=model.name, host="127.0.0.1",
                                   port=_PORT_STANDIN),
        "model": [model.name, model.revision, model.gguf_file],
        "env": server_env(config),
        "health_path": server.health_path,
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:FINGERPRINT_LENGTH]


@dataclass(frozen=True)
class SharedServer:
    """A running server started by a study coordinator, as its runs see it.

    ``owner``: who started it and stops it (``study <id>``); ``log_path``: its output.
    """

    base_url: str
    fingerprint: str
    command: tuple[str, ...]
    pid: int
    owner: str
    log_path: str | None = None

    def to_env(self) -> dict[str, str]:
        """The environment variable that hands this server to a worker."""
        return {SHARED_SERVER_ENV: json.dumps(asdict(self), separators=(",", ":"))}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SharedServer | None:
        """The shared server named in the environment (None when unset); ConfigurationError
        naming the variable when its value is not what a coordinator writes."""
        text = (os.environ if environ is None else environ).get(SHARED_SERVER_ENV)
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(base_url=str(data["base_url"]), fingerprint=str(data["fingerprint"]),
                       command=tuple(str(c) for c in data["command"]), pid=int(data["pid"]),
                       owner=str(data["owner"]), log_path=data.get("log_path"))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"{SHARED_SERVER_ENV} is set but unreadable ({type(exc).__name__}); it is "
                "written by `study run` for its workers: unset it") from None


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc").is_dir():
        try:
            state = stat.read_text().rsplit(")", 1)[-1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")
    from llm_energy_measure.state.liveness import pid_is_alive

    return pid_is_alive(pid)


class SharedServerHandle:
    """What a run holds instead of a ManagedServer when it uses a study's shared server:
    the same ``pid`` / ``alive`` / ``returncode`` / ``stop`` surface, but ``stop`` leaves the
    server running (its owner stops it)."""

    def __init__(self, shared: SharedServer) -> None:
        self.shared = shared
        self.pid: int | None = shared.pid
        self._checked_s = -1.0
        self._alive = True

    @property
    def returncode(self) -> int | None:
        """Unknown here (the server is not our child): always None."""
        return None

    def alive(self) -> bool:
        now = time.monotonic()
        if self._alive and now - self._checked_s >= _ALIVE_CACHE_S:
            self._checked_s = now
            self._alive = process_alive(self.shared.pid)
        return self._alive

    def stop(self) -> int | None:
        """Nothing to do: the study that started the server stops it."""
        return None
