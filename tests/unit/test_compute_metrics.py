"""ComputeEstimator (MFU/MBU with known peaks, forward-pass bound) and MemoryWindow peaks."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import Any

import pytest

from llm_energy_measure.core.arch_spec import ArchSpec
from llm_energy_measure.core.compute_metrics import (
    ComputeEstimator,
    active_weight_fraction,
    efficiency,
    min_forward_passes,
)
from llm_energy_measure.core.device_peaks import DevicePeak
from llm_energy_measure.core.memory import MemoryWindow, PeakRssTracker
from llm_energy_measure.core.types import InferenceOutput, LoadedModel, SequenceShape
from llm_energy_measure.domain import FlopsResult, ModelInfo, RequestRecord, Timestamps

H100 = "NVIDIA H100 80GB HBM3"


class TinyModel:
    """Stands in for a Hugging Face model: a config and a forward accepting logits_to_keep."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(
            model_type="llama",
            hidden_size=8,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=4,
            intermediate_size=16,
            vocab_size=32,
        )

    def forward(self, input_ids: Any = None, logits_to_keep: int = 0) -> None:
        return None


def _loaded(dtype: str = "float16", device: str = "cuda:0") -> LoadedModel:
    info = ModelInfo(
        name="tiny",
        source="local",
        model_type="llama",
        num_parameters=500,
        dtype=dtype,
        weight_bytes=1000,
    )
    return LoadedModel(model=TinyModel(), tokenizer=None, info=info, device=device)


def _output(
    sequences: list[SequenceShape], compute_time_s: float = 2.0, num_batches: int = 1
) -> InferenceOutput:
    requests = [
        RequestRecord(request_id=i, cycle=0, input_tokens=s.input_tokens,
                      output_tokens=s.output_tokens, submitted_s=0.0, e2e_s=1.0)
        for i, s in enumerate(sequences)
    ]
    return InferenceOutput(
        requests=requests,
        window=Timestamps(start=0.0, end=5.0, duration_s=5.0),
        compute_time_s=compute_time_s,
        num_batches=num_batches,
    )


def _fake_lookup(flops_per_s: float | None, bandwidth: float) -> Any:
    def lookup(name: str, dtype: str) -> DevicePeak | None:
        return DevicePeak(name, dtype, flops_per_s, bandwidth, "test")

    return lookup


def test_mfu_and_mbu_with_a_fake_peak() -> None:
    # Each (3, 3) sequence costs 14208 FLOPs (see test_flops.test_tiny_spec_by_hand).
    # Two of them in 2.0 s of compute: 28416 / 2 = 14208 FLOP/s; peak 28416 -> MFU 0.5.
    # Bytes: one batch -> 3 forward passes x 1000 weight bytes = 3000; KV reads: each sequence
    # attends over 4 then 5 keys in 2 layers = 18 token-layers x (K+V: 2 x 1 head x 4 x 2 B
    # = 16 B) = 288 B, x 2 sequences = 576. 3576 B / 2 s = 1788 B/s; peak 3576 -> MBU 0.5.
    collector = ComputeEstimator(
        peak_lookup=_fake_lookup(28416.0, 3576.0), gpu_names=lambda loaded: [H100]
    )
    metrics = collector.compute(_loaded(), _output([SequenceShape(3, 3)] * 2))
    assert metrics.flops is not None and metrics.flops.total_flops == 28416
    assert metrics.achieved_flops_per_s == pytest.approx(14208.0)
    assert metrics.mfu == pytest.approx(0.5)
    assert metrics.mbu == pytest.approx(0.5)
    assert metrics.device_name == H100


def test_two_devices_sum_their_peaks() -> None:
    collector = ComputeEstimator(
        peak_lookup=_fake_lookup(28416.0, 3576.0), gpu_names=lambda loaded: [H100, H100]
    )
    metrics = collector.compute(_loaded(), _output([SequenceShape(3, 3)] * 2))
    assert metrics.mfu == pytest.approx(0.25)
    assert metrics.mbu == pytest.approx(0.25)
    assert metrics.device_name == f"2 x {H100}"


