"""Synthetic serving results and a serving study with known figures.

Two configs (``model.precision`` float16 first, then float32) at offered Poisson rates of 1,
2, 4 and 8 req/s, ``CYCLES`` runs each, SLO ``TTFT p99 <= 500 ms``. Per run (cycle c):

- 4 requests of 10 output tokens; TTFT of the requests ``t/2, t/2, t, t`` with ``t =
  TTFT_P99_S[p][rate] + 0.01 c``, so TTFT p99 = t and p50 = 0.75 t; each request's 9 token
  gaps are 8 x g and 1 x 2g (g = ``GAP_S[p]``), so ITL p50 = g, p99 = 2g.
- whole-window J/output token ``EPJ[p][rate] x (1 + 0.02 c)`` (40 output tokens), steady
  window 0.9 of it; energy measured (counter) unless the config is ``estimated``.
- SLO met when t <= 0.5 s; goodput = rate x 0.95 when met, else rate x 0.4.
- power samples every 0.5 s on two GPUs: ``100 + 10 k`` W and ``50`` W, in flight ``k % 3``.

So float16 meets the SLO up to 4 req/s (J/token 0.2 x 1.01 = 0.202 there), float32 up to
2 req/s (0.45 x 1.01 = 0.4545): float16 spends 1 - 0.2/0.45 = 55.6 % less per token.
"""

from __future__ import annotations

from pathlib import Path

from tests.factories import make_device, make_raw, make_request

from llm_energy_measure.domain import AggregatedResult, RawProcessResult, UtilisationSample
from llm_energy_measure.domain.serving import (
    OutputLength,
    ServingMetrics,
    SloMetrics,
    SloTarget,
    WindowFigures,
)
from llm_energy_measure.results import FileSystemRepository, aggregate_results
from llm_energy_measure.state.study_models import StudyManifest, StudyPoint, StudyRun

PRECISIONS = ("float16", "float32")
RATES = (1.0, 2.0, 4.0, 8.0)
CYCLES = 2
SLO_TTFT_P99_S = 0.5
TTFT_P99_S = {"float16": {1.0: 0.1, 2.0: 0.15, 4.0: 0.3, 8.0: 0.9},
              "float32": {1.0: 0.12, 2.0: 0.25, 4.0: 0.7, 8.0: 1.5}}
EPJ = {"float16": {1.0: 0.4, 2.0: 0.3, 4.0: 0.2, 8.0: 0.15},
       "float32": {1.0: 0.6, 2.0: 0.45, 4.0: 0.3, 8.0: 0.25}}
GAP_S = {"float16": 0.01, "float32": 0.02}
OUTPUT_TOKENS = 40
SAMPLES = 6


def _window(name: str, duration_s: float, energy_j: float, estimated: bool) -> WindowFigures:
    return WindowFigures(
        name=name,  # type: ignore[arg-type]
        start_s=0.0, end_s=duration_s, duration_s=duration_s, requests_completed=4,
        output_tokens=OUTPUT_TOKENS, output_tokens_per_s=OUTPUT_TOKENS / duration_s,
        requests_per_s=4 / duration_s, mean_in_flight=1.0, energy_j=energy_j,
        energy_method="window_total" if name == "whole" else "power_share",
        energy_estimated=estimated, mean_power_w=energy_j / duration_s,
        energy_per_output_token_j=energy_j / OUTPUT_TOKENS, energy_per_request_j=energy_j / 4,
    )


def serving_config(precision: str, rate: float, *, slo: bool = True) -> dict[str, object]:
    config: dict[str, object] = {
        "config_name": f"serve-{precision}-{rate:g}", "engine": "openai",
        "model": {"precision": precision},
        "load": {"arrival": "poisson", "rate_per_s": rate, "num_requests": 4},
    }
    if slo:
        config["slo"] = {"ttft_ms": {"p99": SLO_TTFT_P99_S * 1000}}
    return config


