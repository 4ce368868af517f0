"""RAPL energy counters read from the Linux powercap sysfs tree.

This module is the only place that reads ``/sys/class/powercap``. Each zone directory
(``intel-rapl:0``, its sub-zone ``intel-rapl:0:2``, or ``amd-rapl:0``) holds ``name``,
``energy_uj`` (a counter in microjoules that wraps at ``max_energy_range_uj``) and
``max_energy_range_uj``. The ``intel-rapl-mmio`` zones duplicate the package zones and are
skipped, so no energy is counted twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal, overload

from llm_energy_measure.core.devices.exceptions import DeviceError, DevicePermissionError

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")

_ZONE_DIR = re.compile(r"^(intel|amd)-rapl:(\d+)(?::(\d+))?$")

#: How to make RAPL readable (since CVE-2020-8694 the kernel makes energy_uj root-only).
RAPL_PERMISSION_FIX = (
    "RAPL energy counters are readable by root only since the fix for CVE-2020-8694 "
    "(energy side channel). Run as root, or let this user read them with "
    "`sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*:*/energy_uj` (resets at reboot; a udev rule makes it "
    "permanent), or use energy.backend auto/codecarbon for an estimate"
)


def _read_text(path: Path) -> str:
    with open(path, encoding="ascii") as handle:
        return handle.read()


def counter_delta_uj(start_uj: int, end_uj: int, max_range_uj: int | None) -> int:
    """Energy between two readings of a counter that wraps to zero at ``max_range_uj``.

    Assumes at most one wrap between the readings (poll often enough to guarantee it).
    Without a known range a decrease cannot be explained and raises DeviceError.
    """
    if end_uj >= start_uj:
        return end_uj - start_uj
    if max_range_uj is None or max_range_uj <= 0:
        raise DeviceError(
            f"RAPL counter went backwards ({start_uj} -> {end_uj} uJ) and its wrap range is "
            "unknown"
        )
    return (max_range_uj - start_uj) + end_uj


class RaplDomain:
    """One RAPL zone (``package-0``, or a sub-zone such as ``package-0/dram``).

    ``reader`` reads a sysfs file's text; it is a seam for tests.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        max_energy_range_uj: int | None,
        reader: Callable[[Path], str] = _read_text,
    ) -> None:
        self.name = name
        self.path = path
        self.max_energy_range_uj = max_energy_range_uj
        self._reader = reader

    def __repr__(self) -> str:
        return f"RaplDomain(name={self.name!r}, path={str(self.path)!r})"

    @property
    def kind(self) -> Literal["cpu", "dram"] | None:
        """``cpu`` for a package zone, ``dram`` for a memory zone, None for the others
        (core, uncore, psys), which overlap the package and are not summed."""
        leaf = self.name.rsplit("/", 1)[-1]
        if leaf.startswith("package"):
            return "cpu"
        if leaf == "dram":
            return "dram"
        return None

    def energy_uj(self) -> int:
        """Current counter value in microjoules (wraps at ``max_energy_range_uj``).

        Raises DevicePermissionError (with the fix) when the file is root-only.
        """
        target = self.path / "energy_uj"
        try:
            return int(self._reader(target).strip())
        except PermissionError as exc:
            raise DevicePermissionError(f"cannot read {target}: {RAPL_PERMISSION_FIX}") from exc
        except (OSError, ValueError) as exc:
            raise DeviceError(f"cannot read {target}: {exc}") from exc

    def is_readable(self) -> bool:
        """Whether :meth:`energy_uj` currently succeeds."""
        try:
            self.energy_uj()
        except DeviceError:
            return False
        return True


class RaplDomains(Sequence[RaplDomain]):
    """The RAPL zones of this host (possibly none)."""

    def __init__(self, domains: Sequence[RaplDomain] = ()) -> None:
        self._domains = tuple(domains)

    def __len__(self) -> int:
        return len(self._domains)

    def __iter__(self) -> Iterator[RaplDomain]:
        return iter(self._domains)

    @overload
    def __getitem__(self, key: int) -> RaplDomain: ...

    @overload
    def __getitem__(self, key: slice) -> Sequence[RaplDomain]: ...

    def __getitem__(self, key: int | slice) -> RaplDomain | Sequence[RaplDomain]:
        return self._domains[key]

    def by_name(self, name: str) -> RaplDomain:
        for domain in self._domains:
            if domain.name == name:
                return domain
        raise KeyError(name)

    def measurable(self) -> list[RaplDomain]:
        """Package and DRAM zones: the ones summed without overlap."""
        return [d for d in self._domains if d.kind is not None]

    def check_readable(self) -> None:
        """Raise the first read error (DevicePermissionError carries the fix) of a
        measurable zone; return quietly when all read."""
        for domain in self.measurable():
            domain.energy_uj()


def get_rapl_domains(
    root: Path = DEFAULT_POWERCAP_ROOT, reader: Callable[[Path], str] = _read_text
) -> RaplDomains:
    """RAPL zones under a powercap root; empty when the tree or its zones are absent.

    Sub-zones are named after their parent (``package-0/dram``) so that names stay unique on
    multi-socket hosts. Zones whose ``name`` file cannot be read are skipped.
    """
    if not root.is_dir():
        return RaplDomains()
    zones: list[tuple[tuple[int, int], Path]] = []
    for entry in root.iterdir():
        match = _ZONE_DIR.match(entry.name)
        if match is None or not entry.is_dir():
            continue
        top = int(match.group(2))
        sub = int(match.group(3)) if match.group(3) is not None else -1
        zones.append(((top, sub), entry))
    # Only one vendor prefix is used for a host; prefer intel-rapl if both appear.
    zones.sort(key=lambda item: (not item[1].name.startswith("intel"), item[0]))
    seen: set[tuple[int, int]] = set()
    top_names: dict[int, str] = {}
    domains: list[RaplDomain] = []
    for (top, sub), path in zones:
        if (top, sub) in seen:
            continue
        seen.add((top, sub))
        try:
            leaf = reader(path / "name").strip()
        except OSError:
            continue
        if sub < 0:
            top_names[top] = leaf
            name = leaf
        else:
            name = f"{top_names.get(top, f'zone-{top}')}/{leaf}"
        domains.append(RaplDomain(name, path, _read_max_range(path, reader), reader))
    return RaplDomains(domains)


def _read_max_range(path: Path, reader: Callable[[Path], str]) -> int | None:
    try:
        return int(reader(path / "max_energy_range_uj").strip())
    except (OSError, ValueError):
        return None
