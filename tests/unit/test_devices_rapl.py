"""RAPL sysfs discovery and counter arithmetic against a fake powercap tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tests.fakes.devices import denying_reader, write_zone

from llm_energy_measure.core.devices import (
    DeviceError,
    DevicePermissionError,
    counter_delta_uj,
    cpu_model_name,
    energy_counters,
    get_rapl_domains,
    total_memory_bytes,
)


def two_socket_tree(root: Path) -> None:
    write_zone(root, "intel-rapl:0", "package-0", 1000)
    write_zone(root, "intel-rapl:0:0", "core", 500)
    write_zone(root, "intel-rapl:0:1", "dram", 200)
    write_zone(root, "intel-rapl:1", "package-1", 3000)
    write_zone(root, "intel-rapl:1:0", "dram", 400)
    write_zone(root, "intel-rapl-mmio:0", "package-0", 999)  # duplicate view: skipped
    (root / "intel-rapl").mkdir()  # the control-type directory, not a zone


def test_discovers_zones_with_unique_names_and_kinds(tmp_path: Path) -> None:
    two_socket_tree(tmp_path)
    domains = get_rapl_domains(tmp_path)
    assert [d.name for d in domains] == [
        "package-0",
        "package-0/core",
        "package-0/dram",
        "package-1",
        "package-1/dram",
    ]
    assert [d.kind for d in domains] == ["cpu", None, "dram", "cpu", "dram"]
    assert [d.name for d in domains.measurable()] == [
        "package-0",
        "package-0/dram",
        "package-1",
        "package-1/dram",
    ]
    assert domains.by_name("package-1").energy_uj() == 3000
    assert domains.by_name("package-0").max_energy_range_uj == 1_000_000
    assert energy_counters([], domains) == (
        "rapl:package-0",
        "rapl:package-0/dram",
        "rapl:package-1",
        "rapl:package-1/dram",
    )


def test_amd_zones_are_found(tmp_path: Path) -> None:
    write_zone(tmp_path, "amd-rapl:0", "package-0", 42, max_range_uj=None)
    domains = get_rapl_domains(tmp_path)
    assert [d.name for d in domains] == ["package-0"]
    assert domains[0].max_energy_range_uj is None


def test_missing_tree_is_empty(tmp_path: Path) -> None:
    assert len(get_rapl_domains(tmp_path / "absent")) == 0
    assert len(get_rapl_domains(tmp_path)) == 0  # exists, no zones


@pytest.mark.parametrize(
    ("start", "end", "max_range", "expected"),
    [
        (100, 350, 1000, 250),
        (100, 100, 1000, 0),
        (900, 100, 1000, 200),  # wrapped once: 100 to the top, 100 after zero
        (999, 0, 1000, 1),
        (2**32 - 10, 5, 2**32, 15),
    ],
)
def test_counter_delta_handles_wraparound(
    start: int, end: int, max_range: int, expected: int
) -> None:
    assert counter_delta_uj(start, end, max_range) == expected


def test_counter_going_backwards_without_range_is_an_error() -> None:
    with pytest.raises(DeviceError):
        counter_delta_uj(500, 100, None)


def test_permission_denied_says_how_to_fix(tmp_path: Path) -> None:
    write_zone(tmp_path, "intel-rapl:0", "package-0", 1000)
    domains = get_rapl_domains(tmp_path, reader=denying_reader)
    assert [d.name for d in domains] == ["package-0"]  # the tree is listed...
    with pytest.raises(DevicePermissionError) as info:
        domains[0].energy_uj()  # ...but the counter is root-only
    message = str(info.value)
    assert "sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj" in message
    assert "CVE-2020-8694" in message
    assert "root" in message
    assert domains[0].is_readable() is False
    with pytest.raises(DevicePermissionError):
        domains.check_readable()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_by_file_mode(tmp_path: Path) -> None:
    zone = write_zone(tmp_path, "intel-rapl:0", "package-0", 1000)
    (zone / "energy_uj").chmod(0)
    try:
        with pytest.raises(DevicePermissionError):
            get_rapl_domains(tmp_path)[0].energy_uj()
    finally:
        (zone / "energy_uj").chmod(0o644)


def test_garbage_counter_is_a_device_error(tmp_path: Path) -> None:
    zone = write_zone(tmp_path, "intel-rapl:0", "package-0", 1000)
    (zone / "energy_uj").write_text("not a number\n")
    with pytest.raises(DeviceError):
        get_rapl_domains(tmp_path)[0].energy_uj()


def test_cpu_facts_from_proc_files(tmp_path: Path) -> None:
    x86 = tmp_path / "cpuinfo_x86"
    x86.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\n"
        "model name\t: Intel(R) Xeon(R) Platinum 8480+\n\nprocessor\t: 1\n"
    )
    assert cpu_model_name(x86) == "Intel(R) Xeon(R) Platinum 8480+"
    arm = tmp_path / "cpuinfo_arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 50.00\n\nHardware\t: BCM2835\n")
    assert cpu_model_name(arm) == "BCM2835"
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16318480 kB\nMemFree:         1000 kB\n")
    assert total_memory_bytes(meminfo) == 16318480 * 1024
