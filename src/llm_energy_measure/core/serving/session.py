"""Opening an endpoint for a run: start the managed server (if any; or use the study's shared
one), check it answers, find the served model, and learn which request extensions it accepts.

The API key is read here from the environment variable the config names, and kept only in
memory (in ``Session.api_key``, left out of its repr): never in a result, a log or an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loguru import logger

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.serving.shared import SharedServer, SharedServerHandle
from llm_energy_measure.exceptions import ConfigurationError, InferenceError

#: Request fields that make a server generate exactly ``max_tokens`` (vLLM and SGLang accept
#: them; a server that refuses them answers 400).
FIXED_LENGTH_EXTENSIONS = ("ignore_eos", "min_tokens")


@dataclass
class Session:
    """A reachable endpoint and what was learnt about it."""

    base_url: str
    served_model: str
    api: str
    connect_timeout_s: float
    read_timeout_s: float
    api_key: str | None = field(default=None, repr=False)
    managed: Any = None  # the ManagedServer, or the SharedServerHandle of a study's server
    shared_by: str | None = None  # who owns the shared server (``study <id>``)
    command: tuple[str, ...] = ()
    metrics_url: str | None = None
    server_version: str | None = None
    extensions: tuple[str, ...] = ()
    extension_note: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def server_root(base_url: str) -> str:
    """``http://host:port`` of a base URL such as ``http://host:port/v1``."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def is_local(base_url: str) -> bool:
    """Whether the endpoint runs on this host (loopback, or this host's own name)."""
    import socket

    host = (urlsplit(base_url).hostname or "").lower()
    if host in ("localhost", "127.0.0.1", "::1", "0.0.0.0") or host.startswith("127."):
        return True
    return host in {socket.gethostname().lower(), socket.getfqdn().lower()}


def api_key(config: ExperimentConfig) -> str | None:
    name = config.endpoint.api_key_env
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        raise ConfigurationError(f"endpoint.api_key_env names {name}, which is not set: "
                                 f"export {name}=<key> before the run")
    return value


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:limit]


def _get(url: str, session: Session) -> Any:
    import httpx

    timeout = httpx.Timeout(session.read_timeout_s, connect=session.connect_timeout_s)
    return httpx.get(url, headers=session.headers(), timeout=timeout)


