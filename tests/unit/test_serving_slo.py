"""SLO attainment, goodput and per-request energy on hand-computed cases
(orchestration.slo)."""

from __future__ import annotations

import pytest

from llm_energy_measure.config.serving import SloConfig
from llm_energy_measure.domain import RequestRecord, UtilisationSample
from llm_energy_measure.orchestration.slo import (
    Interval,
    attribute_energy,
    attribute_window,
    energy_intervals,
    prompt_buckets,
    slo_metrics,
    thresholds_s,
)


def _rec(i: int, sent: float, ttft: float, gaps: tuple[float, ...], e2e: float,
         input_tokens: int = 2, status: str = "ok") -> RequestRecord:
    return RequestRecord(request_id=i, input_tokens=input_tokens, output_tokens=len(gaps) + 1,
                         submitted_s=sent, ttft_s=ttft, token_gaps_s=gaps,
                         tpot_s=sum(gaps) / len(gaps) if gaps else None, e2e_s=e2e,
                         status=status)  # type: ignore[arg-type]


# A: sent 0, prefill of 2 tokens until 0.5, tokens at 0.5 and 1.5, ends 1.5.
# B: sent 0.5, prefill of 1 token until 1.0, one token at 1.0, ends 2.0.
A = _rec(0, 0.0, 0.5, (1.0,), 1.5, input_tokens=2)
B = _rec(1, 0.5, 0.5, (), 1.5, input_tokens=1)
#: 10 J in [0, 1] and 10 J in [1, 2].
INTERVALS = [Interval(0.0, 1.0, 10.0), Interval(1.0, 2.0, 10.0)]


def test_attribution_splits_dynamic_by_tokens_and_static_by_time() -> None:
    shares, static, dynamic, idle = attribute_energy([A, B], INTERVALS, baseline_w=4.0)
    # [0, 1]: static 4 J by time in flight (A 1 s, B 0.5 s); dynamic 6 J by work: A has its
    # token at 0.5 + its 2 prefill tokens, B its 1 prefill token (its token at 1.0 is in the
    # next interval) -> A 4.5, B 1.5.
    # [1, 2]: static 4 J by time (A 0.5 s, B 1 s); dynamic 6 J: one token each -> 3 and 3.
    assert shares == pytest.approx([4.5 + 4 / 1.5 + 3 + 4 * 0.5 / 1.5,
                                    1.5 + 4 * 0.5 / 1.5 + 3 + 4 / 1.5])
    assert shares == pytest.approx([11.5, 8.5])
    assert sum(shares) == pytest.approx(20.0)
    assert (static, dynamic, idle) == pytest.approx((8.0, 12.0, 0.0))


def test_energy_of_idle_intervals_is_shared_by_time_in_flight() -> None:
    intervals = [*INTERVALS, Interval(2.0, 3.0, 6.0)]  # nothing in flight in [2, 3]
    shares, _, _, idle = attribute_energy([A, B], intervals, baseline_w=4.0)
    assert idle == 6.0
    # A was in flight 1.5 s, B 1.5 s: 3 J each on top of the previous shares.
    assert shares == pytest.approx([14.5, 11.5])
    assert sum(shares) == pytest.approx(26.0)


def test_without_baseline_everything_is_dynamic() -> None:
    shares, static, dynamic, _ = attribute_energy([A, B], INTERVALS, baseline_w=None)
    assert static == 0.0 and dynamic == 20.0
    assert shares == pytest.approx([10 * 3 / 4 + 5, 10 * 1 / 4 + 5])


def test_intervals_follow_sampled_power_scaled_to_the_total() -> None:
    origin = 100.0
    samples = [UtilisationSample(t_s=origin + t, device_id="gpu:0", power_w=p)
               for t, p in ((0.0, 10.0), (1.0, 30.0), (2.0, 30.0))]
    intervals = energy_intervals(samples, origin, 2.0, total_j=100.0)
    # trapezoids: 20 J and 30 J -> scaled to 100 J: 40 and 60.
    assert [(i.start_s, i.end_s) for i in intervals] == [(0.0, 1.0), (1.0, 2.0)]
    assert [i.energy_j for i in intervals] == pytest.approx([40.0, 60.0])
    # no samples: one interval
    assert energy_intervals([], origin, 2.0, 5.0) == [Interval(0.0, 2.0, 5.0)]


