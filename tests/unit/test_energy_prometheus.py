"""Energy backend prometheus: counter deltas per series with labels and units, resets,
changed series, baseline, errors, the factory, and a real loopback exporter."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tests.fakes.clock import StepClock

from llm_energy_measure.config.models import EnergyConfig, PrometheusEnergyConfig
from llm_energy_measure.core.energy_backends import create_energy_backend
from llm_energy_measure.core.energy_backends.prometheus import (
    PrometheusEnergyBackend,
    prometheus_unmeasured,
)
from llm_energy_measure.core.serving.prometheus import MetricsFetchError, Sample
from llm_energy_measure.exceptions import EnergyTrackingError

METRIC = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
URL = "http://gpu-host:9400/metrics"


class FakeExporter:
    """``scrape`` of a page whose counters the test sets: {gpu: value}, plus noise."""

    def __init__(self, **values: float) -> None:
        self.values = {gpu.removeprefix("gpu"): v for gpu, v in values.items()}
        self.calls: list[tuple[str, float]] = []
        self.failures = 0

    def __call__(self, url: str, timeout_s: float) -> list[Sample]:
        self.calls.append((url, timeout_s))
        if self.failures:
            self.failures -= 1
            raise MetricsFetchError(f"cannot read metrics at {url}: ConnectError")
        samples = [Sample(METRIC, {"gpu": g, "Hostname": "n1"}, v) for g, v in self.values.items()]
        samples.append(Sample("DCGM_FI_DEV_POWER_USAGE", {"gpu": "0"}, 300.0))
        return samples


def _config(**changes: Any) -> PrometheusEnergyConfig:
    data: dict[str, Any] = {"url": URL, "metric": METRIC, "unit": "mJ"}
    data.update(changes)
    return PrometheusEnergyConfig.model_validate(data)


def _backend(exporter: FakeExporter, clock: StepClock, **changes: Any) -> PrometheusEnergyBackend:
    return PrometheusEnergyBackend(_config(**changes), host="client", scrape=exporter,
                                   clock=clock, sleep=lambda s: None)


def test_delta_summed_over_matching_series_in_joules() -> None:
    exporter, clock = FakeExporter(gpu0=1_000_000, gpu1=5_000_000), StepClock(10.0)
    backend = _backend(exporter, clock)
    backend.start()
    exporter.values = {"0": 1_000_000 + 300_000, "1": 5_000_000 + 200_000}  # 300 J + 200 J
    clock.now = 12.0
    reading = backend.stop()
    [device] = reading.devices
    assert device.device_id == f"prometheus:{METRIC}"
    assert (device.kind, device.scope, device.method, device.estimated, device.source) == (
        "gpu", "host", "counter", False, "prometheus")
    assert device.host == "client" and device.name == f"{METRIC} at gpu-host:9400"
    assert device.energy_j == pytest.approx(500.0)
    assert device.duration_s == pytest.approx(2.0)
    assert device.mean_power_w == pytest.approx(250.0)
    assert reading.warnings == [] and reading.backend == "prometheus"
    assert exporter.calls == [(URL, 5.0), (URL, 5.0)]


@pytest.mark.parametrize("unit, joules", [("J", 7.0), ("kJ", 7e3), ("Wh", 7 * 3600.0),
                                          ("kWh", 7 * 3.6e6)])
def test_units(unit: str, joules: float) -> None:
    exporter, clock = FakeExporter(gpu0=10), StepClock()
    backend = _backend(exporter, clock, unit=unit)
    backend.start()
    exporter.values["0"] = 17
    clock.now = 1.0
    assert backend.stop().devices[0].energy_j == pytest.approx(joules)


def test_labels_filter_and_device_kind() -> None:
    exporter, clock = FakeExporter(gpu0=0, gpu1=0), StepClock()
    backend = _backend(exporter, clock, labels={"gpu": "1"}, device_kind="system")
    backend.start()
    exporter.values = {"0": 9_000, "1": 4_000}
    clock.now = 1.0
    [device] = backend.stop().devices
    assert device.device_id == f'prometheus:{METRIC}{{gpu="1"}}'
    assert device.kind == "system" and device.energy_j == pytest.approx(4.0)


def test_counter_reset_counts_from_the_restart_with_a_warning() -> None:
    exporter, clock = FakeExporter(gpu0=9_000_000, gpu1=1_000), StepClock()
    backend = _backend(exporter, clock)
    backend.start()
    exporter.values = {"0": 2_000, "1": 3_000}  # gpu 0 restarted from 0: 2 J since
    clock.now = 1.0
    reading = backend.stop()
    assert reading.devices[0].energy_j == pytest.approx(2.0 + 2.0)
    [warning] = reading.warnings
    assert warning.code == "counter_reset"
    assert 'gpu="0"' in warning.message and "lower bound" in warning.message


def test_series_at_one_edge_only_are_left_out() -> None:
    exporter, clock = FakeExporter(gpu0=0, gpu1=0), StepClock()
    backend = _backend(exporter, clock)
    backend.start()
    exporter.values = {"0": 1_000, "2": 5_000}
    clock.now = 1.0
    reading = backend.stop()
    assert reading.devices[0].energy_j == pytest.approx(1.0)
    [warning] = reading.warnings
    assert warning.code == "counter_series_changed"
    assert 'gpu="1"' in warning.message and 'gpu="2"' in warning.message


def test_unchanged_counter_and_short_window_warnings() -> None:
    exporter, clock = FakeExporter(gpu0=5), StepClock()
    backend = _backend(exporter, clock)
    backend.start()
    clock.now = 3.0
    assert [w.code for w in backend.stop().warnings] == ["counter_unchanged"]
    backend.update_period_s = 1.0
    backend.start()
    clock.now = 8.0
    [warning] = backend.stop().warnings
    assert warning.code == "short_window" and "every 1 s" in warning.message


def test_baseline_is_power_per_device_over_the_window() -> None:
    exporter, clock = FakeExporter(gpu0=0), StepClock()
    backend = _backend(exporter, clock)

    def idle(seconds: float) -> None:
        clock.now += seconds
        exporter.values["0"] += 60_000 * seconds  # 60 W

    backend.idle = idle
    assert backend.measure_baseline(2.0) == {f"prometheus:{METRIC}": pytest.approx(60.0)}
    backend.update_period_s = 1.0  # several exporter updates, never one period
    backend.measure_baseline(1.0)
    assert backend.last_baseline_window_s == pytest.approx(3.5)
    backend.close()
    backend.close()


def test_transient_scrape_failures_are_retried() -> None:
    exporter, clock = FakeExporter(gpu0=0), StepClock()
    exporter.failures = 2
    backend = _backend(exporter, clock)
    backend.start()
    assert len(exporter.calls) == 3
    exporter.failures = 3
    with pytest.raises(EnergyTrackingError, match=r"energy\.prometheus: cannot read metrics"):
        backend.stop()


def test_missing_metric_or_labels_and_bad_values() -> None:
    clock = StepClock()
    with pytest.raises(EnergyTrackingError, match="no series named 'NOPE'"):
        _backend(FakeExporter(gpu0=1), clock, metric="NOPE").start()
    with pytest.raises(EnergyTrackingError, match=r"labels \{'gpu': '7'\} \(1 series with "
                                                  r"other labels, e.g. .*gpu=\"0\""):
        _backend(FakeExporter(gpu0=1), clock, labels={"gpu": "7"}).start()
    with pytest.raises(EnergyTrackingError, match="nan, not a finite"):
        _backend(FakeExporter(gpu0=float("nan")), clock).start()


def test_window_misuse() -> None:
    backend = _backend(FakeExporter(gpu0=1), StepClock())
    with pytest.raises(EnergyTrackingError, match="not started"):
        backend.stop()
    backend.start()
    with pytest.raises(EnergyTrackingError, match="already open"):
        backend.start()


def test_unmeasured_reasons() -> None:
    gpu = prometheus_unmeasured(_config())
    assert set(gpu) == {"cpu", "dram"} and METRIC in gpu["cpu"]
    system = prometheus_unmeasured(_config(device_kind="system"))
    assert set(system) == {"gpu", "cpu", "dram"} and "whole-system" in system["gpu"]
    assert "host leader" in prometheus_unmeasured(_config(), is_host_leader=False)["gpu"]


# --------------------------------------------------------------------------- real exporter


@pytest.fixture
def exporter_url() -> Iterator[tuple[str, dict[str, float]]]:
    """A loopback exporter serving ``counter`` (mJ) for gpu 0 and 1."""
    counter = {"0": 1_000.0, "1": 2_000.0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            lines = [f"# HELP {METRIC} Total energy consumption since boot (in mJ).",
                     f"# TYPE {METRIC} counter"]
            lines += [f'{METRIC}{{gpu="{g}",UUID="GPU-{g}",Hostname="n1"}} {v:.0f}'
                      for g, v in counter.items()]
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics", counter
    finally:
        server.shutdown()
        server.server_close()


def test_factory_builds_it_against_a_real_exporter(
    exporter_url: tuple[str, dict[str, float]],
) -> None:
    url, counter = exporter_url
    config = EnergyConfig.model_validate({
        "backend": "prometheus", "carbon_intensity_g_per_kwh": 100,
        "prometheus": {"url": url, "metric": METRIC, "unit": "mJ", "labels": {"UUID": "GPU-1"}},
    })
    backend = create_energy_backend(config, host="h", gpus=[])
    try:
        backend.start()
        counter["0"] += 50_000
        counter["1"] += 120_000
        reading = backend.stop()
    finally:
        backend.close()
    [device] = reading.devices
    assert device.device_id == f'prometheus:{METRIC}{{UUID="GPU-1"}}'
    assert device.energy_j == pytest.approx(120.0)
    assert reading.backend == "prometheus" and reading.carbon_intensity_g_per_kwh == 100
    assert set(reading.unmeasured) == {"cpu", "dram"}
    follower = create_energy_backend(config, host="h", gpus=[], is_host_leader=False)
    follower.start()
    assert follower.stop().devices == []
    follower.close()
