"""Settings of engine ``openai``: an OpenAI-compatible endpoint measured under load.

``endpoint`` says where the server is and how to talk to it, ``load`` what traffic is sent,
``server`` (optional) how the server is started and stopped by the run itself. Pure
validation: nothing here opens a connection or reads the environment.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False
    )


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class EndpointConfig(_Strict):
    """Where the OpenAI-compatible server is and how requests are sent to it.

    With a managed ``server`` the base URL is the server's own (loopback, a free port) and
    ``base_url`` must be unset. ``api_key_env`` is the *name* of the environment variable
    that holds the key; the key itself never appears in a config, result or log.
    """

    base_url: str | None = Field(None, description="e.g. http://127.0.0.1:8000/v1 (unset "
                                 "with a managed server)")
    model: str | None = Field(None, description="served model name sent with each request "
                              "(default: the only model the server lists)")
    api: Literal["completions", "chat"] = "completions"
    api_key_env: str | None = Field(None, description="name of the environment variable "
                                    "holding the API key")
    connect_timeout_s: float = Field(5.0, gt=0, le=600)
    read_timeout_s: float = Field(300.0, gt=0, le=86_400)
    metrics_url: str | None = Field(None, description="Prometheus metrics of the server for "
                                    "the cross-check (default: <server root>/metrics, tried)")

    @field_validator("base_url", "metrics_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^\s/@]+(:\d+)?(/[^\s]*)?$", value):
            raise ValueError("must be an http:// or https:// URL without credentials, e.g. "
                             "http://127.0.0.1:8000/v1")
        return value.rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable (letters, digits, "
                             "_), e.g. OPENAI_API_KEY, never the key itself")
        return value


class LoadConfig(_Strict):
    """The traffic sent to the endpoint.

    ``arrival``: ``poisson`` (exponential gaps, seeded by ``seed``) or ``constant`` at
    ``rate_per_s`` requests per second, sent on schedule whether or not earlier ones have
    finished (open loop); ``concurrency`` keeps ``concurrency`` requests in flight (closed
    loop). The run ends after ``num_requests`` (default: ``prompts.num_prompts``) or, with
    ``duration_s``, when no more request is due (open loop) or the time is up (closed loop);
    prompts are reused in order when fewer than the requests. ``warmup_requests`` are sent
    before the measured window, excluded from every figure.
    """

    arrival: Literal["poisson", "constant", "concurrency"] = "poisson"
    rate_per_s: float | None = Field(None, gt=0, le=100_000)
    concurrency: int | None = Field(None, ge=1, le=100_000)
    num_requests: int | None = Field(None, ge=1, le=10_000_000)
    duration_s: float | None = Field(None, gt=0, le=7 * 86_400)
    warmup_requests: int = Field(2, ge=0, le=100_000)
    max_in_flight: int = Field(10_000, ge=1, le=1_000_000, description="open loop: requests "
                               "beyond this many in flight are sent late (and flagged)")
    max_consecutive_failures: int = Field(5, ge=1, le=1_000_000, description="the load stops "
                                          "(circuit breaker) after this many failed requests "
                                          "in a row")

    @model_validator(mode="after")
    def _shape(self) -> LoadConfig:
        if self.arrival == "concurrency":
            if self.concurrency is None:
                raise ValueError("load.concurrency is required when load.arrival is "
                                 "'concurrency'")
            if self.rate_per_s is not None:
                raise ValueError("load.rate_per_s is only read with load.arrival 'poisson' or "
                                 "'constant'; with 'concurrency' set load.concurrency")
        else:
            if self.rate_per_s is None:
                raise ValueError(f"load.rate_per_s is required when load.arrival is "
                                 f"'{self.arrival}'")
            if self.concurrency is not None:
                raise ValueError("load.concurrency is only read with load.arrival "
                                 "'concurrency'")
        if self.num_requests is not None and self.duration_s is not None:
            raise ValueError("set one of load.num_requests and load.duration_s")
        return self


ServerEngine = Literal["vllm", "llama_cpp", "command"]


class ServerConfig(_Strict):
    """A server the run starts itself, on a free loopback port, and always stops.

    ``engine: vllm`` starts ``python -m vllm.entrypoints.openai.api_server`` with the model,
    ``model.precision`` as its dtype and the ``vllm:`` section as arguments; ``engine:
    llama_cpp`` starts ``python -m llama_cpp.server`` with the GGUF model; ``engine:
    command`` runs ``command``, where ``{port}``, ``{host}`` and ``{model}`` are replaced.
    ``args`` are appended for the named engines. ``python`` is the interpreter that has the
    server's package (default: this one).
    """

    engine: ServerEngine = "vllm"
    command: list[str] | None = Field(None, min_length=1, max_length=256)
    args: list[str] = Field(default_factory=list, max_length=256)
    python: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    health_path: str = Field("/health", pattern=r"^/[^\s]*$")
    startup_timeout_s: float = Field(900.0, gt=0, le=86_400)
    stop_grace_s: float = Field(15.0, gt=0, le=600)

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ENV_NAME.match(name):
                raise ValueError(f"server.env: {name!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _command(self) -> ServerConfig:
        if self.engine == "command" and not self.command:
            raise ValueError("server.command is required when server.engine is 'command', "
                             "e.g. [python, -m, my_server, --port, '{port}']")
        if self.engine != "command" and self.command is not None:
            raise ValueError(f"server.command is only read with server.engine 'command'; "
                             f"with '{self.engine}' put extra arguments in server.args")
        return self


SloPercentile = Literal["p50", "p90", "p95", "p99"]
SloTargets = dict[SloPercentile, float]


class SloConfig(_Strict):
    """Latency objectives, in milliseconds at chosen percentiles, e.g. ``ttft_ms: {p99: 500}``.

    Run level: each target is met when that percentile of the run's distribution is at most
    the value (``itl_ms`` over every token gap, ``tpot_ms`` over each request's mean gap).
    Per request: a request meets the SLO when its own TTFT, mean ITL (TPOT) and e2e are at
    most the value of each metric's highest-percentile target (the bound nearly every request
    must meet); ``itl_ms`` and ``tpot_ms`` both bound the request's mean gap. Goodput counts
    the requests that meet it, per second of the whole window.
    """

    ttft_ms: SloTargets | None = None
    itl_ms: SloTargets | None = None
    tpot_ms: SloTargets | None = None
    e2e_ms: SloTargets | None = None

    @model_validator(mode="after")
    def _some(self) -> SloConfig:
        targets = self.targets()
        if not targets:
            raise ValueError("slo: give at least one target, e.g. slo: {ttft_ms: {p99: 500}}")
        for metric, percentile, value in targets:
            if not value > 0:
                raise ValueError(f"slo.{metric}_ms.{percentile} must be > 0 (milliseconds)")
        return self

    def targets(self) -> list[tuple[str, str, float]]:
        """(metric, percentile, milliseconds) of every target."""
        found: list[tuple[str, str, float]] = []
        for metric in ("ttft", "itl", "tpot", "e2e"):
            for percentile, value in sorted((getattr(self, f"{metric}_ms") or {}).items()):
                found.append((metric, percentile, float(value)))
        return found
