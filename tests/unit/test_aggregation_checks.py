"""Aggregation checks (errors and named warnings) and edge cases, with hand-computed values."""

from __future__ import annotations

import math

import pytest
from tests.factories import make_cycle, make_device, make_raw, make_request

from llm_energy_measure.domain import FlopsResult
from llm_energy_measure.exceptions import AggregationError
from llm_energy_measure.results import aggregate_results

T_975_DF2 = 4.302652729749464  # Student t quantile, 97.5%, 2 degrees of freedom


def _codes(result):
    return [w.code for w in result.warnings]


def _procs(n, **kwargs):
    return [make_raw("exp", i, n, start=1000.0 + i, duration_s=10.0, **kwargs) for i in range(n)]


def test_missing_ranks_raise_naming_them():
    raws = [r for r in _procs(4) if r.process_index in (0, 2)]
    with pytest.raises(AggregationError, match=r"process\(es\) 1, 3 are missing"):
        aggregate_results(raws)


def test_allow_partial_flags_the_result():
    raws = [r for r in _procs(4) if r.process_index in (0, 2)]
    result = aggregate_results(raws, allow_partial=True)
    assert result.aggregation.partial is True
    assert result.aggregation.missing_ranks == (1, 3)
    assert result.aggregation.expected_processes == 4
    assert "partial_result" in _codes(result)
    assert result.inference.output_tokens == 2 * 80


def test_expected_processes_argument_overrides_declared_count():
    with pytest.raises(AggregationError, match=r"process\(es\) 1 are missing"):
        aggregate_results(_procs(1), expected_processes=2)


def test_config_hash_mismatch_names_the_hashes():
    raws = _procs(2)
    raws[1] = make_raw("exp", 1, 2, config_hash="other-hash")
    with pytest.raises(AggregationError, match="cfg-hash-1") as info:
        aggregate_results(raws)
    assert "other-hash" in str(info.value)


def test_mismatched_experiment_ids_raise():
    raws = [make_raw("exp-a", 0, 2), make_raw("exp-b", 1, 2)]
    with pytest.raises(AggregationError, match="exp-a, exp-b"):
        aggregate_results(raws)


def test_duplicate_ranks_raise():
    with pytest.raises(AggregationError, match="process index 0 appears more than once"):
        aggregate_results([make_raw("exp", 0, 2), make_raw("exp", 0, 2), make_raw("exp", 1, 2)])


def test_rank_outside_expected_range_raises():
    with pytest.raises(AggregationError, match=r"outside 0\.\.1"):
        aggregate_results([make_raw("exp", 0, 2), make_raw("exp", 2, 2), make_raw("exp", 1, 2)])


def test_empty_input_raises():
    with pytest.raises(AggregationError):
        aggregate_results([])


def test_windows_without_overlap_warn():
    raws = [
        make_raw("exp", 0, 2, start=1000.0, duration_s=10.0),
        make_raw("exp", 1, 2, start=1010.0, duration_s=10.0),  # starts when p0 ends
    ]
    result = aggregate_results(raws)
    assert result.aggregation.temporal_overlap is False
    assert "no_temporal_overlap" in _codes(result)
    # The system window spans both: 160 output tokens / 20 s.
    assert result.inference.output_tokens_per_s == pytest.approx(160 / 20)


def test_host_domain_reported_by_two_ranks_counted_once_with_warning():
    cpu = "hostA:rapl:package-0"
    raws = [
        make_raw("exp", 0, 2, devices=[make_device("gpu:G0", 100.0),
                                       make_device(cpu, 60.0, kind="cpu")]),
        make_raw("exp", 1, 2, devices=[make_device("gpu:G1", 90.0),
                                       make_device(cpu, 58.0, kind="cpu")]),
    ]
    result = aggregate_results(raws)
    assert result.energy.total_energy_j == pytest.approx(100 + 90 + 60)
    assert result.energy.cpu_energy_j == pytest.approx(60)
    assert result.aggregation.duplicate_devices == (cpu,)
    warning = next(w for w in result.warnings if w.code == "duplicate_device")
    assert "host-level domain" in warning.message and "processes 0, 1" in warning.message


