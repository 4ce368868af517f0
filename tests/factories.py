"""Factories for synthetic domain objects (raw and aggregated results) with known numbers.

Used by the unit tests and by the bench scripts. Every figure is derived from the arguments,
so a test can compute the expected aggregate by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llm_energy_measure.domain import (
    ComputeMetrics,
    CycleMetrics,
    DeviceEnergy,
    EnergyMetrics,
    EnvironmentInfo,
    FlopsResult,
    GpuInfo,
    InferenceMetrics,
    MeasurementWarning,
    MemoryStats,
    ModelInfo,
    RawProcessResult,
    RequestRecord,
    Timestamps,
)
from llm_energy_measure.domain.metrics import latency_stats

DEFAULT_CONFIG_HASH = "cfg-hash-1"


def make_model_info(name: str = "builtin:tiny-llama") -> ModelInfo:
    """A small fixed model description."""
    return ModelInfo(
        name=name,
        source="builtin",
        architecture="LlamaForCausalLM",
        model_type="llama",
        num_parameters=1_000_000,
        num_layers=2,
        hidden_size=64,
        num_attention_heads=4,
        num_kv_heads=2,
        head_dim=16,
        intermediate_size=128,
        vocab_size=1000,
        max_position_embeddings=512,
        dtype="float32",
        weight_bytes=4_000_000,
        random_weights=True,
    )


def make_environment(hostname: str = "hostA", gpu_uuids: Sequence[str] = ()) -> EnvironmentInfo:
    """An environment snapshot of ``hostname`` with the given GPUs."""
    return EnvironmentInfo(
        hostname=hostname,
        os="Linux",
        python_version="3.11.0",
        package_version="0.1.0",
        cpu_model="Synthetic CPU",
        cpu_count=16,
        gpus=tuple(
            GpuInfo(index=i, uuid=uuid, name="Synthetic GPU") for i, uuid in enumerate(gpu_uuids)
        ),
    )


def make_request(
    request_id: int,
    *,
    ttft_s: float | None = 0.1,
    tpot_s: float | None = 0.01,
    e2e_s: float = 1.0,
    input_tokens: int = 10,
    output_tokens: int = 20,
    cycle: int = 0,
    token_gaps_s: Sequence[float] | None = None,
    completion_s: float | None = None,
) -> RequestRecord:
    """One request record (times relative to the window start).

    ``token_gaps_s`` defaults to ``output_tokens - 1`` gaps of ``tpot_s`` (none without it);
    ``completion_s`` defaults to ``e2e_s`` (the request ended with its batch).
    """
    if token_gaps_s is None:
        token_gaps_s = [tpot_s] * max(output_tokens - 1, 0) if tpot_s is not None else []
    return RequestRecord(
        request_id=request_id,
        cycle=cycle,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        submitted_s=0.0,
        ttft_s=ttft_s,
        tpot_s=tpot_s,
        token_gaps_s=tuple(token_gaps_s),
        e2e_s=e2e_s,
        completion_s=e2e_s if completion_s is None else completion_s,
    )


def make_device(
    device_id: str,
    energy_j: float,
    *,
    kind: str = "gpu",
    host: str = "hostA",
    duration_s: float = 10.0,
    method: str = "counter",
    estimated: bool = False,
    baseline_power_w: float | None = None,
    peak_power_w: float | None = None,
) -> DeviceEnergy:
    """Energy of one device; host scope for cpu/dram, device scope otherwise.

    With ``baseline_power_w`` the static part is baseline x duration and the dynamic part the
    rest (clamped at zero).
    """
    static = baseline_power_w * duration_s if baseline_power_w is not None else None
    dynamic = max(energy_j - static, 0.0) if static is not None else None
    return DeviceEnergy(
        device_id=device_id,
        kind=kind,  # type: ignore[arg-type]
        scope="host" if kind in ("cpu", "dram") else "device",
        host=host,
        name=device_id,
        method=method,  # type: ignore[arg-type]
        estimated=estimated,
        source="rapl" if kind in ("cpu", "dram") else "nvml",
        sampling_interval_ms=None if method == "counter" else 100.0,
        energy_j=energy_j,
        duration_s=duration_s,
        mean_power_w=energy_j / duration_s if duration_s > 0 else None,
        peak_power_w=peak_power_w,
        baseline_power_w=baseline_power_w,
        static_energy_j=static,
        dynamic_energy_j=dynamic,
        dynamic_clamped=static is not None and energy_j < static,
    )


def make_energy(
    devices: Sequence[DeviceEnergy],
    *,
    output_tokens: int,
    num_requests: int,
    duration_s: float,
    carbon_intensity_g_per_kwh: float | None = None,
    pue: float = 1.0,
    peak_power_w: float | None = None,
) -> EnergyMetrics:
    """Per-process energy totals computed from ``devices`` as a process would report them."""
    total = sum(d.energy_j for d in devices)

    def by_kind(kind: str) -> float | None:
        """Sum over the devices of ``kind``; None (unmeasured) when there is none."""
        of_kind = [d.energy_j for d in devices if d.kind == kind]
        return sum(of_kind) if of_kind else None

    statics = [d.static_energy_j for d in devices]
    dynamics = [d.dynamic_energy_j for d in devices]
    return EnergyMetrics(
        devices=tuple(devices),
        backend="synthetic",
        total_energy_j=total,
        gpu_energy_j=by_kind("gpu"),
        cpu_energy_j=by_kind("cpu"),
        ram_energy_j=by_kind("dram"),
        static_energy_j=sum(s for s in statics if s is not None) if None not in statics else None,
        dynamic_energy_j=(
            sum(x for x in dynamics if x is not None) if None not in dynamics else None
        ),
        estimated=any(d.estimated for d in devices),
        methods=tuple(sorted({d.method for d in devices})),
        duration_s=duration_s,
        mean_power_w=total / duration_s if duration_s > 0 else None,
        peak_power_w=peak_power_w,
        energy_per_output_token_j=total / output_tokens if output_tokens else None,
        energy_per_request_j=total / num_requests if num_requests else None,
        output_tokens_per_j=output_tokens / total if total else None,
        emissions_g=(
            total / 3.6e6 * carbon_intensity_g_per_kwh * pue
            if carbon_intensity_g_per_kwh is not None
            else None
        ),
        carbon_intensity_g_per_kwh=carbon_intensity_g_per_kwh,
        carbon_intensity_source="synthetic" if carbon_intensity_g_per_kwh is not None else None,
        pue=pue,
    )


def make_inference(requests: Sequence[RequestRecord], duration_s: float) -> InferenceMetrics:
    """Token totals, rates over ``duration_s`` and latency stats of ``requests``."""
    inp = sum(r.input_tokens for r in requests)
    out = sum(r.output_tokens for r in requests)
    return InferenceMetrics(
        num_requests=len(requests),
        input_tokens=inp,
        output_tokens=out,
        total_tokens=inp + out,
        inference_time_s=duration_s,
        output_tokens_per_s=out / duration_s if duration_s else 0.0,
        total_tokens_per_s=(inp + out) / duration_s if duration_s else 0.0,
        requests_per_s=len(requests) / duration_s if duration_s else 0.0,
        **latency_stats(requests),
    )


def make_raw(
    experiment_id: str = "exp-1",
    process_index: int = 0,
    num_processes: int = 1,
    *,
    hostname: str = "hostA",
    local_rank: int | None = None,
    start: float = 1_000.0,
    duration_s: float = 10.0,
    requests: Sequence[RequestRecord] | None = None,
    devices: Sequence[DeviceEnergy] | None = None,
    with_energy: bool = True,
    config_hash: str = DEFAULT_CONFIG_HASH,
    config_name: str = "synthetic",
    model_name: str = "builtin:tiny-llama",
    cycles: Sequence[CycleMetrics] = (),
    flops: FlopsResult | None = None,
    peak_flops_per_s: float | None = None,
    mbu: float | None = None,
    peak_memory_bandwidth_bytes_per_s: float | None = None,
    memory: MemoryStats | None = None,
    warnings: Sequence[MeasurementWarning] = (),
    carbon_intensity_g_per_kwh: float | None = None,
    peak_power_w: float | None = None,
    effective_config: dict[str, Any] | None = None,
) -> RawProcessResult:
    """A raw result of one process whose window is [start, start + duration_s].

    Defaults: 4 requests of 10 input / 20 output tokens, one GPU ``gpu:GPU-<host>-<rank>``
    with 100 J.
    """
    if requests is None:
        requests = [make_request(process_index * 1000 + i) for i in range(4)]
    if devices is None:
        devices = [
            make_device(
                f"gpu:GPU-{hostname}-{process_index}", 100.0, host=hostname, duration_s=duration_s
            )
        ]
    inference = make_inference(requests, duration_s)
    energy = (
        make_energy(
            devices,
            output_tokens=inference.output_tokens,
            num_requests=inference.num_requests,
            duration_s=duration_s,
            carbon_intensity_g_per_kwh=carbon_intensity_g_per_kwh,
            peak_power_w=peak_power_w,
        )
        if with_energy
        else None
    )
    gpu_uuids = [d.device_id.removeprefix("gpu:") for d in devices if d.kind == "gpu"]
    return RawProcessResult(
        experiment_id=experiment_id,
        process_index=process_index,
        num_processes=num_processes,
        local_rank=process_index if local_rank is None else local_rank,
        hostname=hostname,
        config_name=config_name,
        config_hash=config_hash,
        effective_config=(
            effective_config
            if effective_config is not None
            else {"model": {"name": model_name}, "inference": {"batch_size": 4}}
        ),
        model=make_model_info(model_name),
        timestamps=Timestamps(start=start, end=start + duration_s, duration_s=duration_s),
        inference=inference,
        requests=tuple(requests),
        energy=energy,
        compute=ComputeMetrics(
            flops=flops,
            achieved_flops_per_s=flops.total_flops / duration_s if flops else None,
            peak_flops_per_s=peak_flops_per_s,
            mfu=(
                flops.total_flops / duration_s / peak_flops_per_s
                if flops and peak_flops_per_s
                else None
            ),
            peak_memory_bandwidth_bytes_per_s=peak_memory_bandwidth_bytes_per_s,
            mbu=mbu,
        ),
        memory=memory if memory is not None else MemoryStats(),
        cycles=tuple(cycles),
        environment=make_environment(hostname, gpu_uuids),
        warnings=tuple(warnings),
    )


def make_cycle(
    cycle: int,
    *,
    start: float,
    duration_s: float,
    output_tokens: int,
    device_energy_j: dict[str, float] | None = None,
    input_tokens: int = 0,
    num_requests: int = 1,
) -> CycleMetrics:
    """One cycle's figures as a process reports them (throughput over its own window)."""
    energy = sum(device_energy_j.values()) if device_energy_j else None
    return CycleMetrics(
        cycle=cycle,
        timestamps=Timestamps(start=start, end=start + duration_s, duration_s=duration_s),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        num_requests=num_requests,
        energy_j=energy,
        device_energy_j=dict(device_energy_j or {}),
        output_tokens_per_s=output_tokens / duration_s,
        energy_per_output_token_j=energy / output_tokens if energy and output_tokens else None,
    )
