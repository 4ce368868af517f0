"""Studies of a real vLLM server on CPU (``builtin:tiny-llama``): a 3-rate sweep and a short
search, each on one vLLM server started once by the study (~70 s to start here) and gone
after it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psutil
import yaml

from llm_energy_measure.domain import AggregatedResult
from llm_energy_measure.domain.search import SearchResult
from llm_energy_measure.orchestration.study.runner import StudyHooks, run_study

BASE: dict[str, Any] = {
    "config_name": "vllm-study", "engine": "openai",
    "model": {"name": "builtin:tiny-llama", "precision": "float32"},
    "server": {"engine": "vllm", "startup_timeout_s": 600, "stop_grace_s": 10},
    "vllm": {"kv_cache_space_gib": 1, "max_model_len": 512},
    "load": {"arrival": "poisson", "rate_per_s": 2, "num_requests": 8, "warmup_requests": 1},
    "prompts": {"source": "builtin", "num_prompts": 8, "max_input_tokens": 64},
    "decoder": {"preset": "benchmark", "max_new_tokens": 8},
    "energy": {"baseline": {"duration_s": 1.0}},
    "slo": {"ttft_ms": {"p99": 5_000}},
}


def _study(tmp_path: Path, **fields: Any) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(BASE))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"study_name": "vllm", "base": "base.yaml",
                                    "timeout_s": 900, **fields}))
    return path


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _started(events: list[str]) -> list[int]:
    found = (re.search(r"shared server started \(pid (\d+),", e) for e in events)
    return [int(m.group(1)) for m in found if m]


def _result(results: Path, experiment_id: str | None) -> AggregatedResult:
    return AggregatedResult.model_validate_json(
        (results / "aggregated" / f"{experiment_id}.json").read_text())


def test_rate_sweep_on_one_vllm_server(tmp_path: Path) -> None:
    events: list[str] = []
    results = tmp_path / "results"
    manifest = run_study(_study(tmp_path, sweep={"load.rate_per_s": [1, 2, 4]}),
                         results_dir=results, hooks=StudyHooks(on_event=events.append))
    assert manifest.status == "completed", events
    (pid,) = _started(events)
    assert _gone(pid)
    for run in manifest.runs:
        result = _result(results, run.experiment_id)
        assert result.engine.details["server_pid"] == str(pid)
        assert result.engine.details["shared_server"] == f"study {manifest.study_id}"
        assert result.serving is not None and result.serving.requests_ok == 8
        assert result.serving.server is not None and result.serving.server.mismatches == ()
        if result.energy is not None and not result.energy.estimated:
            # The idle baseline (the gap's power, server idle) is measured by every run.
            assert all(d.baseline_power_w is not None for d in result.energy.devices)


def test_short_search_on_one_vllm_server(tmp_path: Path) -> None:
    events: list[str] = []
    results = tmp_path / "results"
    study = _study(tmp_path, cycles=2, search={"key": "load.rate_per_s", "low": 1,
                                              "high": 64, "max_probes": 3})
    manifest = run_study(study, results_dir=results, hooks=StudyHooks(on_event=events.append))
    assert manifest.status == "completed", events
    (pid,) = _started(events)
    assert _gone(pid)
    (folder,) = (results / "studies").iterdir()
    result = SearchResult.model_validate_json((folder / "search_result.json").read_text())
    assert 1 <= len(result.probes) <= 3 and result.cycles == 2
    values = [p.value for p in result.probes]
    assert values[:2] == [1.0, 64.0] or values == [1.0]
    met = [p.value for p in result.probes if p.slo_met]
    failed = [p.value for p in result.probes if not p.slo_met]
    assert not met or not failed or max(met) < min(failed)  # monotone here
    if result.value is not None:
        assert result.value == max(met)
        assert result.goodput_per_s is not None and result.goodput_per_s.stats is not None
        assert result.goodput_per_s.stats.n == 2
