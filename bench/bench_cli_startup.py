"""Start-up time of `llm-energy-measure --help` as a ratio to `python -c pass`.

Goal: under 3x, and torch is never imported. Prints the median of repeated runs of each and
their ratio, all measured in this run on this machine.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPEATS = 30


def _median_s(cmd: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    exe = shutil.which("llm-energy-measure") or str(Path(sys.executable).parent /
                                                    "llm-energy-measure")
    base = _median_s([sys.executable, "-c", "pass"])
    help_s = _median_s([exe, "--help"])
    probe = subprocess.run(
        [sys.executable, "-X", "importtime", "-c",
         "import sys; sys.argv=['llm-energy-measure','--help'];"
         "from llm_energy_measure.entrypoint import main; main()"],
        capture_output=True, text=True, check=True,
    )
    torch_imported = "| torch" in probe.stderr
    ratio = help_s / base
    print(f"python -c pass           : {base * 1000:7.1f} ms (median of {REPEATS})")
    print(f"llm-energy-measure --help: {help_s * 1000:7.1f} ms (median of {REPEATS})")
    print(f"ratio                    : {ratio:.2f}x (goal < 3x)")
    print(f"torch imported           : {torch_imported} (goal: False)")
    return 0 if ratio < 3 and not torch_imported else 1


if __name__ == "__main__":
    sys.exit(main())
