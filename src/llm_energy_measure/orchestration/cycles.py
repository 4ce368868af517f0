"""Combining the measured cycles of one process into one set of figures."""

from __future__ import annotations

from collections.abc import Sequence

from llm_energy_measure.core.types import EnergyReading, InferenceOutput
from llm_energy_measure.domain import (
    CycleMetrics,
    DeviceEnergy,
    EnergyMetrics,
    InferenceMetrics,
    MemoryStats,
    ServingMetrics,
    Timestamps,
)


def combine_outputs(outputs: Sequence[InferenceOutput]) -> InferenceOutput:
    """One output spanning every cycle: requests concatenated, compute times and
    window durations summed; the window's edges are the first start and the last end."""
    if not outputs:
        raise ValueError("no cycles to combine")
    window = Timestamps(
        start=outputs[0].window.start,
        end=outputs[-1].window.end,
        duration_s=sum(o.window.duration_s for o in outputs),
    )
    return InferenceOutput(
        requests=[r for o in outputs for r in o.requests],
        window=window,
        compute_time_s=sum(o.compute_time_s for o in outputs),
        num_batches=sum(o.num_batches for o in outputs),
        padded_input_tokens=sum(o.padded_input_tokens for o in outputs),
        warnings=[w for o in outputs for w in o.warnings],
    )


def _sum_device(parts: Sequence[DeviceEnergy]) -> DeviceEnergy:
    energy_j = sum(p.energy_j for p in parts)
    duration_s = sum(p.duration_s for p in parts)
    peaks = [p.peak_power_w for p in parts if p.peak_power_w is not None]
    return parts[0].model_copy(
        update={
            "energy_j": energy_j,
            "duration_s": duration_s,
            "mean_power_w": energy_j / duration_s if duration_s > 0 else None,
            "peak_power_w": max(peaks) if peaks else None,
            "baseline_power_w": None,
            "static_energy_j": None,
            "dynamic_energy_j": None,
            "dynamic_clamped": False,
        }
    )


def combine_readings(readings: Sequence[EnergyReading]) -> EnergyReading:
    """Per-device energy summed over cycles (each device keyed by its physical id)."""
    if not readings:
        raise ValueError("no readings to combine")
    by_device: dict[str, list[DeviceEnergy]] = {}
    for reading in readings:
        for dev in reading.devices:
            by_device.setdefault(dev.device_id, []).append(dev)
    first = readings[0]
    return EnergyReading(
        devices=[_sum_device(parts) for parts in by_device.values()],
        backend=first.backend,
        warnings=[w for r in readings for w in r.warnings],
        timeseries=[s for r in readings for s in r.timeseries],
        carbon_intensity_g_per_kwh=first.carbon_intensity_g_per_kwh,
        carbon_intensity_source=first.carbon_intensity_source,
        unmeasured=dict(first.unmeasured),
    )


def cycle_metrics(
    cycle: int,
    output: InferenceOutput,
    energy: EnergyMetrics | None,
    energy_window: Timestamps | None = None,
) -> CycleMetrics:
    """Headline figures of one cycle; throughput over the cycle's compute time.
    ``energy_window``: the wall-clock edges of the cycle's energy window."""
    inference = InferenceMetrics.from_requests(output.requests, output.compute_time_s)
    return CycleMetrics(
        cycle=cycle,
        timestamps=output.window,
        energy_window=energy_window,
        input_tokens=inference.input_tokens,
        output_tokens=inference.output_tokens,
        num_requests=inference.num_requests,
        energy_j=energy.total_energy_j if energy is not None else None,
        device_energy_j=(
            {d.device_id: d.energy_j for d in energy.devices} if energy is not None else {}
        ),
        output_tokens_per_s=inference.output_tokens_per_s,
        energy_per_output_token_j=energy.energy_per_output_token_j if energy else None,
        ttft_p50_s=inference.ttft.p50_s if inference.ttft else None,
        itl_p50_s=inference.itl.p50_s if inference.itl else None,
        tpot_p50_s=inference.tpot.p50_s if inference.tpot else None,
    )


def with_serving(figures: CycleMetrics, serving: ServingMetrics) -> CycleMetrics:
    """A serving cycle's figures with its steady-window J/token and its goodput (req/s)."""
    steady = serving.steady
    return figures.model_copy(update={
        "steady_energy_per_output_token_j": steady.energy_per_output_token_j
        if steady is not None else None,
        "goodput_per_s": serving.slo.goodput_per_s if serving.slo is not None else None,
    })


def peak_memory(stats: Sequence[MemoryStats]) -> MemoryStats:
    """Field-wise maximum over cycles (each cycle's peaks are reset at its window start)."""

    def top(name: str) -> int | None:
        values = [getattr(s, name) for s in stats if getattr(s, name) is not None]
        return max(values) if values else None

    allocated = top("gpu_peak_allocated_bytes")
    return MemoryStats(
        model_weights_bytes=top("model_weights_bytes"),
        gpu_peak_allocated_bytes=allocated,
        gpu_peak_reserved_bytes=top("gpu_peak_reserved_bytes"),
        cpu_peak_rss_bytes=top("cpu_peak_rss_bytes"),
        gpu_unmeasured=(
            None if allocated is not None
            else next((s.gpu_unmeasured for s in stats if s.gpu_unmeasured), None)
        ),
    )
