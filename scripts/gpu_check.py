"""GPU validation: energy from NVML's counter vs Zeus vs integrated sampled power on the same
window, plus MFU and MBU, for a real model on an NVIDIA GPU.

Run through scripts/gpu_check.sh. Prints a short table and the Markdown row to add to
docs/validation.md. Never changes any device setting.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _config(model: str, precision: str, prompts: int, batch: int, new_tokens: int, backend: str):  # type: ignore[no-untyped-def]
    from llm_energy_measure.config import ExperimentConfig

    return ExperimentConfig.model_validate({
        "config_name": "gpu-check",
        "model": {"name": model, "precision": precision, "device": "cuda"},
        "prompts": {"source": "builtin", "num_prompts": prompts, "max_input_tokens": 256},
        "batching": {"strategy": "sorted", "batch_size": batch},
        "decoder": {"preset": "benchmark", "max_new_tokens": new_tokens},
        "energy": {"backend": backend, "sample_interval_ms": 100},
    })


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:small-llama")
    parser.add_argument("--precision", default="bfloat16")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--passes", type=int, default=3, help="measured passes in one window")
    args = parser.parse_args()

    import torch

    from llm_energy_measure.core.compute_metrics import ComputeEstimator
    from llm_energy_measure.core.devices import driver_version, get_gpus
    from llm_energy_measure.core.energy_backends import create_energy_backend
    from llm_energy_measure.core.energy_backends.sampler import PowerSampler, integrate_power_j
    from llm_energy_measure.core.engines.transformers import run_inference
    from llm_energy_measure.core.memory import MemoryWindow
    from llm_energy_measure.core.model_loader import load_model_tokenizer
    from llm_energy_measure.core.prompts import load_prompts, truncate_prompts
    from llm_energy_measure.orchestration.cycles import combine_outputs

    if not torch.cuda.is_available():
        print("no CUDA device: this script validates GPU measurements only", file=sys.stderr)
        return 2
    nvml_cfg = _config(args.model, args.precision, args.prompts, args.batch_size,
                       args.new_tokens, "nvml")
    loaded = load_model_tokenizer(nvml_cfg)
    prompts = load_prompts(nvml_cfg.prompts, tokenizer=loaded.tokenizer, seed=0)
    prompts, _, _ = truncate_prompts(prompts, loaded.tokenizer, 256)

    gpus = get_gpus()
    index = int(loaded.device.split(":", 1)[1]) if ":" in loaded.device else 0
    mine = gpus.select([index])
    host = socket.gethostname()
    nvml = create_energy_backend(nvml_cfg.energy, host=host, gpus=mine)
    zeus = None
    try:
        zeus_cfg = _config(args.model, args.precision, args.prompts, args.batch_size,
                           args.new_tokens, "zeus")
        zeus = create_energy_backend(zeus_cfg.energy, host=host, gpus=mine,
                                     is_host_leader=False)
    except Exception as exc:  # zeus is an optional extra
        print(f"zeus unavailable: {exc}", file=sys.stderr)
    sampler = PowerSampler(mine, interval_ms=100)
    metrics = MemoryWindow()

    run_inference(loaded, prompts[: args.batch_size], nvml_cfg)  # warm-up
    torch.cuda.synchronize()
    metrics.start_window()
    nvml.start()
    if zeus is not None:
        zeus.start()
    sampler.start()
    t0 = time.perf_counter()
    outputs = [run_inference(loaded, prompts, nvml_cfg, cycle=i) for i in range(args.passes)]
    torch.cuda.synchronize()
    window_s = time.perf_counter() - t0
    samples = sampler.stop()
    zeus_reading = zeus.stop() if zeus is not None else None
    nvml_reading = nvml.stop()
    metrics.stop_window()
    combined = combine_outputs(outputs)
    compute = ComputeEstimator().compute(loaded, combined)

    device_id = mine[0].device_id
    nvml_j = sum(d.energy_j for d in nvml_reading.devices if d.device_id == device_id)
    nvml_method = ",".join(sorted({d.method for d in nvml_reading.devices}))
    zeus_j = (sum(d.energy_j for d in zeus_reading.devices if d.device_id == device_id)
              if zeus_reading is not None else None)
    sampled_j = integrate_power_j(samples, device_id)
    card = mine[0].name
    driver = driver_version(gpus)
    ratio = (nvml_j / zeus_j) if zeus_j else None
    rows = [
        ("card", card), ("driver", driver), ("model", f"{args.model} ({args.precision})"),
        ("window", f"{window_s:.2f} s, {combined.output_tokens} output tokens"),
        ("NVML energy", f"{nvml_j:.1f} J ({nvml_method})"),
        ("Zeus energy", "n/a" if zeus_j is None else f"{zeus_j:.1f} J"),
        ("NVML / Zeus", "n/a" if ratio is None else f"{ratio:.4f} (goal 0.99-1.01)"),
        ("sampled power", "n/a" if sampled_j is None else f"{sampled_j:.1f} J "
         f"({len(samples)} samples)"),
        ("J / output token", f"{nvml_j / max(combined.output_tokens, 1):.4f}"),
        ("MFU", "n/a" if compute.mfu is None else f"{compute.mfu * 100:.2f} %"),
        ("MBU", "n/a" if compute.mbu is None else f"{compute.mbu * 100:.2f} %"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    today = dt.date.today().isoformat()
    fmt = (lambda x, p=1: "n/a" if x is None else f"{x:.{p}f}")  # noqa: E731
    print("\nMarkdown row for docs/validation.md:")
    print(f"| {today} | {card} | {driver} | {args.model} {args.precision} | {fmt(nvml_j)} | "
          f"{fmt(zeus_j)} | {fmt(ratio, 4)} | {fmt(sampled_j)} | "
          f"{fmt(compute.mfu and compute.mfu * 100, 2)} % | "
          f"{fmt(compute.mbu and compute.mbu * 100, 2)} % |")
    for backend in (nvml, zeus):
        if backend is not None:
            backend.close()
    gpus.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