def probe(session: Session, configured_model: str | None) -> None:
    """Check that the endpoint answers (within the connect timeout) and resolve the served
    model: the configured one, else the only model the server lists."""
    import httpx

    url = f"{session.base_url}/models"
    try:
        response = _get(url, session)
    except httpx.HTTPError as exc:
        raise InferenceError(
            f"endpoint {session.base_url} is unreachable ({type(exc).__name__}: "
            f"{_first_line(str(exc)) or 'no answer'}) within endpoint.connect_timeout_s="
            f"{session.connect_timeout_s:g} s"
        ) from None
    if response.status_code in (401, 403):
        raise ConfigurationError(f"endpoint {session.base_url} refused the API key (HTTP "
                                 f"{response.status_code}): check endpoint.api_key_env")
    if response.status_code != 200:
        raise InferenceError(f"endpoint {url} answered HTTP {response.status_code}: "
                             f"{_first_line(response.text)}")
    try:
        ids = [str(m["id"]) for m in response.json().get("data", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        ids = []
    if configured_model is not None:
        if ids and configured_model not in ids:
            raise ConfigurationError(
                f"endpoint.model {configured_model!r} is not served by {session.base_url} "
                f"(it serves: {', '.join(ids[:10])})")
        session.served_model = configured_model
    elif len(ids) == 1:
        session.served_model = ids[0]
    else:
        raise ConfigurationError(
            f"set endpoint.model: {session.base_url} serves "
            f"{', '.join(ids[:10]) if ids else 'no model it lists'}")
    try:
        version = _get(f"{server_root(session.base_url)}/version", session)
        if version.status_code == 200:
            session.server_version = str(version.json().get("version")) or None
    except (httpx.HTTPError, ValueError, AttributeError):
        session.server_version = None


def detect_extensions(session: Session, wanted: tuple[str, ...]) -> None:
    """Send one 1-token request with the ``wanted`` extension fields; keep them when the
    server accepts them, else record why they are dropped (``extension_note``)."""
    import httpx

    if not wanted:
        return
    body: dict[str, Any] = {"model": session.served_model, "max_tokens": 1}
    body |= {"ignore_eos": True, "min_tokens": 1}
    path = "completions" if session.api == "completions" else "chat/completions"
    if session.api == "completions":
        body["prompt"] = "Hello"
    else:
        body["messages"] = [{"role": "user", "content": "Hello"}]
    timeout = httpx.Timeout(session.read_timeout_s, connect=session.connect_timeout_s)
    try:
        response = httpx.post(f"{session.base_url}/{path}", json=body,
                              headers=session.headers(), timeout=timeout)
    except httpx.HTTPError as exc:
        raise InferenceError(f"endpoint {session.base_url} failed a first request: "
                             f"{type(exc).__name__}") from None
    if response.status_code == 200:
        session.extensions = wanted
    else:
        session.extensions = ()
        session.extension_note = (
            f"the server refused the fixed-length fields {', '.join(wanted)} (HTTP "
            f"{response.status_code}: {_first_line(response.text, 120)}): outputs may end "
            "at EOS before max_tokens")


def shared_server_for(config: ExperimentConfig) -> SharedServer | None:
    """The study's shared server (``LLM_ENERGY_MEASURE_SHARED_SERVER``) when this run's
    managed server has its fingerprint; None otherwise (the run starts its own, and says so
    when a shared one with another fingerprint was offered)."""
    from llm_energy_measure.core.serving.shared import server_fingerprint

    shared = SharedServer.from_env()
    if shared is None or config.server is None:
        return None
    mine = server_fingerprint(config)
    if mine != shared.fingerprint:
        logger.warning(f"the shared server of {shared.owner} (fingerprint {shared.fingerprint}) "
                       f"is not this run's server (fingerprint {mine}); starting its own")
        return None
    return shared


def server_model_path(config: ExperimentConfig) -> str:
    """What the managed server loads, resolved as a run resolves it (a local folder, e.g. the
    builtin model's); for ``server.engine: command``, ``model.name`` when it is not a model
    readable here."""
    from llm_energy_measure.core.model_source import resolve_model_source

    try:
        return str(resolve_model_source(config.model).location)
    except Exception:
        if config.server is not None and config.server.engine == "command":
            return config.model.name
        raise


def open_session(config: ExperimentConfig, *, model_path: str | None,
                 server_log: Path | None) -> Session:
    """A reachable endpoint: the configured one, the study's shared server (when its
    fingerprint matches), or a server started now (and stopped by ``close_session``,
    whatever happens)."""
    from llm_energy_measure.core.serving import server as managed
    from llm_energy_measure.core.serving import server_args
    from llm_energy_measure.core.serving.server_args import served_model_name, server_env

    ep = config.endpoint
    session = Session(base_url=ep.base_url or "", served_model=ep.model or "", api=ep.api,
                      connect_timeout_s=ep.connect_timeout_s, read_timeout_s=ep.read_timeout_s,
                      api_key=api_key(config), metrics_url=ep.metrics_url)
    shared = shared_server_for(config)
    if shared is not None:
        session.base_url = shared.base_url
        session.command = shared.command
        session.managed = SharedServerHandle(shared)
        session.shared_by = shared.owner
        session.served_model = served_model_name(config)
    elif config.server is not None:
        host = "127.0.0.1"
        port = managed.free_port(host)
        session.base_url = f"http://{host}:{port}/v1"
        command = server_args.managed_command(config, model_path=model_path or config.model.name,
                                              host=host, port=port)
        health = config.server.health_path
        if config.server.engine == "llama_cpp" and "health_path" not in \
                config.server.model_fields_set:
            health = "/v1/models"  # llama-cpp-python's server has no /health
        session.command = tuple(command)
        log = server_log or Path(os.devnull)
        server = managed.ManagedServer(
            command, base_url=session.base_url,
            health_url=f"http://{host}:{port}{health}", log_path=log,
            env=server_env(config), startup_timeout_s=config.server.startup_timeout_s,
            stop_grace_s=config.server.stop_grace_s,
        )
        session.managed = server
        server.start()
        session.served_model = served_model_name(config)
    try:
        probe(session, ep.model if config.server is None else session.served_model)
        if session.metrics_url is None:
            session.metrics_url = f"{server_root(session.base_url)}/metrics"
        if config.decoder.fixed_length:
            detect_extensions(session, FIXED_LENGTH_EXTENSIONS)
    except BaseException:
        close_session(session)
        raise
    return session


def close_session(session: Session | None) -> int | None:
    """Stop the managed server, if any (safe twice); its exit code."""
    if session is None or session.managed is None:
        return None
    code: int | None = session.managed.stop()
    return code
