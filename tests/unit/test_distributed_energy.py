"""Energy across the ranks of a launched experiment: a rank with nothing of its own to measure
is not 'missing', and host domains measured in separate windows (resume) are summed."""

from __future__ import annotations

import pytest
from tests.factories import make_device, make_raw

from llm_energy_measure.results import aggregate_results
from llm_energy_measure.results.aggregation.energy import covered_by_host_leader


def _leader(start: float = 1000.0, energy_j: float = 50.0, rank: int = 0):  # type: ignore[no-untyped-def]
    return make_raw("e", rank, 2, local_rank=0, start=start, duration_s=10.0,
                    devices=[make_device("hostA:rapl:package-0", energy_j, kind="cpu")])


def test_a_cpu_rank_without_devices_is_covered_by_its_host_leader() -> None:
    leader = _leader()
    follower = make_raw("e", 1, 2, local_rank=1, devices=[], with_energy=False)
    assert covered_by_host_leader(follower, [leader, follower])
    agg = aggregate_results([leader, follower])
    assert agg.energy is not None and agg.energy.total_energy_j == pytest.approx(50.0)
    assert "energy_missing" not in {w.code for w in agg.warnings}
    assert agg.energy.energy_per_output_token_j == pytest.approx(50.0 / 160)  # 8 x 20 tokens


def test_a_rank_on_another_host_or_with_gpus_is_still_missing() -> None:
    leader = _leader()
    elsewhere = make_raw("e", 1, 2, hostname="hostB", local_rank=0, devices=[],
                         with_energy=False)
    assert not covered_by_host_leader(elsewhere, [leader, elsewhere])
    agg = aggregate_results([leader, elsewhere])
    assert "energy_missing" in {w.code for w in agg.warnings}
    assert agg.energy is not None and agg.energy.energy_per_output_token_j is None


def test_overlapping_windows_count_a_host_domain_once() -> None:
    a = _leader(energy_j=50.0)
    b = _leader(start=1002.0, energy_j=40.0, rank=1)
    agg = aggregate_results([a, b])
    assert agg.energy is not None and agg.energy.total_energy_j == pytest.approx(50.0)
    assert agg.aggregation.duplicate_devices == ("hostA:rapl:package-0",)


def test_separate_windows_of_a_resumed_rank_are_summed() -> None:
    first = _leader(start=1000.0, energy_j=50.0)
    resumed = _leader(start=5000.0, energy_j=30.0, rank=1)  # ran alone later, as local rank 0
    agg = aggregate_results([first, resumed])
    assert agg.energy is not None
    (device,) = agg.energy.devices
    assert device.energy_j == pytest.approx(80.0) and device.duration_s == pytest.approx(20.0)
    assert agg.energy.total_energy_j == pytest.approx(80.0)
    assert agg.aggregation.duplicate_devices == ()
    assert agg.aggregation.temporal_overlap is False
    assert "device_windows_disjoint" in {w.code for w in agg.warnings}
    assert agg.timestamps.duration_s == pytest.approx(20.0)  # the two measured windows
