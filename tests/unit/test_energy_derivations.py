"""build_energy_metrics: baseline split, totals, ratios, emissions and warnings by hand."""

from __future__ import annotations

import pytest

from llm_energy_measure.config.models import EnergyConfig
from llm_energy_measure.core.energy import build_energy_metrics
from llm_energy_measure.core.types import EnergyReading
from llm_energy_measure.domain import DeviceEnergy, MeasurementWarning, UtilisationSample


def device(
    device_id: str = "gpu:GPU-a",
    energy_j: float = 800.0,
    duration_s: float = 10.0,
    *,
    kind: str = "gpu",
    method: str = "counter",
    estimated: bool = False,
    source: str = "nvml",
) -> DeviceEnergy:
    return DeviceEnergy(
        device_id=device_id,
        kind=kind,  # type: ignore[arg-type]
        scope="device" if kind == "gpu" else "host",
        host="h",
        method=method,  # type: ignore[arg-type]
        estimated=estimated,
        source=source,
        energy_j=energy_j,
        duration_s=duration_s,
    )


def build(
    reading: EnergyReading,
    baseline: dict[str, float] | None = None,
    *,
    window_s: float = 10.0,
    output_tokens: int = 400,
    num_requests: int = 8,
    config: EnergyConfig | None = None,
):  # type: ignore[no-untyped-def]
    return build_energy_metrics(
        reading,
        baseline_power_w=baseline,
        window_s=window_s,
        output_tokens=output_tokens,
        num_requests=num_requests,
        config=config or EnergyConfig(),
    )


def codes(warnings: list[MeasurementWarning]) -> list[str]:
    return [w.code for w in warnings]


def test_static_and_dynamic_split_on_a_known_case() -> None:
    # Idle 50 W over a 10 s window: 500 J static; 800 J measured: 300 J dynamic.
    metrics, warnings = build(EnergyReading([device()], "nvml"), {"gpu:GPU-a": 50.0})
    assert metrics is not None
    (gpu,) = metrics.devices
    assert gpu.baseline_power_w == 50.0
    assert gpu.static_energy_j == pytest.approx(500.0)
    assert gpu.dynamic_energy_j == pytest.approx(300.0)
    assert gpu.dynamic_clamped is False
    assert metrics.total_energy_j == pytest.approx(800.0)
    assert metrics.static_energy_j == pytest.approx(500.0)
    assert metrics.dynamic_energy_j == pytest.approx(300.0)
    assert metrics.mean_power_w == pytest.approx(80.0)
    assert metrics.energy_per_output_token_j == pytest.approx(2.0)
    assert metrics.energy_per_request_j == pytest.approx(100.0)
    assert metrics.output_tokens_per_j == pytest.approx(0.5)
    assert metrics.methods == ("counter",)
    assert metrics.estimated is False
    assert metrics.duration_s == 10.0
    assert warnings == []


def test_negative_dynamic_energy_is_clamped_and_flagged() -> None:
    # 400 J measured against 50 W x 10 s = 500 J of idle: the split is clamped so that
    # static + dynamic = total: static 400 J, dynamic 0 J.
    metrics, warnings = build(EnergyReading([device(energy_j=400.0)], "nvml"), {"gpu:GPU-a": 50.0})
    assert metrics is not None
    (gpu,) = metrics.devices
    assert gpu.static_energy_j == pytest.approx(400.0)
    assert gpu.dynamic_energy_j == 0.0
    assert gpu.dynamic_clamped is True
    assert metrics.static_energy_j == pytest.approx(400.0)
    assert metrics.dynamic_energy_j == 0.0
    assert metrics.total_energy_j == pytest.approx(400.0)  # the measurement itself is kept
    assert codes(warnings) == ["negative_dynamic_energy"]
    assert "gpu:GPU-a" in warnings[0].message


def test_static_plus_dynamic_is_the_total_for_clamped_and_unclamped_devices() -> None:
    # The quickstart case: RAM 105.73 J over 5.2855 s against a doubled 40 W baseline (clamped:
    # static 105.73 J), CPU 42.20 J against 3.82 W (static 20.20 J, dynamic 22.01 J).
    reading = EnergyReading(
        [
            device("h:estimate:cpu", 42.20, 5.2855, kind="cpu", method="estimate",
                   estimated=True, source="codecarbon"),
            device("h:estimate:ram", 105.73, 5.2855, kind="dram", method="estimate",
                   estimated=True, source="codecarbon"),
        ],
        "auto",
    )
    metrics, _ = build(reading, {"h:estimate:cpu": 3.821, "h:estimate:ram": 40.057},
                       window_s=5.2855)
    assert metrics is not None
    assert metrics.static_energy_j == pytest.approx(3.821 * 5.2855 + 105.73)
    assert metrics.dynamic_energy_j == pytest.approx(42.20 - 3.821 * 5.2855)
    assert metrics.static_energy_j + metrics.dynamic_energy_j == pytest.approx(147.93)
    assert metrics.total_energy_j == pytest.approx(147.93)
    for d in metrics.devices:
        assert d.static_energy_j is not None and d.dynamic_energy_j is not None
        assert d.static_energy_j + d.dynamic_energy_j == pytest.approx(d.energy_j)


