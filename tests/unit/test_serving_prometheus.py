"""Prometheus text parsing (bounded), scraping a real loopback server, and the vLLM
cross-check of server counters against the client's counts."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llm_energy_measure.core.serving import prometheus
from llm_energy_measure.core.serving.prometheus import (
    MetricsError,
    MetricsFetchError,
    Sample,
    cross_check,
    is_loopback,
    metric_sum,
    parse_metrics,
    scrape,
    server_snapshot,
)

#: What vLLM 0.32 exports (trimmed), two engines, with HELP/TYPE lines and a histogram.
VLLM_PAGE = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="tiny"} 3.0
vllm:num_requests_running{engine="1",model_name="tiny"} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="tiny"} 0.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="tiny"} 0.25
# TYPE vllm:num_preemptions counter
vllm:num_preemptions_total{engine="0",model_name="tiny"} 2.0
vllm:num_preemptions_created{engine="0",model_name="tiny"} 1.7e+09
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 1000.0
vllm:prompt_tokens_total{engine="1",model_name="tiny"} 24.0
# TYPE vllm:generation_tokens counter
vllm:generation_tokens_total{engine="0",model_name="tiny"} 512.0
# TYPE vllm:request_success counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="tiny"} 6.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="tiny"} 10.0
vllm:request_success_total{engine="0",finished_reason="abort",model_name="tiny"} 0.0
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{engine="0",le="+Inf",model_name="tiny"} 16.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="tiny"} 3.5
"""


def test_parses_names_labels_and_values() -> None:
    samples = parse_metrics(VLLM_PAGE)
    assert len(samples) == 14
    first = samples[0]
    assert first == Sample("vllm:num_requests_running", {"engine": "0", "model_name": "tiny"},
                           3.0)
    bucket = next(s for s in samples if s.name.endswith("_bucket"))
    assert bucket.labels["le"] == "+Inf"


def test_escapes_special_values_timestamps_and_exemplars() -> None:
    text = (
        'a{path="C:\\\\dir",quote="say \\"hi\\"",nl="x\\ny"} 1 1700000000000\n'
        "b NaN\n"
        "c +Inf\n"
        "d -Inf 17\n"
        'e{x="1",} 2.5e3\n'
        'f_total{a="b"} 17 # {trace_id="abc"} 1.0 1700000000\n'
        '{"my.metric", "label.name"="v"} 4\n'
        "  \n# EOF\n"
    )
    s = parse_metrics(text)
    assert s[0].labels == {"path": "C:\\dir", "quote": 'say "hi"', "nl": "x\ny"}
    assert s[0].value == 1.0
    assert math.isnan(s[1].value)
    assert s[2].value == math.inf and s[3].value == -math.inf
    assert s[4] == Sample("e", {"x": "1"}, 2500.0)
    assert s[5] == Sample("f_total", {"a": "b"}, 17.0)
    assert s[6] == Sample("my.metric", {"label.name": "v"}, 4.0)
    assert len(s) == 7


@pytest.mark.parametrize("line, why", [
    ("a{b=\"c\" 1", "expected ',' or '}'"),
    ('a{b="c} 1', "unterminated"),
    ("a{b=c} 1", "quoted value"),
    ("a", "no value"),
    ("a xyz", "not a number"),
    ("{} 1", "no metric name"),
    ('a{"x"} 1', "two metric names"),
    ('a{b="1", "x"} 1', "has no value"),
])
def test_malformed_lines_name_the_line(line: str, why: str) -> None:
    with pytest.raises(MetricsError, match=f"line 2: .*{why}"):
        parse_metrics("ok 1\n" + line + "\n")


def test_refuses_oversized_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prometheus, "MAX_LINES", 3)
    with pytest.raises(MetricsError, match="lines"):
        parse_metrics("a 1\nb 2\nc 3\nd 4\n")
    monkeypatch.setattr(prometheus, "MAX_BYTES", 10)
    with pytest.raises(MetricsError, match="MiB"):
        parse_metrics("a 1\nb 2\nc 3\n")
    with pytest.raises(MetricsError, match="MiB"):
        parse_metrics("é" * 6)  # 6 characters, 12 bytes


