"""The dry-run plan: what `run` would do, and how much memory it would need."""

from __future__ import annotations

import os
from typing import Any

from llm_energy_measure.config import config_hash, config_warnings, effective_results_dir
from llm_energy_measure.config.models import ExperimentConfig
from llm_energy_measure.core.dtypes import DTYPE_BYTES

#: Allocator slack and activations on top of weights and KV cache (a rough planning margin).
OVERHEAD_FRACTION = 0.2


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3f} GiB"


def _hf_config(config: ExperimentConfig) -> Any:
    """The model's architecture config, read without loading weights (offline-safe)."""
    from transformers import AutoConfig

    from llm_energy_measure.core.model_source import resolve_model_source

    source = resolve_model_source(config.model)
    kwargs: dict[str, Any] = {"trust_remote_code": config.model.trust_remote_code}
    if source.gguf_file:
        kwargs["gguf_file"] = source.gguf_file
    if source.revision:
        kwargs["revision"] = source.revision
    return AutoConfig.from_pretrained(source.location, **kwargs)


def count_parameters_meta(hf_config: Any) -> int:
    """Exact parameter count by instantiating the architecture on the meta device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    return int(sum(p.numel() for p in model.parameters()))


def weight_bytes_per_param(config: ExperimentConfig) -> float:
    """Bytes per weight after quantization (4-bit: 0.5, 8-bit: 1)."""
    if config.quantization.load_in_4bit:
        return 0.5
    if config.quantization.load_in_8bit:
        return 1.0
    return float(DTYPE_BYTES[config.model.precision])


def memory_estimate(
    config: ExperimentConfig, hf_config: Any, num_parameters: int
) -> dict[str, Any]:
    """Weights + KV cache of the largest batch + a planning margin, per process, in bytes."""
    from llm_energy_measure.core.arch_spec import arch_spec_from_config

    weights = num_parameters * weight_bytes_per_param(config)
    spec = arch_spec_from_config(hf_config, num_parameters=num_parameters)
    act_bytes = float(DTYPE_BYTES[config.model.precision])
    seq_len = config.prompts.max_input_tokens + config.decoder.max_new_tokens
    kv = 0.0
    if spec.analytic:
        kv = (2 * spec.num_layers * spec.num_kv_heads * spec.head_dim * act_bytes
              * seq_len * config.batching.batch_size)
    total = (weights + kv) * (1 + OVERHEAD_FRACTION)
    return {
        "parameters": num_parameters,
        "weights": _gib(weights),
        "kv_cache_largest_batch": _gib(kv) if spec.analytic else "unknown (architecture)",
        "estimated_peak": _gib(total),
        "basis": f"weights + KV cache for batch {config.batching.batch_size} x {seq_len} "
                 f"tokens, + {int(OVERHEAD_FRACTION * 100)}% margin",
    }


def build_plan(config: ExperimentConfig) -> dict[str, Any]:
    """The resolved plan of a run, as a plain dict (printed by `run --dry-run`)."""
    warm_runs = config.warmup.runs if config.warmup.mode == "fixed" else config.warmup.max_runs
    plan: dict[str, Any] = {
        "config_name": config.config_name,
        "config_hash": config_hash(config),
        "results_dir": str(effective_results_dir(config)),
        "model": config.model.name,
        "precision": config.model.precision,
        "device": config.model.device,
        "prompts": f"{config.prompts.num_prompts} from {config.prompts.source}, "
                   f"max {config.prompts.max_input_tokens} input tokens",
        "batching": f"{config.batching.strategy}, batch size {config.batching.batch_size}",
        "decoder": f"{config.decoder.mode}, max_new_tokens {config.decoder.max_new_tokens}"
                   + (" (fixed length)" if config.decoder.fixed_length else ""),
        "warmup": f"{config.warmup.mode}, up to {warm_runs} run(s)",
        "cycles": config.cycles,
        "energy": f"backend {config.energy.backend}, sampling every "
                  f"{config.energy.sample_interval_ms:g} ms, baseline "
                  + (f"{config.energy.baseline.duration_s:g} s" if config.energy.baseline.enabled
                     else "off"),
        "processes": config.launch.num_processes,
        "warnings": config_warnings(config, cpu_count=os.cpu_count()),
    }
    try:
        hf_config = _hf_config(config)
        plan["memory"] = memory_estimate(config, hf_config, count_parameters_meta(hf_config))
    except Exception as exc:  # the plan is still useful without the estimate
        plan["memory"] = f"unavailable: {str(exc).splitlines()[0] if str(exc) else exc}"
    return plan
