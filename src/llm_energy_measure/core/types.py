"""Plain data passed between the measuring components (not stored as-is)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from llm_energy_measure.domain import (
    DeviceEnergy,
    MeasurementWarning,
    ModelInfo,
    OutputLength,
    RequestRecord,
    ServerCheck,
    Timestamps,
    UtilisationSample,
)
from llm_energy_measure.domain.serving import StopReason


@dataclass(frozen=True)
class Prompt:
    """One request's text, with a stable id (its index in the workload).

    ``target_output_tokens`` is set by synthetic workloads that fix the output length.
    """

    request_id: int
    text: str
    target_output_tokens: int | None = None


@dataclass
class LoadedModel:
    """A model ready for generation, its tokenizer (left padding, pad token set) and facts."""

    model: Any
    tokenizer: Any
    info: ModelInfo
    device: str  # e.g. "cpu", "cuda:0"
    #: Load-time caveats (e.g. GGUF weights dequantized, pad token set to EOS); the inference
    #: engine copies them onto every InferenceOutput so they reach the result.
    warnings: list[MeasurementWarning] = field(default_factory=list)


@dataclass(frozen=True)
class SequenceShape:
    """Real (unpadded) lengths of one generated sequence, for FLOPs."""

    input_tokens: int
    output_tokens: int


@dataclass
class ServingRun:
    """What an engine that drives a server under load knows of one pass, beside its request
    records: the endpoint, the load, how the pass ended and the server's own counts."""

    endpoint: str
    served_model: str
    api: Literal["completions", "chat"]
    managed_server: bool
    arrival: Literal["poisson", "constant", "concurrency"]
    rate_per_s: float | None
    concurrency: int | None
    stop_reason: StopReason
    token_count_method: str
    itl_method: str
    output_length: OutputLength
    server_command: tuple[str, ...] = ()
    server: ServerCheck | None = None
    records_file: str | None = None


@dataclass
class InferenceOutput:
    """What one measured pass over the workload produced.

    ``window`` is the wall-clock span of the measured pass (both edges after a device
    synchronize; prompts are tokenized before it opens). ``compute_time_s`` is the sum of the
    generate calls' durations: it excludes simulated traffic waits, and is the denominator of
    throughput. Without traffic simulation the two are equal up to loop overhead.
    """

    requests: list[RequestRecord]
    window: Timestamps
    compute_time_s: float
    num_batches: int
    padded_input_tokens: int = 0
    warnings: list[MeasurementWarning] = field(default_factory=list)
    #: Engines that drive a server under load (engine ``openai``).
    serving: ServingRun | None = None

    @property
    def sequences(self) -> list[SequenceShape]:
        """The real lengths of each successful request's sequence, in request order (FLOPs)."""
        return [SequenceShape(r.input_tokens, r.output_tokens) for r in self.requests if r.ok]

    @property
    def input_tokens(self) -> int:
        """Input tokens of the successful requests (failed ones are kept but not counted)."""
        return sum(r.input_tokens for r in self.requests if r.ok)

    @property
    def output_tokens(self) -> int:
        """Output tokens of the successful requests."""
        return sum(r.output_tokens for r in self.requests if r.ok)

    @property
    def ok_requests(self) -> int:
        return sum(1 for r in self.requests if r.ok)


@dataclass
class EnergyReading:
    """Raw energy over one window from a backend: per device, before baseline/derivations.

    ``unmeasured`` maps a device kind the reading has no figure for (``gpu``, ``cpu``,
    ``dram``) to why (e.g. measured by the host leader, no GPU visible).
    """

    devices: list[DeviceEnergy]
    backend: str
    warnings: list[MeasurementWarning] = field(default_factory=list)
    timeseries: list[UtilisationSample] = field(default_factory=list)
    carbon_intensity_g_per_kwh: float | None = None
    carbon_intensity_source: str | None = None
    unmeasured: dict[str, str] = field(default_factory=dict)
