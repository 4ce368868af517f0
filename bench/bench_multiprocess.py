"""Data parallel on this machine's CPU: 2 processes x 1 thread against 1 process x 2 threads.

Runs the same experiment (the embedded tiny Llama unless --model; builtin prompts,
fixed-length outputs, energy backend null) through the real CLI, alternating:

- ``1x2``: ``launch.num_processes: 1`` (in-process), torch with 2 intra-op threads;
- ``2x1``: ``launch.num_processes: 2`` (accelerate launch, gloo), 1 thread per process.

Prints, per mode (median over --repeats): system output tokens/s (total tokens / wall window
of the aggregated result), the threads each process used, and the launch overhead: seconds
from starting the command to the first measured token (load, warm-up and, for 2x1, process
start and rendezvous included).

    python bench/bench_multiprocess.py [--prompts 32] [--new-tokens 32] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _config(folder: Path, name: str, model: str, prompts: int, batch: int, new_tokens: int,
            processes: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"config_name: {name}\n"
        f"model: {{name: '{model}', device: cpu}}\n"
        f"prompts: {{source: builtin, num_prompts: {prompts}, max_input_tokens: 128}}\n"
        f"batching: {{batch_size: {batch}}}\n"
        f"decoder: {{preset: benchmark, max_new_tokens: {new_tokens}}}\n"
        "warmup: {runs: 1}\n"
        "energy: {backend: 'null', baseline: {enabled: false}}\n"
        f"launch: {{num_processes: {processes}}}\n"
    )
    return path


def run_once(config: Path, results: Path, threads: int) -> dict[str, float]:
    """Run the CLI once; returns tokens/s, threads per process and launch overhead (s)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               OMP_NUM_THREADS=str(threads), LLM_ENERGY_MEASURE_TORCH_THREADS=str(threads))
    started = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "llm_energy_measure.cli", "-q", "run", str(config),
         "--results-dir", str(results)],
        env=env, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"run failed:\n{out.stderr[-3000:]}")
    agg_file = max((results / "aggregated").glob("*.json"), key=lambda p: p.stat().st_mtime)
    agg = json.loads(agg_file.read_text())
    raws = [json.loads(p.read_text())
            for p in (results / "raw" / agg["experiment_id"]).glob("process_*.json")]
    first_token = min(
        raw["timestamps"]["start"] + min(r["submitted_s"] + (r["ttft_s"] or 0.0)
                                         for r in raw["requests"])
        for raw in raws
    )
    return {
        "tok_s": agg["inference"]["output_tokens_per_s"],
        "threads": max(r["environment"]["torch_num_threads"] or 0 for r in raws),
        "overhead_s": first_token - started,
        "processes": len(raws),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny-llama")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    modes = {"1x2": (1, 2), "2x1": (2, 1)}
    found: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="bench-mp-") as tmp:
        folder = Path(tmp)
        configs = {m: _config(folder, f"bench-{m}", args.model, args.prompts, args.batch,
                              args.new_tokens, procs) for m, (procs, _) in modes.items()}
        for _ in range(args.repeats):
            for mode, (_, threads) in modes.items():
                found[mode].append(run_once(configs[mode], folder / "results", threads))

    print(f"cores: {os.cpu_count()}, model {args.model}, {args.prompts} prompts x "
          f"{args.new_tokens} new tokens, batch {args.batch}, {args.repeats} repeat(s)")
    print(f"{'mode':<6}{'procs':>6}{'threads':>8}{'out tok/s':>12}{'launch->1st token s':>22}")
    for mode, rows in found.items():
        print(f"{mode:<6}{int(rows[0]['processes']):>6}{int(rows[0]['threads']):>8}"
              f"{statistics.median(r['tok_s'] for r in rows):>12.1f}"
              f"{statistics.median(r['overhead_s'] for r in rows):>22.2f}")
    ratio = statistics.median(r["tok_s"] for r in found["2x1"]) / \
        statistics.median(r["tok_s"] for r in found["1x2"])
    print(f"2x1 / 1x2 throughput: {ratio:.2f}")


if __name__ == "__main__":
    main()