def test_single_process_keeps_its_own_figures():
    raw = make_raw("exp", 0, 1, start=5.0, duration_s=4.0)
    result = aggregate_results([raw])
    assert result.inference.output_tokens_per_s == pytest.approx(80 / 4)
    assert result.energy.total_energy_j == pytest.approx(100)
    assert result.energy.energy_per_output_token_j == pytest.approx(100 / 80)
    assert result.warnings == ()


def test_process_without_energy_gives_partial_total_and_no_ratios():
    raws = [make_raw("exp", 0, 2), make_raw("exp", 1, 2, with_energy=False)]
    result = aggregate_results(raws)
    assert result.energy.total_energy_j == pytest.approx(100)
    assert result.energy.energy_per_output_token_j is None
    assert result.energy.output_tokens_per_j is None
    assert "energy_missing" in _codes(result)


def test_no_energy_anywhere_gives_none():
    result = aggregate_results([make_raw("exp", 0, 1, with_energy=False)])
    assert result.energy is None


def test_estimate_anywhere_marks_the_total_estimated():
    raws = [
        make_raw("exp", 0, 2),
        make_raw("exp", 1, 2, devices=[make_device("gpu:G9", 50.0, method="estimate",
                                                   estimated=True)]),
    ]
    energy = aggregate_results(raws).energy
    assert energy.estimated is True
    assert energy.methods == ("counter", "estimate")


def test_mixed_carbon_intensity_sums_process_emissions():
    raws = [
        make_raw("exp", 0, 2, carbon_intensity_g_per_kwh=100.0),
        make_raw("exp", 1, 2, carbon_intensity_g_per_kwh=300.0),
    ]
    result = aggregate_results(raws)
    assert result.energy.emissions_g == pytest.approx(100 / 3.6e6 * 100 + 100 / 3.6e6 * 300)
    assert result.energy.carbon_intensity_g_per_kwh is None
    assert "mixed_carbon_intensity" in _codes(result)


def test_mfu_needs_known_peaks():
    flops = FlopsResult(total_flops=1e12, prefill_flops=4e11, decode_flops=6e11,
                        method="analytic", confidence="high")
    result = aggregate_results([make_raw("exp", 0, 1, flops=flops)])
    assert result.compute.achieved_flops_per_s == pytest.approx(1e12 / 10)
    assert result.compute.mfu is None
    assert result.compute.mbu is None


def test_flops_missing_on_one_process_are_not_summed():
    flops = FlopsResult(total_flops=1e12, prefill_flops=4e11, decode_flops=6e11,
                        method="analytic", confidence="high")
    result = aggregate_results([make_raw("exp", 0, 2, flops=flops), make_raw("exp", 1, 2)])
    assert result.compute.flops is None
    assert "flops_incomplete" in _codes(result)


def test_zero_window_reports_zero_rates_and_warns():
    result = aggregate_results([make_raw("exp", 0, 1, duration_s=0.0)])
    assert result.inference.output_tokens_per_s == 0.0
    assert "zero_window" in _codes(result)


# --- cycles ---------------------------------------------------------------------------------


