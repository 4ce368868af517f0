"""Peak compute and memory bandwidth of accelerators, from the vendors' datasheets.

Figures are DENSE peaks (no 2:4 structured sparsity; datasheets often print the sparse figure,
twice the dense one, with an asterisk) at the boost clock, in FLOP/s (or OP/s for int8) and
bytes/s (1 TB/s = 1e12 bytes/s). They are what MFU and MBU divide by; a device or dtype that is
not in the table gives no peak, so MFU/MBU are left unreported rather than made up.

Dtype keys: ``float32`` is the plain FP32 rate of the CUDA cores (what PyTorch uses for float32
matmuls unless TF32 is enabled); ``tf32`` the TF32 tensor-core rate; ``float16`` and
``bfloat16`` the tensor-core rate with FP32 accumulation (the cuBLAS default PyTorch uses; on
GeForce cards this is half the FP16-accumulate figure); ``float8`` the FP8 tensor-core rate;
``int8`` the INT8 tensor-core rate in OP/s.

Names are matched on the tokens of the name NVML / ``torch.cuda.get_device_name`` report, e.g.
"NVIDIA H100 80GB HBM3" (SXM5), "NVIDIA H100 PCIe", "NVIDIA A100-SXM4-80GB", "Tesla T4",
"NVIDIA GeForce RTX 4090". CPUs are not in the table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from llm_energy_measure.core.dtypes import normalize_dtype

_T = 1e12  # tera
_G = 1e9  # giga

@dataclass(frozen=True)
class DeviceSpec:
    """One accelerator's datasheet peaks. ``flops_per_s`` maps dtype key -> dense peak."""

    name: str
    flops_per_s: Mapping[str, float]
    memory_bandwidth_bytes_per_s: float
    source: str
    required_tokens: frozenset[str]
    forbidden_tokens: frozenset[str] = frozenset()

    def matches(self, tokens: frozenset[str]) -> bool:
        return self.required_tokens <= tokens and not (self.forbidden_tokens & tokens)


@dataclass(frozen=True)
class DevicePeak:
    """Peaks of one device for one dtype.

    ``flops_per_s`` is None when the device has no published rate for that dtype (e.g.
    bfloat16 on a V100): MFU is then not reported, while MBU still is.
    """

    device: str
    dtype: str
    flops_per_s: float | None
    memory_bandwidth_bytes_per_s: float
    source: str


def _spec(
    name: str,
    required: str,
    *,
    fp32: float,
    tf32: float | None,
    fp16: float,
    bf16: float | None,
    int8: float | None,
    fp8: float | None = None,
    bandwidth: float,
    source: str,
    forbidden: str = "",
) -> DeviceSpec:
    """Build a table row; compute figures in TFLOP/s (TOP/s), bandwidth in bytes/s."""
    rates = {
        "float32": fp32,
        "tf32": tf32,
        "float16": fp16,
        "bfloat16": bf16,
        "float8": fp8,
        "int8": int8,
    }
    return DeviceSpec(
        name=name,
        flops_per_s=MappingProxyType({k: v * _T for k, v in rates.items() if v is not None}),
        memory_bandwidth_bytes_per_s=bandwidth,
        source=source,
        required_tokens=frozenset(required.split()),
        forbidden_tokens=frozenset(forbidden.split()),
    )


