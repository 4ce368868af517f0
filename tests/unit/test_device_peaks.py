"""Device peak table: NVML name matching and datasheet figures."""

from __future__ import annotations

import pytest

from llm_energy_measure.core.device_peaks import DEVICE_SPECS, find_device, lookup_peak
from llm_energy_measure.core.dtypes import dtype_bytes, normalize_dtype

T = 1e12


@pytest.mark.parametrize(
    ("nvml_name", "dtype", "flops_per_s", "bandwidth_bytes_per_s"),
    [
        ("NVIDIA H100 80GB HBM3", "bfloat16", 989.4 * T, 3.35e12),
        ("NVIDIA H100 80GB HBM3", "torch.float16", 989.4 * T, 3.35e12),
        ("NVIDIA H100 PCIe", "bf16", 756 * T, 2.0e12),
        ("NVIDIA H100 NVL", "bfloat16", 835.5 * T, 3.9e12),
        ("NVIDIA H200", "bfloat16", 989.4 * T, 4.8e12),
        ("NVIDIA H200 NVL", "bfloat16", 835.5 * T, 4.8e12),
        ("NVIDIA A100-SXM4-80GB", "bfloat16", 312 * T, 2039e9),
        ("NVIDIA A100-SXM4-40GB", "float16", 312 * T, 1555e9),
        ("NVIDIA A100 80GB PCIe", "bfloat16", 312 * T, 1935e9),
        ("NVIDIA A100-PCIE-40GB", "tf32", 156 * T, 1555e9),
        ("NVIDIA A100-SXM4-80GB", "float32", 19.5 * T, 2039e9),
        ("NVIDIA A100-SXM4-80GB", "int8", 624 * T, 2039e9),
        ("NVIDIA L40S", "bfloat16", 362.05 * T, 864e9),
        ("NVIDIA L40", "bfloat16", 181.05 * T, 864e9),
        ("NVIDIA L4", "float16", 121 * T, 300e9),
        ("NVIDIA A10", "float16", 125 * T, 600e9),
        ("Tesla V100-SXM2-16GB", "float16", 125 * T, 900e9),
        ("Tesla V100-PCIE-32GB", "float16", 112 * T, 900e9),
        ("Tesla V100S-PCIE-32GB", "float16", 130 * T, 1134e9),
        ("Tesla T4", "float16", 65 * T, 320e9),
        ("NVIDIA GeForce RTX 4090", "bfloat16", 165.2 * T, 1008e9),
        ("NVIDIA GeForce RTX 3090", "float16", 71 * T, 936e9),
    ],
)
def test_known_devices(
    nvml_name: str, dtype: str, flops_per_s: float, bandwidth_bytes_per_s: float
) -> None:
    peak = lookup_peak(nvml_name, dtype)
    assert peak is not None
    assert peak.flops_per_s == pytest.approx(flops_per_s)
    assert peak.memory_bandwidth_bytes_per_s == pytest.approx(bandwidth_bytes_per_s)
    assert peak.source


def test_similar_names_resolve_to_different_rows() -> None:
    names = {
        "NVIDIA H100 80GB HBM3": "NVIDIA H100 SXM5 80GB",
        "NVIDIA H100 PCIe": "NVIDIA H100 PCIe 80GB",
        "NVIDIA L40S": "NVIDIA L40S",
        "NVIDIA L40": "NVIDIA L40",
        "NVIDIA L4": "NVIDIA L4",
        "NVIDIA A10": "NVIDIA A10",
        "NVIDIA A10G": "NVIDIA A10G",
    }
    for nvml_name, row in names.items():
        spec = find_device(nvml_name)
        assert spec is not None and spec.name == row, nvml_name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Intel(R) Xeon(R) Platinum 8480+",
        "AMD EPYC 9654 96-Core Processor",
        "cpu",
        "NVIDIA GeForce RTX 3090 Ti",
        "NVIDIA GeForce RTX 4090 D",
        "NVIDIA GeForce RTX 4090 Laptop GPU",
        "NVIDIA GH200 480GB",
        "NVIDIA A100X",
        "Tesla V100-SXM3-32GB",
        "NVIDIA B200",
        "AMD Instinct MI300X",
    ],
)
def test_unknown_devices_give_none(name: str) -> None:
    assert lookup_peak(name, "bfloat16") is None


def test_unsupported_dtype_keeps_bandwidth() -> None:
    peak = lookup_peak("Tesla V100-SXM2-32GB", "bfloat16")
    assert peak is not None
    assert peak.flops_per_s is None
    assert peak.memory_bandwidth_bytes_per_s == pytest.approx(900e9)
    a10g = lookup_peak("NVIDIA A10G", "float16")
    assert a10g is not None and a10g.flops_per_s is None
    assert a10g.memory_bandwidth_bytes_per_s == pytest.approx(600e9)


def test_dtype_spellings() -> None:
    assert normalize_dtype("torch.bfloat16") == "bfloat16"
    assert normalize_dtype("BF16") == "bfloat16"
    assert normalize_dtype("half") == "float16"
    assert normalize_dtype("fp32") == "float32"
    assert normalize_dtype("float8_e4m3fn") == "float8"


def test_every_row_has_dense_figures_below_sparse_headlines() -> None:
    for spec in DEVICE_SPECS:
        rates = spec.flops_per_s
        # Tensor-core half precision beats plain FP32 on every listed card.
        assert rates["float16"] > rates["float32"], spec.name
        # No listed single card reaches 1 PFLOP/s dense in 16-bit or 5 TB/s of bandwidth.
        assert rates["float16"] < 1000 * T, spec.name
        assert spec.memory_bandwidth_bytes_per_s < 5e12, spec.name
        assert spec.source.startswith("NVIDIA"), spec.name


@pytest.mark.parametrize(
    ("dtype", "size"),
    [("torch.bfloat16", 2), ("fp32", 4), ("tf32", 4), ("half", 2), ("float8_e4m3fn", 1),
     ("int8", 1), ("int4", None)],
)
def test_dtype_bytes_by_any_spelling(dtype: str, size: int | None) -> None:
    assert dtype_bytes(dtype) == size
