"""GPU validation of the serving mode: a managed vLLM server (started, measured and stopped
by the run) under a seeded Poisson load, its energy from the NVML counter of the GPU the
server uses. Prints requests, TTFT/ITL p50, output tok/s, energy and J/token for the whole
and the steady window (with the method), stability, the server's own counts against ours, and
the check that the per-request energies sum to the window's energy.

Run through scripts/gpu_check.sh when vLLM is importable; ``--device cpu`` runs the same on
CPU with vLLM's CPU build (energy then an estimate). Never changes any device setting.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def experiment_config(args: argparse.Namespace) -> dict[str, Any]:
    """The serving experiment: one vLLM server, ``args.requests`` Poisson requests."""
    gpu = args.device == "cuda"
    vllm: dict[str, Any] = {"max_model_len": 1024, "enforce_eager": not gpu}
    if gpu:
        vllm["gpu_memory_utilization"] = args.gpu_memory_utilization
    else:
        vllm["kv_cache_space_gib"] = 1
    return {
        "config_name": "gpu-check-serving", "engine": "openai",
        "model": {"name": args.model, "precision": "float16" if gpu else "float32"},
        "server": {"engine": "vllm", "startup_timeout_s": 900},
        "vllm": vllm,
        "load": {"arrival": "poisson", "rate_per_s": args.rate, "num_requests": args.requests,
                 "warmup_requests": 4},
        "prompts": {"source": "synthetic", "num_prompts": args.requests,
                    "synthetic_input_tokens": 64},
        "decoder": {"preset": "benchmark", "max_new_tokens": args.new_tokens},
        "energy": {"backend": "nvml" if gpu else "auto", "baseline": {"duration_s": 3.0}},
        "slo": {"ttft_ms": {"p99": 1000}},
    }


def main() -> int:
    from llm_energy_measure.config import ExperimentConfig
    from llm_energy_measure.orchestration import run_experiment
    from llm_energy_measure.results import FileSystemRepository

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--model", default="builtin:small-llama")
    parser.add_argument("--rate", type=float, default=16.0)
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    args = parser.parse_args()
    config = ExperimentConfig.model_validate(experiment_config(args))
    with tempfile.TemporaryDirectory() as results:
        report = run_experiment(config, results_dir=results)
        result = report.aggregated
        assert result is not None and result.serving is not None
        (raw,) = FileSystemRepository(results).load_all_raw(report.experiment_id)
    s, inf, e = result.serving, result.inference, result.energy
    print(f"requests ok/failed: {s.requests_ok}/{s.requests_failed}; stop: {s.stop_reason}")
    print(f"TTFT p50 {inf.ttft.p50_s * 1000 if inf.ttft else float('nan'):.2f} ms, "
          f"ITL p50 {inf.itl.p50_s * 1000 if inf.itl else float('nan'):.2f} ms")
    for w in (s.whole, s.steady):
        if w is None:
            continue
        print(f"{w.name}: {w.duration_s:.2f} s, {w.output_tokens_per_s:.1f} out tok/s, "
              f"energy {w.energy_j} J ({w.energy_method}), J/token "
              f"{w.energy_per_output_token_j}")
    if e is not None:
        print(f"energy methods {e.methods}, estimated {e.estimated}, devices "
              f"{[d.device_id for d in e.devices]}")
    print(f"stable: {s.stable} {s.unstable_reasons}")
    if s.server is not None:
        print(f"server counts {s.server.counts}; mismatches {s.server.mismatches}")
    parts = sum(r.energy_j or 0.0 for r in raw.requests)
    print(f"per-request energies sum {parts:.3f} J vs window {s.whole.energy_j} J")
    ok = s.requests_ok == args.requests and not (s.server and s.server.mismatches)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
