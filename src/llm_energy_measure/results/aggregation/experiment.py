"""Late aggregation: combine the raw results of an experiment's processes into one result.

Definitions (DESIGN.md, "Measurement rules"):

* tokens and requests are summed;
* the system window spans the earliest process start to the latest process end (epoch
  seconds); its duration is the time during which at least one process was measuring (see
  ``system_window_s``), which is latest end - earliest start whenever the processes ran
  together, minus only the idle gaps between measured cycles;
* system throughput = total tokens / that duration, never a mean of per-process rates, and
  mean power = total energy / the same duration;
* latency statistics come from the union of every process's request records (ITL per token
  gap from the union of every request's token gaps);
* energy counts each physical device once (see ``aggregation_energy``);
* FLOPs are summed; achieved FLOP/s = total FLOPs / system window; MFU = achieved / (sum of
  the per-device peaks of the distinct GPUs);
* memory peaks are the largest peak of any process (a per-device figure, not a sum).

Every problem found is a named ``MeasurementWarning`` or an ``AggregationError``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from llm_energy_measure.domain import (
    AggregatedResult,
    AggregationMetadata,
    ComputeMetrics,
    CycleMetrics,
    FlopsResult,
    InferenceMetrics,
    MeasurementWarning,
    MemoryStats,
    ProcessSummary,
    RawProcessResult,
    Timestamps,
)
from llm_energy_measure.domain.metrics import latency_stats
from llm_energy_measure.exceptions import AggregationError
from llm_energy_measure.results.aggregation.cycles import aggregate_cycle_stats
from llm_energy_measure.results.aggregation.energy import (
    DeviceSelection,
    aggregate_energy,
    select_devices,
)

_CONFIDENCE_ORDER = {"low": 0, "medium": 1, "high": 2}


def aggregate_results(
    raws: Sequence[RawProcessResult],
    *,
    expected_processes: int | None = None,
    allow_partial: bool = False,
    now: float | None = None,
) -> AggregatedResult:
    """Combine the raw results of one experiment (see the module docstring for definitions).

    ``expected_processes`` defaults to the processes' own ``num_processes``. Raises
    AggregationError when ranks are missing (unless ``allow_partial``: then the result is
    flagged partial), duplicated or out of range, or when experiment ids, config hashes or
    process counts differ. ``now`` (epoch seconds) sets ``aggregated_at`` for reproducibility.
    """
    if not raws:
        raise AggregationError("no raw results to aggregate")
    ordered = sorted(raws, key=lambda r: r.process_index)
    experiment_id = _check_same_experiment(ordered)
    _check_duplicate_ranks(ordered, experiment_id)
    config_hashes = _check_config_hashes(ordered, experiment_id)
    expected = _expected_processes(ordered, expected_processes, experiment_id)
    warnings: list[MeasurementWarning] = []
    missing = _check_missing_ranks(ordered, expected, allow_partial, experiment_id, warnings)

    start = min(r.timestamps.start for r in ordered)
    end = max(r.timestamps.end for r in ordered)
    window_s = system_window_s(ordered)
    if window_s <= 0:
        warnings.append(
            MeasurementWarning(
                code="zero_window",
                message="the system window is empty (latest end <= earliest start); "
                "rates are reported as 0",
            )
        )
    overlap = _check_overlap(ordered, warnings)
    margin = _energy_window_margin(ordered, warnings) if overlap else None

    inference = _aggregate_inference(ordered, window_s, warnings)
    selection = select_devices(ordered)
    warnings.extend(selection.warnings)
    energy, energy_warnings = aggregate_energy(
        ordered,
        selection,
        output_tokens=inference.output_tokens,
        num_requests=inference.num_requests,
        window_s=window_s,
    )
    warnings.extend(energy_warnings)
    compute = _aggregate_compute(ordered, selection, inference.output_tokens, window_s, warnings)
    cycle_stats, cycle_warnings = aggregate_cycle_stats(ordered)
    warnings.extend(cycle_warnings)

    carried = [
        w.model_copy(update={"process_index": raw.process_index})
        for raw in ordered
        for w in raw.warnings
    ]
    first = ordered[0]
    metadata = AggregationMetadata(
        aggregated_at=time.time() if now is None else now,
        num_processes=len(ordered),
        expected_processes=expected,
        missing_ranks=tuple(missing),
        # A serving run stopped early holds the requests done so far.
        partial=bool(missing) or any(r.serving is not None and r.serving.partial
                                     for r in ordered),
        hosts=tuple(sorted({r.hostname for r in ordered})),
        unique_devices=tuple(d.device_id for d in selection.devices),
        duplicate_devices=tuple(selection.duplicates),
        temporal_overlap=overlap,
        energy_window_margin_s=margin,
        config_hashes=tuple(config_hashes),
    )
    return AggregatedResult(
        experiment_id=experiment_id,
        config_name=first.config_name,
        config_hash=first.config_hash,
        effective_config=first.effective_config,
        engine=first.engine,
        model=first.model,
        aggregation=metadata,
        timestamps=Timestamps(start=start, end=end, duration_s=window_s),
        inference=inference,
        energy=energy,
        compute=compute,
        memory=_aggregate_memory(ordered),
        processes=tuple(_process_summary(r) for r in ordered),
        cycle_stats=cycle_stats,
        # A serving run has one process (one load generator): its figures are the run's.
        serving=first.serving if len(ordered) == 1 else None,
        environment=first.environment,
        warnings=(*carried, *warnings),
    )


def _measured_intervals(raw: RawProcessResult) -> list[tuple[float, float]]:
    """The epoch intervals a process measured: its cycles' windows, else its whole window."""
    if raw.cycles:
        return [(c.timestamps.start, c.timestamps.end) for c in raw.cycles]
    return [(raw.timestamps.start, raw.timestamps.end)]