def test_totals_by_kind_and_estimates() -> None:
    reading = EnergyReading(
        [
            device("gpu:GPU-a", 600.0),
            device("gpu:GPU-b", 400.0),
            device("h:rapl:package-0", 200.0, kind="cpu", source="rapl"),
            device("h:estimate:ram", 50.0, kind="dram", method="estimate", estimated=True,
                   source="codecarbon"),
        ],
        "auto",
    )
    metrics, _ = build(reading)
    assert metrics is not None
    assert metrics.total_energy_j == pytest.approx(1250.0)
    assert metrics.gpu_energy_j == pytest.approx(1000.0)
    assert metrics.cpu_energy_j == pytest.approx(200.0)
    assert metrics.ram_energy_j == pytest.approx(50.0)
    assert metrics.estimated is True
    assert metrics.methods == ("counter", "estimate")
    assert metrics.backend == "auto"
    # No baseline at all: no static/dynamic totals, and nothing to warn about.
    assert metrics.static_energy_j is None and metrics.dynamic_energy_j is None


def test_partial_baseline_reports_no_totals_and_warns() -> None:
    reading = EnergyReading([device("gpu:GPU-a"), device("gpu:GPU-b")], "nvml")
    metrics, warnings = build(reading, {"gpu:GPU-a": 50.0})
    assert metrics is not None
    assert metrics.devices[0].static_energy_j == pytest.approx(500.0)
    assert metrics.devices[1].static_energy_j is None
    assert metrics.static_energy_j is None
    assert codes(warnings) == ["partial_baseline"]
    assert "gpu:GPU-b" in warnings[0].message


def test_emissions_from_configured_intensity_and_pue() -> None:
    one_kwh = device(energy_j=3.6e6)
    config = EnergyConfig(carbon_intensity_g_per_kwh=400.0, pue=1.5)
    reading = EnergyReading([one_kwh], "nvml", carbon_intensity_g_per_kwh=56.0,
                            carbon_intensity_source="codecarbon FRA")
    metrics, _ = build(reading, config=config)
    assert metrics is not None
    assert metrics.emissions_g == pytest.approx(600.0)  # 1 kWh x 400 g/kWh x 1.5
    assert metrics.carbon_intensity_g_per_kwh == 400.0
    assert metrics.carbon_intensity_source == "energy.carbon_intensity_g_per_kwh"
    assert metrics.pue == 1.5


def test_emissions_from_the_readings_lookup_else_none() -> None:
    half_kwh = device(energy_j=1.8e6)
    looked_up = EnergyReading([half_kwh], "nvml", carbon_intensity_g_per_kwh=56.0,
                              carbon_intensity_source="codecarbon FRA")
    metrics, _ = build(looked_up)
    assert metrics is not None
    assert metrics.emissions_g == pytest.approx(28.0)
    assert metrics.carbon_intensity_source == "codecarbon FRA"
    unknown, _ = build(EnergyReading([half_kwh], "nvml"))
    assert unknown is not None
    assert unknown.emissions_g is None and unknown.carbon_intensity_g_per_kwh is None


def test_short_window_warning_only_for_gpu_counters() -> None:
    short = 0.5
    _, counter_warnings = build(EnergyReading([device(duration_s=short)], "nvml"),
                                window_s=short)
    assert codes(counter_warnings) == ["short_window"]
    _, sampled = build(
        EnergyReading([device(duration_s=short, method="sampled_power")], "nvml"),
        window_s=short,
    )
    assert sampled == []
    _, long_enough = build(EnergyReading([device(duration_s=1.0)], "nvml"), window_s=1.0)
    assert long_enough == []


