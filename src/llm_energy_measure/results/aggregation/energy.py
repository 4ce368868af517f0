"""Energy across processes: every physical device counted exactly once.

Each process reports the devices it measured, keyed by physical identity (``gpu:<UUID>``,
``<host>:rapl:package-0``). When several processes report the same device (processes sharing a
GPU, or several ranks of one host reporting a host-level domain), the device is counted once,
with the largest reading: every reading covers the whole device over one process's window, so
the largest one covers the widest window and is the best lower bound of the device's energy
over the experiment. Such duplicates are listed and warned about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from llm_energy_measure.domain import (
    DeviceEnergy,
    EnergyMetrics,
    MeasurementWarning,
    RawProcessResult,
    UnmeasuredEnergy,
)

#: Joules in one kilowatt-hour.
J_PER_KWH = 3.6e6


@dataclass
class DeviceSelection:
    """The reading kept for every physical device, and what was dropped."""

    devices: list[DeviceEnergy] = field(default_factory=list)
    #: device id -> process index whose reading was kept.
    owner: dict[str, int] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    warnings: list[MeasurementWarning] = field(default_factory=list)


def select_devices(raws: Sequence[RawProcessResult]) -> DeviceSelection:
    """Keep one reading per device id (the largest ``energy_j``; ties go to the lowest rank).

    Readings of one device by processes whose windows do not overlap (a resumed experiment:
    the missing ranks measured later) cover different time and are summed, the largest
    reading of each group of overlapping windows once.
    """
    readings: dict[str, list[tuple[int, DeviceEnergy]]] = {}
    windows = {raw.process_index: (raw.timestamps.start, raw.timestamps.end) for raw in raws}
    for raw in raws:
        if raw.energy is None:
            continue
        for dev in raw.energy.devices:
            readings.setdefault(dev.device_id, []).append((raw.process_index, dev))
    selection = DeviceSelection()
    for device_id in sorted(readings):
        groups = _overlapping_groups(readings[device_id], windows)
        kept = [max(g, key=lambda item: (item[1].energy_j, -item[0])) for g in groups]
        rank, chosen = kept[0]
        if len(kept) > 1:
            chosen = _sum_disjoint([dev for _, dev in kept])
            selection.warnings.append(MeasurementWarning(
                code="device_windows_disjoint", severity="info",
                message=f"device {device_id} was measured in {len(kept)} separate windows "
                        f"(processes {', '.join(str(r) for r, _ in kept)}, e.g. after a "
                        "resume); their energies are summed"))
        selection.devices.append(chosen)
        selection.owner[device_id] = rank
        for group, (g_rank, g_chosen) in zip(groups, kept, strict=True):
            if len(group) > 1:
                if device_id not in selection.duplicates:
                    selection.duplicates.append(device_id)
                selection.warnings.append(_duplicate_warning(device_id, group, g_rank, g_chosen))
    return selection


def _overlapping_groups(
    candidates: list[tuple[int, DeviceEnergy]], windows: dict[int, tuple[float, float]]
) -> list[list[tuple[int, DeviceEnergy]]]:
    """Candidates grouped by overlapping process windows, in time order."""
    ordered = sorted(candidates, key=lambda item: (windows[item[0]][0], item[0]))
    groups: list[list[tuple[int, DeviceEnergy]]] = []
    group_end = float("-inf")
    for item in ordered:
        start, end = windows[item[0]]
        if groups and start <= group_end:
            groups[-1].append(item)
            group_end = max(group_end, end)
        else:
            groups.append([item])
            group_end = end
    return groups


def _sum_disjoint(parts: list[DeviceEnergy]) -> DeviceEnergy:
    """One device's readings over disjoint windows, as one reading over their total time."""
    energy_j = sum(p.energy_j for p in parts)
    duration_s = sum(p.duration_s for p in parts)
    peaks = [p.peak_power_w for p in parts if p.peak_power_w is not None]
    return parts[0].model_copy(update={
        "energy_j": energy_j,
        "duration_s": duration_s,
        "mean_power_w": energy_j / duration_s if duration_s > 0 else None,
        "peak_power_w": max(peaks) if peaks else None,
        "static_energy_j": _sum_if_all([p.static_energy_j for p in parts]),
        "dynamic_energy_j": _sum_if_all([p.dynamic_energy_j for p in parts]),
        "dynamic_clamped": any(p.dynamic_clamped for p in parts),
        "baseline_power_w": parts[0].baseline_power_w,
    })


def covered_by_host_leader(raw: RawProcessResult, raws: Sequence[RawProcessResult]) -> bool:
    """True for a process with no energy figures that had nothing of its own to measure: its
    host has no GPU and another process of the host measured the host-level domains."""
    if raw.energy is not None or raw.environment.gpus:
        return False
    return any(
        other.energy is not None
        and any(d.scope == "host" and d.host == raw.hostname for d in other.energy.devices)
        for other in raws if other.process_index != raw.process_index
    )


