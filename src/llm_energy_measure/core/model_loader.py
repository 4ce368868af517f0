"""Loading a model and its tokenizer as the config says, and describing what was loaded.

Which names are accepted is described in ``model_source``; where the weights go and in which
form (device, sharding, dtype, BitsAndBytes) in ``placement``.

GGUF weights are dequantized by transformers into ``model.precision`` on load, so compute,
memory and energy are those of that precision, not of GGUF quantized kernels; the loader
records this as a warning.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

from llm_energy_measure.core.model_source import (
    GGUF_PREFIX,
    TOKENIZER_FILES,
    ModelSource,
    cached_hub_file,
    gguf_bits,
    gguf_file_type,
    hub_commit,
    resolve_model_source,
)
from llm_energy_measure.core.placement import (
    Placement,
    build_bnb_config,
    check_attn_implementation,
    check_quantization_supported,
    quantization_spec,
    resolve_placement,
    torch_dtype,
)
from llm_energy_measure.domain import MeasurementWarning, ModelInfo, QuantizationSpec
from llm_energy_measure.exceptions import (
    ConfigurationError,
    MissingExtraError,
    ModelLoadError,
    is_out_of_memory,
)

if TYPE_CHECKING:
    from llm_energy_measure.config.models import ExperimentConfig, ModelConfig
    from llm_energy_measure.core.types import LoadedModel

# --------------------------------------------------------------------------- model facts


def count_parameters(model: Any) -> int:
    """Number of parameters; tied weights counted once.

    BitsAndBytes 4-bit parameters are stored packed (two values per byte); their logical count
    comes from the shape kept in their ``quant_state``.
    """
    total = 0
    for param in model.parameters():
        shape = getattr(getattr(param, "quant_state", None), "shape", None)
        total += math.prod(shape) if shape is not None else int(param.numel())
    return total


def weight_bytes(model: Any) -> int:
    """Bytes of all parameters and buffers as stored in memory (packed when quantized)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(int(t.numel()) * int(t.element_size()) for t in tensors)


def _dtype_name(model: Any) -> str:
    dtype = getattr(model, "dtype", None)
    if dtype is None:
        dtype = next(iter(model.parameters())).dtype
    return str(dtype).removeprefix("torch.")


def describe_model(
    model: Any,
    *,
    name: str,
    source: ModelSource,
    quantization: QuantizationSpec,
    revision: str | None,
) -> ModelInfo:
    """Architecture facts and sizes of a loaded transformers model."""
    cfg = model.config
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    heads = getattr(text, "num_attention_heads", None)
    hidden = getattr(text, "hidden_size", None)
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None)
    if head_dim is None and heads and hidden:
        head_dim = hidden // heads
    return ModelInfo(
        name=name,
        source=source.kind,
        revision=revision,
        architecture=type(model).__name__,
        model_type=getattr(text, "model_type", None) or getattr(cfg, "model_type", None),
        num_parameters=count_parameters(model),
        num_layers=getattr(text, "num_hidden_layers", None),
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=getattr(text, "intermediate_size", None),
        vocab_size=getattr(text, "vocab_size", None),
        max_position_embeddings=getattr(text, "max_position_embeddings", None),
        dtype=_dtype_name(model),
        weight_bytes=weight_bytes(model),
        quantization=quantization,
        random_weights=source.random_weights,
        attn_implementation=getattr(cfg, "_attn_implementation", None),
    )


def sharding_label(strategy: str, model: Any) -> str:
    """How the weights were placed, for the result: the strategy, and for ``device_map`` the
    devices accelerate put modules on (``device_map:0,1``, from ``model.hf_device_map``)."""
    if strategy != "device_map":
        return strategy
    placed = getattr(model, "hf_device_map", None) or {}
    devices = sorted({str(d) for d in placed.values()}, key=lambda d: (not d.isdigit(), d))
    return f"device_map:{','.join(devices)}" if devices else "device_map"


# --------------------------------------------------------------------------- loading


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_tokenizer(source: ModelSource, model_cfg: ModelConfig, display: str) -> Any:
    from transformers import AutoTokenizer

    if source.kind in ("local", "builtin"):
        folder = Path(source.location)
        if not any((folder / f).is_file() for f in TOKENIZER_FILES):
            raise ModelLoadError(
                f"model folder '{folder}' has no tokenizer (tokenizer.json or "
                "tokenizer_config.json); save the tokenizer beside the model with "
                "tokenizer.save_pretrained"
            )
    kwargs: dict[str, Any] = {"trust_remote_code": model_cfg.trust_remote_code}
    if source.gguf_file is not None:
        kwargs["gguf_file"] = source.gguf_file
    if source.hub_repo is not None and source.revision is not None:
        kwargs["revision"] = source.revision
    try:
        return AutoTokenizer.from_pretrained(source.location, **kwargs)
    except ImportError as exc:
        raise ConfigurationError(
            f"loading the tokenizer of '{display}' needs a missing package: {_first_line(exc)}"
        ) from exc
    except Exception as exc:
        raise ModelLoadError(
            f"cannot load the tokenizer of '{display}' from '{source.location}': "
            f"{_first_line(exc)}"
        ) from exc