def test_peak_power_sums_devices_of_one_tick() -> None:
    samples = [
        UtilisationSample(t_s=0.0, device_id="gpu:GPU-a", power_w=100.0),
        UtilisationSample(t_s=0.0, device_id="gpu:GPU-b", power_w=100.0),
        UtilisationSample(t_s=0.1, device_id="gpu:GPU-a", power_w=300.0),
        UtilisationSample(t_s=0.1, device_id="gpu:GPU-b", power_w=50.0),
        UtilisationSample(t_s=0.2, device_id="gpu:GPU-a", power_w=250.0),
        UtilisationSample(t_s=0.2, device_id="gpu:GPU-b", power_w=200.0),
        UtilisationSample(t_s=0.2, device_id="h:cpu", utilisation_pct=50.0),
    ]
    reading = EnergyReading([device("gpu:GPU-a"), device("gpu:GPU-b")], "nvml",
                            timeseries=samples)
    metrics, _ = build(reading)
    assert metrics is not None
    assert metrics.peak_power_w == pytest.approx(450.0)
    assert [d.peak_power_w for d in metrics.devices] == [300.0, 200.0]


def test_no_devices_means_no_metrics_but_warnings_pass_through() -> None:
    note = MeasurementWarning(code="host_energy_unmeasured", message="x")
    metrics, warnings = build(EnergyReading([], "null", warnings=[note]))
    assert metrics is None
    assert warnings == [note]


def test_zero_tokens_and_zero_energy_give_no_ratios() -> None:
    metrics, _ = build(EnergyReading([device(energy_j=0.0)], "nvml"), output_tokens=0,
                       num_requests=0)
    assert metrics is not None
    assert metrics.energy_per_output_token_j is None
    assert metrics.energy_per_request_j is None
    assert metrics.output_tokens_per_j is None


def test_mean_power_uses_each_device_window_not_the_timing_window() -> None:
    # A process that finished its prompts in 8 s but waited 2 s at the closing barrier: its
    # GPU counted 800 J over 10 s (80 W), the host's CPU 300 J over 10 s (30 W).
    reading = EnergyReading(devices=[device(), device("h:cpu", 300.0, kind="cpu")], backend="t")
    metrics, _ = build(reading, window_s=8.0)
    assert metrics is not None
    assert metrics.mean_power_w == pytest.approx(110.0)  # not 1100 J / 8 s = 137.5 W
    assert metrics.total_energy_j == pytest.approx(1100.0)


def test_a_deficit_within_the_baseline_resolution_is_a_note_not_a_warning() -> None:
    # A fixed 20 W RAM estimate read as 99.9 J over 5 s against a 20 W baseline: 0.1 J
    # (0.1% of 100 J) below it. Clamped and flagged, static = 99.9 J, but only an info note.
    reading = EnergyReading([device("h:estimate:ram", 99.9, 5.0, kind="dram",
                                    method="estimate", estimated=True, source="codecarbon")],
                            "auto")
    metrics, warnings = build(reading, {"h:estimate:ram": 20.0}, window_s=5.0)
    assert metrics is not None
    (ram,) = metrics.devices
    assert (ram.static_energy_j, ram.dynamic_energy_j, ram.dynamic_clamped) == (99.9, 0.0, True)
    assert codes(warnings) == ["dynamic_energy_zero"]
    assert warnings[0].severity == "info" and "0.1 J" in warnings[0].message
    # 2% below (98 J against 100 J) is beyond the 1% resolution: a warning.
    reading.devices[0] = reading.devices[0].model_copy(update={"energy_j": 98.0})
    _, warnings = build(reading, {"h:estimate:ram": 20.0}, window_s=5.0)
    assert codes(warnings) == ["negative_dynamic_energy"]


def test_a_cpu_only_reading_has_no_gpu_figure_and_says_why() -> None:
    reading = EnergyReading(
        [device("h:rapl:package-0", 42.0, kind="cpu", source="rapl"),
         device("h:rapl:package-0/dram", 6.0, kind="dram", source="rapl")],
        "auto",
        unmeasured={"gpu": "no GPU is visible to this process"},
    )
    metrics, _ = build(reading)
    assert metrics is not None
    assert metrics.gpu_energy_j is None  # not 0.0: nothing was measured
    assert (metrics.cpu_energy_j, metrics.ram_energy_j) == (42.0, 6.0)
    assert metrics.unmeasured.gpu_energy_j == "no GPU is visible to this process"
    assert metrics.unmeasured.cpu_energy_j is None
    # Without a baseline, static/dynamic are unmeasured too; no sampler, no peak power.
    assert metrics.static_energy_j is None and metrics.dynamic_energy_j is None
    assert "energy.baseline.enabled: false" in (metrics.unmeasured.static_energy_j or "")
    assert metrics.peak_power_w is None and metrics.unmeasured.peak_power_w
    dumped = metrics.model_dump(mode="json")
    assert dumped["gpu_energy_j"] is None
    assert dumped["unmeasured"]["gpu_energy_j"] == "no GPU is visible to this process"
