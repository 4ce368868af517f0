"""What was measured: the model and its quantization."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from llm_energy_measure.domain.base import Count, FrozenModel


class QuantizationSpec(FrozenModel):
    """How the weights are quantized (``none`` for full/half precision); ``vllm``: one of
    vLLM's quantization methods, named in ``details["method"]``."""

    method: Literal["none", "bitsandbytes", "gguf", "vllm"] = "none"
    bits: int | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class ModelInfo(FrozenModel):
    """Architecture facts of the loaded model, used for FLOPs and reporting."""

    name: str
    #: ``endpoint``: a model served elsewhere whose files this host cannot read: its
    #: architecture and sizes are then null.
    source: Literal["hub", "local", "builtin", "gguf", "endpoint"]
    revision: str | None = None
    architecture: str | None = None
    model_type: str | None = None
    num_parameters: Count | None
    num_layers: int | None = None
    hidden_size: int | None = None
    num_attention_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    max_position_embeddings: int | None = None
    dtype: str
    weight_bytes: Count | None
    quantization: QuantizationSpec = QuantizationSpec()
    random_weights: bool = False
    attn_implementation: str | None = None
    #: How the weights were split across devices: ``none``, ``device_map`` (accelerate's big
    #: model inference, with the devices used) or ``tensor_parallel``; None when unknown.
    sharding: str | None = None