def test_metric_sum_filters_labels() -> None:
    samples = parse_metrics(VLLM_PAGE)
    assert metric_sum(samples, "vllm:prompt_tokens_total") == 1024.0
    assert metric_sum(samples, "vllm:prompt_tokens_total", {"engine": "1"}) == 24.0
    assert metric_sum(samples, "vllm:request_success_total", {"finished_reason": "length"}) == 10
    assert metric_sum(samples, "vllm:prompt_tokens_total", {"engine": "9"}) is None
    assert metric_sum(samples, "nope") is None


def test_server_snapshot() -> None:
    assert server_snapshot(parse_metrics(VLLM_PAGE)) == {
        "prompt_tokens": 1024.0, "generation_tokens": 512.0, "requests_ok": 16.0,
        "preemptions": 2.0, "kv_cache_usage": 0.25, "running": 4.0, "waiting": 0.0,
    }
    old = parse_metrics('vllm:gpu_cache_usage_perc{engine="0"} 0.5\n')
    assert server_snapshot(old) == {"kv_cache_usage": 0.5}
    assert server_snapshot([]) == {}


def test_cross_check_deltas_gauges_and_mismatches() -> None:
    before = {"prompt_tokens": 100.0, "generation_tokens": 50.0, "requests_ok": 2.0,
              "preemptions": 0.0, "running": 2.0, "kv_cache_usage": 0.1}
    after = {"prompt_tokens": 1124.0, "generation_tokens": 562.0, "requests_ok": 18.0,
             "preemptions": 2.0, "running": 0.0, "kv_cache_usage": 0.05, "waiting": 0.0}
    figures, problems = cross_check(before, after, client_prompt_tokens=1024,
                                    client_output_tokens=512, client_requests_ok=16)
    assert figures == {"prompt_tokens": 1024.0, "generation_tokens": 512.0,
                       "requests_ok": 16.0, "preemptions": 2.0, "kv_cache_usage": 0.05,
                       "running": 0.0, "waiting": 0.0}
    assert problems == []
    _, problems = cross_check(before, after, client_prompt_tokens=1024,
                              client_output_tokens=511, client_requests_ok=15)
    assert problems == [
        "generation_tokens: the server counted 512 (vllm:generation_tokens_total), the client "
        "511 output tokens",
        "requests_ok: the server counted 16 (vllm:request_success_total), the client 15 "
        "successful requests",
    ]


def test_cross_check_missing_and_restarted_counters() -> None:
    figures, problems = cross_check({"prompt_tokens": 10.0}, {"prompt_tokens": 4.0,
                                                              "generation_tokens": 9.0},
                                    client_prompt_tokens=4, client_output_tokens=9,
                                    client_requests_ok=1)
    assert figures == {}
    assert len(problems) == 1 and "went down (10 -> 4)" in problems[0]


# --------------------------------------------------------------------------- scraping


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, dict[str, object]]]:
    """A loopback HTTP server; the test sets ``state['body']`` and ``state['status']``."""
    state: dict[str, object] = {"body": VLLM_PAGE.encode(), "status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state["body"]
            assert isinstance(body, bytes)
            self.send_response(int(state["status"]))  # type: ignore[call-overload]
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics", state
    finally:
        server.shutdown()
        server.server_close()


def test_scrape_real_server(metrics_server: tuple[str, dict[str, object]],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    url, state = metrics_server
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # loopback never uses it
    assert server_snapshot(scrape(url, 2.0))["prompt_tokens"] == 1024.0
    state["status"] = 503
    with pytest.raises(MetricsFetchError, match="HTTP 503"):
        scrape(url, 2.0)
    state["status"], state["body"] = 200, b"a{ 1\n"
    with pytest.raises(MetricsError, match=f"metrics at {url}: metrics line 1"):
        scrape(url, 2.0)
    monkeypatch.setattr(prometheus, "MAX_BYTES", 100)
    state["body"] = b"a 1\n" * 100
    with pytest.raises(MetricsError, match="over 0 MiB"):
        scrape(url, 2.0)


def test_scrape_refused_connection() -> None:
    from llm_energy_measure.core.serving.server import free_port

    with pytest.raises(MetricsFetchError, match="cannot read metrics"):
        scrape(f"http://127.0.0.1:{free_port()}/metrics", 1.0)


def test_is_loopback() -> None:
    assert is_loopback("http://127.0.0.1:8000/metrics")
    assert is_loopback("http://localhost/metrics") and is_loopback("http://[::1]:1/")
    assert not is_loopback("http://gpu-host:9400/metrics")