def _cycled_processes(p1_cycles=(0, 1, 2)):
    """Two processes sharing GPU "gpu:S"; p0 also reports the host CPU, p1 also GPU "gpu:T"."""
    p0_cycles = [
        make_cycle(0, start=0, duration_s=10, output_tokens=100,
                   device_energy_j={"gpu:S": 100, "hostA:rapl:package-0": 20}),
        make_cycle(1, start=20, duration_s=10, output_tokens=100,
                   device_energy_j={"gpu:S": 90, "hostA:rapl:package-0": 20}),
        make_cycle(2, start=40, duration_s=10, output_tokens=110,
                   device_energy_j={"gpu:S": 100, "hostA:rapl:package-0": 25}),
    ]
    p1_all = {
        0: make_cycle(0, start=1, duration_s=10, output_tokens=120,
                      device_energy_j={"gpu:S": 110, "gpu:T": 50}),
        1: make_cycle(1, start=20, duration_s=12, output_tokens=140,
                      device_energy_j={"gpu:S": 95, "gpu:T": 45}),
        2: make_cycle(2, start=40, duration_s=10, output_tokens=110,
                      device_energy_j={"gpu:S": 100, "gpu:T": 55}),
    }
    ttfts = {0: (0.1, 0.2, 0.1), 1: (0.3, 0.4, 0.5)}
    raws = []
    for rank, cycles in ((0, p0_cycles), (1, [p1_all[c] for c in p1_cycles])):
        requests = [
            make_request(rank * 10 + c.cycle, cycle=c.cycle, ttft_s=ttfts[rank][c.cycle],
                         tpot_s=None)
            for c in cycles
        ]
        raws.append(make_raw("exp", rank, 2, start=0.0, duration_s=52.0, requests=requests,
                             cycles=cycles))
    return raws


def _expected_stats(values):
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std


def test_cycle_stats_combine_processes_per_cycle():
    stats = aggregate_results(_cycled_processes()).cycle_stats
    # Throughput per cycle: 220 / 11 s, 240 / 12 s, 220 / 10 s.
    tput = stats["output_tokens_per_s"]
    mean, std = _expected_stats([20.0, 20.0, 22.0])
    assert tput.n == 3
    assert tput.mean == pytest.approx(mean) and tput.std == pytest.approx(std)
    assert tput.ci95_high - tput.mean == pytest.approx(T_975_DF2 * std / math.sqrt(3))
    assert tput.high_variance is False
    # Energy per cycle, gpu:S once (largest reading): 110+20+50, 95+20+45, 100+25+55.
    energy = stats["energy_j"]
    assert energy.mean == pytest.approx((180 + 160 + 180) / 3)
    assert energy.std == pytest.approx(_expected_stats([180.0, 160.0, 180.0])[1])
    ept = stats["energy_per_output_token_j"]
    assert ept.mean == pytest.approx((180 / 220 + 160 / 240 + 180 / 220) / 3)
    # TTFT p50 over the union of each cycle's requests: 0.2, 0.3, 0.3.
    assert stats["ttft_p50_s"].mean == pytest.approx((0.2 + 0.3 + 0.3) / 3)
    # No inter-token latencies were recorded: the metrics are left out, not zero.
    assert "itl_p50_s" not in stats and "tpot_p50_s" not in stats


def test_cycles_missing_on_a_process_are_left_out_with_warning():
    result = aggregate_results(_cycled_processes(p1_cycles=(0, 1)))
    assert "incomplete_cycles" in _codes(result)
    assert result.cycle_stats["output_tokens_per_s"].n == 2
    assert result.cycle_stats["output_tokens_per_s"].mean == pytest.approx(20.0)


def test_one_cycle_gives_no_cycle_stats():
    raw = make_raw("exp", 0, 1, cycles=[make_cycle(0, start=0, duration_s=1, output_tokens=5)])
    assert aggregate_results([raw]).cycle_stats == {}


def test_idle_gaps_between_cycles_are_not_counted_as_measured_time():
    # One process, two 10 s cycles with a 5 s gap between them: 200 tokens in 20 s measured.
    cycles = [make_cycle(0, start=0.0, duration_s=10.0, output_tokens=100),
              make_cycle(1, start=15.0, duration_s=10.0, output_tokens=100)]
    requests = [make_request(i, output_tokens=50) for i in range(4)]
    raw = make_raw("exp", 0, 1, start=0.0, duration_s=25.0, requests=requests, cycles=cycles)
    result = aggregate_results([raw])
    assert (result.timestamps.start, result.timestamps.end) == (0.0, 25.0)
    assert result.timestamps.duration_s == pytest.approx(20.0)
    assert result.inference.output_tokens_per_s == pytest.approx(200 / 20)
    assert result.energy.mean_power_w == pytest.approx(100 / 20)