def test_real_table_h100_bf16() -> None:
    collector = ComputeEstimator(gpu_names=lambda loaded: [H100])
    metrics = collector.compute(_loaded("bfloat16"), _output([SequenceShape(3, 3)] * 2))
    assert metrics.peak_flops_per_s == pytest.approx(989.4e12)
    assert metrics.peak_memory_bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert metrics.mfu == pytest.approx(14208.0 / 989.4e12)
    assert metrics.mbu == pytest.approx(3576 / 2.0 / 3.35e12)


@pytest.mark.parametrize("names", [["NVIDIA Quadro XYZ"], [H100, "NVIDIA Quadro XYZ"], []])
def test_unknown_device_or_cpu_gives_none_not_zero(names: list[str]) -> None:
    collector = ComputeEstimator(gpu_names=lambda loaded: names)
    metrics = collector.compute(_loaded(), _output([SequenceShape(3, 3)]))
    assert metrics.flops is not None and metrics.flops.total_flops == 14208
    assert metrics.achieved_flops_per_s == pytest.approx(14208 / 2.0)
    assert metrics.mfu is None and metrics.mbu is None
    assert metrics.peak_flops_per_s is None
    assert metrics.peak_memory_bandwidth_bytes_per_s is None


def test_cpu_device_needs_no_torch_and_has_no_peak() -> None:
    metrics = ComputeEstimator().compute(
        _loaded(device="cpu"), _output([SequenceShape(3, 3)])
    )
    assert metrics.mfu is None and metrics.mbu is None and metrics.device_name is None


def test_dtype_without_a_rate_keeps_mbu() -> None:
    collector = ComputeEstimator(gpu_names=lambda loaded: ["Tesla V100-SXM2-32GB"])
    metrics = collector.compute(_loaded("bfloat16"), _output([SequenceShape(3, 3)]))
    assert metrics.mfu is None
    assert metrics.mbu is not None and metrics.mbu > 0


class QuantizedTinyModel(TinyModel):
    """TinyModel as a quantized engine (llama.cpp) holds it: weights in a GGUF type, the KV
    cache in float16."""

    kv_cache_dtype = "float16"


def test_quantized_weights_count_their_stored_bytes_and_the_cache_its_own_dtype() -> None:
    # As test_mfu_and_mbu_with_a_fake_peak, with weights of type Q4_1 whose 1000 bytes are the
    # quantized size: 3 passes x 1000 B + 576 B of float16 KV reads = 3576 B in 2 s -> 0.5.
    info = _loaded().info.model_copy(update={"dtype": "Q4_1"})
    collector = ComputeEstimator(peak_lookup=_fake_lookup(None, 3576.0),
                                 gpu_names=lambda loaded: [H100])
    quantized = LoadedModel(model=QuantizedTinyModel(), tokenizer=None, info=info,
                            device="cuda:0")
    metrics = collector.compute(quantized, _output([SequenceShape(3, 3)] * 2))
    assert metrics.mbu == pytest.approx(0.5) and metrics.mfu is None
    # Without a cache dtype, a dtype of unknown size leaves the KV reads out (a lower bound).
    plain = LoadedModel(model=TinyModel(), tokenizer=None, info=info, device="cuda:0")
    assert collector.compute(plain, _output([SequenceShape(3, 3)] * 2)).mbu == pytest.approx(
        3000 / 2.0 / 3576.0)


def test_window_duration_used_when_compute_time_is_missing() -> None:
    collector = ComputeEstimator(gpu_names=lambda loaded: [])
    metrics = collector.compute(_loaded(), _output([SequenceShape(3, 3)], compute_time_s=0.0))
    assert metrics.achieved_flops_per_s == pytest.approx(14208 / 5.0)


