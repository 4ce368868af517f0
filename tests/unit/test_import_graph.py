"""The package's import graph: no cycles, and lower layers do not import higher ones.

The graph code lives in ``scripts/check_imports.py`` (CI runs it as a script); these tests call
the same functions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

_ROOT = Path(__file__).resolve().parents[2]
_SRC = _ROOT / "src"


def _load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "check_imports", _ROOT / "scripts" / "check_imports.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


check_imports = _load_checker()

#: Modules being rewritten elsewhere; cycles through them are tolerated for now.
_LEAD_AREA = (
    "llm_energy_measure.orchestration.experiment",
    "llm_energy_measure.orchestration.orchestrator",
    "llm_energy_measure.orchestration.launch.",
)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def toy_src(tmp_path: Path) -> Path:
    """A package ``toy`` whose cycles are known: {a, b} and {pkg, pkg.c, pkg.d}."""
    _write(tmp_path, "toy/__init__.py", "")
    # a -> b at module level, b -> a inside a function (relative import): one cycle.
    _write(tmp_path, "toy/a.py", "from toy import b\n")
    _write(tmp_path, "toy/b.py", "def f():\n    from . import a\n    return a\n")
    # e -> a only under TYPE_CHECKING (ignored), e -> e (self-loop, ignored).
    _write(
        tmp_path,
        "toy/e.py",
        "from typing import TYPE_CHECKING\nimport toy.e\n"
        "if TYPE_CHECKING:\n    from toy.a import X\nelse:\n    import toy.f\n",
    )
    _write(tmp_path, "toy/f.py", "try:\n    import json\nexcept ImportError:\n    import toy.e\n")
    # pkg/__init__ -> pkg.c; pkg.c -> pkg.d (from pkg import d: submodule);
    # pkg.d -> pkg (from .. pkg import name: an attribute, so the package __init__).
    _write(tmp_path, "toy/pkg/__init__.py", "from toy.pkg.c import C\n")
    _write(tmp_path, "toy/pkg/c.py", "from toy.pkg import d\nclass C: ...\n")
    _write(tmp_path, "toy/pkg/d.py", "from ..pkg import C\n")
    return tmp_path


def test_edges_resolve_relative_submodule_and_package_forms(toy_src: Path) -> None:
    edges = {(e.source, e.target) for e in check_imports.import_edges(toy_src, "toy")}
    assert edges == {
        ("toy.a", "toy.b"),
        ("toy.b", "toy.a"),
        ("toy.e", "toy.e"),
        ("toy.e", "toy.f"),
        ("toy.f", "toy.e"),
        ("toy.pkg", "toy.pkg.c"),
        ("toy.pkg.c", "toy.pkg.d"),
        ("toy.pkg.d", "toy.pkg"),
    }


def test_cycles_are_components_of_more_than_one_module(toy_src: Path) -> None:
    assert check_imports.import_cycles(toy_src, "toy") == [
        ["toy.a", "toy.b"],
        ["toy.e", "toy.f"],
        ["toy.pkg", "toy.pkg.c", "toy.pkg.d"],
    ]
    report = check_imports.describe_cycles(toy_src, "toy")
    assert "cycle: toy.a, toy.b" in report
    assert "toy.b -> toy.a  (toy/b.py:2)" in report
    assert "toy.e -> toy.e" not in report


def test_script_exits_1_listing_cycles_and_0_without(
    toy_src: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check_imports.main(["--src", str(toy_src), "--package", "toy"]) == 1
    assert capsys.readouterr().out.count("cycle: ") == 3
    clean = toy_src / "clean"
    _write(clean, "toy/__init__.py", "")
    _write(clean, "toy/x.py", "import toy\n")
    assert check_imports.main(["--src", str(clean), "--package", "toy"]) == 0
    assert capsys.readouterr().out == "no import cycles in toy\n"


def test_no_import_cycles_outside_the_modules_being_rewritten() -> None:
    outside = [
        cycle
        for cycle in check_imports.import_cycles(_SRC)
        if not any(m.startswith(_LEAD_AREA) for m in cycle)
    ]
    assert outside == [], check_imports.describe_cycles(_SRC)


def test_no_import_cycles() -> None:
    report = check_imports.describe_cycles(_SRC)
    assert report == "", report


_PROBE = (
    "import json, sys, pkgutil, importlib, llm_energy_measure.state as s\n"
    "for m in pkgutil.iter_modules(s.__path__, s.__name__ + '.'):\n"
    "    importlib.import_module(m.name)\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
    "('llm_energy_measure.results', 'llm_energy_measure.orchestration')))))\n"
)


def test_state_does_not_import_results_or_orchestration() -> None:
    """``state`` sits below ``results``: importing it (every submodule) loads neither."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(_SRC)},
        check=True,
        timeout=60,
    )
    assert json.loads(done.stdout) == []


def test_state_and_storage_reach_no_higher_layer_even_through_function_imports() -> None:
    graph: dict[str, set[str]] = {}
    for edge in check_imports.import_edges(_SRC):
        graph.setdefault(edge.source, set()).add(edge.target)
    starts = [m for m in check_imports.module_names(_SRC) if m.startswith(
        ("llm_energy_measure.state", "llm_energy_measure.storage"))]
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    higher = ("llm_energy_measure.results", "llm_energy_measure.orchestration",
              "llm_energy_measure.core", "llm_energy_measure.cli", "llm_energy_measure.console")
    assert sorted(m for m in seen if m.startswith(higher)) == []