def _duplicate_warning(
    device_id: str, candidates: list[tuple[int, DeviceEnergy]], rank: int, chosen: DeviceEnergy
) -> MeasurementWarning:
    ranks = ", ".join(str(r) for r, _ in candidates)
    kept = f"counted once: {chosen.energy_j:.6g} J from process {rank}, the largest reading"
    if chosen.scope == "host":
        message = (
            f"host-level domain {device_id} (host {chosen.host}) was reported by processes "
            f"{ranks}; it should be measured by one process per host; {kept}"
        )
    else:
        message = f"device {device_id} was reported by processes {ranks} (shared device); {kept}"
    return MeasurementWarning(code="duplicate_device", message=message)


@dataclass
class _Totals:
    total_j: float = 0.0
    #: Energy by kind (gpu, cpu, dram) of every reading that has the kind.
    by_kind: dict[str, float] = field(default_factory=dict)
    static_parts: list[float | None] = field(default_factory=list)
    dynamic_parts: list[float | None] = field(default_factory=list)

    def add(
        self,
        total_j: float,
        kinds: dict[str, float | None],
        static_j: float | None,
        dynamic_j: float | None,
    ) -> None:
        self.total_j += total_j
        for kind, joules in kinds.items():
            if joules is not None:
                self.by_kind[kind] = self.by_kind.get(kind, 0.0) + joules
        self.static_parts.append(static_j)
        self.dynamic_parts.append(dynamic_j)


def _sum_if_all(parts: list[float | None]) -> float | None:
    """Sum of the parts, or None when any part is unknown (a partial sum would mislead)."""
    if not parts or any(p is None for p in parts):
        return None
    return sum(p for p in parts if p is not None)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def aggregate_energy(
    raws: Sequence[RawProcessResult],
    selection: DeviceSelection,
    *,
    output_tokens: int,
    num_requests: int,
    window_s: float,
) -> tuple[EnergyMetrics | None, list[MeasurementWarning]]:
    """System energy over the experiment from the selected devices.

    Totals by kind (gpu/cpu/dram; ``system`` devices count in the total only; None for a kind
    no process measured); static and dynamic parts are summed when every device has them,
    else None. ``unmeasured`` gives the processes' reasons for every None figure. Mean
    power = total energy / system window (latest end - earliest start). Peak power is the
    highest peak any single process saw (a lower bound of the system peak: samples of
    different processes are not time-aligned, so they are not summed). Per-token,
    per-request and tokens-per-joule figures are None when some process has no energy
    figures (its tokens would be counted without its energy). Emissions = kWh x carbon
    intensity x PUE, recomputed from the deduplicated total when every process used the same
    intensity and PUE; otherwise the processes'
    emissions are summed. Returns None when no process measured energy.
    """
    with_energy = [r for r in raws if r.energy is not None]
    if not with_energy:
        return None, []
    warnings: list[MeasurementWarning] = []
    totals = _Totals()
    for dev in selection.devices:
        kinds: dict[str, float | None] = {dev.kind: dev.energy_j} if dev.kind != "system" else {}
        totals.add(dev.energy_j, kinds, dev.static_energy_j, dev.dynamic_energy_j)
    for raw in with_energy:
        energy = raw.energy
        assert energy is not None
        if energy.devices:
            continue
        # No per-device figures: the process total is taken as is (cannot be deduplicated).
        totals.add(
            energy.total_energy_j,
            {"gpu": energy.gpu_energy_j, "cpu": energy.cpu_energy_j,
             "dram": energy.ram_energy_j},
            energy.static_energy_j,
            energy.dynamic_energy_j,
        )
        warnings.append(
            MeasurementWarning(
                code="energy_not_deduplicated",
                message=(
                    f"process {raw.process_index} reported {energy.total_energy_j:.6g} J "
                    "without per-device figures; it is added as is and cannot be checked for "
                    "double counting"
                ),
            )
        )
    missing = [
        r.process_index for r in raws if r.energy is None and not covered_by_host_leader(r, raws)
    ]
    if missing:
        warnings.append(
            MeasurementWarning(
                code="energy_missing",
                message=(
                    f"processes {', '.join(map(str, missing))} have no energy figures; the "
                    "energy total covers the other processes only and per-token/per-request "
                    "energy is not reported"
                ),
            )
        )
    energies = [r.energy for r in with_energy if r.energy is not None]
    methods: set[str] = {d.method for d in selection.devices}
    for e in energies:
        methods.update(e.methods)
    peaks = [e.peak_power_w for e in energies if e.peak_power_w is not None]
    total = totals.total_j
    complete = not missing
    emissions, intensity, source, pue, emission_warning = _emissions(energies, total)
    if emission_warning is not None:
        warnings.append(emission_warning)
    static_j = _sum_if_all(totals.static_parts)
    dynamic_j = _sum_if_all(totals.dynamic_parts)
    figures = {
        "gpu_energy_j": totals.by_kind.get("gpu"),
        "cpu_energy_j": totals.by_kind.get("cpu"),
        "ram_energy_j": totals.by_kind.get("dram"),
        "static_energy_j": static_j,
        "dynamic_energy_j": dynamic_j,
        "peak_power_w": max(peaks) if peaks else None,
    }
    metrics = EnergyMetrics(
        devices=tuple(selection.devices),
        backend="+".join(sorted({e.backend for e in energies})),
        total_energy_j=total,
        gpu_energy_j=totals.by_kind.get("gpu"),
        cpu_energy_j=totals.by_kind.get("cpu"),
        ram_energy_j=totals.by_kind.get("dram"),
        static_energy_j=static_j,
        dynamic_energy_j=dynamic_j,
        estimated=any(e.estimated for e in energies) or any(d.estimated for d in selection.devices),
        methods=tuple(sorted(methods)),
        duration_s=window_s,
        mean_power_w=_ratio(total, window_s),
        peak_power_w=max(peaks) if peaks else None,
        energy_per_output_token_j=_ratio(total, output_tokens) if complete else None,
        energy_per_request_j=_ratio(total, num_requests) if complete else None,
        output_tokens_per_j=_ratio(output_tokens, total) if complete else None,
        emissions_g=emissions,
        carbon_intensity_g_per_kwh=intensity,
        carbon_intensity_source=source,
        pue=pue,
        unmeasured=UnmeasuredEnergy(**_unmeasured(with_energy, figures)),
    )
    return metrics, warnings