def test_model_without_config_uses_model_info() -> None:
    loaded = _loaded()
    loaded.model = object()
    loaded.info = loaded.info.model_copy(
        update=dict(
            num_layers=2,
            hidden_size=8,
            num_attention_heads=2,
            num_kv_heads=1,
            head_dim=4,
            intermediate_size=16,
            vocab_size=32,
        )
    )
    metrics = ComputeEstimator(gpu_names=lambda loaded: []).compute(
        loaded, _output([SequenceShape(3, 3)])
    )
    assert metrics.flops is not None
    assert metrics.flops.total_flops == 14208
    assert metrics.flops.confidence == "medium"


def test_efficiency_by_hand() -> None:
    flops = FlopsResult(
        total_flops=1e12, prefill_flops=4e11, decode_flops=6e11, method="analytic",
        confidence="high",
    )  # fmt: skip
    peak = DevicePeak("gpu", "bfloat16", 1e12, 1e10, "test")
    metrics = efficiency(flops, 2.0, 1e9, [peak])
    assert metrics.achieved_flops_per_s == pytest.approx(5e11)
    assert metrics.mfu == pytest.approx(0.5)
    assert metrics.mbu == pytest.approx(1e9 / 2.0 / 1e10)
    assert efficiency(flops, 0.0, 1e9, [peak]).mfu is None


def _min_passes_brute_force(lengths: list[int], batches: int) -> int:
    best = None
    for labels in itertools.product(range(batches), repeat=len(lengths)):
        if len(set(labels)) != batches:
            continue
        total = sum(
            max(m for m, b in zip(lengths, labels, strict=True) if b == k) for k in range(batches)
        )
        best = total if best is None else min(best, total)
    assert best is not None
    return best


def test_min_forward_passes_is_the_minimum_over_batchings() -> None:
    # Fixed-length outputs: 4 batches x 32 passes, exactly.
    assert min_forward_passes([SequenceShape(5, 32)] * 16, 4) == 128
    # [5, 3, 2, 8] in 2 batches: {8, 5, 3} + {2} -> 8 + 2 = 10.
    assert min_forward_passes([SequenceShape(1, m) for m in (5, 3, 2, 8)], 2) == 10
    rng = random.Random(3)
    for _ in range(30):
        lengths = [rng.randint(1, 9) for _ in range(rng.randint(1, 6))]
        batches = rng.randint(1, len(lengths))
        shapes = [SequenceShape(1, m) for m in lengths]
        assert min_forward_passes(shapes, batches) == _min_passes_brute_force(lengths, batches)
    assert min_forward_passes([], 3) == 0


def test_moe_reads_only_routed_experts_at_least() -> None:
    spec = ArchSpec(
        "mixtral", 2, 8, 2, 1, 4, 16, 32, True,
        num_experts=4, experts_per_token=1, expert_intermediate_size=10, num_moe_layers=2,
        num_parameters=10_000,
    )  # fmt: skip
    # Unrouted: 2 layers x 3 experts x 3 matrices x 8 x 10 = 1440 of 10,000 parameters.
    assert active_weight_fraction(spec) == pytest.approx(1 - 1440 / 10_000)


# --- memory -------------------------------------------------------------------------------


def test_peak_rss_sees_an_allocation_inside_the_window() -> None:
    pytest.importorskip("psutil")
    import psutil

    size = 256 * 1024 * 1024
    tracker = PeakRssTracker(interval_s=0.02)
    rss_before = psutil.Process().memory_info().rss
    tracker.start()
    block = bytearray(b"\x01") * size  # written, so its pages are resident
    time.sleep(0.15)
    del block
    peak = tracker.stop()
    assert peak is not None
    assert peak >= rss_before + 0.9 * size

    # A window without the allocation peaks well below that.
    tracker.start()
    time.sleep(0.05)
    quiet = tracker.stop()
    assert quiet is not None and quiet < rss_before + 0.5 * size