def prepare_tokenizer(tokenizer: Any, display: str) -> list[MeasurementWarning]:
    """Left padding and a pad token (EOS when the tokenizer has none)."""
    notes: list[MeasurementWarning] = []
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelLoadError(
                f"the tokenizer of '{display}' has neither a pad nor an EOS token; batched "
                "generation needs one of them"
            )
        tokenizer.pad_token = tokenizer.eos_token
        notes.append(MeasurementWarning(
            code="pad_token_is_eos", severity="info",
            message=f"tokenizer of {display} has no pad token: EOS ({tokenizer.eos_token!r}) is "
                    "used for padding; output tokens are counted up to the first EOS"))
    return notes


def _load_weights(
    source: ModelSource, config: ExperimentConfig, placement: Placement, display: str
) -> Any:
    from transformers import AutoModelForCausalLM

    mc = config.model
    kwargs: dict[str, Any] = dict(placement.load_kwargs)
    kwargs["dtype"] = torch_dtype(mc.precision)
    kwargs["trust_remote_code"] = mc.trust_remote_code
    kwargs["attn_implementation"] = mc.attn_implementation
    if source.gguf_file is not None:
        kwargs["gguf_file"] = source.gguf_file
    if source.hub_repo is not None and source.revision is not None:
        kwargs["revision"] = source.revision
    if config.quantization.enabled:
        kwargs["quantization_config"] = build_bnb_config(config.quantization)
    try:
        return AutoModelForCausalLM.from_pretrained(source.location, **kwargs)
    except ImportError as exc:
        raise ConfigurationError(
            f"loading '{display}' needs a missing package: {_first_line(exc)}"
        ) from exc
    except Exception as exc:
        if is_out_of_memory(exc):
            raise ModelLoadError(
                f"out of memory while loading '{display}' in {mc.precision} on "
                f"{placement.device}: use a lower model.precision (float16/bfloat16), "
                "quantization.load_in_4bit/load_in_8bit, or sharding.strategy: device_map"
            ) from exc
        raise ModelLoadError(f"cannot load model '{display}': {_first_line(exc)}") from exc


def quiet_transformers() -> None:
    """Turn off transformers' own progress bars: our CLI shows its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_model_tokenizer(config: ExperimentConfig) -> LoadedModel:
    """Load the model and tokenizer that ``config.model`` names, placed and quantized as asked.

    The tokenizer pads on the left and always has a pad token. Raises ConfigurationError for
    settings this machine cannot honour (CUDA, bitsandbytes, flash-attn, torchrun) and
    ModelLoadError when the model or tokenizer cannot be found or loaded.
    """
    from llm_energy_measure.core.types import LoadedModel

    quiet_transformers()
    mc = config.model
    display = mc.name
    if config.quantization.enabled and (mc.gguf_file or mc.name.lower().endswith(".gguf")
                                        or mc.name.startswith(GGUF_PREFIX)):
        raise ConfigurationError(
            "quantization (bitsandbytes) cannot be combined with a GGUF model: GGUF weights are "
            "already quantized; disable quantization or load a non-GGUF model"
        )
    placement = resolve_placement(config)
    check_attn_implementation(mc.attn_implementation, placement.device)
    if config.quantization.enabled:
        check_quantization_supported(placement.device)
    source = resolve_model_source(mc)
    if source.gguf_file is not None and importlib.util.find_spec("gguf") is None:
        raise MissingExtraError("gguf", "gguf", "loading GGUF files")

    tokenizer = _load_tokenizer(source, mc, display)
    warnings = prepare_tokenizer(tokenizer, display)
    model = _load_weights(source, config, placement, display)
    model.eval()
    gen_cfg = getattr(model, "generation_config", None)
    if gen_cfg is not None and gen_cfg.pad_token_id is None:
        gen_cfg.pad_token_id = tokenizer.pad_token_id

    quant = quantization_spec(config)
    if source.gguf_file is not None:
        gguf_path = source.gguf_path
        if gguf_path is None and source.hub_repo is not None:  # downloaded by the load
            gguf_path = cached_hub_file(source.hub_repo, source.gguf_file, source.revision)
        file_type = gguf_file_type(gguf_path, source.gguf_file)
        dtype = _dtype_name(model)
        quant = QuantizationSpec(
            method="gguf",
            bits=gguf_bits(file_type),
            details={"gguf_file": source.gguf_file, "file_type": file_type,
                     "dequantized_to": dtype},
        )
        warnings.append(MeasurementWarning(
            code="gguf_dequantized",
            message=f"GGUF weights ({file_type or 'unknown type'}) were dequantized to {dtype} "
                    f"on load: compute, memory and energy are those of {dtype} inference, not "
                    "of GGUF quantized kernels"))
    revision = source.revision
    if source.hub_repo is not None:
        filename = source.gguf_file or "config.json"
        revision = hub_commit(source.hub_repo, filename, source.revision) or revision
    info = describe_model(
        model, name=display, source=source, quantization=quant, revision=revision
    ).model_copy(update={"sharding": sharding_label(config.sharding.strategy, model)})
    logger.info(
        f"loaded {display} ({info.architecture}, "
        f"{(info.num_parameters or 0) / 1e6:.1f} M parameters, "
        f"{info.dtype}) on {placement.device}"
    )
    return LoadedModel(
        model=model, tokenizer=tokenizer, info=info, device=placement.device, warnings=warnings
    )