def system_window_s(raws: Sequence[RawProcessResult]) -> float:
    """Seconds during which at least one process was measuring (union of measured intervals).

    Equals latest end - earliest start when the processes' windows overlap and no process
    paused between cycles. Energy is only measured inside cycles, so idle gaps between cycles
    (counter stop/start, bookkeeping) would otherwise dilute throughput and mean power.
    """
    intervals = sorted(iv for raw in raws for iv in _measured_intervals(raw))
    total = 0.0
    cur_start, cur_end = intervals[0]
    for iv_start, iv_end in intervals[1:]:
        if iv_start > cur_end:
            total += max(cur_end - cur_start, 0.0)
            cur_start, cur_end = iv_start, iv_end
        else:
            cur_end = max(cur_end, iv_end)
    return total + max(cur_end - cur_start, 0.0)


# --- checks -------------------------------------------------------------------------------


def _check_same_experiment(raws: Sequence[RawProcessResult]) -> str:
    ids = sorted({r.experiment_id for r in raws})
    if len(ids) > 1:
        raise AggregationError(
            f"raw results belong to different experiments ({', '.join(ids)}); "
            "aggregate one experiment at a time"
        )
    return ids[0]


def _check_duplicate_ranks(raws: Sequence[RawProcessResult], experiment_id: str) -> None:
    counts = Counter(r.process_index for r in raws)
    dupes = sorted(rank for rank, n in counts.items() if n > 1)
    if dupes:
        raise AggregationError(
            f"experiment {experiment_id}: process index {', '.join(map(str, dupes))} appears "
            "more than once; remove the stray raw result files"
        )


def _check_config_hashes(raws: Sequence[RawProcessResult], experiment_id: str) -> list[str]:
    hashes = sorted({r.config_hash for r in raws})
    if len(hashes) > 1:
        by_hash = "; ".join(
            f"{h}: processes {', '.join(str(r.process_index) for r in raws if r.config_hash == h)}"
            for h in hashes
        )
        raise AggregationError(
            f"experiment {experiment_id}: processes ran different configs (config hashes "
            f"{by_hash}); rerun them with one config"
        )
    return hashes


