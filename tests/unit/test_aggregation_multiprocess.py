"""A 4-process, 2-host experiment stored, loaded and aggregated; every figure checked by hand.

Layout:
    hostA: process 0 (local rank 0) and process 1 (local rank 1) share GPU "gpu:GPU-aaaa";
           process 0 also reports the host domain "hostA:rapl:package-0".
    hostB: process 2 (local rank 0) on "gpu:GPU-bbbb", also reporting "hostB:rapl:package-0"
           and "hostB:rapl:dram-0"; process 3 (local rank 1) on "gpu:GPU-cccc".
Windows (epoch s): p0 [1000.0, 1010.0], p1 [1000.5, 1011.0], p2 [1001.0, 1012.0],
p3 [1000.2, 1009.0] -> system window [1000.0, 1012.0] = 12 s.
"""

from __future__ import annotations

import random

import pytest
from tests.factories import make_device, make_raw, make_request

from llm_energy_measure.domain import FlopsResult, MeasurementWarning, MemoryStats
from llm_energy_measure.results import FileSystemRepository, aggregate_results

EXP = "multi-host-exp"
INTENSITY_G_PER_KWH = 400.0


def _requests(rank: int, specs: list[tuple[int, int, float, float, float]]):
    return [
        make_request(rank * 100 + i, input_tokens=i_tok, output_tokens=o_tok, ttft_s=ttft,
                     tpot_s=tpot, e2e_s=e2e)
        for i, (i_tok, o_tok, ttft, tpot, e2e) in enumerate(specs)
    ]


def _flops(total: float, prefill: float) -> FlopsResult:
    return FlopsResult(total_flops=total, prefill_flops=prefill, decode_flops=total - prefill,
                       method="analytic", confidence="high", architecture="LlamaForCausalLM")


def _four_processes():
    common = dict(experiment_id=EXP, num_processes=4, carbon_intensity_g_per_kwh=400.0,
                  peak_flops_per_s=100e12)
    p0 = make_raw(
        process_index=0, hostname="hostA", local_rank=0, start=1000.0, duration_s=10.0,
        requests=_requests(0, [(10, 20, 0.1, 0.01, 1.0), (12, 30, 0.2, 0.02, 2.0),
                               (8, 10, 0.3, 0.03, 3.0)]),
        devices=[
            make_device("gpu:GPU-aaaa", 500.0, host="hostA", duration_s=10.0,
                        baseline_power_w=20.0),
            make_device("hostA:rapl:package-0", 200.0, kind="cpu", host="hostA",
                        duration_s=10.0, baseline_power_w=10.0),
        ],
        flops=_flops(6e12, 2e12), mbu=0.2, peak_power_w=250.0,
        memory=MemoryStats(model_weights_bytes=4_000_000, gpu_peak_allocated_bytes=1_000_000_000),
        **common,
    )
    p1 = make_raw(
        process_index=1, hostname="hostA", local_rank=1, start=1000.5, duration_s=10.5,
        requests=_requests(1, [(10, 25, 0.4, 0.04, 4.0), (10, 25, 0.5, 0.05, 5.0)]),
        devices=[make_device("gpu:GPU-aaaa", 520.0, host="hostA", duration_s=10.5,
                             baseline_power_w=20.0)],
        flops=_flops(5e12, 1e12), mbu=0.3, peak_power_w=260.0,
        memory=MemoryStats(model_weights_bytes=4_000_001, gpu_peak_allocated_bytes=1_200_000_000),
        **common,
    )
    p2 = make_raw(
        process_index=2, hostname="hostB", local_rank=0, start=1001.0, duration_s=11.0,
        requests=_requests(2, [(5, 40, 0.6, 0.06, 6.0), (5, 40, 0.7, 0.07, 7.0),
                               (5, 40, 0.8, 0.08, 8.0)]),
        devices=[
            make_device("gpu:GPU-bbbb", 300.0, host="hostB", duration_s=11.0,
                        baseline_power_w=15.0),
            make_device("hostB:rapl:package-0", 150.0, kind="cpu", host="hostB",
                        duration_s=11.0, baseline_power_w=10.0),
            make_device("hostB:rapl:dram-0", 40.0, kind="dram", host="hostB",
                        duration_s=11.0, baseline_power_w=5.0),
        ],
        flops=_flops(12e12, 4e12), mbu=0.4, peak_power_w=180.0,
        memory=MemoryStats(gpu_peak_allocated_bytes=900_000_000),
        warnings=[MeasurementWarning(code="short_window", message="window short")],
        **common,
    )
    p3 = make_raw(
        process_index=3, hostname="hostB", local_rank=1, start=1000.2, duration_s=8.8,
        requests=_requests(3, [(20, 15, 0.9, 0.09, 9.0), (20, 15, 1.0, 0.10, 10.0)]),
        devices=[make_device("gpu:GPU-cccc", 280.0, host="hostB", duration_s=8.8,
                             baseline_power_w=15.0)],
        flops=_flops(3e12, 1e12), mbu=0.1, peak_power_w=170.0,
        memory=MemoryStats(gpu_peak_allocated_bytes=1_100_000_000),
        **common,
    )
    return [p0, p1, p2, p3]


