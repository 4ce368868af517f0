"""Time of `results list` over 10,000 aggregated experiments. Goal: under 1 s.

Creates 10,000 synthetic aggregated experiments in a temporary folder through
FileSystemRepository.save_aggregated (fsync off while creating: this bench measures listing,
not disk flushes), then runs the real CLI command `results list --all` in-process (typer's
CliRunner: argument parsing, FileSystemRepository.list_summaries and the table rendering; the
interpreter start-up is measured by bench_cli_startup.py). Timed, each with a fresh
repository object as the CLI creates one:

* first listing after the saves (folds the save journal into the summary index);
* warm listing (index up to date: the common case);
* listing after the index file was deleted (every file parsed again; informational).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.factories import make_raw  # noqa: E402

from llm_energy_measure.domain import Timestamps  # noqa: E402
from llm_energy_measure.results import FileSystemRepository, aggregate_results  # noqa: E402
from llm_energy_measure.storage.layout import SUMMARY_INDEX_NAME as INDEX_FILE_NAME  # noqa: E402

NUM_EXPERIMENTS = 10_000
GOAL_S = 1.0


def create(base: Path) -> None:
    """NUM_EXPERIMENTS aggregated results of 4 processes each, differing in id and start."""
    template = aggregate_results([make_raw("template", i, 4) for i in range(4)], now=0.0)
    repo = FileSystemRepository(base, durable=False)
    for i in range(NUM_EXPERIMENTS):
        start = 1_700_000_000.0 + 60.0 * i
        result = template.model_copy(update={
            "experiment_id": f"bench-{i:05d}",
            "timestamps": Timestamps(start=start, end=start + 10.0, duration_s=10.0),
        })
        repo.save_aggregated(result)


def time_cli_list(base: Path) -> tuple[float, int]:
    """Seconds for one `results list --all` and the number of table lines printed."""
    from typer.testing import CliRunner

    from llm_energy_measure.cli import app

    runner = CliRunner()
    t0 = time.perf_counter()
    outcome = runner.invoke(app, ["results", "list", "--all", "--results-dir", str(base)])
    elapsed = time.perf_counter() - t0
    if outcome.exit_code != 0:
        raise RuntimeError(f"results list failed ({outcome.exit_code}): {outcome.output[-500:]}")
    return elapsed, outcome.output.count("\n")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-results-list-") as tmp:
        base = Path(tmp) / "results"
        t0 = time.perf_counter()
        create(base)
        print(f"created {NUM_EXPERIMENTS} aggregated experiments in "
              f"{time.perf_counter() - t0:.1f} s")
        (base / "warm-up-empty").mkdir()
        time_cli_list(base / "warm-up-empty")  # import the CLI modules outside the timing
        first_s, lines = time_cli_list(base)
        warm_s, _ = time_cli_list(base)
        (base / INDEX_FILE_NAME).unlink()
        rebuild_s, _ = time_cli_list(base)
    print(f"results list, first after saves : {first_s:.3f} s ({lines} lines printed)")
    print(f"results list, warm index        : {warm_s:.3f} s")
    print(f"results list, index rebuilt     : {rebuild_s:.3f} s (informational)")
    print(f"goal < {GOAL_S:.0f} s: {'met' if max(first_s, warm_s) < GOAL_S else 'NOT met'}")
    return 0 if max(first_s, warm_s) < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