def _expected_processes(
    raws: Sequence[RawProcessResult], expected: int | None, experiment_id: str
) -> int:
    declared = sorted({r.num_processes for r in raws})
    if expected is None:
        if len(declared) > 1:
            raise AggregationError(
                f"experiment {experiment_id}: processes disagree on the number of processes "
                f"({', '.join(map(str, declared))}); pass the expected count explicitly"
            )
        expected = declared[0]
    if expected < 1:
        raise AggregationError(f"expected_processes must be >= 1, got {expected}")
    out_of_range = sorted(r.process_index for r in raws if r.process_index >= expected)
    if out_of_range:
        raise AggregationError(
            f"experiment {experiment_id}: process index {', '.join(map(str, out_of_range))} "
            f"is outside 0..{expected - 1} for {expected} expected processes"
        )
    return expected


def _check_missing_ranks(
    raws: Sequence[RawProcessResult],
    expected: int,
    allow_partial: bool,
    experiment_id: str,
    warnings: list[MeasurementWarning],
) -> list[int]:
    present = {r.process_index for r in raws}
    missing = [rank for rank in range(expected) if rank not in present]
    if not missing:
        return []
    names = ", ".join(map(str, missing))
    if not allow_partial:
        raise AggregationError(
            f"experiment {experiment_id}: raw results of process(es) {names} are missing "
            f"({len(present)} of {expected} present); rerun them, or allow a partial result "
            "(--allow-partial)"
        )
    warnings.append(
        MeasurementWarning(
            code="partial_result",
            message=(
                f"partial result: processes {names} are missing ({len(present)} of {expected} "
                "present); totals cover the present processes only"
            ),
            severity="error",
        )
    )
    return missing


def _check_overlap(raws: Sequence[RawProcessResult], warnings: list[MeasurementWarning]) -> bool:
    """The processes' windows must share a moment: latest start < earliest end."""
    latest_start = max(r.timestamps.start for r in raws)
    earliest_end = min(r.timestamps.end for r in raws)
    if latest_start < earliest_end:
        return True
    warnings.append(
        MeasurementWarning(
            code="no_temporal_overlap",
            message=(
                f"the processes' windows do not overlap (latest start {latest_start:.3f} >= "
                f"earliest end {earliest_end:.3f}, epoch s); they did not run together, so "
                "system rates count only the time some process was measuring"
            ),
        )
    )
    return False


def _energy_window_margin(
    raws: Sequence[RawProcessResult], warnings: list[MeasurementWarning]
) -> float | None:
    """Smallest margin (s) by which the energy windows of a host's processes covered the
    measured windows of all that host's processes, cycle by cycle (wall clock of one host).

    Host-level domains are measured by one process per host over its own energy window, so
    every process of the host must be measuring inside it. A negative margin (a backend that
    started after another process's workload, or stopped before it ended) draws
    ``energy_window_gap``. None when no process with energy recorded its energy windows.
    """
    parts: dict[tuple[str, int], list[tuple[RawProcessResult, CycleMetrics]]] = {}
    for raw in raws:
        for cycle in raw.cycles:
            parts.setdefault((raw.hostname, cycle.cycle), []).append((raw, cycle))
    worst: tuple[float, str, int, int] | None = None
    for (host, cycle_index), members in sorted(parts.items()):
        start = min(c.timestamps.start for _, c in members)
        end = max(c.timestamps.end for _, c in members)
        for raw, cycle in members:
            edges = cycle.energy_window
            if edges is None or raw.energy is None:
                continue
            margin = min(start - edges.start, edges.end - end)
            if worst is None or margin < worst[0]:
                worst = (margin, host, cycle_index, raw.process_index)
    if worst is None:
        return None
    margin, host, cycle_index, rank = worst
    if margin < 0:
        warnings.append(MeasurementWarning(
            code="energy_window_gap",
            message=f"{-margin * 1000:.1f} ms of the measured workload of cycle {cycle_index} "
                    f"on host {host} ran outside the energy window of process {rank} (its "
                    "backend started after another process began, or stopped before it "
                    "ended): the energy it measured misses that time",
        ))
    return margin


# --- figures ------------------------------------------------------------------------------


def _rate(amount: float, window_s: float) -> float:
    return amount / window_s if window_s > 0 else 0.0


