"""Engine openai end to end against the scripted streaming server (loopback), where every
token's time and count is known: the run path, records, windows, faults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fakes.streaming_server import Script, ScriptedServer

from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.exceptions import InferenceError
from llm_energy_measure.orchestration import run_experiment

pytest.importorskip("httpx")


def _config(base_url: str, **load: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "config_name": "served", "engine": "openai",
        "endpoint": {"base_url": base_url, "connect_timeout_s": 2, "read_timeout_s": 10},
        "load": {"arrival": "concurrency", "concurrency": 2, "num_requests": 6,
                 "warmup_requests": 1, **load},
        "prompts": {"source": "builtin", "num_prompts": 4},
        "decoder": {"max_new_tokens": 5},
        "energy": {"backend": "none", "baseline": {"enabled": False}},
    })


def test_closed_loop_run_records_every_request(tmp_path: Path) -> None:
    with ScriptedServer(ttft_s=0.03, gap_s=0.01, tokens=5) as server:
        report = run_experiment(_config(server.base_url), experiment_id="s1",
                                results_dir=tmp_path)
        served = list(server.records)
    result = report.aggregated
    assert result is not None and result.serving is not None
    s = result.serving
    assert (s.requests_sent, s.requests_ok, s.requests_failed) == (6, 6, 0)
    assert s.stop_reason == "completed" and s.token_count_method == "usage"
    assert s.itl_method == "per-chunk" and s.peak_in_flight == 2
    inf = result.inference
    assert inf.num_requests == 6 and inf.output_tokens == 30  # usage: 5 tokens each
    assert inf.ttft is not None and inf.ttft.min_s >= 0.03
    assert inf.itl is not None and inf.itl.count == 6 * 4  # 4 gaps per 5-token request
    # warm-up (1 request) + 6 measured, each one generation request on the server
    generations = [r for r in served if r.path.endswith("/completions")]
    assert len(generations) == 7
    body = generations[-1].body
    assert body is not None and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 5 and body["temperature"] == 0.0
    records = tmp_path / "raw" / "s1" / "requests_0.jsonl"
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    assert len(lines) == 6 and {line["status"] for line in lines} == {"ok"}
    assert s.server is not None and s.server.mismatches == ()
    assert s.server.counts["generation_tokens"] == 30
    assert result.model.source == "endpoint" and result.memory.cpu_peak_rss_bytes is None
    assert result.energy is None


def test_open_loop_sends_on_schedule(tmp_path: Path) -> None:
    with ScriptedServer(ttft_s=0.0, gap_s=0.0, tokens=1) as server:
        cfg = _config(server.base_url, arrival="constant", rate_per_s=50.0, concurrency=None,
                      warmup_requests=0)
        result = run_experiment(cfg, experiment_id="s2", results_dir=tmp_path).aggregated
    assert result is not None and result.serving is not None
    raw = result.serving
    assert raw.rate_per_s == 50.0 and raw.send_lag is not None
    assert raw.send_lag.min_s >= 0.0
    # 6 requests at 0, 20, ..., 100 ms: the window lasts at least the schedule.
    assert raw.whole.duration_s >= 0.1


def test_failed_requests_are_kept_and_the_breaker_stops_the_load(tmp_path: Path) -> None:
    with ScriptedServer(script_for=lambda record: Script(status=500)) as server:
        cfg = _config(server.base_url, num_requests=20, warmup_requests=0,
                      max_consecutive_failures=3, concurrency=1)
        result = run_experiment(cfg, experiment_id="s3", results_dir=tmp_path).aggregated
    assert result is not None and result.serving is not None
    s = result.serving
    assert s.stop_reason == "circuit_open" and s.requests_ok == 0
    assert s.requests_failed == 3 and s.requests_sent == 3
    assert result.inference.failed_requests == 3
    assert {w.code for w in result.warnings} >= {"circuit_open", "failed_requests"}


def test_unreachable_endpoint_is_one_clear_error(tmp_path: Path) -> None:
    from llm_energy_measure.core.serving.server import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(InferenceError, match="unreachable"):
        run_experiment(_config(url), experiment_id="s4", results_dir=tmp_path)


def test_api_key_is_sent_but_never_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-test-0123456789abcdefSECRET"
    monkeypatch.setenv("SERVING_TEST_KEY", key)
    with ScriptedServer(ttft_s=0.0, gap_s=0.0, tokens=2) as server:
        cfg = _config(server.base_url, warmup_requests=0).model_copy(update={
            "endpoint": _config(server.base_url).endpoint.model_copy(
                update={"api_key_env": "SERVING_TEST_KEY"})})
        run_experiment(cfg, experiment_id="s5", results_dir=tmp_path)
        headers = [r.headers.get("authorization") for r in server.records
                   if r.path.endswith("/completions")]
    assert headers and set(headers) == {f"Bearer {key}"}
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key not in path.read_text(errors="replace"), path


def test_missing_api_key_variable_is_one_clear_line(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from llm_energy_measure.exceptions import ConfigurationError

    monkeypatch.delenv("SERVING_ABSENT_KEY", raising=False)
    cfg = _config("http://127.0.0.1:9/v1")
    cfg = cfg.model_copy(update={"endpoint": cfg.endpoint.model_copy(
        update={"api_key_env": "SERVING_ABSENT_KEY"})})
    with pytest.raises(ConfigurationError, match="SERVING_ABSENT_KEY, which is not set"):
        run_experiment(cfg, experiment_id="s6", results_dir=tmp_path)