@pytest.fixture
def aggregated(tmp_path):
    repo = FileSystemRepository(tmp_path / "results")
    raws = _four_processes()
    random.Random(7).shuffle(raws)
    for raw in raws:
        repo.save_raw(raw)
    assert repo.completed_ranks(EXP) == {0, 1, 2, 3}
    loaded = repo.load_all_raw(EXP)
    assert [r.process_index for r in loaded] == [0, 1, 2, 3]
    result = aggregate_results(loaded, now=2000.0)
    repo.save_aggregated(result)
    assert repo.load_aggregated(EXP) == result
    return result


def test_tokens_requests_and_system_window(aggregated):
    inf = aggregated.inference
    assert inf.num_requests == 10
    assert inf.input_tokens == 30 + 20 + 15 + 40 == 105
    assert inf.output_tokens == 60 + 50 + 120 + 30 == 260
    assert inf.total_tokens == 365
    assert aggregated.timestamps.start == 1000.0
    assert aggregated.timestamps.end == 1012.0
    assert aggregated.timestamps.duration_s == pytest.approx(12.0)
    assert inf.inference_time_s == pytest.approx(12.0)


def test_system_throughput_is_tokens_over_wall_window(aggregated):
    inf = aggregated.inference
    assert inf.output_tokens_per_s == pytest.approx(260 / 12)
    assert inf.total_tokens_per_s == pytest.approx(365 / 12)
    assert inf.requests_per_s == pytest.approx(10 / 12)
    # The forbidden definition (sum or mean of per-process rates) gives something else.
    per_process_sum = 60 / 10 + 50 / 10.5 + 120 / 11 + 30 / 8.8
    assert inf.output_tokens_per_s != pytest.approx(per_process_sum)


def test_latency_percentiles_come_from_the_union_of_requests(aggregated):
    inf = aggregated.inference
    # TTFT union: 0.1, 0.2, ..., 1.0 (linear interpolation between closest ranks).
    assert inf.ttft.count == 10
    assert inf.ttft.mean_s == pytest.approx(0.55)
    assert inf.ttft.p50_s == pytest.approx(0.55)
    assert inf.ttft.p90_s == pytest.approx(0.91)
    assert inf.ttft.p95_s == pytest.approx(0.955)
    assert inf.ttft.p99_s == pytest.approx(0.991)
    assert (inf.ttft.min_s, inf.ttft.max_s) == pytest.approx((0.1, 1.0))
    # Mean of the per-process medians would be (0.2 + 0.45 + 0.7 + 0.95) / 4 = 0.575.
    assert inf.ttft.p50_s != pytest.approx(0.575)
    # TPOT per request (each request's mean gap): 0.01, ..., 0.10.
    assert inf.tpot.p50_s == pytest.approx(0.055)
    assert inf.tpot.p90_s == pytest.approx(0.091)
    assert inf.tpot.p99_s == pytest.approx(0.0991)
    assert inf.e2e.p50_s == pytest.approx(5.5)
    assert inf.e2e.p90_s == pytest.approx(9.1)
    assert inf.e2e.p99_s == pytest.approx(9.91)