def _aggregate_inference(
    raws: Sequence[RawProcessResult], window_s: float, warnings: list[MeasurementWarning]
) -> InferenceMetrics:
    """Summed tokens, system rates over ``window_s`` and latency over the union of requests."""
    num_requests = sum(r.inference.num_requests for r in raws)
    input_tokens = sum(r.inference.input_tokens for r in raws)
    output_tokens = sum(r.inference.output_tokens for r in raws)
    total_tokens = sum(r.inference.total_tokens for r in raws)
    without_records = [
        r.process_index for r in raws if not r.requests and r.inference.num_requests > 0
    ]
    if without_records:
        warnings.append(
            MeasurementWarning(
                code="latency_incomplete",
                message=(
                    f"processes {', '.join(map(str, without_records))} stored no request "
                    "records; latency statistics cover the other processes only"
                ),
                severity="info",
            )
        )
    requests = [req for r in raws for req in r.requests]
    if any(_traffic_enabled(r) for r in raws):
        compute_s = max(r.inference.inference_time_s for r in raws)
        warnings.append(
            MeasurementWarning(
                code="traffic_in_system_window",
                message=(
                    f"simulated traffic: system throughput divides by the wall window "
                    f"({window_s:.3f} s, arrival gaps included, as serving benchmarks count "
                    f"it); the busiest process computed for {compute_s:.3f} s (its raw "
                    "result's throughput excludes the gaps)"
                ),
                severity="info",
            )
        )
    return InferenceMetrics(
        num_requests=num_requests,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
        inference_time_s=window_s,
        output_tokens_per_s=_rate(output_tokens, window_s),
        total_tokens_per_s=_rate(total_tokens, window_s),
        requests_per_s=_rate(num_requests, window_s),
        failed_requests=sum(r.inference.failed_requests for r in raws),
        **latency_stats(requests),
    )


def _traffic_enabled(raw: RawProcessResult) -> bool:
    traffic = raw.effective_config.get("traffic")
    return isinstance(traffic, dict) and bool(traffic.get("enabled"))


def _sum_flops(
    raws: Sequence[RawProcessResult], output_tokens: int, warnings: list[MeasurementWarning]
) -> FlopsResult | None:
    flops = [r.compute.flops for r in raws]
    present = [f for f in flops if f is not None]
    if not present:
        return None
    if len(present) < len(flops):
        lacking = ", ".join(str(r.process_index) for r in raws if r.compute.flops is None)
        warnings.append(
            MeasurementWarning(
                code="flops_incomplete",
                message=f"processes {lacking} report no FLOPs; FLOPs are not aggregated",
                severity="info",
            )
        )
        return None
    weakest = min(present, key=lambda f: _CONFIDENCE_ORDER[f.confidence])
    methods = {f.method for f in present}
    total = sum(f.total_flops for f in present)
    return FlopsResult(
        total_flops=total,
        prefill_flops=sum(f.prefill_flops for f in present),
        decode_flops=sum(f.decode_flops for f in present),
        flops_per_output_token=total / output_tokens if output_tokens > 0 else None,
        method=present[0].method if len(methods) == 1 else weakest.method,
        confidence=weakest.confidence,
        architecture=next((f.architecture for f in present if f.architecture), None),
        notes=f"sum over {len(present)} processes",
    )


def _system_peak(
    raws: Sequence[RawProcessResult], selection: DeviceSelection, attr: str
) -> float | None:
    """Sum of the per-device peaks of the distinct GPUs; None when a peak or GPU is unknown.

    Each process whose GPU readings were kept contributes its reported peak once (that peak
    already sums the GPUs the process drives); every process must report a peak and a GPU.
    """
    by_rank = {r.process_index: r for r in raws}
    peaks = [getattr(r.compute, attr) for r in raws]
    if any(p is None for p in peaks):
        return None
    gpu_owners = {
        d.device_id: selection.owner[d.device_id] for d in selection.devices if d.kind == "gpu"
    }
    ranks_with_gpu = {
        r.process_index
        for r in raws
        if r.energy is not None and any(d.kind == "gpu" for d in r.energy.devices)
    }
    if not gpu_owners or len(ranks_with_gpu) < len(raws):
        return None
    # A process's peak already covers every GPU it drives (device_map sharding sums them), so
    # each owning process counts once, not once per GPU it owns.
    owners = set(gpu_owners.values())
    return float(sum(getattr(by_rank[rank].compute, attr) for rank in owners))