def test_collector_window_reports_cpu_peak_and_weights() -> None:
    pytest.importorskip("psutil")
    collector = MemoryWindow(model_weights_bytes=1234, devices=[])
    collector.start_window()
    block = bytearray(b"\x01") * (64 * 1024 * 1024)
    time.sleep(0.12)
    stats = collector.stop_window()
    del block
    assert stats.model_weights_bytes == 1234
    assert stats.cpu_peak_rss_bytes is not None
    assert stats.cpu_peak_rss_bytes >= 64 * 1024 * 1024
    assert stats.gpu_peak_allocated_bytes is None  # no CUDA device in use
    assert stats.gpu_unmeasured == "no CUDA device holds memory in this process (CPU run)"
    with pytest.raises(RuntimeError):
        collector.stop_window()


@pytest.mark.gpu
def test_gpu_peak_memory_is_reset_at_window_start() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU")
    big = torch.empty(512 * 1024 * 1024, dtype=torch.uint8, device="cuda:0")
    del big  # the lifetime peak is now >= 512 MiB
    collector = MemoryWindow(devices=["cuda:0"])
    collector.start_window()
    small = torch.empty(64 * 1024 * 1024, dtype=torch.uint8, device="cuda:0")
    stats = collector.stop_window()
    del small
    assert stats.gpu_peak_allocated_bytes is not None
    assert 64 * 1024 * 1024 <= stats.gpu_peak_allocated_bytes < 512 * 1024 * 1024
    assert stats.gpu_peak_reserved_bytes is not None
    assert stats.gpu_peak_reserved_bytes >= stats.gpu_peak_allocated_bytes


def test_importing_the_module_does_not_import_torch() -> None:
    code = (
        "import sys, llm_energy_measure.core.compute_metrics, llm_energy_measure.core.flops, "
        "llm_energy_measure.core.device_peaks; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_compute_on_a_real_model_matches_flop_counter() -> None:
    """Contract test against transformers: spec from the real config, logits_to_keep seen."""
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    from torch.utils.flop_counter import FlopCounterMode

    config = tf.LlamaConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=128,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(config).eval()
    info = ModelInfo(
        name="tiny-llama",
        source="local",
        model_type="llama",
        num_parameters=sum(p.numel() for p in model.parameters()),
        dtype="float32",
        weight_bytes=sum(p.numel() * p.element_size() for p in model.parameters()),
    )
    loaded = LoadedModel(model=model, tokenizer=None, info=info, device="cpu")
    ids = torch.randint(3, 128, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=5,
            min_new_tokens=5,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
    metrics = ComputeEstimator().compute(loaded, _output([SequenceShape(7, 5)] * 2))
    assert metrics.flops is not None
    assert metrics.flops.total_flops == pytest.approx(counter.get_total_flops(), rel=0.01)
    assert metrics.flops.method == "analytic" and metrics.flops.confidence == "high"
    assert metrics.mfu is None  # CPU: no peak


def test_device_map_model_names_every_gpu_holding_parameters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A device_map load is placed "auto": its peaks are those of the GPUs its parameters are
    on (here cuda:0 and cuda:1), so MFU/MBU are reported, not dropped."""
    torch = pytest.importorskip("torch")
    from llm_energy_measure.core.compute_metrics import cuda_device_names

    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"NVIDIA H100 80GB HBM3 #{i}")
    params = [SimpleNamespace(device=SimpleNamespace(type="cuda", index=i)) for i in (1, 0, 1)]
    model = SimpleNamespace(parameters=lambda: iter(params))
    from tests.factories import make_model_info

    loaded = LoadedModel(model=model, tokenizer=None, info=make_model_info(), device="auto")
    assert cuda_device_names(loaded) == ["NVIDIA H100 80GB HBM3 #0", "NVIDIA H100 80GB HBM3 #1"]
    cpu = LoadedModel(model=model, tokenizer=None, info=make_model_info(), device="cpu")
    assert cuda_device_names(cpu) == []
