"""Engine transformers vs engine vllm on one workload, and the vLLM engine's overhead.

1. Side by side: the same fixed-length workload (the embedded tiny Llama unless --model)
   through ``run_experiment`` with ``engine: transformers`` and with ``engine: vllm``, each in
   its own process (one engine's threads and allocations cannot slow the other), with warm-up,
   idle baseline and energy as ``run`` measures them. Prints output tokens/s and J per output
   token of each (mean over the experiment's cycles), and their token totals, which must be
   equal.
2. Overhead: in one process, one ``vllm.LLM``, alternating passes of a bare
   ``LLM.generate`` over the same pre-tokenized prompts and sampling parameters, and of the
   engine's measured pass (``VllmEngine.run`` with the energy backend and memory window
   opened and closed at its window edges, as the orchestrator does). Prints output tokens/s
   of each (median), their ratio (goal >= 0.98), and the same over the measured window alone.
   Each pair runs in a drawn order (seeded), so that changing load favours neither side.

Run it with a python that has vLLM (on CPU: ``bash scripts/setup_vllm.sh`` prints it):
    PYTHONPATH=src <vllm python> bench/bench_engines.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _config(args: argparse.Namespace, engine: str) -> Any:
    from llm_energy_measure.config import ExperimentConfig

    return ExperimentConfig.model_validate({
        "config_name": f"bench-{engine}",
        "engine": engine,
        "model": {"name": args.model, "device": args.device},
        "prompts": {"source": "builtin", "num_prompts": args.prompts, "max_input_tokens": 128},
        "batching": {"batch_size": args.batch_size},
        "decoder": {"preset": "benchmark", "max_new_tokens": args.new_tokens},
        "warmup": {"runs": 1},
        "energy": {"backend": "auto", "sample_interval_ms": 100,
                   "baseline": {"duration_s": 1.0}},
        "cycles": args.cycles,
        "vllm": {"kv_cache_space_gib": 1, "enforce_eager": True, "max_model_len": 1024},
    })


# --- 1. both engines through the run path ------------------------------------------------------


def engine_experiment(args: argparse.Namespace, engine: str, results_dir: str) -> dict[str, Any]:
    """One experiment with ``engine`` (in this process): its headline figures."""
    from llm_energy_measure.orchestration import run_experiment

    report = run_experiment(_config(args, engine), results_dir=results_dir)
    agg = report.aggregated
    assert agg is not None
    energy = agg.energy
    return {
        "engine": f"{agg.engine.name} {agg.engine.version}",
        "input_tokens": agg.inference.input_tokens,
        "output_tokens": agg.inference.output_tokens,
        "tok_s": agg.inference.output_tokens_per_s,
        "j_per_token": None if energy is None else energy.energy_per_output_token_j,
        "estimated": None if energy is None else energy.estimated,
    }


def side_by_side(args: argparse.Namespace) -> bool:
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as results:
        for engine in ("transformers", "vllm"):
            cmd = [sys.executable, __file__, "--one-engine", engine, "--results", results,
                   *sys.argv[1:]]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"engine {engine} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                return False
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"workload: {args.model} on {args.device}, {args.prompts} prompts x "
          f"{args.new_tokens} tokens (fixed length), {args.cycles} cycle(s), batch "
          f"{args.batch_size} for transformers")
    print(f"{'engine':<22} {'in tokens':>9} {'out tokens':>10} {'out tok/s':>10} "
          f"{'J/out token':>12}")
    for row in rows:
        j = row["j_per_token"]
        jtxt = "n/a" if j is None else f"{j:.4f}{'*' if row['estimated'] else ''}"
        print(f"{row['engine']:<22} {row['input_tokens']:>9} {row['output_tokens']:>10} "
              f"{row['tok_s']:>10.2f} {jtxt:>12}")
    print("(* = estimated energy, not a measurement)")
    same = {(r["input_tokens"], r["output_tokens"]) for r in rows}
    print(f"token totals equal: {len(same) == 1}")
    return len(same) == 1


# --- 2. the vLLM engine's overhead -------------------------------------------------------------


def _quartiles(values: list[float]) -> str:
    """First and third quartile: how much the machine's load moved the passes."""
    q = statistics.quantiles(values, n=4)
    return f"{q[0]:.1f}-{q[2]:.1f}"


