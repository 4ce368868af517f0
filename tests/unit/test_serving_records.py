"""From a streamed request to its record: token counts, gaps of multi-token chunks, chunk
gaps, failures (core.serving.records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llm_energy_measure.core.serving.client import RequestResult
from llm_energy_measure.core.serving.records import RecordsFile, convert


def _result(**kw: object) -> RequestResult:
    base: dict[str, object] = dict(
        request_id=3, scheduled_s=0.9, sent_s=1.0, first_token_s=1.2,
        chunk_times_s=[1.2, 1.5, 1.8], chunk_texts=[" a b c", " d e f", " g"], end_s=1.9,
        prompt_tokens=11, completion_tokens=7, status="ok", http_status=200, error=None,
        text=" a b c d e f g")
    base.update(kw)
    return RequestResult(**base)  # type: ignore[arg-type]


def words(text: str) -> int:
    return len(text.split())


def test_multi_token_chunks_split_their_gap_and_keep_chunk_gaps() -> None:
    item = convert(_result(), prompt="p", cycle=0, count=words)
    r = item.record
    assert item.token_method == "usage" and item.itl_method == "tokenizer-split"
    assert (r.input_tokens, r.output_tokens) == (11, 7)
    assert r.ttft_s == pytest.approx(0.2) and r.e2e_s == pytest.approx(0.9)
    assert r.completion_s == pytest.approx(0.8)
    # chunks of 3, 3, 1 tokens: 2 zero gaps, then 0.3 s split in 3, then 0.3 s
    assert r.token_gaps_s == pytest.approx((0.0, 0.0, 0.1, 0.1, 0.1, 0.3))
    assert r.tpot_s == pytest.approx(0.6 / 6)
    assert r.chunk_gaps_s == pytest.approx((0.3, 0.3))
    assert r.scheduled_s == pytest.approx(0.9) and r.submitted_s == 1.0


def test_one_token_per_chunk_needs_no_chunk_gaps() -> None:
    item = convert(_result(completion_tokens=3), prompt="p", cycle=0)
    assert item.itl_method == "per-chunk" and item.record.chunk_gaps_s == ()
    assert item.record.token_gaps_s == pytest.approx((0.3, 0.3))


def test_without_usage_the_tokenizer_counts_else_the_chunks() -> None:
    by_tokenizer = convert(_result(prompt_tokens=None, completion_tokens=None), prompt="x y",
                           cycle=0, count=words)
    assert by_tokenizer.token_method == "tokenizer"
    assert (by_tokenizer.record.input_tokens, by_tokenizer.record.output_tokens) == (2, 7)
    by_chunks = convert(_result(prompt_tokens=None, completion_tokens=None), prompt="x",
                        cycle=0)
    assert by_chunks.token_method == "chunks; input unknown"
    assert by_chunks.record.output_tokens == 3


def test_a_failed_request_is_kept_with_its_status() -> None:
    item = convert(_result(status="error", http_status=500, error="boom", first_token_s=None,
                           chunk_times_s=[], chunk_texts=[], completion_tokens=None,
                           prompt_tokens=None, text=""), prompt="p", cycle=1, count=words)
    r = item.record
    assert (r.status, r.http_status, r.error, r.ok) == ("error", 500, "boom", False)
    assert r.ttft_s is None and r.output_tokens == 0 and r.cycle == 1


def test_records_file_appends_one_line_per_request(tmp_path: Path) -> None:
    f = RecordsFile(tmp_path / "raw" / "requests_0.jsonl")
    f.open()
    f.append({"request_id": 1})
    f.append({"request_id": 2})
    f.close()
    lines = (tmp_path / "raw" / "requests_0.jsonl").read_text().splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [1, 2]