def test_energy_counts_each_physical_device_once(aggregated):
    e = aggregated.energy
    # GPU aaaa once (largest reading, 520 J from process 1), bbbb 300, cccc 280.
    assert e.gpu_energy_j == pytest.approx(520 + 300 + 280)
    assert e.cpu_energy_j == pytest.approx(200 + 150)
    assert e.ram_energy_j == pytest.approx(40)
    assert e.total_energy_j == pytest.approx(1490)
    assert [d.device_id for d in e.devices] == [
        "gpu:GPU-aaaa", "gpu:GPU-bbbb", "gpu:GPU-cccc",
        "hostA:rapl:package-0", "hostB:rapl:dram-0", "hostB:rapl:package-0",
    ]
    assert next(d for d in e.devices if d.device_id == "gpu:GPU-aaaa").energy_j == 520.0
    # static = baseline x each kept reading's window; dram dynamic clamped at 0 (40 - 55).
    assert e.static_energy_j == pytest.approx(20 * 10.5 + 15 * 11 + 15 * 8.8 + 100 + 110 + 55)
    assert e.dynamic_energy_j == pytest.approx(310 + 135 + (280 - 132) + 100 + 40 + 0)
    assert e.estimated is False
    assert e.methods == ("counter",)
    assert e.duration_s == pytest.approx(12.0)


def test_derived_energy_figures(aggregated):
    e = aggregated.energy
    assert e.energy_per_output_token_j == pytest.approx(1490 / 260)
    assert e.energy_per_request_j == pytest.approx(149.0)
    assert e.output_tokens_per_j == pytest.approx(260 / 1490)
    assert e.mean_power_w == pytest.approx(1490 / 12)
    assert e.peak_power_w == 260.0
    assert e.carbon_intensity_g_per_kwh == INTENSITY_G_PER_KWH
    assert e.emissions_g == pytest.approx(1490 / 3.6e6 * 400)


def test_compute_and_memory(aggregated):
    c = aggregated.compute
    assert c.flops.total_flops == pytest.approx(26e12)
    assert c.flops.prefill_flops == pytest.approx(8e12)
    assert c.flops.decode_flops == pytest.approx(18e12)
    assert c.flops.flops_per_output_token == pytest.approx(26e12 / 260)
    assert c.achieved_flops_per_s == pytest.approx(26e12 / 12)
    # Three distinct GPUs (aaaa is shared by processes 0 and 1).
    assert c.peak_flops_per_s == pytest.approx(3 * 100e12)
    assert c.mfu == pytest.approx(26e12 / 12 / 300e12)
    assert c.mbu == pytest.approx((0.2 * 10 + 0.3 * 10.5 + 0.4 * 11 + 0.1 * 8.8) / 40.3)
    m = aggregated.memory
    assert m.gpu_peak_allocated_bytes == 1_200_000_000
    assert m.model_weights_bytes == 4_000_000


def test_metadata_warnings_and_process_summaries(aggregated):
    meta = aggregated.aggregation
    assert meta.aggregated_at == 2000.0
    assert (meta.num_processes, meta.expected_processes) == (4, 4)
    assert meta.missing_ranks == () and meta.partial is False
    assert meta.hosts == ("hostA", "hostB")
    assert meta.duplicate_devices == ("gpu:GPU-aaaa",)
    assert len(meta.unique_devices) == 6
    assert meta.temporal_overlap is True
    assert meta.config_hashes == ("cfg-hash-1",)
    codes = [(w.code, w.process_index) for w in aggregated.warnings]
    assert ("short_window", 2) in codes
    assert ("duplicate_device", None) in codes
    dup = next(w for w in aggregated.warnings if w.code == "duplicate_device")
    assert "gpu:GPU-aaaa" in dup.message and "processes 0, 1" in dup.message
    assert "no_temporal_overlap" not in [c for c, _ in codes]
    assert [p.process_index for p in aggregated.processes] == [0, 1, 2, 3]
    assert [p.energy_j for p in aggregated.processes] == pytest.approx([700, 520, 490, 280])
    assert aggregated.processes[2].device_ids == (
        "gpu:GPU-bbbb", "hostB:rapl:package-0", "hostB:rapl:dram-0"
    )
    assert aggregated.cycle_stats == {}
