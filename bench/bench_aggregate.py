"""Time of late aggregation of 1,000 experiments x 8 processes. Goal: under 10 s.

Creates 1,000 experiments of 8 raw process results each (2 hosts x 4 GPUs, 16 requests and
host-level CPU energy per host) in a temporary folder (fsync off while creating), then times,
for every experiment, what `llm-energy-measure aggregate --all` does: load_all_raw +
aggregate_results + save_aggregated, with a default (durable, fsyncing) repository.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.factories import make_device, make_raw, make_request  # noqa: E402

from llm_energy_measure.results import FileSystemRepository, aggregate_results  # noqa: E402

NUM_EXPERIMENTS = 1_000
NUM_PROCESSES = 8
GPUS_PER_HOST = 4
REQUESTS_PER_PROCESS = 16
GOAL_S = 10.0


def _raws(experiment_id: str, start: float) -> list:
    raws = []
    for rank in range(NUM_PROCESSES):
        host = f"host{rank // GPUS_PER_HOST}"
        devices = [make_device(f"gpu:GPU-{host}-{rank}", 300.0 + rank, host=host)]
        if rank % GPUS_PER_HOST == 0:
            devices.append(make_device(f"{host}:rapl:package-0", 120.0, kind="cpu", host=host))
        requests = [
            make_request(rank * 1000 + i, ttft_s=0.05 + 0.001 * i, tpot_s=0.01, e2e_s=1.0 + i)
            for i in range(REQUESTS_PER_PROCESS)
        ]
        raws.append(make_raw(experiment_id, rank, NUM_PROCESSES, hostname=host,
                             local_rank=rank % GPUS_PER_HOST, start=start + 0.01 * rank,
                             duration_s=10.0, requests=requests, devices=devices))
    return raws


def create(base: Path) -> list[str]:
    repo = FileSystemRepository(base, durable=False)
    ids = []
    template = _raws("template", 0.0)
    for i in range(NUM_EXPERIMENTS):
        exp_id = f"agg-bench-{i:04d}"
        for raw in template:
            repo.save_raw(raw.model_copy(update={"experiment_id": exp_id}))
        ids.append(exp_id)
    return ids


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-aggregate-") as tmp:
        base = Path(tmp) / "results"
        t0 = time.perf_counter()
        ids = create(base)
        os.sync()  # flush the created files now, so the timed fsyncs do not pay for them
        print(f"created {NUM_EXPERIMENTS} experiments x {NUM_PROCESSES} raw results in "
              f"{time.perf_counter() - t0:.1f} s")
        repo = FileSystemRepository(base)
        t0 = time.perf_counter()
        for exp_id in ids:
            result = aggregate_results(repo.load_all_raw(exp_id))
            repo.save_aggregated(result)
        elapsed = time.perf_counter() - t0
        check = repo.load_aggregated(ids[-1])
    assert check is not None and check.aggregation.num_processes == NUM_PROCESSES
    print(f"aggregated {NUM_EXPERIMENTS} experiments in {elapsed:.2f} s "
          f"({elapsed / NUM_EXPERIMENTS * 1000:.2f} ms each)")
    print(f"goal < {GOAL_S:.0f} s: {'met' if elapsed < GOAL_S else 'NOT met'}")
    return 0 if elapsed < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