# Order matters only where one row's tokens are a subset of another's; rows are written so
# that at most one matches a real NVML name.
DEVICE_SPECS: tuple[DeviceSpec, ...] = (
    # NVIDIA H100 Tensor Core GPU datasheet, SXM column: FP32 67 TF; TF32 989 TF*, BF16/FP16
    # 1,979 TF*, FP8 3,958 TF*, INT8 3,958 TOPS* (* with sparsity; dense = half); 80 GB HBM3,
    # 3.35 TB/s. NVML reports it as "NVIDIA H100 80GB HBM3".
    _spec(
        "NVIDIA H100 SXM5 80GB",
        "H100",
        forbidden="PCIE NVL",
        fp32=67,
        tf32=494.7,
        fp16=989.4,
        bf16=989.4,
        fp8=1978.9,
        int8=1978.9,
        bandwidth=3.35 * _T,
        source="NVIDIA H100 datasheet (SXM): BF16 1,979 TFLOPS sparse, 3.35 TB/s",
    ),
    # Same datasheet, PCIe column: FP32 51 TF; TF32 756 TF*, BF16/FP16 1,513 TF*, FP8/INT8
    # 3,026*; 80 GB HBM2e, 2 TB/s.
    _spec(
        "NVIDIA H100 PCIe 80GB",
        "H100 PCIE",
        fp32=51,
        tf32=378,
        fp16=756,
        bf16=756,
        fp8=1513,
        int8=1513,
        bandwidth=2.0 * _T,
        source="NVIDIA H100 datasheet (PCIe): BF16 1,513 TFLOPS sparse, 2 TB/s",
    ),
    # Same datasheet, H100 NVL column (per GPU): FP32 60 TF; TF32 835 TF*, BF16/FP16
    # 1,671 TF*, FP8/INT8 3,341*; 94 GB HBM3, 3.9 TB/s.
    _spec(
        "NVIDIA H100 NVL 94GB",
        "H100 NVL",
        fp32=60,
        tf32=417.5,
        fp16=835.5,
        bf16=835.5,
        fp8=1670.5,
        int8=1670.5,
        bandwidth=3.9 * _T,
        source="NVIDIA H100 datasheet (NVL): BF16 1,671 TFLOPS sparse, 3.9 TB/s",
    ),
    # NVIDIA H200 Tensor Core GPU datasheet, SXM column: same compute as H100 SXM (FP32 67 TF,
    # BF16/FP16 1,979 TF*, FP8/INT8 3,958*); 141 GB HBM3e, 4.8 TB/s. NVML: "NVIDIA H200".
    _spec(
        "NVIDIA H200 SXM 141GB",
        "H200",
        forbidden="NVL",
        fp32=67,
        tf32=494.7,
        fp16=989.4,
        bf16=989.4,
        fp8=1978.9,
        int8=1978.9,
        bandwidth=4.8 * _T,
        source="NVIDIA H200 datasheet (SXM): BF16 1,979 TFLOPS sparse, 4.8 TB/s",
    ),
    # Same datasheet, H200 NVL column: FP32 60 TF; TF32 835*, BF16/FP16 1,671*, FP8/INT8
    # 3,341*; 141 GB HBM3e, 4.8 TB/s.
    _spec(
        "NVIDIA H200 NVL 141GB",
        "H200 NVL",
        fp32=60,
        tf32=417.5,
        fp16=835.5,
        bf16=835.5,
        fp8=1670.5,
        int8=1670.5,
        bandwidth=4.8 * _T,
        source="NVIDIA H200 datasheet (NVL): BF16 1,671 TFLOPS sparse, 4.8 TB/s",
    ),
    # NVIDIA A100 Tensor Core GPU datasheet: FP32 19.5 TF; TF32 156 TF (312*), BF16/FP16
    # 312 TF (624*), INT8 624 TOPS (1,248*) for every form factor. Bandwidth: 40GB PCIe
    # 1,555 GB/s; 80GB PCIe 1,935 GB/s; 40GB SXM 1,555 GB/s; 80GB SXM 2,039 GB/s.
    # NVML: "NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB",
    # "NVIDIA A100 80GB PCIe".
    _spec(
        "NVIDIA A100 SXM4 80GB",
        "A100 80GB",
        forbidden="PCIE",
        fp32=19.5,
        tf32=156,
        fp16=312,
        bf16=312,
        int8=624,
        bandwidth=2039 * _G,
        source="NVIDIA A100 datasheet (80GB SXM): BF16 312 TFLOPS, 2,039 GB/s",
    ),
    _spec(
        "NVIDIA A100 PCIe 80GB",
        "A100 80GB PCIE",
        fp32=19.5,
        tf32=156,
        fp16=312,
        bf16=312,
        int8=624,
        bandwidth=1935 * _G,
        source="NVIDIA A100 datasheet (80GB PCIe): BF16 312 TFLOPS, 1,935 GB/s",
    ),
    _spec(
        "NVIDIA A100 SXM4 40GB",
        "A100 40GB",
        forbidden="PCIE",
        fp32=19.5,
        tf32=156,
        fp16=312,
        bf16=312,
        int8=624,
        bandwidth=1555 * _G,
        source="NVIDIA A100 datasheet (40GB SXM): BF16 312 TFLOPS, 1,555 GB/s",
    ),
    _spec(
        "NVIDIA A100 PCIe 40GB",
        "A100 40GB PCIE",
        fp32=19.5,
        tf32=156,
        fp16=312,
        bf16=312,
        int8=624,
        bandwidth=1555 * _G,
        source="NVIDIA A100 datasheet (40GB PCIe): BF16 312 TFLOPS, 1,555 GB/s",
    ),
    # NVIDIA L40S datasheet: FP32 91.6 TF; TF32 183 (366*), BF16/FP16 362.05 (733*),
    # FP8 733 (1,466*), INT8 733 TOPS (1,466*); 48 GB GDDR6, 864 GB/s.
    _spec(
        "NVIDIA L40S",
        "L40S",
        fp32=91.6,
        tf32=183,
        fp16=362.05,
        bf16=362.05,
        fp8=733,
        int8=733,
        bandwidth=864 * _G,
        source="NVIDIA L40S datasheet: BF16 362.05 TFLOPS dense, 864 GB/s",
    ),
    # NVIDIA L40 datasheet: FP32 90.5 TF; TF32 90.5 (181*), BF16/FP16 181.05 (362.1*),
    # FP8 362 (724*), INT8 362 TOPS (724*); 48 GB GDDR6, 864 GB/s.
    _spec(
        "NVIDIA L40",
        "L40",
        fp32=90.5,
        tf32=90.5,
        fp16=181.05,
        bf16=181.05,
        fp8=362,
        int8=362,
        bandwidth=864 * _G,
        source="NVIDIA L40 datasheet: BF16 181.05 TFLOPS dense, 864 GB/s",
    ),
    # NVIDIA L4 datasheet: FP32 30.3 TF; TF32 60 (120*), BF16/FP16 121 (242*), FP8 242.5
    # (485*), INT8 242.5 TOPS (485*); 24 GB GDDR6, 300 GB/s.
    _spec(
        "NVIDIA L4",
        "L4",
        fp32=30.3,
        tf32=60,
        fp16=121,
        bf16=121,
        fp8=242.5,
        int8=242.5,
        bandwidth=300 * _G,
        source="NVIDIA L4 datasheet: BF16 121 TFLOPS dense, 300 GB/s",
    ),
    # NVIDIA A10 datasheet: FP32 31.2 TF; TF32 62.5 (125*), BF16/FP16 125 (250*), INT8 250
    # TOPS (500*); 24 GB GDDR6, 600 GB/s.
    _spec(
        "NVIDIA A10",
        "A10",
        fp32=31.2,
        tf32=62.5,
        fp16=125,
        bf16=125,
        int8=250,
        bandwidth=600 * _G,
        source="NVIDIA A10 datasheet: BF16 125 TFLOPS dense, 600 GB/s",
    ),
    # NVIDIA V100 datasheet: SXM2 FP32 15.7 TF, tensor (FP16 in, FP32 accumulate) 125 TF;
    # PCIe FP32 14 TF, tensor 112 TF; 900 GB/s HBM2. No TF32, BF16 or INT8 tensor cores.
    _spec(
        "NVIDIA V100 SXM2",
        "V100 SXM2",
        fp32=15.7,
        tf32=None,
        fp16=125,
        bf16=None,
        int8=None,
        bandwidth=900 * _G,
        source="NVIDIA V100 datasheet (SXM2): tensor 125 TFLOPS, 900 GB/s",
    ),
    _spec(
        "NVIDIA V100 PCIe",
        "V100 PCIE",
        fp32=14,
        tf32=None,
        fp16=112,
        bf16=None,
        int8=None,
        bandwidth=900 * _G,
        source="NVIDIA V100 datasheet (PCIe): tensor 112 TFLOPS, 900 GB/s",
    ),
    # NVIDIA V100S datasheet: FP32 16.4 TF, tensor 130 TF; 32 GB HBM2, 1,134 GB/s.
    _spec(
        "NVIDIA V100S PCIe",
        "V100S",
        fp32=16.4,
        tf32=None,
        fp16=130,
        bf16=None,
        int8=None,
        bandwidth=1134 * _G,
        source="NVIDIA V100S datasheet: tensor 130 TFLOPS, 1,134 GB/s",
    ),
    # NVIDIA T4 datasheet: FP32 8.1 TF, mixed precision (FP16/FP32) 65 TF, INT8 130 TOPS;
    # 16 GB GDDR6 on a 256-bit bus at 10 Gbps = 320 GB/s (NVIDIA lists "320+ GB/s").
    _spec(
        "NVIDIA T4",
        "T4",
        fp32=8.1,
        tf32=None,
        fp16=65,
        bf16=None,
        int8=130,
        bandwidth=320 * _G,
        source="NVIDIA T4 datasheet: FP16 65 TFLOPS, 320 GB/s",
    ),
    # NVIDIA Ada Lovelace architecture whitepaper, RTX 4090: FP32 82.6 TF; TF32 82.6 (165.2*);
    # FP16/BF16 tensor with FP32 accumulate 165.2 (330.4*); FP8 (FP32 accumulate) 330.3
    # (660.6*); INT8 660.6 TOPS (1,321.2*); 24 GB GDDR6X, 1,008 GB/s.
    _spec(
        "NVIDIA GeForce RTX 4090",
        "RTX 4090",
        forbidden="D LAPTOP MOBILE",
        fp32=82.6,
        tf32=82.6,
        fp16=165.2,
        bf16=165.2,
        fp8=330.3,
        int8=660.6,
        bandwidth=1008 * _G,
        source="NVIDIA Ada whitepaper (RTX 4090): FP16/FP32-acc 165.2 TFLOPS, 1,008 GB/s",
    ),
    # NVIDIA Ampere GA102 architecture whitepaper, RTX 3090: FP32 35.6 TF; TF32 35.6 (71*);
    # FP16/BF16 tensor with FP32 accumulate 71 (142*); INT8 284 TOPS (568*); 24 GB GDDR6X,
    # 936 GB/s.
    _spec(
        "NVIDIA GeForce RTX 3090",
        "RTX 3090",
        forbidden="TI LAPTOP MOBILE",
        fp32=35.6,
        tf32=35.6,
        fp16=71,
        bf16=71,
        int8=284,
        bandwidth=936 * _G,
        source="NVIDIA GA102 whitepaper (RTX 3090): FP16/FP32-acc 71 TFLOPS, 936 GB/s",
    ),
)