def test_system_window_is_the_union_of_measured_windows():
    # p0 [0, 10], p1 [4, 12], p2 [20, 25]: union 12 + 5 = 17 s (warned: p2 ran alone).
    raws = [make_raw("exp", 0, 3, start=0.0, duration_s=10.0),
            make_raw("exp", 1, 3, start=4.0, duration_s=8.0),
            make_raw("exp", 2, 3, start=20.0, duration_s=5.0)]
    result = aggregate_results(raws)
    assert result.timestamps.duration_s == pytest.approx(17.0)
    assert result.inference.output_tokens_per_s == pytest.approx(240 / 17)
    assert "no_temporal_overlap" in _codes(result)


def test_mfu_of_one_process_sharded_over_two_gpus_is_not_halved():
    # One process drives two GPUs (device_map): its reported peak already sums both.
    flops = FlopsResult(total_flops=500e12, prefill_flops=100e12, decode_flops=400e12,
                        method="analytic", confidence="high")
    devices = [make_device("gpu:GPU-a", 100.0), make_device("gpu:GPU-b", 100.0)]
    raw = make_raw("exp", 0, 1, duration_s=10.0, devices=devices, flops=flops,
                   peak_flops_per_s=100e12)
    assert raw.compute.mfu == pytest.approx(0.5)  # 50 TFLOP/s of 100
    result = aggregate_results([raw])
    assert result.compute.peak_flops_per_s == pytest.approx(100e12)
    assert result.compute.mfu == pytest.approx(0.5)


def test_traffic_runs_note_that_the_system_window_includes_arrival_gaps():
    raw = make_raw("exp", 0, 1, duration_s=10.0,
                   effective_config={"traffic": {"enabled": True, "rate_per_s": 1.0}})
    result = aggregate_results([raw])
    assert "traffic_in_system_window" in _codes(result)
    assert result.inference.output_tokens_per_s == pytest.approx(80 / 10.0)
    assert "traffic_in_system_window" not in _codes(aggregate_results([make_raw("e", 0, 1)]))


def test_cycle_energy_of_a_cpu_run_measured_by_the_host_leader():
    # Two CPU processes on one host: the host leader (rank 0) measures the package and DRAM,
    # rank 1 has nothing of its own to measure (no GPU, host domains are rank 0's). Cycle
    # energies 18, 20, 22 J: mean 20 J, std 2 J (sample), and per output token over both
    # ranks' 40 tokens a cycle: 0.45, 0.5, 0.55 J.
    cpu, ram = "hostA:rapl:package-0", "hostA:rapl:package-0/dram"
    leader_cycles = [
        make_cycle(c, start=10.0 * c, duration_s=5.0, output_tokens=20,
                   device_energy_j={cpu: cpu_j, ram: 2.0})
        for c, cpu_j in enumerate((16.0, 18.0, 20.0))
    ]
    other_cycles = [make_cycle(c, start=10.0 * c, duration_s=5.0, output_tokens=20)
                    for c in range(3)]
    raws = [
        make_raw("exp", 0, 2, start=0.0, duration_s=25.0, cycles=leader_cycles,
                 devices=[make_device(cpu, 54.0, kind="cpu"), make_device(ram, 6.0, kind="dram")]),
        make_raw("exp", 1, 2, start=0.0, duration_s=25.0, cycles=other_cycles,
                 devices=[], with_energy=False, local_rank=1),
    ]
    result = aggregate_results(raws)
    assert "energy_missing" not in _codes(result)
    energy = result.cycle_stats["energy_j"]
    assert (energy.n, energy.mean, energy.std) == (3, pytest.approx(20.0), pytest.approx(2.0))
    ept = result.cycle_stats["energy_per_output_token_j"]
    assert ept.mean == pytest.approx(0.5) and ept.std == pytest.approx(0.05)


