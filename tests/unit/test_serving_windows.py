"""Serving windows, steady state, stability and the in-flight timeline on a hand-computed
case (orchestration.serving)."""

from __future__ import annotations

import pytest

from llm_energy_measure.core.types import EnergyReading, ServingRun
from llm_energy_measure.domain import (
    EnergyMetrics,
    OutputLength,
    RequestRecord,
    UtilisationSample,
)
from llm_energy_measure.orchestration.serving import (
    combine_serving,
    in_flight_intervals,
    in_flight_steps,
    serving_metrics,
    token_times,
    with_in_flight,
)

ORIGIN = 1000.0  # epoch s of the window start


def _request(i: int, sent: float, e2e: float = 1.0, status: str = "ok") -> RequestRecord:
    # 4 tokens: the first at 0.2 s after the send, then every 0.2 s.
    return RequestRecord(request_id=i, input_tokens=3, output_tokens=4, submitted_s=sent,
                         ttft_s=0.2, tpot_s=0.2, token_gaps_s=(0.2, 0.2, 0.2), e2e_s=e2e,
                         completion_s=0.8, status=status)  # type: ignore[arg-type]


#: Closed loop of 2: r0 0->1, r1 0.5->1.5, r2 1->2 (replaces r0), r3 1.5->2.5 (replaces r1).
REQUESTS = [_request(0, 0.0), _request(1, 0.5), _request(2, 1.0), _request(3, 1.5)]


def _run(concurrency: int | None = 2, rate: float | None = None) -> ServingRun:
    return ServingRun(
        endpoint="http://127.0.0.1:1/v1", served_model="m", api="completions",
        managed_server=False, arrival="concurrency" if concurrency else "constant",
        rate_per_s=rate, concurrency=concurrency, stop_reason="completed",
        token_count_method="usage", itl_method="per-chunk",
        output_length=OutputLength(requested="up_to", max_tokens=4),
    )


def _energy(total_j: float = 25.0) -> tuple[EnergyMetrics, EnergyReading]:
    samples = [UtilisationSample(t_s=ORIGIN + t / 2, device_id="cpu:0", power_w=10.0)
               for t in range(6)]  # 10 W from 0 to 2.5 s
    energy = EnergyMetrics(backend="test", total_energy_j=total_j, estimated=True,
                           methods=("sampled_power",), duration_s=2.5)
    return energy, EnergyReading(devices=[], backend="test", timeseries=samples)


def _metrics(run: ServingRun, interval_ms: float = 100.0):  # type: ignore[no-untyped-def]
    energy, reading = _energy()
    return serving_metrics(run, REQUESTS, window_start_epoch_s=ORIGIN, window_s=2.5,
                           energy=energy, reading=reading, sample_interval_ms=interval_ms)


def test_in_flight_steps_count_a_replaced_request_once() -> None:
    steps = in_flight_steps(in_flight_intervals(REQUESTS))
    assert steps == [(0.0, 1), (0.5, 2), (1.0, 2), (1.5, 2), (2.0, 1), (2.5, 0)]


def test_token_times_follow_ttft_and_gaps() -> None:
    assert token_times(REQUESTS[1]) == pytest.approx([0.7, 0.9, 1.1, 1.3])
    assert token_times(_request(9, 0.0, status="error")) == []


def test_whole_window_figures() -> None:
    whole = _metrics(_run()).whole
    assert (whole.start_s, whole.end_s, whole.duration_s) == (0.0, 2.5, 2.5)
    assert whole.output_tokens == 16 and whole.requests_completed == 4
    assert whole.output_tokens_per_s == pytest.approx(16 / 2.5)
    assert whole.mean_in_flight == pytest.approx(4.0 / 2.5)  # 0.5x1 + 1.5x2 + 0.5x1
    assert whole.energy_j == 25.0 and whole.energy_method == "window_total"
    assert whole.energy_per_output_token_j == pytest.approx(25 / 16)
    assert whole.energy_per_request_j == pytest.approx(25 / 4)
    assert whole.energy_estimated is True


