"""The study report opened in headless Chromium: it renders, with no console errors.

Needs /usr/bin/chromium (Debian package ``chromium``); skipped when absent. Console messages
and uncaught errors are read from Chromium's stderr log (``--enable-logging=stderr``), where
each appears as an ``INFO:CONSOLE`` line; a deliberately broken page checks that this capture
works. Everything is local (file:// URLs, networking features switched off).
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
from pathlib import Path

import pytest
from tests.fakes.serving_study import build_serving_study
from tests.fakes.study import build_study

from llm_energy_measure.results.report.data import load_study_report_data
from llm_energy_measure.results.report.page import render_study_report

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless Chromium not installed (apt-get install -y chromium)",
)
_CONSOLE = re.compile(r"CONSOLE|Uncaught|Refused to load|ERR_FILE_NOT_FOUND")


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Chromium with its profile, config and cache under ``profile`` (never $HOME)."""
    home = profile / "home"
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_CACHE_HOME": str(home / ".cache")}
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                          env=env)


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if _CONSOLE.search(line)]


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser")
    manifest, repo = build_study(folder / "results", estimated_points=("b2-float16",))
    path = folder / "report.html"
    path.write_text(render_study_report(load_study_report_data(manifest, repo)),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def serving_report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("browser-serving")
    manifest, repo = build_serving_study(folder / "results", estimated=("float32",))
    path = folder / "serving-report.html"
    path.write_text(render_study_report(load_study_report_data(manifest, repo)),
                    encoding="utf-8")
    return path


def test_console_capture_detects_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>console.error('boom-1');"
                   "notDefined();</script></body></html>")
    proc = _chromium(tmp_path / "profile", "--dump-dom", bad.as_uri())
    lines = _console_lines(proc.stderr)
    assert any("boom-1" in line for line in lines), proc.stderr
    assert any("Uncaught ReferenceError" in line for line in lines), proc.stderr


def test_report_renders_without_console_errors(report_file: Path, tmp_path: Path) -> None:
    proc = _chromium(tmp_path / "profile", "--dump-dom", report_file.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _console_lines(proc.stderr) == []
    dom = proc.stdout
    assert dom.count("<svg") == 6
    assert "Study report: batch x precision" in dom
    assert "Estimated energy." in dom
    assert "Pareto frontier" in dom
    assert "parsererror" not in dom


def test_report_screenshot(report_file: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    proc = _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000",
                     "--hide-scrollbars", report_file.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _console_lines(proc.stderr) == []
    assert _png_size(shot) == (1280, 2000)
    # A blank page compresses to a few kB; the report's tables and plots give far more.
    assert shot.stat().st_size > 50_000


def test_serving_report_renders_its_figures_without_console_errors(
    serving_report_file: Path, tmp_path: Path
) -> None:
    proc = _chromium(tmp_path / "profile", "--dump-dom", serving_report_file.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _console_lines(proc.stderr) == []
    dom = proc.stdout
    assert "parsererror" not in dom
    # The 6 study figures, then the 6 serving ones.
    assert dom.count("<svg") == 12
    for title in ("TTFT vs offered load", "ITL (per token gap) vs offered load",
                  "Energy per output token vs offered load", "Goodput vs offered load",
                  "Pareto front: energy per token vs TTFT p99",
                  "Power and requests in flight during run sv-float16-r4-c0"):
        assert f'aria-label="{title}"' in dom
    assert "Serving: energy at a latency target" in dom
    assert "[estimate]" in dom and "serving_power_timeline.csv" in dom
