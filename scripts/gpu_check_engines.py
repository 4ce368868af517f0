"""GPU validation of the engines: the same fixed-length workload through engine transformers
and engine vllm, each a whole experiment (warm-up, idle baseline, NVML energy) in its own
process, printed side by side: output tokens/s, J per output token, TTFT p50, token totals.

Run through scripts/gpu_check.sh when vLLM is importable. ``--device cpu`` runs the same on
CPU (with vLLM's CPU build), which is how it is checked without a GPU. Never changes any
device setting.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ENGINES = ("transformers", "vllm")


def experiment_config(args: argparse.Namespace, engine: str) -> dict[str, Any]:
    """The experiment both engines run (only ``engine`` differs)."""
    gpu = args.device == "cuda"
    vllm: dict[str, Any] = {"max_model_len": 1024, "enforce_eager": not gpu}
    if gpu:
        vllm["gpu_memory_utilization"] = args.gpu_memory_utilization
    else:
        vllm["kv_cache_space_gib"] = 1
    return {
        "config_name": f"gpu-check-{engine}",
        "engine": engine,
        "model": {"name": args.model, "precision": args.precision, "device": args.device},
        "prompts": {"source": "builtin", "num_prompts": args.prompts, "max_input_tokens": 256},
        "batching": {"strategy": "sorted", "batch_size": args.batch_size},
        "decoder": {"preset": "benchmark", "max_new_tokens": args.new_tokens},
        "warmup": {"runs": 1},
        "energy": {"backend": "nvml" if gpu else "auto", "sample_interval_ms": 100,
                   "baseline": {"duration_s": 2.0}},
        "vllm": vllm,
    }


def one_engine(args: argparse.Namespace, engine: str, results_dir: str) -> dict[str, Any]:
    """Run one engine's experiment in this process; its row as a dict."""
    from llm_energy_measure.config import ExperimentConfig
    from llm_energy_measure.orchestration import run_experiment

    config = ExperimentConfig.model_validate(experiment_config(args, engine))
    agg = run_experiment(config, results_dir=results_dir).aggregated
    assert agg is not None
    energy, ttft = agg.energy, agg.inference.ttft
    return {
        "engine": f"{agg.engine.name} {agg.engine.version}",
        "input_tokens": agg.inference.input_tokens,
        "output_tokens": agg.inference.output_tokens,
        "tok_s": agg.inference.output_tokens_per_s,
        "j_per_token": None if energy is None else energy.energy_per_output_token_j,
        "estimated": bool(energy is not None and energy.estimated),
        "ttft_p50_ms": None if ttft is None else ttft.p50_s * 1000,
        "attention": agg.engine.details.get("attention_backend", "-"),
    }


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:small-llama")
    parser.add_argument("--precision", default="bfloat16")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32, help="engine transformers")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    parser.add_argument("--one-engine", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--results", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_engine:  # a child of main: one experiment, its row as JSON on the last line
        print(json.dumps(one_engine(args, args.one_engine, args.results)))
        return 0

    # vLLM's workers may report their attention backend to this process (local IPC only).
    env = {**os.environ, "VLLM_ALLOW_INSECURE_SERIALIZATION": "1",
           "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING")}
    rows = []
    with tempfile.TemporaryDirectory() as results:
        for engine in ENGINES:
            done = subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--one-engine", engine,
                 "--results", results],
                capture_output=True, text=True, check=False, env=env)
            if done.returncode != 0:
                print(f"engine {engine} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
                return 1
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{args.model} ({args.precision}) on {args.device}: {args.prompts} prompts x "
          f"{args.new_tokens} tokens, fixed length")
    print(f"| {'engine':<22} | {'in tok':>7} | {'out tok':>7} | {'out tok/s':>10} | "
          f"{'J/out tok':>10} | {'TTFT p50 ms':>11} | attention")
    for r in rows:
        j = _fmt(r["j_per_token"], 5) + ("*" if r["estimated"] else "")
        print(f"| {r['engine']:<22} | {r['input_tokens']:>7} | {r['output_tokens']:>7} | "
              f"{r['tok_s']:>10.1f} | {j:>10} | {_fmt(r['ttft_p50_ms'], 1):>11} | "
              f"{r['attention']}")
    if any(r["estimated"] for r in rows):
        print("(* = estimated energy, not a measurement)")
    totals = {(r["input_tokens"], r["output_tokens"]) for r in rows}
    print(f"token totals equal: {len(totals) == 1}")
    return 0 if len(totals) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
