"""Overhead of the measuring harness over a bare ``model.generate`` loop.

Same model (the embedded tiny Llama unless --model), same prompts, batches and lengths, measured
in one run, alternating bare and harness passes. The harness pass is what `run` measures: the
energy backend (with its background sampler) started and stopped around ``run_inference``,
which records per-step timestamps, plus the memory collector's window.

Prints output tokens/s of each (median of the passes), their ratio (median of the ratios of
adjacent pairs, so that drift of the machine's speed cancels; goal >= 0.98), the same
over the harness's measured window alone (per-pass set-up excluded: tokenization, the energy
backend's start and stop), and the CPU used by the background sampler alone at 100 ms, as a
fraction of one core (goal < 1%).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _config(model: str, n: int, batch: int, new_tokens: int):  # type: ignore[no-untyped-def]
    from llm_energy_measure.config import ExperimentConfig

    return ExperimentConfig.model_validate({
        "model": {"name": model, "device": "auto"},
        "prompts": {"source": "builtin", "num_prompts": n, "max_input_tokens": 128},
        "batching": {"batch_size": batch},
        "decoder": {"preset": "benchmark", "max_new_tokens": new_tokens},
        "energy": {"backend": "auto", "sample_interval_ms": 100},
    })


def bare_pass(loaded, batches, new_tokens: int) -> float:  # type: ignore[no-untyped-def]
    """Output tokens/s of a plain generate loop over pre-tokenized batches."""
    import torch

    sync = torch.cuda.synchronize if loaded.device.startswith("cuda") else (lambda: None)
    tokens = 0
    sync()
    t0 = time.perf_counter()
    for inputs in batches:
        out = loaded.model.generate(
            **inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
            pad_token_id=loaded.tokenizer.pad_token_id,
        )
        tokens += (out.shape[1] - inputs["input_ids"].shape[1]) * out.shape[0]
    sync()
    return tokens / (time.perf_counter() - t0)


def harness_pass(loaded, prompts, config, backend, metrics) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Output tokens/s of the whole harness pass (start to stop of everything, tokenization
    and the energy backend's start and stop included), and over the measured window alone
    (what a result reports)."""
    from llm_energy_measure.core.engines.transformers import run_inference

    t0 = time.perf_counter()
    metrics.start_window()
    backend.start()
    out = run_inference(loaded, prompts, config)
    backend.stop()
    metrics.stop_window()
    whole = out.output_tokens / (time.perf_counter() - t0)
    return whole, out.output_tokens / out.window.duration_s


def sampler_cpu_fraction(seconds: float = 5.0) -> float:
    """CPU time of the sampler thread over ``seconds`` of wall time, per core."""
    from llm_energy_measure.core.devices import get_gpus
    from llm_energy_measure.core.energy_backends.sampler import PowerSampler

    gpus = get_gpus()
    idle0 = time.process_time()
    time.sleep(seconds)
    idle_cpu = time.process_time() - idle0
    sampler = PowerSampler(gpus, interval_ms=100)
    c0 = time.process_time()
    sampler.start()
    time.sleep(seconds)
    sampler.stop()
    busy_cpu = time.process_time() - c0
    gpus.close()
    return max(0.0, busy_cpu - idle_cpu) / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny-llama")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    from llm_energy_measure.core.batching import plan_batches
    from llm_energy_measure.core.energy_backends import create_energy_backend
    from llm_energy_measure.core.memory import MemoryWindow
    from llm_energy_measure.core.model_loader import load_model_tokenizer
    from llm_energy_measure.core.prompts import load_prompts, truncate_prompts

    config = _config(args.model, args.prompts, args.batch_size, args.new_tokens)
    loaded = load_model_tokenizer(config)
    prompts = load_prompts(config.prompts, tokenizer=loaded.tokenizer, seed=config.seed)
    prompts, _, counts = truncate_prompts(prompts, loaded.tokenizer, 128)
    by_id = dict(zip((p.request_id for p in prompts), counts, strict=True))
    groups = plan_batches(prompts, [by_id[p.request_id] for p in prompts], config.batching).batches
    device = loaded.model.device
    batches = [loaded.tokenizer([p.text for p in g], return_tensors="pt", padding=True).to(device)
               for g in groups]
    backend = create_energy_backend(config.energy, host="bench")
    metrics = MemoryWindow()

    bare_pass(loaded, batches[:1], 4)  # warm both paths up
    harness_pass(loaded, prompts[: args.batch_size], config, backend, metrics)
    bare, harness, window = [], [], []
    for _ in range(args.repeats):
        bare.append(bare_pass(loaded, batches, args.new_tokens))
        whole, in_window = harness_pass(loaded, prompts, config, backend, metrics)
        harness.append(whole)
        window.append(in_window)
    backend.close()
    # Each harness pass is compared with the bare pass right before it (the machine's speed
    # drifts by several percent over a run): the median of those paired ratios.
    ratio = statistics.median(h / b for h, b in zip(harness, bare, strict=True))
    window_ratio = statistics.median(w / b for w, b in zip(window, bare, strict=True))
    cpu = sampler_cpu_fraction()
    print(f"model {args.model} on {loaded.device}; {args.prompts} prompts, batch "
          f"{args.batch_size}, {args.new_tokens} new tokens, {args.repeats} alternating passes")
    print(f"bare generate loop : {statistics.median(bare):9.2f} out tok/s (median)")
    print(f"full harness       : {statistics.median(harness):9.2f} out tok/s (median)")
    print(f"ratio              : {ratio:.3f} (goal >= 0.98; median of paired passes)")
    print(f"measured window    : {statistics.median(window):9.2f} out tok/s (median), "
          f"{window_ratio:.3f} of bare (the run itself, without per-pass set-up)")
    print(f"sampler CPU        : {cpu * 100:.3f} % of one core at 100 ms (goal < 1 %)")
    return 0 if ratio >= 0.98 and cpu < 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
