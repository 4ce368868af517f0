"""Studies of a served load: a rate sweep on one shared managed server, and a search for the
highest concurrency meeting a TTFT objective (interrupted, then resumed), every run a real
worker process. The server is the scripted streaming server (``server.engine: command``),
whose TTFT grows by ``--ttft-per-in-flight-s`` for every other stream in flight, so the
answer is known: TTFT p99 ~ 10 ms + 60 ms x (concurrency - 1) against a 160 ms target ->
concurrency 3 meets it, 4 does not."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from llm_energy_measure.domain import AggregatedResult
from llm_energy_measure.domain.search import SearchResult
from llm_energy_measure.orchestration.study.executors import (
    LocalStudyExecutor,
    RunOutcome,
    RunSpec,
)
from llm_energy_measure.orchestration.study.runner import StudyHooks, resume_study, run_study
from llm_energy_measure.state.study_models import StudyManifest

pytest.importorskip("httpx")
pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _base(*extra: str) -> dict[str, Any]:
    server = [sys.executable, str(REPO / "tests" / "fakes" / "streaming_server.py"),
              "--forever", "--port", "{port}", "--ttft-s", "0.01", "--gap-s", "0.01",
              "--tokens", "4", *extra]
    return {
        "config_name": "served-study", "engine": "openai",
        "model": {"name": "builtin:tiny-llama"},
        "server": {"engine": "command", "command": server, "startup_timeout_s": 30,
                   "stop_grace_s": 5, "env": {"PYTHONPATH": str(REPO)}},
        "endpoint": {"model": "fake-model", "connect_timeout_s": 2, "read_timeout_s": 10},
        "load": {"arrival": "constant", "rate_per_s": 1, "num_requests": 8,
                 "warmup_requests": 1},
        "prompts": {"source": "builtin", "num_prompts": 4},
        "decoder": {"max_new_tokens": 4},
        "energy": {"backend": "none", "baseline": {"enabled": False}},
    }


def _study_file(tmp_path: Path, base: dict[str, Any], **fields: Any) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"study_name": "served", "base": "base.yaml", **fields}))
    return path


def _started(events: list[str]) -> list[int]:
    """Pids of the shared servers the study said it started."""
    return [int(re.search(r"shared server started \(pid (\d+),", e).group(1))  # type: ignore
            for e in events if "shared server started" in e]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _result(results: Path, experiment_id: str | None) -> AggregatedResult:
    text = (results / "aggregated" / f"{experiment_id}.json").read_text()
    return AggregatedResult.model_validate_json(text)


def _starts(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith("PORT "))


def test_rate_sweep_shares_one_managed_server(tmp_path: Path, tiny_model_dir: Path) -> None:
    study = _study_file(tmp_path, _base(), sweep={"load.rate_per_s": [20, 40, 80]})
    results = tmp_path / "results"
    events: list[str] = []
    manifest = run_study(study, results_dir=results, hooks=StudyHooks(on_event=events.append))
    assert manifest.status == "completed", events
    assert sum("shared server started" in e for e in events) == 1
    assert sum("shared server stopped" in e for e in events) == 1
    folder = results / "studies" / manifest.study_id
    assert _starts(folder / "logs" / "shared-server.log") == 1  # one server process
    runs = sorted(manifest.runs, key=lambda r: r.order_index)
    found = [_result(results, r.experiment_id) for r in runs]
    pids = {r.engine.details["server_pid"] for r in found}
    assert len(pids) == 1
    for run, result in zip(runs, found, strict=True):
        assert result.engine.details["shared_server"] == f"study {manifest.study_id}"
        assert result.serving is not None and result.serving.managed_server
        assert result.serving.requests_ok == 8
        assert result.serving.rate_per_s == manifest.point(run.point_id).overrides[
            "load.rate_per_s"]
        assert not (results / "logs" / f"{run.experiment_id}.server.log").exists()
    assert _started(events) == [int(pids.pop())] and _gone(_started(events)[0])


class _InterruptOn:
    """The local executor, with Ctrl+C in place of the ``n``-th run."""

    name = "local"
    parallel = False

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0
        self.inner = LocalStudyExecutor()

    def run(self, spec: RunSpec, on_submitted: Any) -> RunOutcome:
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.inner.run(spec, on_submitted)


def test_search_finds_the_known_concurrency_and_resumes_after_ctrl_c(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    base = _base("--ttft-per-in-flight-s", "0.06")
    base["load"] = {"arrival": "concurrency", "concurrency": 1, "num_requests": 8,
                    "warmup_requests": 0}
    base["slo"] = {"ttft_ms": {"p99": 160}}
    study = _study_file(tmp_path, base, cycles=2, search={
        "key": "load.concurrency", "low": 2, "high": 4, "max_probes": 6})
    results = tmp_path / "results"
    events: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_study(study, results_dir=results, hooks=StudyHooks(
            on_event=events.append, executor=_InterruptOn(3)))
    (first,) = _started(events)
    assert _gone(first)  # stopped by the interrupt
    (folder,) = (results / "studies").iterdir()
    manifest = StudyManifest.model_validate_json((folder / "manifest.json").read_text())
    assert manifest.status == "interrupted"
    assert [p.label for p in manifest.points] == [
        "load.concurrency=2", "load.concurrency=4", "load.concurrency=3"]
    assert [p.slo_met for p in manifest.points] == [True, False, None]

    manifest = resume_study(manifest.study_id, results_dir=results,
                            hooks=StudyHooks(on_event=events.append))
    assert manifest.status == "completed", events
    assert [p.label for p in manifest.points] == [
        "load.concurrency=2", "load.concurrency=4", "load.concurrency=3"]
    assert [p.slo_met for p in manifest.points] == [True, False, True]
    # The interrupted probe counts the attempt that Ctrl+C stopped before its worker started.
    assert [r.attempts for r in manifest.runs] == [1, 1, 2]
    assert _starts(folder / "logs" / "shared-server.log") == 2  # run, then resume
    assert len(_started(events)) == 2 and all(_gone(pid) for pid in _started(events))

    result = SearchResult.model_validate_json((folder / "search_result.json").read_text())
    assert (result.outcome, result.value, result.bracket) == ("found", 3.0, (3.0, 4.0))
    assert result.stopped_by == "tolerance" and result.cycles == 2
    assert [p.value for p in result.probes] == [2.0, 4.0, 3.0]
    assert result.goodput_per_s is not None and result.goodput_per_s.stats is not None
    stats = result.goodput_per_s.stats
    assert stats.n == 2 and stats.ci95_low <= stats.mean <= stats.ci95_high
    answer = _result(results, result.experiment_id)
    assert answer.effective_config["cycles"] == 2 and answer.serving is not None
    assert answer.serving.slo is not None and answer.serving.slo.met
    assert result.energy_per_output_token_j is not None
    assert result.energy_per_output_token_j.value is None  # energy backend none
    text = next(e for e in events if e.startswith("search load.concurrency"))
    assert "highest load.concurrency meeting the SLO = 3 (the next failed: 4)" in text
    assert json.loads((folder / "search_result.json").read_text())["probes"][0]["slo_met"]
