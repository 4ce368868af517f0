"""Validation of config dicts (hard errors) and soft warnings about valid but doubtful configs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from llm_energy_measure.config.errors import Loc, format_validation_error
from llm_energy_measure.config.models import DecoderConfig, ExperimentConfig
from llm_energy_measure.exceptions import ConfigurationError

#: Where each setting was written: key path -> file path or "overrides".
Origins = Mapping[tuple[str, ...], str]

_SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "min_p")


def source_of(loc: Loc, origins: Origins | None, default: str) -> str:
    """The file (or "overrides") that set the deepest key of ``loc`` we know about."""
    keys = tuple(str(part) for part in loc if part != "[key]")
    for end in range(len(keys), 0, -1):
        if origins and keys[:end] in origins:
            return origins[keys[:end]]
    return default


def validate_config(
    data: Mapping[str, Any], source: str = "config", origins: Origins | None = None
) -> ExperimentConfig:
    """An ExperimentConfig from a dict, or ConfigurationError with one line naming the file,
    the dotted key, the problem and the allowed values."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        message = format_validation_error(exc, lambda loc: source_of(loc, origins, source))
        raise ConfigurationError(message) from exc


def _sampling_warning(config: ExperimentConfig) -> list[str]:
    decoder = config.decoder
    if decoder.mode != "greedy":
        return []
    defaults = DecoderConfig.model_fields
    changed = [f for f in _SAMPLING_FIELDS if getattr(decoder, f) != defaults[f].default]
    if not changed:
        return []
    names = ", ".join(f"decoder.{f}" for f in changed)
    return [f"{names} ignored: decoder.mode is 'greedy' (set decoder.mode: sampling to use them)"]


def resource_warnings(config: ExperimentConfig, *, cpu_count: int | None) -> list[str]:
    """Soft problems of a config on a machine with ``cpu_count`` CPU cores (None: unknown).

    Each process needs a core of its own: more processes than cores contend for them, so the
    per-process windows, throughput and energy measure the contention.
    """
    processes = config.launch.num_processes
    if cpu_count is not None and processes > cpu_count:
        return [
            f"launch.num_processes ({processes}) exceeds the {cpu_count} CPU core(s) of this "
            "machine: the processes contend for cores and the figures measure that contention; "
            f"use at most {cpu_count}"
        ]
    return []


def config_warnings(config: ExperimentConfig, *, cpu_count: int | None = None) -> list[str]:
    """Soft problems of a valid config, one line each; they never stop a run.

    With ``cpu_count`` (the machine's cores, passed by the caller: validation reads nothing
    from the machine) the resource warnings of this machine are included.
    """
    warnings = _sampling_warning(config)
    decoder, model, launch = config.decoder, config.model, config.launch
    if decoder.fixed_length and decoder.min_new_tokens > 0:
        warnings.append(
            "decoder.min_new_tokens is ignored: decoder.fixed_length generates exactly "
            f"decoder.max_new_tokens ({decoder.max_new_tokens}) tokens"
        )
    if config.quantization.enabled and model.device == "cpu":
        warnings.append(
            "quantization (bitsandbytes) needs a CUDA GPU but model.device is 'cpu'; "
            "the model will fail to load"
        )
    if model.device == "cpu" and model.attn_implementation == "flash_attention_2":
        warnings.append("model.attn_implementation 'flash_attention_2' needs CUDA; use 'sdpa'")
    if model.device == "cpu" and model.precision == "float16":
        warnings.append(
            "model.precision 'float16' on CPU is slow and partly unsupported; "
            "use float32 or bfloat16"
        )
    if model.device == "cpu" and config.energy.backend == "nvml":
        warnings.append("energy.backend 'nvml' measures GPUs, but model.device is 'cpu'")
    per_process = config.prompts.num_prompts // launch.num_processes
    if per_process < config.batching.batch_size:
        share = "" if launch.num_processes == 1 else f" per process ({launch.num_processes})"
        warnings.append(
            f"prompts.num_prompts gives {per_process} prompt(s){share}, fewer than "
            f"batching.batch_size ({config.batching.batch_size}): batches are smaller than asked"
        )
    if config.traffic.enabled and config.batching.batch_size > 1:
        warnings.append(
            f"traffic.enabled with batching.batch_size {config.batching.batch_size}: each batch "
            "waits for its last arrival; use batch_size 1 for per-request latency under load"
        )
    if config.warmup.mode == "fixed" and config.warmup.runs == 0:
        warnings.append("warmup.runs is 0: the measured window includes one-off start-up costs")
    if config.cycles == 1:
        warnings.append(
            "cycles is 1: no confidence interval can be computed (set cycles >= 2; 5 or more "
            "for a useful one)"
        )
    if not config.energy.baseline.enabled:
        warnings.append(
            "energy.baseline.enabled is false: energy is reported as a total only, "
            "without the static (idle) / dynamic split"
        )
    if launch.num_machines > 1 and not launch.main_process_ip:
        warnings.append(
            f"launch.num_machines is {launch.num_machines} but launch.main_process_ip is not set"
        )
    return warnings + resource_warnings(config, cpu_count=cpu_count)
