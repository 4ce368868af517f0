"""The architecture facts FLOPs and bytes are computed from (:class:`ArchSpec`), read from a
Hugging Face model config or, without one, from the recorded ModelInfo.

Families the formulas know are listed in ``KNOWN_FAMILIES``; any other model gets a spec whose
FLOPs fall back to ``2 x parameters`` per token (see ``flops``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from llm_energy_measure.domain import ModelInfo
from llm_energy_measure.exceptions import ConfigurationError

Confidence = Literal["high", "medium", "low"]

GATED_FAMILIES = frozenset(
    {
        "llama",
        "mistral",
        "qwen2",
        "qwen3",
        "gemma",
        "gemma2",
        "gemma3_text",
        "granite",
        "olmo",
        "olmo2",
        "smollm3",
        "cohere",
        "stablelm",
        "phi3",
        "mixtral",
        "qwen2_moe",
        "qwen3_moe",
    }
)
#: Families with a plain two-matrix MLP (up, down) and the usual attention projections.
PLAIN_FAMILIES = frozenset(
    {"gpt2", "gpt_bigcode", "gptj", "gpt_neox", "phi", "opt", "falcon", "bloom", "starcoder2"}
)
KNOWN_FAMILIES = GATED_FAMILIES | PLAIN_FAMILIES


@dataclass(frozen=True)
class ArchSpec:
    """The architecture facts that determine inference FLOPs.

    ``intermediate_size`` is the MLP width of dense layers. For mixture-of-experts models,
    ``num_moe_layers`` layers replace the dense MLP by a router over ``num_experts`` experts of
    width ``expert_intermediate_size``, of which ``experts_per_token`` run per token, plus an
    optional always-on shared expert (``shared_expert_intermediate_size``, with a one-output
    gate when ``shared_expert_gate``). ``embed_proj_dim`` is set when embeddings live in a
    smaller space projected in and out of the hidden size (OPT-350m); the LM head then
    multiplies in that space. ``num_sliding_layers`` layers keep a KV cache of at most
    ``sliding_window`` keys. ``parallel_attention`` and ``tied_embeddings`` are recorded for
    provenance only: they change no FLOPs. Biases are ignored (they are additions).

    ``analytic`` is False for families the formulas do not know: only ``num_parameters`` is
    used then (2 FLOPs per parameter per processed token).
    """

    family: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    gated_mlp: bool
    parallel_attention: bool = False
    tied_embeddings: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    expert_intermediate_size: int = 0
    num_moe_layers: int = 0
    shared_expert_intermediate_size: int = 0
    shared_expert_gate: bool = False
    embed_proj_dim: int | None = None
    sliding_window: int | None = None
    num_sliding_layers: int = 0
    num_parameters: int | None = None
    analytic: bool = True
    confidence: Confidence = "high"

    def __post_init__(self) -> None:
        if not self.analytic:
            if not self.num_parameters or self.num_parameters <= 0:
                raise ValueError("a parameter-estimate ArchSpec needs num_parameters > 0")
            return
        for name in (
            "num_layers",
            "hidden_size",
            "num_heads",
            "num_kv_heads",
            "head_dim",
            "intermediate_size",
            "vocab_size",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"ArchSpec.{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.num_moe_layers <= self.num_layers:
            raise ValueError("ArchSpec.num_moe_layers must lie in [0, num_layers]")
        if self.num_moe_layers and (
            self.num_experts <= 0
            or not 0 < self.experts_per_token <= self.num_experts
            or self.expert_intermediate_size <= 0
        ):
            raise ValueError(
                "ArchSpec with MoE layers needs num_experts > 0, "
                "0 < experts_per_token <= num_experts and expert_intermediate_size > 0"
            )
        if not 0 <= self.num_sliding_layers <= self.num_layers:
            raise ValueError("ArchSpec.num_sliding_layers must lie in [0, num_layers]")
        if self.num_sliding_layers and (self.sliding_window is None or self.sliding_window <= 0):
            raise ValueError("ArchSpec with sliding layers needs sliding_window > 0")

    @classmethod
    def parameter_only(
        cls, family: str, num_parameters: int, confidence: Confidence = "low"
    ) -> ArchSpec:
        """A spec for an unknown family: FLOPs are estimated as 2 x parameters per token."""
        return cls(
            family=family or "unknown",
            num_layers=0,
            hidden_size=0,
            num_heads=0,
            num_kv_heads=0,
            head_dim=0,
            intermediate_size=0,
            vocab_size=0,
            gated_mlp=False,
            num_parameters=num_parameters,
            analytic=False,
            confidence=confidence,
        )

    # --- per-token pieces (FLOPs, integers) -------------------------------------------------

    @property
    def attention_projection_flops(self) -> int:
        """Q, K, V and output projections of one layer, per token."""
        q_dim = self.num_heads * self.head_dim
        kv_dim = self.num_kv_heads * self.head_dim
        return 2 * self.hidden_size * (2 * q_dim + 2 * kv_dim)

    @property
    def dense_mlp_flops(self) -> int:
        """Dense MLP of one layer, per token (3 matrices when gated, else 2)."""
        return _mlp_flops(self.hidden_size, self.intermediate_size, self.gated_mlp)

    @property
    def moe_mlp_flops(self) -> int:
        """Mixture-of-experts block of one layer, per token: router + active experts + shared."""
        h = self.hidden_size
        flops = 2 * h * self.num_experts
        flops += self.experts_per_token * _mlp_flops(
            h, self.expert_intermediate_size, self.gated_mlp
        )
        if self.shared_expert_intermediate_size:
            flops += _mlp_flops(h, self.shared_expert_intermediate_size, self.gated_mlp)
        if self.shared_expert_gate:
            flops += 2 * h
        return flops

    @property
    def linear_flops_per_token(self) -> int:
        """All weight matrices a token passes through, every layer, LM head excluded."""
        dense_layers = self.num_layers - self.num_moe_layers
        flops = self.num_layers * self.attention_projection_flops
        flops += dense_layers * self.dense_mlp_flops
        flops += self.num_moe_layers * self.moe_mlp_flops
        if self.embed_proj_dim:
            flops += 2 * 2 * self.embed_proj_dim * self.hidden_size  # project_in + project_out
        return flops

    @property
    def lm_head_flops_per_position(self) -> int:
        """LM head for one position whose logits are computed."""
        return 2 * (self.embed_proj_dim or self.hidden_size) * self.vocab_size

    @property
    def attention_flops_per_query_key(self) -> int:
        """Score (Q K^T) and value (A V) products of one layer, per (query, key) pair."""
        return 4 * self.num_heads * self.head_dim


def _mlp_flops(hidden_size: int, intermediate_size: int, gated: bool) -> int:
    return (3 if gated else 2) * 2 * hidden_size * intermediate_size


def arch_spec_from_config(hf_config: Any, num_parameters: int | None = None) -> ArchSpec:
    """ArchSpec from a Hugging Face model config (its text decoder for multimodal configs).

    Known families (see ``KNOWN_FAMILIES``) give an analytic spec with confidence ``high``.
    Others fall back to ``2 x num_parameters`` per token (confidence ``low``); that needs
    ``num_parameters`` (raises ValueError without it). A known family whose config lacks a
    required key raises ConfigurationError naming the key.
    """
    cfg = hf_config
    get_text_config = getattr(hf_config, "get_text_config", None)
    if callable(get_text_config):
        cfg = get_text_config(decoder=True)
    model_type = str(getattr(cfg, "model_type", "") or "")
    if model_type not in KNOWN_FAMILIES:
        if num_parameters is None:
            raise ValueError(
                f"architecture '{model_type}' has no analytic FLOPs formula; "
                "pass num_parameters for the parameter estimate"
            )
        return ArchSpec.parameter_only(model_type, num_parameters)

    def get(*names: str, default: Any = None) -> Any:
        for name in names:
            value = getattr(cfg, name, None)
            if value is not None:
                return value
        return default

    def need(*names: str) -> int:
        value = get(*names)
        if value is None:
            raise ConfigurationError(
                f"model config ({model_type}) lacks '{names[0]}', needed for FLOPs; "
                "check the model's config.json"
            )
        return int(value)

    builder = _BUILDERS.get(model_type, _build_standard)
    return builder(model_type, get, need, num_parameters)


Getter = Callable[..., Any]
Needer = Callable[..., int]


def _sliding_layers(get: Getter, num_layers: int) -> tuple[int | None, int]:
    """(window, number of sliding layers) as the Hugging Face DynamicCache decides them."""
    window = get("sliding_window")
    layer_types = get("layer_types")
    if layer_types is not None:
        count = sum(1 for t in layer_types if t == "sliding_attention")
    else:
        count = num_layers if window is not None else 0
    if count == 0:
        return None, 0
    return int(window), count


def _build_standard(
    model_type: str, get: Getter, need: Needer, num_parameters: int | None
) -> ArchSpec:
    """Llama-style configs (hidden_size, num_hidden_layers, ...), dense or mixture-of-experts."""
    hidden = need("hidden_size")
    layers = need("num_hidden_layers")
    heads = need("num_attention_heads")
    kv_heads = int(get("num_key_value_heads", "num_kv_heads", default=heads))
    head_dim = int(get("head_dim", default=hidden // heads))
    window, sliding = _sliding_layers(get, layers)
    moe: dict[str, Any] = {}
    if model_type == "mixtral":
        moe = {
            "num_experts": need("num_local_experts"),
            "experts_per_token": need("num_experts_per_tok"),
            "expert_intermediate_size": need("intermediate_size"),
            "num_moe_layers": layers,
        }
    elif model_type in ("qwen2_moe", "qwen3_moe"):
        experts = int(get("num_experts", default=0))
        step = int(get("decoder_sparse_step", default=1))
        dense_only = set(get("mlp_only_layers", default=[]) or [])
        moe_layers = sum(
            1
            for i in range(layers)
            if experts > 0 and i not in dense_only and step > 0 and (i + 1) % step == 0
        )
        shared = int(get("shared_expert_intermediate_size", default=0))
        moe = {
            "num_experts": experts,
            "experts_per_token": need("num_experts_per_tok"),
            "expert_intermediate_size": need("moe_intermediate_size"),
            "num_moe_layers": moe_layers,
            "shared_expert_intermediate_size": shared,
            "shared_expert_gate": shared > 0,
        }
    return ArchSpec(
        family=model_type,
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=need("intermediate_size"),
        vocab_size=need("vocab_size"),
        gated_mlp=model_type in GATED_FAMILIES,
        parallel_attention=model_type in ("phi", "cohere")
        or bool(get("use_parallel_residual", "parallel_attn", default=False)),
        tied_embeddings=bool(get("tie_word_embeddings", default=False)),
        sliding_window=window,
        num_sliding_layers=sliding,
        num_parameters=num_parameters,
        **moe,
    )


def _build_gpt2_style(
    model_type: str, get: Getter, need: Needer, num_parameters: int | None
) -> ArchSpec:
    """GPT-2, GPT-BigCode (multi-query) and GPT-J: n_embd / n_layer / n_head / n_inner."""
    hidden = need("n_embd", "hidden_size")
    heads = need("n_head", "num_attention_heads")
    kv_heads = 1 if model_type == "gpt_bigcode" and get("multi_query", default=True) else heads
    return ArchSpec(
        family=model_type,
        num_layers=need("n_layer", "num_hidden_layers"),
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=hidden // heads,
        intermediate_size=int(get("n_inner", default=4 * hidden)),
        vocab_size=need("vocab_size"),
        gated_mlp=False,
        parallel_attention=model_type == "gptj",
        tied_embeddings=bool(get("tie_word_embeddings", default=False)),
        num_parameters=num_parameters,
    )


def _build_opt(model_type: str, get: Getter, need: Needer, num_parameters: int | None) -> ArchSpec:
    hidden = need("hidden_size")
    heads = need("num_attention_heads")
    proj = get("word_embed_proj_dim")
    return ArchSpec(
        family=model_type,
        num_layers=need("num_hidden_layers"),
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=need("ffn_dim"),
        vocab_size=need("vocab_size"),
        gated_mlp=False,
        tied_embeddings=bool(get("tie_word_embeddings", default=False)),
        embed_proj_dim=int(proj) if proj is not None and int(proj) != hidden else None,
        num_parameters=num_parameters,
    )


def _build_falcon(
    model_type: str, get: Getter, need: Needer, num_parameters: int | None
) -> ArchSpec:
    hidden = need("hidden_size")
    heads = need("num_attention_heads")
    if get("new_decoder_architecture", default=False):
        kv_heads = int(get("num_kv_heads", default=heads))
    elif get("multi_query", default=True):
        kv_heads = 1
    else:
        kv_heads = heads
    return ArchSpec(
        family=model_type,
        num_layers=need("num_hidden_layers"),
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=hidden // heads,
        intermediate_size=int(get("ffn_hidden_size", default=4 * hidden)),
        vocab_size=need("vocab_size"),
        gated_mlp=False,
        parallel_attention=bool(get("parallel_attn", default=True)),
        tied_embeddings=bool(get("tie_word_embeddings", default=False)),
        num_parameters=num_parameters,
    )


def _build_bloom(
    model_type: str, get: Getter, need: Needer, num_parameters: int | None
) -> ArchSpec:
    hidden = need("hidden_size", "n_embed")
    heads = need("n_head", "num_attention_heads")
    return ArchSpec(
        family=model_type,
        num_layers=need("n_layer", "num_hidden_layers"),
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=heads,
        head_dim=hidden // heads,
        intermediate_size=4 * hidden,
        vocab_size=need("vocab_size"),
        gated_mlp=False,
        tied_embeddings=bool(get("tie_word_embeddings", default=False)),
        num_parameters=num_parameters,
    )


_BUILDERS: dict[str, Callable[[str, Getter, Needer, int | None], ArchSpec]] = {
    "gpt2": _build_gpt2_style,
    "gpt_bigcode": _build_gpt2_style,
    "gptj": _build_gpt2_style,
    "opt": _build_opt,
    "falcon": _build_falcon,
    "bloom": _build_bloom,
}

#: Families whose dense MLP is 4 x hidden when ModelInfo does not record its width.
_DEFAULT_4X_MLP = frozenset({"gpt2", "gpt_bigcode", "gptj", "falcon", "bloom"})
#: Families that ModelInfo cannot describe faithfully (expert routing is not recorded).
_MOE_FAMILIES = frozenset({"mixtral", "qwen2_moe", "qwen3_moe"})


def arch_spec_from_model_info(info: ModelInfo) -> ArchSpec:
    """ArchSpec from the facts recorded in ModelInfo, when the Hugging Face config is absent.

    Confidence is ``medium``: ModelInfo does not record sliding windows (counted as full
    attention: exact up to the window length, an upper bound beyond), nor OPT's embedding
    projection. Mixture-of-experts families and incomplete or unknown ones fall back to the
    parameter estimate (confidence ``low``; for MoE it counts every expert, an overestimate).
    """
    family = info.model_type or ""
    if family not in KNOWN_FAMILIES or family in _MOE_FAMILIES:
        return ArchSpec.parameter_only(family, info.num_parameters or 0)
    hidden = info.hidden_size
    heads = info.num_attention_heads
    intermediate = info.intermediate_size
    if intermediate is None and family in _DEFAULT_4X_MLP and hidden:
        intermediate = 4 * hidden
    if not (hidden and heads and info.num_layers and intermediate and info.vocab_size):
        return ArchSpec.parameter_only(family, info.num_parameters or 0)
    return ArchSpec(
        family=family,
        num_layers=info.num_layers,
        hidden_size=hidden,
        num_heads=heads,
        num_kv_heads=info.num_kv_heads or heads,
        head_dim=info.head_dim or hidden // heads,
        intermediate_size=intermediate,
        vocab_size=info.vocab_size,
        gated_mlp=family in GATED_FAMILIES,
        num_parameters=info.num_parameters,
        confidence="medium",
    )