def test_an_absent_device_kind_is_null_with_its_reason_aggregated_and_in_csv(tmp_path):
    import csv

    from llm_energy_measure.domain import UnmeasuredEnergy
    from llm_energy_measure.results.export.exporters import export_csv

    cpu = "hostA:rapl:package-0"
    leader = make_raw("exp", 0, 2, devices=[make_device(cpu, 60.0, kind="cpu")])
    leader = leader.model_copy(update={"energy": leader.energy.model_copy(update={
        "unmeasured": UnmeasuredEnergy(gpu_energy_j="no GPU is visible to this process")})})
    other = make_raw("exp", 1, 2, devices=[], with_energy=False, local_rank=1)
    result = aggregate_results([leader, other])
    assert result.energy.gpu_energy_j is None and result.energy.ram_energy_j is None
    assert result.energy.cpu_energy_j == pytest.approx(60.0)
    assert result.energy.unmeasured.gpu_energy_j == "no GPU is visible to this process"
    assert result.energy.unmeasured.ram_energy_j == "not measured by any process"
    path = export_csv([result], tmp_path / "r.csv")
    with path.open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["energy.gpu_energy_j"] == ""  # null, not 0.0
    assert row["energy.cpu_energy_j"] == "60.0"
    assert row["energy.unmeasured.gpu_energy_j"] == "no GPU is visible to this process"


def test_gpu_memory_of_cpu_processes_is_null_with_the_reason():
    from llm_energy_measure.domain import MemoryStats

    why = "no CUDA device holds memory in this process (CPU run)"
    memory = MemoryStats(cpu_peak_rss_bytes=5_000, gpu_unmeasured=why)
    result = aggregate_results([make_raw("exp", i, 2, memory=memory) for i in range(2)])
    assert result.memory.gpu_peak_allocated_bytes is None
    assert result.memory.gpu_unmeasured == why


def _edged_cycle(start, duration_s, energy_start, energy_end, energy=None):
    from llm_energy_measure.domain import Timestamps

    cycle = make_cycle(0, start=start, duration_s=duration_s, output_tokens=20,
                       device_energy_j=energy)
    return cycle.model_copy(update={"energy_window": Timestamps(
        start=energy_start, end=energy_end, duration_s=energy_end - energy_start)})


def test_energy_window_edges_are_checked_against_every_process_of_the_host():
    cpu = "hostA:rapl:package-0"
    # Rank 1 starts its workload at 100.000 s; the leader's backend only at 100.0119 s (it
    # started after the barrier): 11.9 ms of rank 1's workload fall outside the host window.
    late = [
        make_raw("exp", 0, 2, start=100.02, duration_s=0.6, devices=[make_device(cpu, 9.0,
                 kind="cpu")], cycles=[_edged_cycle(100.02, 0.6, 100.0119, 100.7, {cpu: 9.0})]),
        make_raw("exp", 1, 2, start=100.0, duration_s=0.65, devices=[], with_energy=False,
                 local_rank=1, cycles=[_edged_cycle(100.0, 0.65, 99.99, 100.7)]),
    ]
    result = aggregate_results(late)
    assert result.aggregation.energy_window_margin_s == pytest.approx(-0.0119)
    gap = next(w for w in result.warnings if w.code == "energy_window_gap")
    assert "11.9 ms" in gap.message and "process 0" in gap.message
    assert result.processes[0].energy_window.start == pytest.approx(100.0119)
    # Started before the barrier: the leader's window opens 5 ms before either workload and
    # closes 50 ms after the last one (100.65 s): the margin is +5 ms and nothing is warned.
    on_time = [late[0].model_copy(update={"cycles": (
        _edged_cycle(100.02, 0.6, 99.995, 100.7, {cpu: 9.0}),)}), late[1]]
    result = aggregate_results(on_time)
    assert result.aggregation.energy_window_margin_s == pytest.approx(0.005)
    assert "energy_window_gap" not in _codes(result)
