"""Which inference engine measured a result, and what it could and could not report."""

from __future__ import annotations

from pydantic import Field

from llm_energy_measure.domain.base import FrozenModel


class EngineInfo(FrozenModel):
    """The engine of a result.

    ``batching`` says how the workload was submitted (e.g. static batches of 4, or continuous
    batching by the engine's scheduler). ``unreported`` maps each figure the engine cannot
    report to the reason: such figures are null in the result, never 0.
    """

    name: str = "transformers"
    version: str | None = None
    batching: str | None = None
    unreported: dict[str, str] = Field(default_factory=dict)
    details: dict[str, str] = Field(default_factory=dict)
