"""A synthetic study written to a results folder, with known values.

``build_study`` writes a 4 x 2 sweep of batching.batch_size x model.precision, ``CYCLES`` runs
per point, with energy (``point_energy_j``), latency and a power time series: aggregated and
raw results plus the manifest.
"""

from __future__ import annotations

import math
from pathlib import Path

from tests.factories import make_device, make_raw, make_request

from llm_energy_measure.domain import UtilisationSample
from llm_energy_measure.results import FileSystemRepository, aggregate_results
from llm_energy_measure.state.study_models import StudyManifest, StudyPoint, StudyRun

BATCHES = (1, 2, 4, 8)
PRECISIONS = ("float32", "float16")
CYCLES = 3


def point_energy_j(batch: int, precision: str, cycle: int) -> float:
    """GPU energy of one run (80 output tokens): less with larger batches and float16."""
    return 100.0 * (1.5 if precision == "float32" else 1.0) / math.sqrt(batch) * (
        1 + 0.02 * cycle)


def build_study(
    results_dir: Path,
    *,
    estimated_points: tuple[str, ...] = (),
    study_name: str = "batch x precision",
    label_suffix: str = "",
    with_timeseries: bool = True,
) -> tuple[StudyManifest, FileSystemRepository]:
    """Write a synthetic study (aggregated + raw results and manifest) under ``results_dir``."""
    repo = FileSystemRepository(results_dir)
    points, runs = [], []
    order = 0
    for b in BATCHES:
        for p in PRECISIONS:
            pid = f"b{b}-{p}"
            overrides = {"batching.batch_size": b, "model.precision": p}
            points.append(StudyPoint(point_id=pid, label=f"batch={b}, {p}{label_suffix}",
                                     overrides=overrides, config_hash=f"h-{pid}"))
            for cycle in range(CYCLES):
                exp_id = f"st-{pid}-c{cycle}"
                duration_s = 10.0 / math.sqrt(b) * (1 + 0.01 * cycle)
                energy_j = point_energy_j(b, p, cycle)
                start = 1_700_000_000.0 + order * 100
                requests = [
                    make_request(i, ttft_s=0.05 * b, tpot_s=0.01 * (1 + 0.1 * b),
                                 e2e_s=0.2 * b + 0.01 * cycle)
                    for i in range(4)
                ]
                devices = [make_device("gpu:GPU-0", energy_j, duration_s=duration_s,
                                       method="estimate" if pid in estimated_points
                                       else "counter",
                                       estimated=pid in estimated_points)]
                raw = make_raw(exp_id, start=start, duration_s=duration_s, requests=requests,
                               devices=devices,
                               effective_config={"model": {"precision": p},
                                                 "batching": {"batch_size": b}})
                if with_timeseries:
                    samples = tuple(
                        UtilisationSample(t_s=start + 0.5 * k, device_id="gpu:GPU-0",
                                          power_w=energy_j / duration_s + 5 * math.sin(k / 3),
                                          utilisation_pct=90.0)
                        for k in range(int(duration_s * 2))
                    )
                    raw = raw.model_copy(update={"timeseries": samples})
                repo.save_raw(raw)
                repo.save_aggregated(aggregate_results([raw], now=start + 60))
                runs.append(StudyRun(point_id=pid, cycle=cycle, order_index=order,
                                     status="completed", experiment_id=exp_id))
                order += 1
    manifest = StudyManifest(
        study_id="study-1", study_name=study_name, study_hash="abc123def",
        created_at=1_700_000_000.0, updated_at=1_700_003_600.0, status="completed",
        points=points, runs=runs,
    )
    folder = results_dir / "studies" / manifest.study_id
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(manifest.model_dump_json(indent=2))
    return manifest, repo
