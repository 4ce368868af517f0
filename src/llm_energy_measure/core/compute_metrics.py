"""Compute efficiency of a workload (FLOPs, MFU, MBU).

``ComputeEstimator`` implements ``protocols.ComputeEstimator``. Torch is imported only
inside the functions that touch the GPU, and only when the caller already imported it, so this
module stays cheap to import.

Definitions (see also ``core.flops``):

- achieved FLOP/s = analytic FLOPs of the workload / ``InferenceOutput.compute_time_s`` (the
  time spent inside generate calls, the denominator of throughput; the window duration when
  that is not positive).
- MFU = achieved FLOP/s / dense peak FLOP/s of the devices holding the model (summed when the
  model is sharded over several), for the model's compute dtype.
- MBU = bytes that decoding must read / time / peak memory bandwidth. Bytes = weight bytes x
  forward passes + KV-cache bytes read by the decode steps. It is meant as a conservative
  figure: the forward passes are the fewest any split of the sequences into ``num_batches``
  batches needs, the time includes prefill and host overhead, and activations and cache
  writes are not counted. Caveat: weight bytes include the whole input-embedding table, of
  which a decode step reads only a few rows, so for models with a large untied embedding the
  figure can overstate the bytes read by a few percent. Weight bytes are as stored: for a
  quantized model (GGUF run by llama.cpp) the quantized bytes, which is what decoding reads;
  KV-cache reads are counted in the cache's element type (``kv_cache_dtype`` of the loaded
  model when it has one, else the model's dtype).
- MFU and MBU are None (never zero) when the device or its peak is unknown, CPUs included.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from llm_energy_measure.core.arch_spec import (
    ArchSpec,
    arch_spec_from_config,
    arch_spec_from_model_info,
)
from llm_energy_measure.core.device_peaks import DevicePeak, lookup_peak
from llm_energy_measure.core.dtypes import dtype_bytes, normalize_dtype
from llm_energy_measure.core.flops import PrefillLogits, decode_layer_keys, estimate_flops
from llm_energy_measure.core.timing import uses_cuda
from llm_energy_measure.core.types import InferenceOutput, LoadedModel, SequenceShape
from llm_energy_measure.domain import ComputeMetrics, FlopsResult, ModelInfo
from llm_energy_measure.exceptions import ConfigurationError

PeakLookup = Callable[[str, str], DevicePeak | None]
GpuNames = Callable[[LoadedModel], list[str]]


# --- MFU / MBU -------------------------------------------------------------------------------


def min_forward_passes(sequences: Sequence[SequenceShape], num_batches: int) -> int:
    """Fewest forward passes that generating ``sequences`` in ``num_batches`` batches needs.

    A batch runs as many passes (1 prefill + decode steps) as its longest output. Over every
    split into ``num_batches`` non-empty batches, the smallest total is the longest output
    plus the ``num_batches - 1`` shortest (those as singletons, the rest in one batch). It is
    exact when all outputs have the same length (fixed-length benchmarking).
    """
    lengths = sorted(s.output_tokens for s in sequences if s.output_tokens > 0)
    if not lengths:
        return 0
    batches = max(1, min(num_batches, len(lengths)))
    return lengths[-1] + sum(lengths[: batches - 1])


def kv_bytes_per_token_layer(spec: ArchSpec, element_bytes: int) -> int:
    """Bytes of one token's K and V in one layer's cache."""
    return 2 * spec.num_kv_heads * spec.head_dim * element_bytes


def active_weight_fraction(spec: ArchSpec) -> float:
    """Fraction of the weights a forward pass must read at least.

    1 for dense models. For mixture-of-experts models the experts a token does not route to
    need not be read, so the unrouted experts' share of ``num_parameters`` is left out.
    """
    if not spec.num_moe_layers or not spec.num_parameters:
        return 1.0
    per_expert = (3 if spec.gated_mlp else 2) * spec.hidden_size * spec.expert_intermediate_size
    unused = spec.num_moe_layers * (spec.num_experts - spec.experts_per_token) * per_expert
    return max(0.0, 1.0 - unused / spec.num_parameters)


def decode_bytes_lower_bound(
    spec: ArchSpec,
    sequences: Sequence[SequenceShape],
    num_batches: int,
    weight_bytes: int,
    kv_element_bytes: int | None,
) -> float:
    """Bytes generation must read from device memory, at least (see module docstring).

    KV-cache reads are left out when ``kv_element_bytes`` is None or the spec is not analytic,
    which keeps the figure a lower bound.
    """
    passes = min_forward_passes(sequences, num_batches)
    total = weight_bytes * active_weight_fraction(spec) * passes
    if kv_element_bytes and spec.analytic:
        keys = sum(decode_layer_keys(spec, s.input_tokens, s.output_tokens) for s in sequences)
        total += keys * kv_bytes_per_token_layer(spec, kv_element_bytes)
    return float(total)


def efficiency(
    flops: FlopsResult,
    duration_s: float,
    bytes_read: float | None,
    peaks: Sequence[DevicePeak | None],
    device_name: str | None = None,
) -> ComputeMetrics:
    """Achieved FLOP/s, MFU and MBU of a workload against the summed peaks of its devices.

    ``peaks`` has one entry per device holding the model; any None (unknown device) leaves
    MFU and MBU unreported, as does an empty list (CPU). ``bytes_read`` None leaves MBU out.
    """
    achieved = flops.total_flops / duration_s if duration_s > 0 else None
    known = [p for p in peaks if p is not None]
    all_known = bool(peaks) and len(known) == len(peaks)
    peak_flops: float | None = None
    bandwidth: float | None = None
    if all_known:
        rates = [p.flops_per_s for p in known]
        if all(r is not None for r in rates):
            peak_flops = sum(r for r in rates if r is not None)
        bandwidth = sum(p.memory_bandwidth_bytes_per_s for p in known)
    mfu = achieved / peak_flops if achieved is not None and peak_flops else None
    mbu = None
    if bytes_read is not None and bandwidth and duration_s > 0:
        mbu = bytes_read / duration_s / bandwidth
    return ComputeMetrics(
        flops=flops,
        achieved_flops_per_s=achieved,
        peak_flops_per_s=peak_flops,
        mfu=mfu,
        peak_memory_bandwidth_bytes_per_s=bandwidth,
        mbu=mbu,
        device_name=device_name,
    )


# --- helpers that look at the loaded model --------------------------------------------------


def arch_spec_for(model: Any, info: ModelInfo) -> ArchSpec:
    """ArchSpec from the model's own config when it has one, else from ModelInfo."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "model_type", None):
        try:
            return arch_spec_from_config(config, num_parameters=info.num_parameters)
        except (ConfigurationError, ValueError, TypeError):
            pass  # a config we cannot read: ModelInfo still gives a (less certain) answer
    return arch_spec_from_model_info(info)


