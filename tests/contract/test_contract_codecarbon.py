"""Contract with the real codecarbon package (skipped when it is not installed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("codecarbon")

from llm_energy_measure.config.models import EnergyConfig
from llm_energy_measure.core.energy_backends import (
    CodeCarbonBackend,
    carbon_intensity_g_per_kwh,
    resolve_carbon_intensity,
)
from llm_energy_measure.exceptions import ConfigurationError


def test_offline_tracker_estimates_cpu_and_ram_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    backend = CodeCarbonBackend(host="h", sample_interval_ms=100, country_iso_code="FRA")
    backend.start()
    time.sleep(0.5)
    reading = backend.stop()
    backend.close()
    by_id = {d.device_id: d for d in reading.devices}
    assert set(by_id) == {"h:estimate:cpu", "h:estimate:ram"}
    for device in by_id.values():
        assert device.energy_j > 0
        assert device.estimated and device.method == "estimate"
        assert device.duration_s == pytest.approx(0.5, abs=0.2)
    assert list(tmp_path.iterdir()) == []  # no emissions.csv, no lock file


def test_carbon_intensity_follows_codecarbons_bundled_data() -> None:
    fra, fra_source = carbon_intensity_g_per_kwh("FRA")
    pol, _ = carbon_intensity_g_per_kwh("POL")
    # France's grid is mostly nuclear, Poland's mostly coal.
    assert 10 < fra < 150 < 400 < pol < 1200
    assert "codecarbon" in fra_source and "FRA" in fra_source
    usa, usa_source = carbon_intensity_g_per_kwh(None)
    assert usa == pytest.approx(carbon_intensity_g_per_kwh("usa")[0])
    assert "default" in usa_source and "USA" in usa_source
    california, ca_source = carbon_intensity_g_per_kwh("USA", "California")
    assert 0 < california < usa
    assert "california" in ca_source


def test_unknown_country_or_region_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"energy\.country_iso_code"):
        carbon_intensity_g_per_kwh("XXX")
    with pytest.raises(ConfigurationError, match=r"energy\.region"):
        carbon_intensity_g_per_kwh("USA", "atlantis")
    with pytest.raises(ConfigurationError, match=r"energy\.region"):
        carbon_intensity_g_per_kwh("FRA", "bretagne")


def test_factory_lookup_uses_the_configured_country() -> None:
    value, source, notes = resolve_carbon_intensity(EnergyConfig(country_iso_code="FRA"))
    assert value == pytest.approx(carbon_intensity_g_per_kwh("FRA")[0])
    assert source is not None and "FRA" in source and notes == []
    forced = resolve_carbon_intensity(EnergyConfig(carbon_intensity_g_per_kwh=123.0))
    assert forced == (123.0, "energy.carbon_intensity_g_per_kwh", [])


def test_a_one_second_baseline_reads_rams_fixed_power_not_twice_it() -> None:
    # With a 1.00 s window over codecarbon's 1 s poll the last update was counted twice (RAM
    # at 40 W instead of its fixed 20 W on the machine of the report). The baseline now spans
    # 3.5 updates and must agree with the RAM power of an ordinary window.
    backend = CodeCarbonBackend(host="h", include=("ram",))
    baseline = backend.measure_baseline(1.0)["h:estimate:ram"]
    assert backend.last_baseline_window_s == pytest.approx(3.5)
    backend.start()
    time.sleep(2.5)
    (ram,) = backend.stop().devices
    backend.close()
    assert ram.mean_power_w is not None
    assert baseline == pytest.approx(ram.mean_power_w, rel=0.02)
