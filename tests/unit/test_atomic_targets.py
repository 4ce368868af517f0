"""What an atomic write may replace: nothing or a regular file; symlinks are followed.

`results export -o /dev/full` used to replace the device node with a regular file, and a
symlink given to -o was replaced by a file. Errors name the file written.
"""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests.factories import make_raw
from typer.testing import CliRunner

from llm_energy_measure.cli import app
from llm_energy_measure.exceptions import ConfigurationError
from llm_energy_measure.results import FileSystemRepository, aggregate_results
from llm_energy_measure.storage.atomic import atomic_write_text

runner = CliRunner()


def _store(base: Path) -> FileSystemRepository:
    repo = FileSystemRepository(base)
    raw = make_raw("e1", 0, 1)  # 4 requests x 20 output tokens
    repo.save_raw(raw)
    repo.save_aggregated(aggregate_results([raw]))
    return repo


def _export(base: Path, output: Path):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["results", "export", "-o", str(output), "--results-dir",
                               str(base)])


@pytest.mark.timeout(30)
def test_export_onto_a_fifo_is_refused_and_the_fifo_kept(tmp_path: Path) -> None:
    _store(tmp_path / "r")
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo)
    result = _export(tmp_path / "r", fifo)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {fifo} exists and is a FIFO (named pipe), not a regular file; refusing to "
        "replace it: give the path of a file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_export_onto_a_device_node_is_refused_and_the_node_kept(tmp_path: Path) -> None:
    _store(tmp_path / "r")
    node = tmp_path / "full"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # what /dev/full is
    result = _export(tmp_path / "r", node)
    assert result.exit_code == 2
    assert "is a character device, not a regular file; refusing to replace it" in result.stderr
    assert stat.S_ISCHR(os.lstat(node).st_mode)


def test_a_symlink_to_a_device_is_refused_saying_links_are_followed(tmp_path: Path) -> None:
    _store(tmp_path / "r")
    link = tmp_path / "out.csv"
    link.symlink_to("/dev/null")
    result = _export(tmp_path / "r", link)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: {link} is a symlink to /dev/null, which is a character device, not a regular "
        "file; symlinks are followed, so nothing was written: give the path of a file")
    assert os.readlink(link) == "/dev/null"


def test_export_through_a_symlink_writes_the_file_it_names(tmp_path: Path) -> None:
    _store(tmp_path / "r")
    real = tmp_path / "real.csv"
    real.write_text("old\n")
    link = tmp_path / "out.csv"
    link.symlink_to(real)
    result = _export(tmp_path / "r", link)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(real)
    [row] = list(csv.DictReader(real.open()))
    assert (row["experiment_id"], row["inference.output_tokens"]) == ("e1", "80")


def test_the_store_follows_a_symlinked_aggregated_file(tmp_path: Path) -> None:
    repo = _store(tmp_path)
    kept = tmp_path / "kept.json"
    path = repo.aggregated_path("e1")
    path.rename(kept)
    path.symlink_to(kept)
    repo.save_aggregated(aggregate_results([make_raw("e1", 0, 1, duration_s=20.0)]))
    assert path.is_symlink()
    result = repo.load_aggregated("e1")
    assert result is not None and result.inference.inference_time_s == 20.0


def test_an_error_names_the_target_not_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "out.json"
    with pytest.raises(FileNotFoundError) as caught:
        atomic_write_text(target, "{}")
    assert caught.value.filename == str(target)
    assert caught.value.strerror == "cannot write the file: No such file or directory"


def test_a_directory_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="is a directory, not a regular file"):
        atomic_write_text(tmp_path, "{}")


def test_a_failed_write_names_the_file_and_keeps_the_old_content(tmp_path: Path) -> None:
    # A real write failure from the kernel: the file-size limit makes write() fail with
    # EFBIG ("File too large"), as a full disk makes it fail with ENOSPC; neither names a file.
    _store(tmp_path / "r")
    out = tmp_path / "out.json"
    out.write_text("old\n")
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))\n"
        "from llm_energy_measure.cli import main\n"
        f"sys.argv = ['llm-energy-measure', 'results', 'export', '-f', 'json', '-o', {str(out)!r},"
        f" '--results-dir', {str(tmp_path / 'r')!r}]\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {out}: cannot write the file: File too large")
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