def prefill_logits_mode(model: Any) -> PrefillLogits:
    """Prefill logits mode: "last" when generate can ask for last-position logits only."""
    import inspect

    forward = getattr(model, "forward", None)
    if forward is None:
        return "last"
    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return "last"
    return "last" if "logits_to_keep" in params else "all"


def _torch_if_loaded() -> Any | None:
    """The torch module if this process already imported it (never imports it)."""
    return sys.modules.get("torch")


def matmul_dtype(dtype: str) -> str:
    """Dtype key the matmuls run in: float32 becomes tf32 when torch allows TF32 matmuls."""
    key = normalize_dtype(dtype)
    torch = _torch_if_loaded()
    if key == "float32" and torch is not None:
        try:
            if torch.backends.cuda.matmul.allow_tf32:
                return "tf32"
        except AttributeError:
            pass
    return key


def cuda_device_names(loaded: LoadedModel) -> list[str]:
    """Names of the CUDA devices holding the model's parameters (all of them for a
    ``device_map`` model, placed ``auto``); empty on CPU."""
    if not uses_cuda(loaded.device):
        return []
    import torch

    indices: set[int] = set()
    parameters = getattr(loaded.model, "parameters", None)
    if callable(parameters):
        for p in parameters():
            if p.device.type == "cuda":
                indices.add(p.device.index if p.device.index is not None else 0)
    if not indices and loaded.device.startswith("cuda"):
        device = torch.device(loaded.device)
        indices.add(device.index if device.index is not None else torch.cuda.current_device())
    return [torch.cuda.get_device_name(i) for i in sorted(indices)]


def _describe_devices(names: Sequence[str]) -> str | None:
    if not names:
        return None
    if len(set(names)) == 1:
        return names[0] if len(names) == 1 else f"{len(names)} x {names[0]}"
    return " + ".join(names)


# --- the estimator --------------------------------------------------------------------------


class ComputeEstimator:
    """Compute efficiency of a workload: analytic FLOPs, achieved FLOP/s, MFU and MBU.

    ``peak_lookup`` and ``gpu_names`` are injectable for tests.
    """

    def __init__(
        self, *, peak_lookup: PeakLookup = lookup_peak, gpu_names: GpuNames = cuda_device_names
    ) -> None:
        self._peak_lookup = peak_lookup
        self._gpu_names = gpu_names

    def compute(self, loaded: LoadedModel, output: InferenceOutput) -> ComputeMetrics:
        """FLOPs of the generated sequences, achieved FLOP/s, MFU and MBU (module docstring)."""
        spec = arch_spec_for(loaded.model, loaded.info)
        flops = estimate_flops(spec, output.sequences, prefill_logits_mode(loaded.model))
        duration_s = output.compute_time_s
        if duration_s <= 0:
            duration_s = output.window.duration_s
        names = self._gpu_names(loaded)
        dtype = matmul_dtype(loaded.info.dtype)
        peaks = [self._peak_lookup(name, dtype) for name in names]
        # An engine whose KV cache is not in the weights' dtype (llama.cpp: quantized weights,
        # float16 cache) says so on its model object.
        kv_dtype = getattr(loaded.model, "kv_cache_dtype", None)
        element_bytes = dtype_bytes(kv_dtype if isinstance(kv_dtype, str) else loaded.info.dtype)
        bytes_read = decode_bytes_lower_bound(
            spec, output.sequences, output.num_batches, loaded.info.weight_bytes or 0,
            element_bytes,
        )
        return efficiency(flops, duration_s, bytes_read, peaks, _describe_devices(names))