def test_attribute_window_sets_each_request_energy() -> None:
    samples = [UtilisationSample(t_s=t, device_id="cpu", power_w=10.0) for t in (0.0, 1.0, 2.0)]
    requests, summary = attribute_window([A, B], samples=samples, window_start_epoch_s=0.0,
                                         window_s=2.0, total_j=20.0, baseline_w=4.0,
                                         estimated=True)
    assert [r.energy_j for r in requests] == pytest.approx([11.5, 8.5])
    assert summary is not None and summary.total_j == 20.0 and summary.estimated
    assert summary.per_request is not None and summary.per_request.max_j == pytest.approx(11.5)
    bucket = summary.by_prompt_length[0]
    assert (bucket.min_tokens, bucket.max_tokens, bucket.requests) == (1, 64, 2)
    assert bucket.energy_per_output_token_j == pytest.approx(20.0 / 3)


def test_prompt_buckets_are_powers_of_two() -> None:
    rs = [r.model_copy(update={"energy_j": 1.0}) for r in
          (_rec(0, 0, 0.1, (), 0.2, input_tokens=64), _rec(1, 0, 0.1, (), 0.2, input_tokens=65),
           _rec(2, 0, 0.1, (), 0.2, input_tokens=300))]
    assert [(b.min_tokens, b.max_tokens, b.requests) for b in prompt_buckets(rs)] == [
        (1, 64, 1), (65, 128, 1), (257, 512, 1)]


def test_slo_attainment_goodput_and_energy_per_good_request() -> None:
    rs = [_rec(i, 0.0, ttft, (0.02, 0.02), 1.0) for i, ttft in enumerate((0.1, 0.2, 0.3, 0.4))]
    slo = SloConfig(ttft_ms={"p50": 250, "p99": 350}, itl_ms={"p50": 30})
    m = slo_metrics(slo, rs, window_s=2.0, energy_j=20.0, estimated=True)
    by = {(t.metric, t.percentile): t for t in m.targets}
    assert by[("ttft", "p50")].observed_s == pytest.approx(0.25) and by[("ttft", "p50")].met
    assert by[("ttft", "p99")].observed_s == pytest.approx(0.397)
    assert not by[("ttft", "p99")].met and not m.met
    assert by[("itl", "p50")].observed_s == pytest.approx(0.02) and by[("itl", "p50")].met
    # per request: TTFT <= 350 ms (the p99 target) and mean gap <= 30 ms
    assert m.per_request_thresholds_s == pytest.approx({"ttft": 0.35, "tpot": 0.03})
    assert m.requests_meeting == 3 and m.attainment == 0.75
    assert m.share_meeting == {"ttft": 0.75, "tpot": 1.0}
    assert m.goodput_per_s == pytest.approx(1.5)
    assert m.energy_per_good_request_j == pytest.approx(20.0 / 3)


def test_failed_requests_never_meet_the_slo() -> None:
    rs = [_rec(0, 0, 0.1, (), 0.2), _rec(1, 0, 0.1, (), 0.2, status="error")]
    m = slo_metrics(SloConfig(e2e_ms={"p90": 500}), rs, window_s=1.0, energy_j=None,
                    estimated=None)
    assert m.requests_meeting == 1 and m.attainment == 0.5 and m.goodput_per_s == 1.0
    assert m.energy_per_good_request_j is None


def test_tightest_of_equal_percentile_gap_targets_wins() -> None:
    slo = SloConfig(itl_ms={"p99": 50}, tpot_ms={"p99": 40})
    assert thresholds_s(slo) == {"tpot": pytest.approx(0.04)}


def test_an_slo_needs_a_target() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        SloConfig()