def make_serving_raw(experiment_id: str, precision: str, rate: float, cycle: int = 0, *,
                     estimated: bool = False, start: float = 1_700_000_000.0,
                     slo: bool = True) -> RawProcessResult:
    """One serving run's raw result with the figures of the module docstring."""
    ttft = TTFT_P99_S[precision][rate] + 0.01 * cycle
    gap = GAP_S[precision]
    epj = EPJ[precision][rate] * (1 + 0.02 * cycle)
    duration_s = 4 / rate
    energy_j = epj * OUTPUT_TOKENS
    requests = [make_request(i, ttft_s=t, tpot_s=gap, e2e_s=t + 10 * gap, output_tokens=10,
                             token_gaps_s=[gap] * 8 + [2 * gap])
                for i, t in enumerate((ttft / 2, ttft / 2, ttft, ttft))]
    devices = [make_device("gpu:GPU-0", energy_j, duration_s=duration_s,
                           method="estimate" if estimated else "counter", estimated=estimated)]
    raw = make_raw(experiment_id, start=start, duration_s=duration_s, requests=requests,
                   devices=devices, effective_config=serving_config(precision, rate, slo=slo))
    met = ttft <= SLO_TTFT_P99_S
    slo_metrics = SloMetrics(
        targets=(SloTarget(metric="ttft", percentile="p99", target_s=SLO_TTFT_P99_S,
                           observed_s=ttft, met=met),),
        met=met, per_request_thresholds_s={"ttft": SLO_TTFT_P99_S},
        requests_meeting=4 if met else 2, attainment=0.95 if met else 0.4,
        share_meeting={"ttft": 0.95 if met else 0.4},
        goodput_per_s=rate * (0.95 if met else 0.4),
    ) if slo else None
    serving = ServingMetrics(
        endpoint="http://127.0.0.1:8000/v1", served_model="tiny", api="completions",
        managed_server=True, arrival="poisson", rate_per_s=rate, target_in_flight=1.0,
        requests_sent=4, requests_ok=4, requests_failed=0, token_count_method="usage",
        itl_method="per-chunk", output_length=OutputLength(requested="fixed", max_tokens=10),
        whole=_window("whole", duration_s, energy_j, estimated),
        steady=_window("steady", duration_s, energy_j * 0.9, estimated),
        stable=True, slo=slo_metrics,
    )
    samples = tuple(
        UtilisationSample(t_s=start + 0.5 * k, device_id=dev, power_w=power, in_flight=k % 3)
        for k in range(SAMPLES)
        for dev, power in (("gpu:GPU-0", 100.0 + 10 * k), ("gpu:GPU-1", 50.0))
    )
    return raw.model_copy(update={"serving": serving, "timeseries": samples})


def make_serving_result(experiment_id: str, precision: str, rate: float, cycle: int = 0, *,
                        estimated: bool = False, slo: bool = True) -> AggregatedResult:
    """The aggregated result of ``make_serving_raw``."""
    raw = make_serving_raw(experiment_id, precision, rate, cycle, estimated=estimated, slo=slo)
    return aggregate_results([raw], now=1_700_000_100.0)


def build_serving_study(results_dir: Path, *, estimated: tuple[str, ...] = ()
                        ) -> tuple[StudyManifest, FileSystemRepository]:
    """Write the serving study (manifest, raw and aggregated results) under ``results_dir``;
    configs whose precision is in ``estimated`` have estimated energy."""
    repo = FileSystemRepository(results_dir)
    points, runs = [], []
    order = 0
    for precision in PRECISIONS:
        for rate in RATES:
            pid = f"{precision}-r{rate:g}"
            points.append(StudyPoint(
                point_id=pid, label=f"{precision}, {rate:g} req/s",
                overrides={"model.precision": precision, "load.rate_per_s": rate},
                config_hash=f"h-{pid}"))
            for cycle in range(CYCLES):
                eid = f"sv-{pid}-c{cycle}"
                raw = make_serving_raw(eid, precision, rate, cycle,
                                       estimated=precision in estimated,
                                       start=1_700_000_000.0 + order * 100)
                repo.save_raw(raw)
                repo.save_aggregated(aggregate_results([raw], now=raw.timestamps.end + 1))
                runs.append(StudyRun(point_id=pid, cycle=cycle, order_index=order,
                                     status="completed", experiment_id=eid))
                order += 1
    manifest = StudyManifest(
        study_id="serve-1", study_name="precision x rate", study_hash="feed1234",
        created_at=1_700_000_000.0, updated_at=1_700_003_600.0, status="completed",
        points=points, runs=runs,
    )
    folder = results_dir / "studies" / manifest.study_id
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return manifest, repo
