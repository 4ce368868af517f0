"""Stored results hold only finite, in-range figures: refused when written and when read.

NaN written into a result used to become ``null``, which the same models then refused on
reading: ``aggregate --force`` over a hand-edited NaN succeeded and ``results show`` failed
afterwards. Negative and absurd (10**23) token counts were accepted.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.factories import make_raw
from typer.testing import CliRunner

from llm_energy_measure.cli import app
from llm_energy_measure.constants import MAX_COUNT
from llm_energy_measure.domain import InferenceMetrics
from llm_energy_measure.exceptions import ResultsError
from llm_energy_measure.results import FileSystemRepository, aggregate_results

runner = CliRunner()


def _edit_raw(repo: FileSystemRepository, exp_id: str, old: str, new: str) -> Path:
    path = repo.raw_path(exp_id, 0)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def test_a_hand_edited_nan_is_refused_on_read_naming_file_and_field(tmp_path: Path) -> None:
    repo = FileSystemRepository(tmp_path)
    repo.save_raw(make_raw("e1", 0, 1))  # 80 output tokens over 10 s: 8.0 tok/s
    path = _edit_raw(repo, "e1", '"output_tokens_per_s": 8.0', '"output_tokens_per_s": NaN')
    with pytest.raises(ResultsError) as caught:
        repo.load_raw("e1", 0)
    assert str(caught.value).startswith(
        f"{path}: not a valid raw result (inference.output_tokens_per_s: Input should be a "
        "finite number)")


def test_aggregate_force_over_a_nan_fails_and_keeps_the_readable_result(tmp_path: Path) -> None:
    repo = FileSystemRepository(tmp_path)
    raw = make_raw("e1", 0, 1)
    repo.save_raw(raw)
    repo.save_aggregated(aggregate_results([raw]))
    before = repo.aggregated_path("e1").read_bytes()
    path = _edit_raw(repo, "e1", '"total_energy_j": 100.0', '"total_energy_j": Infinity')
    result = runner.invoke(app, ["aggregate", "e1", "--force", "--results-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert (f"{path}: not a valid raw result (energy.total_energy_j: Input should be a finite "
            "number)") in result.stderr
    assert repo.aggregated_path("e1").read_bytes() == before
    shown = runner.invoke(app, ["results", "show", "e1", "--results-dir", str(tmp_path)])
    assert shown.exit_code == 0
    assert re.search(r"tokens in / out +40 / 80", shown.stdout)


@pytest.mark.parametrize(("value", "problem"), [
    ("-5", "Input should be greater than or equal to 0"),
    (str(10**23), f"Input should be less than or equal to {MAX_COUNT}"),
])
def test_out_of_range_token_counts_are_refused_on_read(tmp_path: Path, value: str,
                                                        problem: str) -> None:
    repo = FileSystemRepository(tmp_path)
    repo.save_raw(make_raw("e1", 0, 1))
    path = _edit_raw(repo, "e1", '"output_tokens": 80', f'"output_tokens": {value}')
    with pytest.raises(ResultsError, match=r"not a valid raw result") as caught:
        repo.load_raw("e1", 0)
    assert f"{path}: not a valid raw result (inference.output_tokens: {problem})" in str(
        caught.value)


def test_a_non_finite_figure_is_refused_when_written(tmp_path: Path) -> None:
    repo = FileSystemRepository(tmp_path)
    raw = make_raw("e1", 0, 1)
    assert raw.energy is not None
    # model_copy(update=...) does not validate: the repository is the last line of defence.
    bad = raw.model_copy(update={"energy": raw.energy.model_copy(
        update={"mean_power_w": math.nan})})
    with pytest.raises(ResultsError) as caught:
        repo.save_raw(bad)
    assert str(caught.value) == (
        f"{repo.raw_path('e1', 0)}: refusing to write an invalid result "
        "(energy.mean_power_w: Input should be a finite number)")
    assert not repo.raw_path("e1", 0).exists()
    agg = aggregate_results([raw])
    with pytest.raises(ResultsError, match=r"refusing to write an invalid result \(inference"):
        repo.save_aggregated(agg.model_copy(update={"inference": agg.inference.model_copy(
            update={"output_tokens": -1})}))
    assert not repo.aggregated_path("e1").exists()


def test_models_refuse_nan_and_absurd_counts_when_built() -> None:
    fields = dict(num_requests=1, input_tokens=1, output_tokens=2, total_tokens=3,
                  inference_time_s=1.0, output_tokens_per_s=2.0, total_tokens_per_s=3.0,
                  requests_per_s=1.0)
    assert InferenceMetrics(**fields).total_tokens == 3
    with pytest.raises(ValidationError, match="finite number"):
        InferenceMetrics(**{**fields, "output_tokens_per_s": math.inf})
    with pytest.raises(ValidationError, match="less than or equal to 9007199254740992"):
        InferenceMetrics(**{**fields, "output_tokens": 10**23})
    assert json.loads(InferenceMetrics(**fields).model_dump_json())["output_tokens"] == 2
