"""The outcome of a study's search for the highest load meeting the SLO.

Stored as ``studies/<id>/search_result.json``. Values of the searched key are in its unit
(requests/s for ``load.rate_per_s``, requests in flight for ``load.concurrency``); energies
in joules per output token; goodput in SLO-meeting requests per second.
"""

from __future__ import annotations

from typing import Literal

from llm_energy_measure.domain.base import FrozenModel, NonNegative
from llm_energy_measure.domain.metrics import MetricStats

SEARCH_SCHEMA_VERSION = 1


class SearchFigure(FrozenModel):
    """A figure of the answer's run: ``value`` over all its cycles' requests pooled, and
    ``stats`` (mean, Student t 95% CI) over its cycles (None with fewer than 2 cycles)."""

    value: NonNegative | None
    stats: MetricStats | None = None


class SearchProbe(FrozenModel):
    """One probe: one run (one experiment, the study's ``cycles`` cycles) at ``value``."""

    point_id: str
    experiment_id: str
    value: NonNegative
    slo_met: bool
    attainment: NonNegative | None = None
    goodput_per_s: NonNegative | None = None
    energy_per_output_token_j: NonNegative | None = None
    steady_energy_per_output_token_j: NonNegative | None = None
    stable: bool | None = None


class SearchResult(FrozenModel):
    """How the search ended, the answer with its figures, and every probe in run order.

    ``outcome``: ``found`` (the answer lies inside the bounds), ``high_meets`` (``high`` met
    the SLO: the answer is the bound, the true limit may be higher) or ``none_meets``
    (``low`` failed). ``bracket``: (highest value met, lowest value failed).
    """

    schema_version: int = SEARCH_SCHEMA_VERSION
    study_id: str
    key: str
    low: NonNegative
    high: NonNegative
    tolerance: NonNegative
    max_probes: int
    cycles: int
    outcome: Literal["found", "none_meets", "high_meets"]
    stopped_by: Literal["low_fails", "high_meets", "tolerance", "max_probes"]
    value: NonNegative | None = None
    bracket: tuple[NonNegative, NonNegative] | None = None
    point_id: str | None = None
    experiment_id: str | None = None
    energy_per_output_token_j: SearchFigure | None = None
    steady_energy_per_output_token_j: SearchFigure | None = None
    goodput_per_s: SearchFigure | None = None
    energy_estimated: bool | None = None
    probes: tuple[SearchProbe, ...] = ()
    notes: tuple[str, ...] = ()
