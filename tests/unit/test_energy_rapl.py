"""RAPL energy backend over a fake powercap tree: deltas, wraps, host scope, permissions."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from tests.fakes.clock import StepClock, wait_until
from tests.fakes.devices import denying_reader, set_energy, write_zone

from llm_energy_measure.core.devices import DevicePermissionError, get_rapl_domains
from llm_energy_measure.core.energy_backends import RaplBackend
from llm_energy_measure.exceptions import EnergyTrackingError


def test_package_and_dram_deltas(tmp_path: Path) -> None:
    pkg = write_zone(tmp_path, "intel-rapl:0", "package-0", 5_000_000, max_range_uj=10**9)
    core = write_zone(tmp_path, "intel-rapl:0:0", "core", 0, max_range_uj=10**9)
    dram = write_zone(tmp_path, "intel-rapl:0:1", "dram", 1_000_000, max_range_uj=10**9)
    clock = StepClock(0.0)
    backend = RaplBackend(get_rapl_domains(tmp_path), host="node1", poll_interval_s=None,
                          clock=clock)
    backend.start()
    set_energy(pkg, 5_000_000 + 250_000_000)  # 250 J
    set_energy(core, 999)  # core overlaps the package: never summed
    set_energy(dram, 1_000_000 + 40_000_000)  # 40 J
    clock.now = 5.0
    reading = backend.stop()
    by_id = {d.device_id: d for d in reading.devices}
    assert set(by_id) == {"node1:rapl:package-0", "node1:rapl:package-0/dram"}
    package = by_id["node1:rapl:package-0"]
    assert (package.kind, package.scope, package.method, package.estimated) == (
        "cpu",
        "host",
        "counter",
        False,
    )
    assert package.energy_j == pytest.approx(250.0)
    assert package.mean_power_w == pytest.approx(50.0)
    assert by_id["node1:rapl:package-0/dram"].kind == "dram"
    assert by_id["node1:rapl:package-0/dram"].energy_j == pytest.approx(40.0)
    assert reading.backend == "rapl"


def test_multiple_wraps_are_counted_by_polling(tmp_path: Path) -> None:
    pkg = write_zone(tmp_path, "intel-rapl:0", "package-0", 900, max_range_uj=1000)
    backend = RaplBackend(get_rapl_domains(tmp_path), host="h", poll_interval_s=None)
    backend.start()
    set_energy(pkg, 100)  # wrapped: +200
    backend.poll()
    set_energy(pkg, 600)  # +500
    backend.poll()
    set_energy(pkg, 50)  # wrapped again: +450
    (device,) = backend.stop().devices
    assert device.energy_j == pytest.approx(1150 / 1e6)


def test_background_poller_catches_wraps(tmp_path: Path) -> None:
    pkg = write_zone(tmp_path, "intel-rapl:0", "package-0", 800, max_range_uj=1000)
    backend = RaplBackend(get_rapl_domains(tmp_path), host="h", poll_interval_s=0.01)
    backend.start()
    set_energy(pkg, 900)
    time.sleep(0.1)  # several polls see 900
    set_energy(pkg, 200)  # wrap: +300 from 900
    time.sleep(0.1)
    set_energy(pkg, 300)  # +100
    (device,) = backend.stop().devices
    assert device.energy_j == pytest.approx((100 + 300 + 100) / 1e6)
    assert wait_until(lambda: all(t.name != "rapl-poller" for t in threading.enumerate()))


def test_unreadable_counters_raise_the_fix(tmp_path: Path) -> None:
    write_zone(tmp_path, "intel-rapl:0", "package-0", 1)
    domains = get_rapl_domains(tmp_path, reader=denying_reader)
    with pytest.raises(DevicePermissionError, match="chmod"):
        RaplBackend(domains, host="h")


def test_no_measurable_zone_is_an_error(tmp_path: Path) -> None:
    write_zone(tmp_path, "intel-rapl:0:0", "core", 1)
    with pytest.raises(EnergyTrackingError, match="auto or codecarbon"):
        RaplBackend(get_rapl_domains(tmp_path), host="h")


def test_mean_power_from_counter_delta(tmp_path: Path) -> None:
    pkg = write_zone(tmp_path, "intel-rapl:0", "package-0", 0, max_range_uj=10**12)
    clock = StepClock(0.0)
    backend = RaplBackend(get_rapl_domains(tmp_path), host="h", poll_interval_s=None,
                          clock=clock)
    backend.start()
    clock.now = 2.0
    set_energy(pkg, 60_000_000)  # 60 J in 2 s: 30 W idle
    reading = backend.stop()
    assert reading.devices[0].energy_j / reading.devices[0].duration_s == pytest.approx(30.0)