def test_closed_loop_steady_window_runs_from_target_to_drain() -> None:
    m = _metrics(_run())
    assert m.target_in_flight == 2
    steady = m.steady
    assert steady is not None
    # Reaches 2 in flight at 0.5 s; the drain starts at 2.0 s (r2 ends, nothing replaces it).
    assert (steady.start_s, steady.end_s) == (0.5, 2.0)
    # Tokens in [0.5, 2.0]: r0 0.6, 0.8; r1 all 4; r2 all 4; r3 1.7, 1.9.
    assert steady.output_tokens == 12
    assert steady.requests_completed == 3  # r0 at 1.0, r1 at 1.5, r2 at 2.0
    assert steady.mean_in_flight == pytest.approx(2.0)
    # Constant power: the window's share of the integral is 1.5 / 2.5 of 25 J.
    assert steady.energy_method == "power_share"
    assert steady.energy_j == pytest.approx(15.0)
    assert steady.energy_per_output_token_j == pytest.approx(1.25)
    assert steady.mean_power_w == pytest.approx(10.0)
    assert m.stable and m.unstable_reasons == ()
    assert m.requests_ok == 4 and m.requests_failed == 0 and m.peak_in_flight == 2


def test_open_loop_target_is_littles_law_and_drain_is_the_last_send() -> None:
    m = _metrics(_run(concurrency=None, rate=2.0))
    assert m.target_in_flight == pytest.approx(2.0)  # 2 req/s x mean e2e 1 s
    assert m.steady is not None and (m.steady.start_s, m.steady.end_s) == (0.5, 1.5)


def test_short_steady_window_is_flagged_unstable() -> None:
    m = _metrics(_run(), interval_ms=500.0)  # 10 periods of 0.5 s = 5 s > 1.5 s
    assert not m.stable
    assert "shorter than 10 energy measurement periods" in m.unstable_reasons[0]


def test_sagging_in_flight_count_is_flagged_unstable() -> None:
    # r2 is sent 0.4 s after r0 ended: the count is 1 for 0.4 s of the steady window.
    requests = [_request(0, 0.0), _request(1, 0.5), _request(2, 1.4), _request(3, 1.5),
                _request(4, 2.4)]
    energy, reading = _energy()
    m = serving_metrics(_run(), requests, window_start_epoch_s=ORIGIN, window_s=3.4,
                        energy=energy, reading=reading, sample_interval_ms=10.0)
    assert not m.stable
    assert any("below its target" in r for r in m.unstable_reasons)


def test_failed_requests_are_counted_not_measured() -> None:
    requests = [*REQUESTS[:3], _request(3, 1.5, status="error")]
    energy, reading = _energy()
    m = serving_metrics(_run(), requests, window_start_epoch_s=ORIGIN, window_s=2.5,
                        energy=energy, reading=reading, sample_interval_ms=100.0)
    assert (m.requests_sent, m.requests_ok, m.requests_failed) == (4, 3, 1)
    assert m.whole.output_tokens == 12


def test_time_share_without_power_samples() -> None:
    energy, _ = _energy()
    m = serving_metrics(_run(), REQUESTS, window_start_epoch_s=ORIGIN, window_s=2.5,
                        energy=energy, reading=EnergyReading(devices=[], backend="t"),
                        sample_interval_ms=100.0)
    assert m.steady is not None and m.steady.energy_method == "time_share"
    assert m.steady.energy_j == pytest.approx(25 * 1.5 / 2.5)


def test_samples_carry_the_in_flight_count() -> None:
    _, reading = _energy()
    counts = [s.in_flight for s in with_in_flight(reading.timeseries, REQUESTS, ORIGIN)]
    assert counts == [1, 2, 2, 2, 1, 0]  # at 0, 0.5, 1.0, 1.5, 2.0, 2.5 s


def test_cycles_combine_by_summing_windows() -> None:
    one = _metrics(_run())
    both = combine_serving([one, one], [*REQUESTS, *REQUESTS])
    assert both.requests_sent == 8 and both.whole.output_tokens == 32
    assert both.whole.energy_j == pytest.approx(50.0)
    assert both.steady is not None and both.steady.duration_s == pytest.approx(3.0)
    assert both.steady.energy_per_output_token_j == pytest.approx(1.25)
