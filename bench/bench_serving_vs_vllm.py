"""Our serving client against vLLM's own benchmark client, on one vLLM server.

One vLLM server (the embedded tiny Llama on CPU unless --model) is started once; then, in
alternating rounds, the same load is measured by ``vllm.benchmarks.serve`` (random dataset:
--input-len prompt tokens, --output-len output tokens with ignore_eos, Poisson arrivals at
--rate, --seed) and by ``run_experiment`` with engine openai against that server (synthetic
prompts of --input-len tokens, fixed-length outputs of --output-len tokens, Poisson at --rate,
the same seed). Prints each side's TTFT p50, ITL p50 (per streamed chunk gap, vLLM's
definition; ours per token gap beside it) and output tok/s, and our/vLLM ratios
(medians over rounds); goal: each within 5 %. The prompts' contents differ (both are random
tokens of the same length) and the two clients draw their Poisson gaps from different
generators, so the comparison is of distributions, not of request-by-request times.

Run it with a python that has vLLM (on CPU: ``bash scripts/setup_vllm.sh`` prints it):
    PYTHONPATH=src <vllm python> bench/bench_serving_vs_vllm.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def _vllm_bench(args: argparse.Namespace, base_url: str, served: str, tokenizer: str,
                out: Path, seed: int) -> dict[str, float]:
    code = (
        "import argparse, sys\n"
        "from vllm.benchmarks import serve\n"
        "p = argparse.ArgumentParser(); serve.add_cli_args(p)\n"
        "serve.main(p.parse_args(sys.argv[1:]))\n"
    )
    cmd = [sys.executable, "-c", code, "--backend", "openai", "--base-url", base_url,
           "--endpoint", "/v1/completions", "--model", served, "--tokenizer", tokenizer,
           "--dataset-name", "random", "--random-input-len", str(args.input_len),
           "--random-output-len", str(args.output_len), "--num-prompts", str(args.requests),
           "--request-rate", str(args.rate), "--seed", str(seed), "--ignore-eos",
           "--percentile-metrics", "ttft,itl,tpot,e2el", "--metric-percentiles", "50,99",
           "--save-result", "--result-dir", str(out.parent), "--result-filename", out.name,
           "--disable-tqdm"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    return {"ttft_p50_ms": data["median_ttft_ms"], "itl_p50_ms": data["median_itl_ms"],
            "output_tok_s": data["output_throughput"],
            "output_tokens": data["total_output_tokens"]}


def _ours(args: argparse.Namespace, base_url: str, served: str, model: str, results: Path,
          seed: int) -> dict[str, float]:
    from llm_energy_measure.config import ExperimentConfig
    from llm_energy_measure.orchestration import run_experiment

    config = ExperimentConfig.model_validate({
        "config_name": "bench-serving", "engine": "openai", "seed": seed,
        "model": {"name": model},
        "endpoint": {"base_url": f"{base_url}/v1", "model": served},
        "load": {"arrival": "poisson", "rate_per_s": args.rate,
                 "num_requests": args.requests, "warmup_requests": 0},
        "prompts": {"source": "synthetic", "num_prompts": args.requests,
                    "synthetic_input_tokens": args.input_len},
        "decoder": {"preset": "benchmark", "max_new_tokens": args.output_len},
        "energy": {"backend": "none", "baseline": {"enabled": False}},
    })
    result = run_experiment(config, results_dir=results).aggregated
    assert result is not None and result.serving is not None
    inf = result.inference
    chunk = result.serving.chunk_itl
    assert inf.ttft is not None and inf.itl is not None and chunk is not None
    # vLLM's benchmark reports ITL per streamed chunk gap: compare that; ours per token gap
    # (chunks of several tokens split evenly) is printed beside it.
    return {"ttft_p50_ms": inf.ttft.p50_s * 1000, "itl_p50_ms": chunk.p50_s * 1000,
            "itl_token_p50_ms": inf.itl.p50_s * 1000,
            "output_tok_s": result.serving.whole.output_tokens_per_s,
            "output_tokens": inf.output_tokens}


def main() -> int:
    from llm_energy_measure.config import ExperimentConfig
    from llm_energy_measure.core.builtin_model import ensure_builtin_model
    from llm_energy_measure.core.serving.server import ManagedServer, free_port
    from llm_energy_measure.core.serving.server_args import server_env, vllm_server_command

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny-llama")
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    path = (str(ensure_builtin_model(args.model)) if args.model.startswith("builtin:")
            else args.model)
    config = ExperimentConfig.model_validate({
        "engine": "openai", "model": {"name": args.model},
        "server": {"engine": "vllm"}, "vllm": {"max_model_len": 1024, "kv_cache_space_gib": 1},
    })
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        server = ManagedServer(
            vllm_server_command(config, model_path=path, host="127.0.0.1", port=port,
                                python=sys.executable),
            base_url=f"{base_url}/v1", health_url=f"{base_url}/health",
            log_path=folder / "server.log", env=server_env(config), startup_timeout_s=900,
            stop_grace_s=15)
        rows: list[tuple[dict[str, float], dict[str, float]]] = []
        with server:
            _vllm_bench(args, base_url, args.model, path, folder / "warm.json", 99)  # warm-up
            for i in range(args.rounds):
                theirs = _vllm_bench(args, base_url, args.model, path,
                                     folder / f"vllm{i}.json", seed=i)
                ours = _ours(args, base_url, args.model, args.model, folder / "results", i)
                rows.append((ours, theirs))
                print(f"round {i}: ours {_fmt(ours)} | vLLM bench {_fmt(theirs)}", flush=True)
    print(f"load: Poisson {args.rate:g} req/s, {args.requests} requests, {args.input_len} in / "
          f"{args.output_len} out tokens, {args.rounds} rounds")
    for key in ("ttft_p50_ms", "itl_p50_ms", "output_tok_s"):
        ratio = statistics.median(o[key] / t[key] for o, t in rows)
        verdict = "within 5%" if abs(ratio - 1) <= 0.05 else "OUTSIDE 5%"
        print(f"{key}: ours/vLLM = {ratio:.3f} ({verdict})")
    return 0


def _fmt(m: dict[str, Any]) -> str:
    token = (f" (per token gap {m['itl_token_p50_ms']:.2f} ms)" if "itl_token_p50_ms" in m
             else "")
    return (f"TTFT p50 {m['ttft_p50_ms']:.2f} ms, ITL p50 per chunk gap "
            f"{m['itl_p50_ms']:.2f} ms{token}, "
            f"{m['output_tok_s']:.1f} out tok/s ({m['output_tokens']} tokens)")


if __name__ == "__main__":
    sys.exit(main())
