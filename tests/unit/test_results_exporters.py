"""Exports: flattened columns, CSV and JSON round trips, Parquet through the optional extra."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest
from tests.factories import make_cycle, make_raw

from llm_energy_measure.domain import AggregatedResult
from llm_energy_measure.exceptions import ConfigurationError, MissingExtraError
from llm_energy_measure.results import (
    aggregate_results,
    export_aggregated,
    export_csv,
    export_json,
    export_parquet,
    flatten_result,
)
from llm_energy_measure.results.export.exporters import columnar

HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None


def _result(exp_id="exp-1", n=2, **kwargs) -> AggregatedResult:
    raws = [make_raw(exp_id, i, n, start=100.0, duration_s=8.0, **kwargs) for i in range(n)]
    return aggregate_results(raws, now=5.0)


def _cycled() -> AggregatedResult:
    cycles = [make_cycle(c, start=10.0 * c, duration_s=5.0, output_tokens=50 + 10 * c)
              for c in range(2)]
    return aggregate_results([make_raw("cyc", 0, 1, cycles=cycles)], now=5.0)


def test_flatten_gives_dotted_columns_with_known_values():
    flat = flatten_result(_result())
    assert next(iter(flat)) == "result_type" and flat["result_type"] == "aggregated"
    assert flat["experiment_id"] == "exp-1"
    assert flat["inference.output_tokens"] == 160
    assert flat["inference.output_tokens_per_s"] == pytest.approx(20.0)
    assert flat["inference.ttft.p50_s"] == pytest.approx(0.1)
    assert flat["energy.total_energy_j"] == pytest.approx(200.0)
    assert flat["aggregation.num_processes"] == 2
    assert flat["effective_config.inference.batch_size"] == 4
    assert flat["model.quantization.method"] == "none"
    devices = json.loads(flat["energy.devices"])
    assert [d["device_id"] for d in devices] == ["gpu:GPU-hostA-0", "gpu:GPU-hostA-1"]
    assert all(isinstance(v, (str, int, float, bool, type(None))) for v in flat.values())


def test_flatten_of_cycle_stats():
    flat = flatten_result(_cycled())
    # Throughput per cycle: 50/5 and 60/5 -> mean 11.
    assert flat["cycle_stats.output_tokens_per_s.mean"] == pytest.approx(11.0)
    assert flat["cycle_stats.output_tokens_per_s.n"] == 2


def test_column_order_is_stable_and_absent_parts_give_empty_columns():
    with_energy = list(flatten_result(_result()))
    without = flatten_result(_result(with_energy=False))
    assert list(without) == with_energy
    assert without["energy.total_energy_j"] is None
    assert without["energy.devices"] is None


def test_raw_results_flatten_without_bulky_sequences():
    flat = flatten_result(make_raw("exp", 0, 1))
    assert flat["result_type"] == "raw"
    assert flat["process_index"] == 0
    assert "requests" not in flat and "timeseries" not in flat
    assert "requests" in flatten_result(make_raw("exp", 0, 1), exclude=())


def test_csv_round_trip_of_known_values(tmp_path):
    results = [_result("exp-1"), _cycled()]
    path = export_csv(results, tmp_path / "out.csv")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = next(csv.reader(path.read_text().splitlines()))
    assert header[:3] == ["result_type", "schema_version", "experiment_id"]
    assert [r["experiment_id"] for r in rows] == ["exp-1", "cyc"]
    assert float(rows[0]["energy.total_energy_j"]) == 200.0
    tok_per_s = results[0].inference.output_tokens_per_s
    assert float(rows[0]["inference.output_tokens_per_s"]) == tok_per_s  # exact round trip
    assert int(rows[0]["inference.output_tokens"]) == 160
    assert rows[0]["energy.estimated"] == "False"
    # A column only the second result has is present, empty for the first.
    assert rows[0]["cycle_stats.output_tokens_per_s.mean"] == ""
    assert float(rows[1]["cycle_stats.output_tokens_per_s.mean"]) == 11.0
    assert json.loads(rows[0]["warnings"]) == []


def test_json_export_round_trips_the_full_results(tmp_path):
    results = [_result("exp-1"), _result("exp-2", n=1)]
    path = export_json(results, tmp_path / "out.json")
    loaded = [AggregatedResult.model_validate(d) for d in json.loads(path.read_text())]
    assert loaded == results


def test_columnar_gives_one_type_per_column():
    a = _result("a", effective_config={"x": 1, "y": "s", "z": 1})
    b = _result("b", effective_config={"x": 2.5, "y": 3, "z": True})
    cols = columnar([a, b])
    assert cols["effective_config.x"] == [1.0, 2.5]
    assert cols["effective_config.y"] == ["s", "3"]
    assert cols["effective_config.z"] == ["1", "True"]
    assert cols["experiment_id"] == ["a", "b"]


@pytest.mark.skipif(HAS_PYARROW, reason="pyarrow is installed")
def test_parquet_without_pyarrow_names_the_extra(tmp_path):
    with pytest.raises(MissingExtraError) as info:
        export_parquet([_result()], tmp_path / "out.parquet")
    message = str(info.value)
    assert "pyarrow" in message and 'pip install "llm-energy-measure[parquet]"' in message
    assert "Parquet export" in message
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.skipif(not HAS_PYARROW, reason="needs the parquet extra (pyarrow)")
def test_parquet_round_trip(tmp_path):  # pragma: no cover - runs where pyarrow is installed
    import pyarrow.parquet as pq

    path = export_parquet([_result("exp-1"), _cycled()], tmp_path / "out.parquet")
    table = pq.read_table(path).to_pydict()
    assert table["experiment_id"] == ["exp-1", "cyc"]
    assert table["energy.total_energy_j"][0] == 200.0
    assert table["cycle_stats.output_tokens_per_s.mean"] == [None, 11.0]


def test_dispatch_and_bad_output(tmp_path):
    assert export_aggregated([_result()], "JSON", tmp_path / "a.json").exists()
    with pytest.raises(ConfigurationError, match="csv, json, parquet"):
        export_aggregated([_result()], "xlsx", tmp_path / "a.xlsx")
    with pytest.raises(ConfigurationError, match="does not exist"):
        export_aggregated([_result()], "csv", tmp_path / "missing" / "a.csv")
    with pytest.raises(ConfigurationError, match="is a folder"):
        export_aggregated([_result()], "csv", tmp_path)
