"""The load generator against the scripted streaming server (loopback, known answers).

Timings are only checked one way (never earlier than scripted) with generous upper bounds,
so a loaded machine cannot fail them; structure (chunks, usage, order, in-flight counts) is
checked exactly.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest
from tests.fakes.streaming_server import MODEL, RequestRecord, Script, ScriptedServer

from llm_energy_measure.core.serving.client import (
    REQUESTS_PER_CLIENT,
    EndpointSettings,
    RequestResult,
    RequestSpec,
    request_body,
    run_load_sync,
)
from llm_energy_measure.core.serving.tokens import chunk_token_counts, token_gaps

KEY = "sk-test-0123456789"
#: Upper bound on any scripted delay's overshoot (s): generous, for a loaded 2-core machine.
SLACK_S = 1.0


def _specs(n: int, max_tokens: int = 5, **extra: object) -> list[RequestSpec]:
    return [RequestSpec(i, f"prompt number {i}", max_tokens, dict(extra)) for i in range(n)]


def _endpoint(server: ScriptedServer, **kw: object) -> EndpointSettings:
    return EndpointSettings(server.base_url, MODEL, **kw)  # type: ignore[arg-type]


def _id_of(record: RequestRecord) -> int:
    assert record.body is not None
    return int(str(record.body.get("prompt", "")).rsplit(" ", 1)[-1])


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer(ttft_s=0.05, gap_s=0.01, tokens=5) as s:
        yield s


def test_one_completion_streams_known_chunks_usage_and_times(server: ScriptedServer) -> None:
    seen: list[RequestResult] = []
    endpoint = _endpoint(server, api_key=KEY)
    run = run_load_sync(endpoint, _specs(1, temperature=0.0, ignore_eos=True),
                        schedule=None, concurrency=1, max_in_flight=1, on_result=seen.append)
    (r,) = run.results
    assert seen == [r] and run.stop_reason == "completed" and run.peak_in_flight == 1
    assert (r.status, r.http_status, r.error, r.finish_reason) == ("ok", 200, None, "length")
    assert r.chunk_texts == [" t0", " t1", " t2", " t3", " t4"] and r.text == " t0 t1 t2 t3 t4"
    assert (r.prompt_tokens, r.completion_tokens) == (3, 5)
    assert r.first_token_s == r.chunk_times_s[0]
    assert 0.0 <= r.sent_s <= r.first_token_s <= r.chunk_times_s[-1] <= r.end_s
    assert r.chunk_times_s == sorted(r.chunk_times_s)
    assert 0.05 <= r.first_token_s - r.sent_s < 0.05 + SLACK_S  # scripted TTFT 50 ms
    assert run.duration_s == r.end_s
    assert abs(run.started_at_epoch_s - time.time()) < 60
    (record,) = server.records
    assert record.path == "/v1/completions"
    assert record.body == {"model": MODEL, "prompt": "prompt number 0", "max_tokens": 5,
                           "stream": True, "stream_options": {"include_usage": True},
                           "temperature": 0.0, "ignore_eos": True}
    assert record.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(endpoint) and KEY not in repr(run)
    counts, method = chunk_token_counts(r.chunk_texts, r.completion_tokens, None)
    assert (counts, method) == ([1] * 5, "per-chunk")
    assert len(token_gaps(r.first_token_s, r.chunk_times_s, counts)) == 4


def test_chat_api_counts_only_chunks_with_text() -> None:
    with ScriptedServer(ttft_s=0.0, gap_s=0.0, tokens=3) as server:
        endpoint = _endpoint(server, api="chat")
        run = run_load_sync(endpoint, _specs(2), schedule=None, concurrency=2,
                            max_in_flight=2)
    assert [r.status for r in run.results] == ["ok", "ok"]
    r = run.results[0]
    # The role chunk (empty content) and the finish chunk (empty delta) are not content.
    assert r.chunk_texts == [" t0", " t1", " t2"] and r.finish_reason == "length"
    assert (r.prompt_tokens, r.completion_tokens) == (3, 3)
    assert {rec.path for rec in server.records} == {"/v1/chat/completions"}
    body = server.records[0].body
    assert body is not None and body["messages"][0]["role"] == "user"
    assert "prompt" not in body and body["max_tokens"] == 5
    assert request_body(endpoint, _specs(1, top_p=0.5)[0])["top_p"] == 0.5


@pytest.mark.parametrize("n", [4, REQUESTS_PER_CLIENT + 3])  # one HTTP client, and two
def test_closed_loop_keeps_exactly_n_in_flight(n: int) -> None:
    starts: list[float] = []
    with ScriptedServer(ttft_s=0.04, gap_s=0.0, tokens=2) as server:
        run = run_load_sync(_endpoint(server), _specs(3 * n), schedule=None, concurrency=n,
                            max_in_flight=1,
                            on_start=lambda: starts.append(time.perf_counter()))
        assert server.max_concurrent == n
        arrivals = [rec.arrival_s for rec in server.records]
    assert run.peak_in_flight == n and run.stop_reason == "completed"
    assert [r.request_id for r in run.results] == list(range(3 * n))
    assert all(r.status == "ok" and r.scheduled_s is None for r in run.results)
    assert len(starts) == 1 and starts[0] <= min(arrivals)
    # Each of the n workers sends its next request only after its previous one ended.
    for later in run.results[n:]:
        assert sum(r.end_s <= later.sent_s for r in run.results) >= later.request_id - n + 1


def test_open_loop_sends_on_schedule_without_waiting_for_answers() -> None:
    schedule = [0.0, 0.03, 0.06, 0.09, 0.12, 0.15]
    starts: list[float] = []
    with ScriptedServer(ttft_s=0.3, gap_s=0.0, tokens=1) as server:
        run = run_load_sync(_endpoint(server), _specs(6), schedule=schedule, concurrency=None,
                            max_in_flight=100,
                            on_start=lambda: starts.append(time.perf_counter()))
        records = list(server.records)
        assert server.max_concurrent == 6  # every request sent before the first answered
    assert run.peak_in_flight == 6 and run.stop_reason == "completed"
    assert [_id_of(rec) for rec in records] == list(range(6))  # server saw schedule order
    for r, offset in zip(run.results, schedule, strict=True):
        assert r.scheduled_s == offset and r.status == "ok"
        assert offset <= r.sent_s < offset + SLACK_S
    # on_start runs just before t0 (same clock: the server runs in this process).
    for rec, offset in zip(records, schedule, strict=True):
        assert rec.arrival_s - starts[0] >= offset


def test_open_loop_spreads_requests_over_the_http_clients() -> None:
    n = 2 * REQUESTS_PER_CLIENT + 1
    with ScriptedServer(ttft_s=0.2, gap_s=0.0, tokens=1) as server:
        run = run_load_sync(_endpoint(server), _specs(n), schedule=[0.0] * n,
                            concurrency=None, max_in_flight=n)
        assert server.max_concurrent == n
    assert run.peak_in_flight == n and {r.status for r in run.results} == {"ok"}


def test_open_loop_waits_at_max_in_flight_and_the_lateness_shows() -> None:
    with ScriptedServer(ttft_s=0.1, gap_s=0.0, tokens=1) as server:
        run = run_load_sync(_endpoint(server), _specs(4), schedule=[0.0] * 4,
                            concurrency=None, max_in_flight=2)
        assert server.max_concurrent == 2
    assert run.peak_in_flight == 2 and [r.status for r in run.results] == ["ok"] * 4
    late = [r.sent_s - (r.scheduled_s or 0.0) for r in run.results]
    assert min(late[2:]) >= 0.1  # sent once one of the first two ended (100 ms TTFT)


def test_failed_requests_are_kept_with_status_and_first_line_of_the_body() -> None:
    long_line = "x" * 400

    def script(record: RequestRecord) -> Script:
        if record.index % 2 == 0:
            return Script(status=500, error_body=f"{long_line}\nsecond line {KEY}")
        return Script(ttft_s=0.0, gap_s=0.0, tokens=2)

    with ScriptedServer(script_for=script) as server:
        run = run_load_sync(_endpoint(server, api_key=KEY), _specs(6), schedule=None,
                            concurrency=1, max_in_flight=1)
    assert [r.status for r in run.results] == ["error", "ok"] * 3
    assert run.stop_reason == "completed"
    bad = run.results[0]
    assert bad.http_status == 500 and bad.error == long_line[:300]
    assert bad.first_token_s is None and bad.chunk_times_s == [] and bad.end_s >= bad.sent_s


def test_circuit_breaker_stops_after_n_consecutive_failures() -> None:
    with ScriptedServer(status=503, error_body='{"error": "overloaded"}') as server:
        run = run_load_sync(_endpoint(server), _specs(10), schedule=None, concurrency=1,
                            max_in_flight=1, breaker_failures=3)
        assert len(server.records) == 3
    assert run.stop_reason == "circuit_open"
    assert [(r.status, r.http_status, r.error) for r in run.results] == \
        [("error", 503, '{"error": "overloaded"}')] * 3


def test_connection_refused_is_an_error_without_http_status() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = EndpointSettings(f"http://127.0.0.1:{port}/v1", MODEL, connect_timeout_s=2.0)
    run = run_load_sync(endpoint, _specs(5), schedule=[0.0] * 5, concurrency=None,
                        max_in_flight=1, breaker_failures=2)
    assert run.stop_reason == "circuit_open" and len(run.results) == 2
    for r in run.results:
        assert r.status == "error" and r.http_status is None
        assert r.error is not None and r.error.startswith("ConnectError")


def test_read_timeout_and_a_broken_stream_are_errors() -> None:
    def script(record: RequestRecord) -> Script:
        if record.index == 0:
            return Script(ttft_s=5.0)
        return Script(ttft_s=0.0, gap_s=0.0, tokens=5, fail_after=2)

    with ScriptedServer(script_for=script) as server:
        run = run_load_sync(_endpoint(server, read_timeout_s=0.2), _specs(2), schedule=None,
                            concurrency=1, max_in_flight=1)
    slow, broken = run.results
    assert slow.status == "error" and slow.error == "ReadTimeout"
    assert 0.2 <= slow.end_s - slow.sent_s < 0.2 + SLACK_S
    assert broken.status == "error" and broken.http_status == 200
    assert broken.chunk_texts == [" t0", " t1"] and broken.text == " t0 t1"
    assert broken.error is not None and broken.error.startswith("RemoteProtocolError")


def test_should_stop_cancels_in_flight_requests_and_records_them() -> None:
    seen: list[RequestResult] = []
    start = time.perf_counter()
    with ScriptedServer(ttft_s=10.0) as server:
        run = run_load_sync(_endpoint(server), _specs(6), schedule=None, concurrency=3,
                            max_in_flight=3, on_result=seen.append,
                            should_stop=lambda: server.in_flight == 3)
        assert len(server.records) == 3
    assert time.perf_counter() - start < 5.0  # not the scripted 10 s
    assert run.stop_reason == "stopped" and len(run.results) == 3 == len(seen)
    for r in run.results:
        assert r.status == "cancelled" and r.first_token_s is None and r.error is None
        assert r.end_s >= r.sent_s


def test_keyboard_interrupt_records_in_flight_then_propagates() -> None:
    seen: list[RequestResult] = []

    with ScriptedServer(ttft_s=10.0) as server:

        def stop() -> bool:
            if server.in_flight == 2:
                raise KeyboardInterrupt
            return False

        with pytest.raises(KeyboardInterrupt):
            run_load_sync(_endpoint(server), _specs(4), schedule=[0.0, 0.0, 5.0, 5.0],
                          concurrency=None, max_in_flight=10, on_result=seen.append,
                          should_stop=stop)
    assert sorted(r.request_id for r in seen) == [0, 1]
    assert {r.status for r in seen} == {"cancelled"}


def test_duration_stops_a_closed_loop_and_lets_in_flight_finish() -> None:
    with ScriptedServer(ttft_s=0.1, gap_s=0.0, tokens=1) as server:
        run = run_load_sync(_endpoint(server), _specs(1000), schedule=None, concurrency=2,
                            duration_s=0.25, max_in_flight=2)
    assert run.stop_reason == "duration"
    assert 2 <= len(run.results) < 1000
    assert all(r.status == "ok" and r.sent_s < 0.25 for r in run.results)
    assert run.duration_s >= 0.25


def test_server_without_usage_falls_back_to_chunks_and_multi_token_chunks() -> None:
    def script(record: RequestRecord) -> Script:
        if record.index == 0:
            return Script(ttft_s=0.0, gap_s=0.0, tokens=3, include_usage=False)
        return Script(ttft_s=0.0, gap_s=0.02, tokens=7, tokens_per_chunk=3)

    with ScriptedServer(script_for=script) as server:
        run = run_load_sync(_endpoint(server), _specs(2), schedule=None, concurrency=1,
                            max_in_flight=1)
    plain, multi = run.results
    assert plain.status == "ok" and (plain.prompt_tokens, plain.completion_tokens) == (None,
                                                                                       None)
    assert chunk_token_counts(plain.chunk_texts, None, None) == ([1, 1, 1], "chunks")
    assert multi.chunk_texts == [" t0 t1 t2", " t3 t4 t5", " t6"]
    assert multi.completion_tokens == 7

    def words(text: str) -> int:
        return len(text.split())

    counts, method = chunk_token_counts(multi.chunk_texts, multi.completion_tokens, words)
    assert (counts, method) == ([3, 3, 1], "tokenizer-split")
    gaps = token_gaps(multi.first_token_s, multi.chunk_times_s, counts)
    assert len(gaps) == 6 and gaps[:2] == [0.0, 0.0]
    assert sum(gaps) == pytest.approx(multi.chunk_times_s[-1] - multi.chunk_times_s[0])


def test_fake_server_metrics_count_what_it_served(server: ScriptedServer) -> None:
    run_load_sync(_endpoint(server), _specs(3), schedule=None, concurrency=3, max_in_flight=3)
    root = server.base_url.removesuffix("/v1")
    text = urllib.request.urlopen(f"{root}/metrics", timeout=5).read().decode()
    values = {line.split("{")[0] + ("" if "length" not in line else "[length]"):
              float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line and not line.startswith("#") and 'finished_reason="stop"' not in line}
    assert values == {"vllm:prompt_tokens_total": 9.0, "vllm:generation_tokens_total": 15.0,
                      "vllm:request_success_total[length]": 3.0,
                      "vllm:num_preemptions_total": 0.0, "vllm:kv_cache_usage_perc": 0.0}
    models = json.loads(urllib.request.urlopen(f"{server.base_url}/models", timeout=5).read())
    assert models["data"][0]["id"] == MODEL
    assert urllib.request.urlopen(f"{root}/health", timeout=5).status == 200


@pytest.mark.parametrize("kwargs", [
    {"schedule": [0.0], "concurrency": 1},
    {"schedule": None, "concurrency": None},
    {"schedule": [0.0, 0.0], "concurrency": None},
    {"schedule": [0.5, 0.1, 0.2], "concurrency": None},
    {"schedule": None, "concurrency": 0},
    {"schedule": None, "concurrency": 1, "duration_s": 0.0},
])
def test_bad_arguments_are_refused_before_anything_is_sent(kwargs: dict[str, object]) -> None:
    endpoint = EndpointSettings("http://127.0.0.1:9/v1", MODEL)
    with pytest.raises(ValueError):
        run_load_sync(endpoint, _specs(3), max_in_flight=1, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        EndpointSettings("127.0.0.1:8000/v1", MODEL)
    with pytest.raises(ValueError):
        EndpointSettings("http://x/v1", MODEL, api="responses")  # type: ignore[arg-type]
