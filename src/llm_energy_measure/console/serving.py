"""The serving summary: what a serving benchmark prints, plus energy for both windows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from llm_energy_measure.console.textable import format_pairs, si

if TYPE_CHECKING:
    from llm_energy_measure.domain import AggregatedResult, LatencyStats, WindowFigures

#: Appended to every figure derived from estimated energy.
ESTIMATE_MARK = " (estimate)"


def _latency(stats: LatencyStats | None) -> str:
    if stats is None:
        return "n/a"
    return (f"mean {stats.mean_s * 1000:.2f}, p50 {stats.p50_s * 1000:.2f}, "
            f"p90 {stats.p90_s * 1000:.2f}, p99 {stats.p99_s * 1000:.2f} ms")


def _window(w: WindowFigures) -> list[tuple[str, object]]:
    mark = ESTIMATE_MARK if w.energy_estimated else ""
    rows: list[tuple[str, object]] = [
        (f"{w.name} window", f"{w.start_s:.3f} -> {w.end_s:.3f} s ({w.duration_s:.3f} s), "
                             f"mean in flight {w.mean_in_flight:.2f}"),
        (f"{w.name}: throughput", f"{w.output_tokens_per_s:.2f} out tok/s, "
                                  f"{w.requests_per_s:.3f} req/s"),
    ]
    if w.energy_j is None:
        rows.append((f"{w.name}: energy", "not measured"))
    else:
        rows += [
            (f"{w.name}: energy", f"{w.energy_j:.3f} J ({w.energy_method}){mark}"),
            (f"{w.name}: J/token, J/request",
             f"{si(w.energy_per_output_token_j, 'J')}, {si(w.energy_per_request_j, 'J')}{mark}"),
            (f"{w.name}: mean power", si(w.mean_power_w, "W") + mark),
        ]
    return rows


def serving_pairs(result: AggregatedResult) -> list[tuple[str, object]]:
    """The serving rows of a result (empty for other engines)."""
    s = result.serving
    if s is None:
        return []
    inf = result.inference
    load = (f"{s.arrival} at {s.rate_per_s:g} req/s" if s.rate_per_s is not None
            else f"closed loop, {s.concurrency} in flight")
    lag = s.send_lag
    rows: list[tuple[str, object]] = [
        ("endpoint", f"{s.endpoint} ({s.served_model}, {s.api}"
                     f"{', managed server' if s.managed_server else ''})"),
        ("load", f"{load}; target in flight {s.target_in_flight:.2f}, peak {s.peak_in_flight}"),
        ("requests ok / failed / cancelled",
         f"{s.requests_ok} / {s.requests_failed} / {s.requests_cancelled} "
         f"(stop: {s.stop_reason}{', PARTIAL' if s.partial else ''})"),
        ("duration", f"{s.whole.duration_s:.3f} s"),
        ("TTFT", _latency(inf.ttft)),
        ("ITL (per token gap)", _latency(inf.itl)),
        ("ITL (per chunk gap)", _latency(s.chunk_itl)),
        ("TPOT (per request)", _latency(inf.tpot)),
        ("e2e", _latency(inf.e2e)),
        ("send lag p50 / p99", "n/a" if lag is None else
         f"{lag.p50_s * 1000:.3f} / {lag.p99_s * 1000:.3f} ms"),
        ("tokens counted by", f"{s.token_count_method}; ITL {s.itl_method}"),
        ("output length", f"{s.output_length.requested} {s.output_length.max_tokens}"
                          + ("" if s.output_length.honoured is None else
                             f", honoured: {s.output_length.honoured}")),
    ]
    rows += _window(s.whole)
    if s.steady is not None:
        rows += _window(s.steady)
    rows.append(("steady state", "stable" if s.stable else
                 "UNSTABLE: " + "; ".join(s.unstable_reasons)))
    if s.slo is not None:
        slo = s.slo
        mark = ESTIMATE_MARK if slo.energy_estimated else ""
        targets = ", ".join(
            f"{t.metric} {t.percentile} <= {t.target_s * 1000:g} ms: "
            + ("n/a" if t.observed_s is None else f"{t.observed_s * 1000:.2f} ms")
            + (" ok" if t.met else " MISSED") for t in slo.targets)
        rows += [
            ("SLO", ("met" if slo.met else "NOT met") + f" ({targets})"),
            ("SLO attainment, goodput", f"{slo.attainment:.1%} of requests, "
                                        f"{slo.goodput_per_s:.3f} req/s"),
            ("energy per SLO-meeting request", si(slo.energy_per_good_request_j, "J") + mark),
        ]
    if s.attribution is not None and s.attribution.per_request is not None:
        a, e = s.attribution, s.attribution.per_request
        mark = ESTIMATE_MARK if a.estimated else ""
        rows.append(("J/request p50 / p90 / p99", f"{si(e.p50_j, 'J')} / {si(e.p90_j, 'J')} / "
                                                  f"{si(e.p99_j, 'J')}{mark}"))
    if s.server is not None:
        counts = ", ".join(f"{k} {v:g}" for k, v in sorted(s.server.counts.items()))
        rows.append(("server counts", counts + (" (MISMATCH)" if s.server.mismatches else "")))
    if s.records_file:
        rows.append(("request records", s.records_file))
    return rows


def print_serving(result: AggregatedResult) -> None:
    """The serving summary after the run summary."""
    rows = serving_pairs(result)
    if rows:
        typer.echo("serving:")
        typer.echo(format_pairs(rows))