def _unmeasured(
    raws: Sequence[RawProcessResult], figures: dict[str, float | None]
) -> dict[str, str]:
    """Reasons for the system figures that are None: every process's own reason, by rank."""
    reasons: dict[str, str] = {}
    for name, value in figures.items():
        if value is not None:
            continue
        own = [
            (raw.process_index, reason)
            for raw in raws
            if raw.energy is not None
            and (reason := raw.energy.unmeasured.as_dict().get(name)) is not None
        ]
        texts = sorted({text for _, text in own})
        if len(texts) == 1:
            reasons[name] = texts[0]
        elif texts:
            reasons[name] = "; ".join(f"process {rank}: {text}" for rank, text in own)
        else:
            reasons[name] = "not measured by any process"
    return reasons


def _emissions(
    energies: Sequence[EnergyMetrics], total_j: float
) -> tuple[float | None, float | None, str | None, float, MeasurementWarning | None]:
    """(emissions_g, intensity g/kWh, intensity source, pue, warning) of the system total."""
    settings = {(e.carbon_intensity_g_per_kwh, e.pue) for e in energies}
    if len(settings) == 1:
        intensity, pue = next(iter(settings))
        if intensity is None:
            return None, None, None, pue, None
        sources = {e.carbon_intensity_source for e in energies}
        source = sources.pop() if len(sources) == 1 else None
        return total_j / J_PER_KWH * intensity * pue, intensity, source, pue, None
    present = [e.emissions_g for e in energies if e.emissions_g is not None]
    warning = MeasurementWarning(
        code="mixed_carbon_intensity",
        message=(
            "processes used different carbon intensities or PUE; emissions are the sum of the "
            "processes' own figures"
            + ("" if len(present) == len(energies) else " (some processes have none)")
        ),
    )
    pues = {e.pue for e in energies}
    pue = pues.pop() if len(pues) == 1 else 1.0
    return (sum(present) if present else None), None, None, pue, warning


def cycle_energy_j(
    parts: Sequence[tuple[dict[str, float], float | None]],
    covered: Sequence[bool] | None = None,
) -> float | None:
    """Energy of one cycle over processes, each device once (largest reading).

    ``parts`` holds (device id -> J, process total J or None) per process. A
    process without per-device figures adds its total as is; None when a process has neither,
    unless ``covered`` (aligned with ``parts``) says that another process measured everything
    it runs on (``covered_by_host_leader``: a CPU process whose host leader measured the host).
    """
    by_device: dict[str, float] = {}
    extra_j = 0.0
    flags = covered if covered is not None else [False] * len(parts)
    for (device_energy_j, energy_j), is_covered in zip(parts, flags, strict=True):
        if is_covered and not device_energy_j and energy_j is None:
            continue
        if device_energy_j:
            for device_id, joules in device_energy_j.items():
                by_device[device_id] = max(joules, by_device.get(device_id, joules))
        elif energy_j is not None:
            extra_j += energy_j
        else:
            return None
    return sum(by_device.values()) + extra_j
