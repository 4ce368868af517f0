"""Where the weights go and in which form: device, sharding, dtype and BitsAndBytes settings.

Each check raises ConfigurationError naming the setting this machine cannot honour (CUDA,
bitsandbytes, flash-attn, torchrun) before any weights are read.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llm_energy_measure.domain import QuantizationSpec
from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError

if TYPE_CHECKING:
    from llm_energy_measure.config.models import ExperimentConfig, QuantizationConfig


@dataclass(frozen=True)
class Placement:
    """Where the weights go: the device label recorded in LoadedModel and from_pretrained kwargs."""

    device: str  # "cpu", "cuda:N", or "auto" (device_map sharding)
    load_kwargs: dict[str, Any]




def resolve_device(requested: str) -> str:
    """``auto`` -> ``cuda:<local rank>`` when CUDA is available, else ``cpu``.

    ``cuda`` without CUDA raises ConfigurationError. The local rank comes from ``LOCAL_RANK``
    (set by accelerate/torchrun), so each process of a multi-GPU run takes its own GPU.
    """
    import torch

    has_cuda = torch.cuda.is_available()
    if requested == "cpu" or (requested == "auto" and not has_cuda):
        return "cpu"
    if not has_cuda:
        raise ConfigurationError(
            "model.device is 'cuda' but no CUDA GPU is visible to torch; set model.device: "
            "cpu (or auto), or check CUDA_VISIBLE_DEVICES and the torch CUDA build"
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return f"cuda:{local_rank % torch.cuda.device_count()}"


def _distributed_ready() -> bool:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return True
    # Launched by torchrun/accelerate: transformers initialises the process group itself.
    world = os.environ.get("WORLD_SIZE", "")
    return world.isdigit() and int(world) > 1 and "RANK" in os.environ


def resolve_placement(config: ExperimentConfig) -> Placement:
    """Device and ``from_pretrained`` placement kwargs from model.device and sharding."""
    device = resolve_device(config.model.device)
    strategy = config.sharding.strategy
    if strategy == "none":
        kwargs: dict[str, Any] = {} if device == "cpu" else {"device_map": device}
        return Placement(device, kwargs)
    if device == "cpu":
        raise ConfigurationError(
            f"sharding.strategy '{strategy}' splits a model across GPUs but the model is "
            "placed on CPU; set model.device: cuda (or auto on a GPU machine) or "
            "sharding.strategy: none"
        )
    if strategy == "device_map":
        kwargs = {"device_map": "auto"}
        if config.sharding.max_memory:
            kwargs["max_memory"] = {
                int(k) if k.isdigit() else k: v for k, v in config.sharding.max_memory.items()
            }
        return Placement("auto", kwargs)
    # tensor_parallel
    if not _distributed_ready():
        raise ConfigurationError(
            "sharding.strategy 'tensor_parallel' needs torch.distributed: launch with "
            "torchrun --nproc-per-node <num GPUs> (or set sharding.strategy: device_map)"
        )
    try:
        from transformers import DistributedConfig

        return Placement(device, {"distributed_config": DistributedConfig(tp_plan="auto")})
    except ImportError:  # older transformers
        return Placement(device, {"tp_plan": "auto"})


def check_attn_implementation(attn: str, device: str) -> None:
    """flash_attention_2 needs the flash-attn package and a GPU: ConfigurationError otherwise."""
    if attn != "flash_attention_2":
        return
    if importlib.util.find_spec("flash_attn") is None:
        raise ConfigurationError(
            "model.attn_implementation 'flash_attention_2' needs the flash-attn package: "
            "pip install flash-attn --no-build-isolation (or set model.attn_implementation: "
            "sdpa)"
        )
    if device == "cpu":
        raise ConfigurationError(
            "model.attn_implementation 'flash_attention_2' needs a CUDA GPU; set "
            "model.attn_implementation: sdpa for CPU runs"
        )


# --------------------------------------------------------------------------- quantization

_TORCH_DTYPE_NAMES = ("float32", "float16", "bfloat16", "uint8")


def torch_dtype(name: str) -> Any:
    """``"float16"`` -> ``torch.float16`` (float32, float16, bfloat16, uint8)."""
    import torch

    if name not in _TORCH_DTYPE_NAMES:
        raise ConfigurationError(
            f"dtype '{name}' is not supported; use one of {', '.join(_TORCH_DTYPE_NAMES)}"
        )
    return getattr(torch, name)


def bnb_config_kwargs(quant: QuantizationConfig) -> dict[str, Any]:
    """Keyword arguments of ``transformers.BitsAndBytesConfig`` for every quantization field.

    Pure mapping: dtype strings become torch dtypes, everything else passes through.
    """
    return {
        "load_in_4bit": quant.load_in_4bit,
        "load_in_8bit": quant.load_in_8bit,
        "bnb_4bit_compute_dtype": torch_dtype(quant.bnb_4bit_compute_dtype),
        "bnb_4bit_quant_type": quant.bnb_4bit_quant_type,
        "bnb_4bit_use_double_quant": quant.bnb_4bit_use_double_quant,
        "bnb_4bit_quant_storage": torch_dtype(quant.bnb_4bit_quant_storage),
        "llm_int8_threshold": quant.llm_int8_threshold,
        "llm_int8_skip_modules": (
            list(quant.llm_int8_skip_modules) if quant.llm_int8_skip_modules else None
        ),
        "llm_int8_enable_fp32_cpu_offload": quant.llm_int8_enable_fp32_cpu_offload,
        "llm_int8_has_fp16_weight": quant.llm_int8_has_fp16_weight,
    }


def build_bnb_config(quant: QuantizationConfig) -> Any:
    """A ``transformers.BitsAndBytesConfig`` built from every field of ``quant``."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(**bnb_config_kwargs(quant))


def check_quantization_supported(device: str) -> None:
    """BitsAndBytes needs CUDA and the bitsandbytes package: ConfigurationError otherwise."""
    if device == "cpu":
        raise ConfigurationError(
            "quantization (load_in_4bit/load_in_8bit) needs a CUDA GPU and "
            'pip install "llm-energy-measure[quantization]"; disable quantization for CPU runs'
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingExtraError("quantization", "bitsandbytes", "quantization (bitsandbytes)")


def quantization_spec(config: ExperimentConfig) -> QuantizationSpec:
    quant = config.quantization
    if not quant.enabled:
        return QuantizationSpec()
    return QuantizationSpec(
        method="bitsandbytes",
        bits=4 if quant.load_in_4bit else 8,
        details=quant.model_dump(mode="json"),
    )
