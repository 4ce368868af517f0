"""GPU validation of the accelerate path: one process started by ``accelerate launch`` running
the launcher module, with the model loaded through ``device_map`` (a sharded load).

Two loads are measured on the same workload:

- ``device_map``: ``device_map="auto"`` with no memory cap (on one GPU every module lands on
  it: ``device_map:0``);
- ``device_map+cpu``: the GPU capped by ``--split-gpu-memory``, so accelerate places the rest
  of the layers on the CPU and streams them to the GPU at each forward (``device_map:0,cpu``).

Run through scripts/gpu_check.sh. Prints a short table and the Markdown rows to add to
docs/validation.md. ``--device cpu`` runs the same path without sharding (placement on CPU
refuses device_map): the test suite uses it to check this script on a machine with no GPU.
Never changes any device setting.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml


def experiment_config(
    *, model: str, device: str, precision: str, prompts: int, new_tokens: int, batch: int,
    max_memory: dict[str, str] | None, cycles: int = 1,
) -> dict[str, Any]:
    """The experiment both loads run; ``max_memory`` None means no sharding on CPU."""
    sharding: dict[str, Any] = {"strategy": "none"}
    if device != "cpu":
        sharding = {"strategy": "device_map"}
        if max_memory:
            sharding["max_memory"] = max_memory
    return {
        "config_name": "gpu-check-accelerate",
        "model": {"name": model, "device": device, "precision": precision},
        "prompts": {"source": "builtin", "num_prompts": prompts, "max_input_tokens": 128},
        "batching": {"strategy": "sorted", "batch_size": batch},
        "decoder": {"preset": "benchmark", "max_new_tokens": new_tokens},
        "warmup": {"runs": 1},
        "energy": {"backend": "auto", "sample_interval_ms": 100},
        "sharding": sharding,
        "launch": {"num_processes": 1},
        "cycles": cycles,
    }


def launch_command(config: Path, results: Path) -> list[str]:
    """``accelerate launch`` with one process, running the launcher module directly."""
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "llm_energy_measure.orchestration.launch.rank",
        "--config", str(config), "--results-dir", str(results),
    ]


def measure(label: str, cfg: dict[str, Any], workdir: Path) -> dict[str, str]:
    """Launch one experiment; the row of figures read back from its aggregated result."""
    from llm_energy_measure.results import FileSystemRepository

    folder = workdir / label.replace("+", "_")
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    results = folder / "results"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(launch_command(config, results), env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{label}: accelerate launch exited {done.returncode}: "
                           + " | ".join(tail))
    repo = FileSystemRepository(results)
    (exp_id,) = repo.list_aggregated()
    result = repo.load_aggregated(exp_id)
    assert result is not None
    inf, energy = result.inference, result.energy
    return {
        "load": label,
        "sharding": result.model.sharding or "none",
        "processes": str(result.aggregation.num_processes),
        "output tokens": str(inf.output_tokens),
        "out tok/s": f"{inf.output_tokens_per_s:.1f}",
        "energy J": "n/a" if energy is None else f"{energy.total_energy_j:.1f}",
        "method": "n/a" if energy is None else ",".join(energy.methods),
        "J / out token": ("n/a" if energy is None or energy.energy_per_output_token_j is None
                          else f"{energy.energy_per_output_token_j:.4f}"),
        "peak GPU MiB": ("n/a" if result.memory.gpu_peak_allocated_bytes is None
                         else f"{result.memory.gpu_peak_allocated_bytes / 2**20:.0f}"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:small-llama")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--precision", default="bfloat16")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--passes", type=int, default=1, help="measured cycles")
    parser.add_argument("--split-gpu-memory", default="150MiB",
                        help="GPU 0 cap of the device_map+cpu load")
    args = parser.parse_args(argv)

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: use --device cpu to check the path without a GPU",
                  file=sys.stderr)
            return 2
    common = {"model": args.model, "device": args.device, "precision": args.precision,
              "prompts": args.prompts, "new_tokens": args.new_tokens, "batch": args.batch_size,
              "cycles": args.passes}
    loads: list[tuple[str, dict[str, str] | None]] = [("cpu", None)]
    if args.device == "cuda":
        loads = [("device_map", None)]
        loads.append(("device_map+cpu", {"0": args.split_gpu_memory, "cpu": "32GiB"}))
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-check-accelerate-") as tmp:
        for label, max_memory in loads:
            cfg = experiment_config(max_memory=max_memory, **common)
            try:
                rows.append(measure(label, cfg, Path(tmp)))
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
                return 1
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(row[k].ljust(widths[k]) for k in keys))
    today = dt.date.today().isoformat()
    print("\nMarkdown rows for docs/validation.md (accelerate path):")
    for row in rows:
        print(f"| {today} | {row['load']} | {row['sharding']} | {row['output tokens']} | "
              f"{row['out tok/s']} | {row['energy J']} | {row['J / out token']} | "
              f"{row['peak GPU MiB']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
