"""Latency definitions offered both ways, with hand-computed answers: ITL per token gap and
TPOT per request; e2e as the caller sees it (batch return) and the row's own completion."""

from __future__ import annotations

import pytest
from tests.factories import make_raw, make_request

from llm_energy_measure.core.timing import bounded_gaps
from llm_energy_measure.domain import InferenceMetrics
from llm_energy_measure.domain.metrics import MAX_TOKEN_GAPS, token_gap_samples
from llm_energy_measure.results import aggregate_results


def test_itl_per_token_gap_and_tpot_per_request_differ_on_a_stall():
    # Request A: 11 tokens, nine 10 ms gaps and one 200 ms stall (TPOT 0.29 / 10 = 29 ms);
    # request B: 11 tokens, ten 10 ms gaps (TPOT 10 ms).
    a = make_request(0, output_tokens=11, tpot_s=0.029, token_gaps_s=[0.01] * 9 + [0.2])
    b = make_request(1, output_tokens=11, tpot_s=0.01, token_gaps_s=[0.01] * 10)
    inf = InferenceMetrics.from_requests([a, b], 1.0)
    # TPOT per request, p99 of (0.01, 0.029): 0.01 + 0.99 x 0.019 = 0.02881.
    assert inf.tpot is not None and inf.tpot.count == 2
    assert inf.tpot.p99_s == pytest.approx(0.02881)
    # ITL per token gap, p99 of 19 x 0.01 and one 0.2: 0.01 + 0.81 x 0.19 = 0.1639.
    assert inf.itl is not None and inf.itl.count == 20
    assert inf.itl.p99_s == pytest.approx(0.1639)
    assert inf.itl.mean_s == pytest.approx((19 * 0.01 + 0.2) / 20)


def test_e2e_is_the_batch_return_and_completion_the_rows_own_last_token():
    # One batch of two rows returned at 2.43 s: row 0 stopped at 0.98 s, row 1 ran to 2.43 s.
    rows = [make_request(0, e2e_s=2.43, completion_s=0.98),
            make_request(1, e2e_s=2.43, completion_s=2.43)]
    inf = InferenceMetrics.from_requests(rows, 2.43)
    assert inf.e2e is not None and inf.e2e.p50_s == pytest.approx(2.43)
    assert inf.completion is not None and inf.completion.p50_s == pytest.approx(1.705)


def test_aggregated_itl_is_over_the_union_of_every_processes_token_gaps():
    # Rank 0: one request with gaps 10, 10, 10 ms; rank 1: one with a single 50 ms gap.
    raws = [
        make_raw("exp", 0, 2, requests=[make_request(0, output_tokens=4, tpot_s=0.01)]),
        make_raw("exp", 1, 2, requests=[make_request(1, output_tokens=2, tpot_s=0.05)]),
    ]
    inf = aggregate_results(raws).inference
    # Union of gaps (10, 10, 10, 50 ms): p50 10 ms, mean 20 ms; TPOT per request p50 30 ms.
    assert inf.itl.count == 4
    assert inf.itl.p50_s == pytest.approx(0.01) and inf.itl.mean_s == pytest.approx(0.02)
    assert inf.tpot.p50_s == pytest.approx(0.03)


def test_stored_gaps_are_bounded_and_keep_their_weight():
    gaps = [0.001 * (i % 7) + 0.0101234567 for i in range(5000)]
    stored, stride = bounded_gaps(gaps)
    assert stride == 3 and len(stored) == 1667 <= MAX_TOKEN_GAPS
    assert stored[1] == round(gaps[3], 6)  # every third gap, rounded to 1 us
    record = make_request(0, output_tokens=5001, token_gaps_s=stored)
    record = record.model_copy(update={"token_gap_stride": stride})
    assert len(token_gap_samples([record])) == 5001  # each kept gap stands for 3


def test_the_summary_names_both_itl_definitions_and_both_end_to_end_figures():
    from llm_energy_measure.console.rendering import summary_pairs

    raws = [
        make_raw("exp", 0, 2, requests=[make_request(0, output_tokens=4, tpot_s=0.01,
                                                     e2e_s=2.0, completion_s=1.0)]),
        make_raw("exp", 1, 2, requests=[make_request(1, output_tokens=2, tpot_s=0.05,
                                                     e2e_s=2.0, completion_s=2.0)]),
    ]
    rows = dict(summary_pairs(aggregate_results(raws)))
    # Gaps 10, 10, 10, 50 ms: p50 10 ms, p99 48.8 ms; TPOT 10 and 50 ms: p50 30, p99 49.6 ms.
    assert rows["ITL p50 / p99 (per token gap)"] == "10.00 ms / 48.80 ms"
    assert rows["TPOT p50 / p99 (per request)"] == "30.00 ms / 49.60 ms"
    assert rows["e2e p50 / p99 (batch return)"] == "2000.00 ms / 2000.00 ms"
    assert rows["own completion p50 / p99"] == "1500.00 ms / 1990.00 ms"