def _aggregate_compute(
    raws: Sequence[RawProcessResult],
    selection: DeviceSelection,
    output_tokens: int,
    window_s: float,
    warnings: list[MeasurementWarning],
) -> ComputeMetrics:
    """Summed FLOPs, system FLOP/s, MFU against the distinct GPUs' peaks, window-weighted MBU.

    ``peak_flops_per_s`` and ``peak_memory_bandwidth_bytes_per_s`` of the result are system
    peaks (sum over distinct GPUs). MBU is the mean of the processes' MBU weighted by their
    window durations, and only when every process reports it.
    """
    flops = _sum_flops(raws, output_tokens, warnings)
    achieved = flops.total_flops / window_s if flops is not None and window_s > 0 else None
    peak_flops = _system_peak(raws, selection, "peak_flops_per_s")
    peak_bandwidth = _system_peak(raws, selection, "peak_memory_bandwidth_bytes_per_s")
    mfu = achieved / peak_flops if achieved is not None and peak_flops else None
    peaks_known = all(r.compute.peak_flops_per_s is not None for r in raws)
    if achieved is not None and peaks_known and peak_flops is None:
        warnings.append(
            MeasurementWarning(
                code="mfu_unavailable",
                message="MFU needs every process's GPUs by physical id (from its energy "
                "devices) to count each GPU once; it is not reported",
                severity="info",
            )
        )
    mbus = [r.compute.mbu for r in raws]
    mbu: float | None = None
    if all(m is not None for m in mbus):
        weights = [r.timestamps.duration_s for r in raws]
        total_weight = sum(weights)
        values = [m for m in mbus if m is not None]
        mbu = (
            sum(m * w for m, w in zip(values, weights, strict=True)) / total_weight
            if total_weight > 0
            else sum(values) / len(values)
        )
    names = sorted({r.compute.device_name for r in raws if r.compute.device_name})
    return ComputeMetrics(
        flops=flops,
        achieved_flops_per_s=achieved,
        peak_flops_per_s=peak_flops,
        mfu=mfu,
        peak_memory_bandwidth_bytes_per_s=peak_bandwidth,
        mbu=mbu,
        device_name=", ".join(names) if names else None,
    )


def _max_field(raws: Sequence[RawProcessResult], name: str) -> int | None:
    values = [getattr(r.memory, name) for r in raws if getattr(r.memory, name) is not None]
    return max(values) if values else None


def _aggregate_memory(raws: Sequence[RawProcessResult]) -> MemoryStats:
    """Largest per-process peaks (a per-device figure); model weights of the first process."""
    allocated = _max_field(raws, "gpu_peak_allocated_bytes")
    return MemoryStats(
        model_weights_bytes=raws[0].memory.model_weights_bytes,
        gpu_peak_allocated_bytes=allocated,
        gpu_peak_reserved_bytes=_max_field(raws, "gpu_peak_reserved_bytes"),
        cpu_peak_rss_bytes=_max_field(raws, "cpu_peak_rss_bytes"),
        gpu_unmeasured=(
            None if allocated is not None
            else next((r.memory.gpu_unmeasured for r in raws if r.memory.gpu_unmeasured), None)
        ),
    )


def _process_summary(raw: RawProcessResult) -> ProcessSummary:
    return ProcessSummary(
        process_index=raw.process_index,
        hostname=raw.hostname,
        timestamps=raw.timestamps,
        input_tokens=raw.inference.input_tokens,
        output_tokens=raw.inference.output_tokens,
        output_tokens_per_s=raw.inference.output_tokens_per_s,
        energy_j=raw.energy.total_energy_j if raw.energy is not None else None,
        device_ids=tuple(d.device_id for d in raw.energy.devices) if raw.energy else (),
        energy_window=_energy_edges(raw),
    )


def _energy_edges(raw: RawProcessResult) -> Timestamps | None:
    """The span of a process's recorded energy windows (None when none was recorded)."""
    edges = [c.energy_window for c in raw.cycles if c.energy_window is not None]
    if not edges:
        return None
    return Timestamps(start=edges[0].start, end=edges[-1].end,
                      duration_s=sum(e.duration_s for e in edges))