#: Memory-only rows: parts whose compute peaks NVIDIA does not publish. MBU is reported for
#: them, MFU is not. The A10G (AWS G5) shares the A10's 24 GB GDDR6 at 600 GB/s but runs at
#: different clocks, so the A10's compute figures do not apply.
MEMORY_ONLY_SPECS: tuple[DeviceSpec, ...] = (
    DeviceSpec(
        name="NVIDIA A10G",
        flops_per_s=MappingProxyType({}),
        memory_bandwidth_bytes_per_s=600 * _G,
        source="AWS G5 / NVIDIA A10G: 24 GB GDDR6, 600 GB/s; compute peaks unpublished",
        required_tokens=frozenset({"A10G"}),
    ),
)


def _tokens(device_name: str) -> frozenset[str]:
    return frozenset(t for t in re.split(r"[^A-Z0-9]+", device_name.upper()) if t)


def find_device(device_name: str) -> DeviceSpec | None:
    """The table row for a device name as NVML reports it, or None when unknown (CPUs too)."""
    tokens = _tokens(device_name)
    if not tokens:
        return None
    for spec in DEVICE_SPECS + MEMORY_ONLY_SPECS:
        if spec.matches(tokens):
            return spec
    return None


def lookup_peak(device_name: str, dtype: str) -> DevicePeak | None:
    """Dense peak FLOP/s for ``dtype`` and memory bandwidth of the named device.

    None when the device is not in the table (MFU and MBU are then not reported). A known
    device without a published rate for ``dtype`` gives ``flops_per_s=None``.
    """
    spec = find_device(device_name)
    if spec is None:
        return None
    key = normalize_dtype(dtype)
    return DevicePeak(
        device=spec.name,
        dtype=key,
        flops_per_s=spec.flops_per_s.get(key),
        memory_bandwidth_bytes_per_s=spec.memory_bandwidth_bytes_per_s,
        source=spec.source,
    )
