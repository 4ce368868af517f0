"""Energy derivations from a backend reading: baseline split, totals, ratios, emissions.

Pure functions: no hardware access, no codecarbon import. The reading already carries the
carbon intensity looked up by the backend factory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from llm_energy_measure.config.models import EnergyConfig
from llm_energy_measure.constants import (
    MIN_WINDOW_COUNTER_PERIODS,
    NVML_COUNTER_UPDATE_PERIOD_S,
)
from llm_energy_measure.core.energy_backends.sampler import peak_power_w
from llm_energy_measure.core.types import EnergyReading
from llm_energy_measure.domain import (
    DeviceEnergy,
    EnergyMetrics,
    MeasurementWarning,
    UnmeasuredEnergy,
    UtilisationSample,
)

J_PER_KWH = 3.6e6
#: (EnergyMetrics field, device kind, label) of the per-kind energy totals.
KIND_FIELDS = (
    ("gpu_energy_j", "gpu", "GPU"),
    ("cpu_energy_j", "cpu", "CPU package"),
    ("ram_energy_j", "dram", "DRAM"),
)
#: Shortest window (s) for which NVML energy counter deltas are trusted.
MIN_COUNTER_WINDOW_S = MIN_WINDOW_COUNTER_PERIODS * NVML_COUNTER_UPDATE_PERIOD_S


#: A deficit (energy below baseline power x window) of up to this fraction of baseline x
#: window is within the resolution of an idle baseline: a constant power model (codecarbon's
#: RAM) reads a few 0.1% apart over two windows, and counters see idle jitter. Such a split is
#: clamped and flagged like any other but noted at info level (``dynamic_energy_zero``), not
#: warned about as ``negative_dynamic_energy``.
BASELINE_RESOLUTION = 0.01


def split_baseline(
    device: DeviceEnergy, baseline_power_w: float | None
) -> tuple[DeviceEnergy, float]:
    """The device figure with static/dynamic energy filled in, and its deficit (J).

    static_j = baseline_w x the device's own window (duration_s); dynamic_j = energy_j -
    static_j. When the device drew less than its idle power (dynamic_j < 0) the split is
    clamped: dynamic_j = 0, static_j = energy_j, ``dynamic_clamped`` is set, and the deficit
    (baseline x window - energy_j) is returned, so that static_j + dynamic_j = energy_j always
    holds. Without a baseline the device is returned unchanged (deficit 0).
    """
    if baseline_power_w is None:
        return device, 0.0
    static_j = baseline_power_w * device.duration_s
    deficit_j = max(0.0, static_j - device.energy_j)
    clamped = deficit_j > 0
    if clamped:
        static_j = device.energy_j
    updated = device.model_copy(
        update={
            "baseline_power_w": baseline_power_w,
            "static_energy_j": static_j,
            "dynamic_energy_j": device.energy_j - static_j,
            "dynamic_clamped": clamped,
        }
    )
    return updated, deficit_j


def _clamp_warnings(clamped: Sequence[tuple[DeviceEnergy, float]]) -> list[MeasurementWarning]:
    """``negative_dynamic_energy`` for deficits beyond BASELINE_RESOLUTION, else an info note."""
    large = [(d, j) for d, j in clamped if j > BASELINE_RESOLUTION * (d.energy_j + j)]
    small = [(d, j) for d, j in clamped if (d, j) not in large]
    warnings: list[MeasurementWarning] = []
    if large:
        what = ", ".join(f"{d.device_id} ({j:.3g} J below)" for d, j in large)
        warnings.append(MeasurementWarning(
            code="negative_dynamic_energy",
            message=(
                f"energy over the window was below idle baseline x window for {what}; dynamic "
                "energy clamped to 0 and static energy set to the total (baseline drifted or "
                "was measured while the device was busy)"
            ),
        ))
    if small:
        what = ", ".join(f"{d.device_id} ({j:.3g} J)" for d, j in small)
        warnings.append(MeasurementWarning(
            code="dynamic_energy_zero", severity="info",
            message=(
                f"dynamic energy of {what} is zero within the baseline's resolution "
                f"({BASELINE_RESOLUTION:.0%} of baseline x window): clamped to 0, static = total"
            ),
        ))
    return warnings


def peak_total_power_w(samples: Iterable[UtilisationSample]) -> float | None:
    """Peak of the summed sampled power of all devices ticked together (W).

    Samples of one sampler tick share ``t_s``; the power of each tick is summed and the
    highest sum returned. None without power samples (e.g. CPU-only hosts).
    """
    per_tick: dict[float, float] = defaultdict(float)
    for sample in samples:
        if sample.power_w is not None:
            per_tick[sample.t_s] += sample.power_w
    return max(per_tick.values()) if per_tick else None


def _device_peak(device: DeviceEnergy, samples: Sequence[UtilisationSample]) -> DeviceEnergy:
    if device.peak_power_w is not None:
        return device
    peak = peak_power_w(samples, device.device_id)
    return device if peak is None else device.model_copy(update={"peak_power_w": peak})


def _mean_power_w(
    devices: Sequence[DeviceEnergy], total_j: float, window_s: float
) -> float | None:
    if all(d.duration_s > 0 for d in devices):
        return sum(d.energy_j / d.duration_s for d in devices)
    return total_j / window_s if window_s > 0 else None


def build_energy_metrics(
    reading: EnergyReading,
    *,
    baseline_power_w: dict[str, float] | None,
    window_s: float,
    output_tokens: int,
    num_requests: int,
    config: EnergyConfig,
) -> tuple[EnergyMetrics | None, list[MeasurementWarning]]:
    """Energy metrics of one measured window, and every energy warning.

    - Per device: static = baseline power x device window, dynamic = energy - static; when
      that is negative, dynamic = 0 and static = energy (``dynamic_clamped``), so static +
      dynamic = total in every result. A deficit beyond BASELINE_RESOLUTION draws a
      ``negative_dynamic_energy`` warning, a smaller one a ``dynamic_energy_zero`` note.
    - Totals: total_energy_j sums every device; gpu/cpu/ram by kind, None for a kind with no
      device (reason in ``unmeasured``: the reading's, else a generic one). static/dynamic
      totals are None unless every device has a baseline (``partial_baseline`` warning when
      some have one).
    - mean_power_w = the sum over devices of energy / that device's own window (a process
      that waits for the others at the closing barrier measures energy over a longer window
      than its timing window_s); total / window_s when a device has no duration.
      peak_power_w = highest summed sampled power.
    - Ratios use the total energy: J per output token, J per request, output tokens per J.
    - emissions_g = total kWh x carbon intensity (g/kWh) x PUE; the intensity is
      energy.carbon_intensity_g_per_kwh if set, else the reading's lookup, else None.
    - ``short_window`` when window_s is below MIN_COUNTER_WINDOW_S and a GPU energy counter
      was used (the NVML counter updates about every 100 ms).

    Returns (None, warnings) when the reading has no device (null backend); the returned
    warnings always include the reading's own.
    """
    warnings = list(reading.warnings)
    if not reading.devices:
        return None, warnings
    baselines = baseline_power_w or {}
    devices: list[DeviceEnergy] = []
    clamped: list[tuple[DeviceEnergy, float]] = []
    for raw in reading.devices:
        device, deficit_j = split_baseline(raw, baselines.get(raw.device_id))
        devices.append(_device_peak(device, reading.timeseries))
        if device.dynamic_clamped:
            clamped.append((device, deficit_j))
    warnings.extend(_clamp_warnings(clamped))
    total_j = sum(d.energy_j for d in devices)
    by_kind: dict[str, float] = defaultdict(float)
    for device in devices:
        by_kind[device.kind] += device.energy_j
    unmeasured = {
        field: reading.unmeasured.get(kind)
        or f"no {label} figure in this measurement ({reading.backend} backend)"
        for field, kind, label in KIND_FIELDS
        if kind not in by_kind
    }

    without_baseline = [d.device_id for d in devices if d.static_energy_j is None]
    static_j: float | None = None
    dynamic_j: float | None = None
    if not without_baseline:
        static_j = sum(d.static_energy_j or 0.0 for d in devices)
        dynamic_j = sum(d.dynamic_energy_j or 0.0 for d in devices)
    elif baseline_power_w:
        why = f"no idle baseline for {', '.join(without_baseline)}"
        unmeasured.update(static_energy_j=why, dynamic_energy_j=why)
        warnings.append(
            MeasurementWarning(
                code="partial_baseline",
                message=f"{why}: static/dynamic totals are not reported (per-device figures are)",
            )
        )
    else:
        why = (
            "no idle baseline was measured (energy.baseline.enabled: false)"
            if baseline_power_w is None else "the idle baseline measured no device"
        )
        unmeasured.update(static_energy_j=why, dynamic_energy_j=why)

    uses_gpu_counter = any(d.kind == "gpu" and d.method == "counter" for d in devices)
    if uses_gpu_counter and window_s < MIN_COUNTER_WINDOW_S:
        warnings.append(
            MeasurementWarning(
                code="short_window",
                message=(
                    f"measured window of {window_s:.3f} s is shorter than "
                    f"{MIN_COUNTER_WINDOW_S:.1f} s ({MIN_WINDOW_COUNTER_PERIODS} updates of the "
                    "GPU energy counter): GPU energy is unreliable; measure more prompts or "
                    "cycles"
                ),
            )
        )

    if config.carbon_intensity_g_per_kwh is not None:
        intensity: float | None = config.carbon_intensity_g_per_kwh
        intensity_source: str | None = "energy.carbon_intensity_g_per_kwh"
    else:
        intensity = reading.carbon_intensity_g_per_kwh
        intensity_source = reading.carbon_intensity_source if intensity is not None else None
    emissions_g = (
        total_j / J_PER_KWH * intensity * config.pue if intensity is not None else None
    )

    peak_power = peak_total_power_w(reading.timeseries)
    if peak_power is None:
        unmeasured["peak_power_w"] = "no power samples (only sampled devices, e.g. GPUs, have them)"
    metrics = EnergyMetrics(
        devices=tuple(devices),
        backend=reading.backend,
        total_energy_j=total_j,
        gpu_energy_j=by_kind.get("gpu"),
        cpu_energy_j=by_kind.get("cpu"),
        ram_energy_j=by_kind.get("dram"),
        static_energy_j=static_j,
        dynamic_energy_j=dynamic_j,
        estimated=any(d.estimated for d in devices),
        methods=tuple(sorted({d.method for d in devices})),
        duration_s=window_s,
        mean_power_w=_mean_power_w(devices, total_j, window_s),
        peak_power_w=peak_power,
        energy_per_output_token_j=total_j / output_tokens if output_tokens > 0 else None,
        energy_per_request_j=total_j / num_requests if num_requests > 0 else None,
        output_tokens_per_j=output_tokens / total_j if total_j > 0 else None,
        emissions_g=emissions_g,
        carbon_intensity_g_per_kwh=intensity,
        carbon_intensity_source=intensity_source,
        pue=config.pue,
        unmeasured=UnmeasuredEnergy(**unmeasured),
    )
    return metrics, warnings
