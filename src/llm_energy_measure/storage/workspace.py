"""One results directory: its layout and the stores that read and write it.

Create one ``Workspace`` per results directory and pass it down; the repository, the state
store and the study store it hands out are created once.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from llm_energy_measure.storage.layout import ResultsLayout
from llm_energy_measure.storage.repository import FileSystemRepository

if TYPE_CHECKING:
    from llm_energy_measure.state.experiment_state import StateStore
    from llm_energy_measure.state.study_store import StudyStore


class Workspace:
    """The results directory ``root`` (every path under it comes from ``layout``)."""

    def __init__(self, root: Path | str) -> None:
        self.layout = ResultsLayout(Path(root))

    @property
    def root(self) -> Path:
        return self.layout.root

    @cached_property
    def repository(self) -> FileSystemRepository:
        return FileSystemRepository(self.layout)

    @cached_property
    def states(self) -> StateStore:
        from llm_energy_measure.state.experiment_state import StateStore

        return StateStore(self.layout.root)

    @cached_property
    def studies(self) -> StudyStore:
        from llm_energy_measure.state.study_store import StudyStore

        return StudyStore(self.layout.root)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
