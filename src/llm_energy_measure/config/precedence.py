"""Where each setting comes from. This module is the one place that declares precedence.

Highest precedence first:

1. CLI flags and ``--set key=value`` overrides (dotted keys, see ``overrides.apply_overrides``).
2. Environment: ``LLM_ENERGY_MEASURE_RESULTS_DIR`` sets the results directory (the only setting
   read from the environment; see ``effective_results_dir``).
3. The config file. Its ``_extends`` parents sit below it: parents are merged in the order
   listed (a later parent wins over an earlier one) and the child wins over all of them.
   Mappings merge key by key, recursively; lists and scalars are replaced whole
   (``merge.deep_merge``).
4. Defaults declared on the models in ``config/models.py`` (a decoder ``preset`` fills only the
   decoder fields that no layer above set explicitly).

Loading and validation are pure: nothing here reads devices; the environment is consulted only
by ``effective_results_dir``, an explicit step taken when a run starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm_energy_measure.config.overrides import apply_overrides
from llm_energy_measure.constants import DEFAULT_RESULTS_DIR, RESULTS_DIR_ENV

if TYPE_CHECKING:
    from llm_energy_measure.config.models import ExperimentConfig


def layer_sources(
    file_data: Mapping[str, Any], overrides: Mapping[str, object] | None = None
) -> dict[str, Any]:
    """The settings of one experiment before validation: file (parents already merged) < overrides.

    Model defaults are filled in later by validation; the environment affects only the results
    directory (``effective_results_dir``).
    """
    return apply_overrides(file_data, overrides)


def effective_results_dir(
    config: ExperimentConfig | None = None, flag_value: str | Path | None = None
) -> Path:
    """Results directory: ``--results-dir`` flag > environment > config file > default.

    ``config`` is None where no experiment config is involved (``results``, ``study`` and
    ``resume`` commands): flag > environment > default. Returns the path as given (relative
    paths stay relative to the working directory).
    """
    if flag_value is not None and str(flag_value) != "":
        return Path(flag_value)
    env = os.environ.get(RESULTS_DIR_ENV)
    if env:
        return Path(env)
    if config is not None and config.results_dir is not None:
        return config.results_dir
    return DEFAULT_RESULTS_DIR