def overhead(args: argparse.Namespace) -> float:
    from vllm import SamplingParams

    from llm_energy_measure.core.energy_backends import create_energy_backend
    from llm_energy_measure.core.engines.vllm import VllmEngine, sampling_kwargs
    from llm_energy_measure.core.memory import MemoryWindow
    from llm_energy_measure.orchestration.workload import prepare_prompts

    config = _config(args, "vllm")
    engine = VllmEngine()
    loaded = engine.load(config)
    try:
        prompts, _ = prepare_prompts(config, loaded)
        llm = loaded.model.llm
        ids = loaded.tokenizer([p.text for p in prompts])["input_ids"]
        inputs = [{"prompt_token_ids": list(x)} for x in ids]
        params = SamplingParams(**sampling_kwargs(
            config.decoder, args.new_tokens, args.new_tokens, config.seed, detokenize=False))
        backend = create_energy_backend(config.energy, host="bench")
        memory = MemoryWindow()

        def bare() -> float:
            t0 = time.monotonic()
            outs = llm.generate(inputs, params, use_tqdm=False)
            return sum(len(o.outputs[0].token_ids) for o in outs) / (time.monotonic() - t0)

        def harness() -> tuple[float, float]:
            def open_window() -> None:
                memory.start_window()
                backend.start()

            def close_window() -> None:
                backend.stop()
                memory.stop_window()

            t0 = time.monotonic()
            out = engine.run(loaded, prompts, config, on_window_open=open_window,
                             on_window_close=close_window)
            whole = out.output_tokens / (time.monotonic() - t0)
            return whole, out.output_tokens / out.window.duration_s

        bare()  # warm both paths up
        harness()
        bare_rates, whole_rates, window_rates = [], [], []
        order = random.Random(0)
        for _ in range(args.repeats):
            # Which of the pair goes first is drawn: on a shared machine the load changes by
            # the second, and a fixed order would favour one side.
            first_bare = order.random() < 0.5
            if first_bare:
                bare_rates.append(bare())
            whole, window = harness()
            whole_rates.append(whole)
            window_rates.append(window)
            if not first_bare:
                bare_rates.append(bare())
        backend.close()
    finally:
        engine.release(loaded)
    ratio = statistics.median(whole_rates) / statistics.median(bare_rates)
    window_ratio = statistics.median(window_rates) / statistics.median(bare_rates)
    print(f"\nvLLM engine overhead: {args.prompts} prompts x {args.new_tokens} tokens, "
          f"{args.repeats} alternating passes")
    print(f"bare LLM.generate   : {statistics.median(bare_rates):9.2f} out tok/s (median; "
          f"quartiles {_quartiles(bare_rates)})")
    print(f"engine vllm (whole) : {statistics.median(whole_rates):9.2f} out tok/s (median; "
          f"quartiles {_quartiles(whole_rates)})")
    print(f"ratio               : {ratio:.3f} (goal >= 0.98)")
    print(f"measured window     : {statistics.median(window_rates):9.2f} out tok/s (median), "
          f"{window_ratio:.3f} of bare")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:tiny-llama")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip-engines", action="store_true",
                        help="only the overhead part")
    parser.add_argument("--one-engine", help=argparse.SUPPRESS)
    parser.add_argument("--results", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_engine:  # a child of side_by_side: one experiment, its figures as JSON
        print(json.dumps(engine_experiment(args, args.one_engine, args.results)))
        return 0
    equal = True if args.skip_engines else side_by_side(args)
    ratio = overhead(args)
    return 0 if equal and ratio >= 0.98 else 1


if __name__ == "__main__":
    sys.exit(main())
