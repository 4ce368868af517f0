"""Load-generator fidelity: how late does the open loop send, as the rate grows?

The scripted streaming server (tests/fakes/streaming_server.py) answers at once (TTFT 0,
one token) in its own process, pinned to one CPU; this process, the load generator, is
pinned to another (``os.sched_setaffinity``; on a machine with one CPU, or with
``--no-pin``, both share what there is and the figures are worse). For each Poisson rate
(fixed seed) one open-loop run of ``--seconds`` seconds is sent through
``run_load_sync``, and the send lateness (``sent_s - scheduled_s``) of every request is
summarised: p50, p99 and max in ms, with the errors, the peak in-flight count and the
load generator's CPU time per request (this process only; one core sustains about 1000 /
that many requests per second). A rate above that shows as ``sent/s`` below ``rate/s`` and
a lateness that grows through the run. The last line names the highest rate whose p99
lateness is at most ``--p99-ms`` (1 ms). Other processes on the same CPUs show as
lateness too: the header prints the load average.

    PYTHONPATH=src python bench/bench_loadgen.py [--rates 50,100,200,400,800,1600]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "fakes" / "streaming_server.py"


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` in [0, 100] of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def _cpus(pin: bool) -> tuple[int | None, int | None]:
    """(client CPU, server CPU), or Nones when not pinning."""
    if not pin or not hasattr(os, "sched_setaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def start_server(cpu: int | None) -> tuple[subprocess.Popen[str], int]:
    """The scripted server as a process (TTFT 0, one token); its port."""
    cmd = [sys.executable, str(SERVER), "--port", "0", "--ttft-s", "0", "--gap-s", "0",
           "--tokens", "1"]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, int(line.split()[1])


def one_rate(base_url: str, rate: float, seconds: float, seed: int,
             max_in_flight: int) -> dict[str, float]:
    from llm_energy_measure.core.serving.client import EndpointSettings, RequestSpec, run_load_sync
    from llm_energy_measure.core.serving.schedule import arrival_times

    n = max(1, int(rate * seconds))
    schedule = arrival_times("poisson", rate, n, seed)
    specs = [RequestSpec(i, "hello world", 1) for i in range(n)]
    endpoint = EndpointSettings(base_url, "fake-model", read_timeout_s=30.0)
    cpu_s = time.process_time()
    run = run_load_sync(endpoint, specs, schedule=schedule, concurrency=None,
                        max_in_flight=max_in_flight, breaker_failures=max(n, 1))
    cpu_s = time.process_time() - cpu_s
    late_ms = sorted((r.sent_s - (r.scheduled_s or 0.0)) * 1e3 for r in run.results)
    return {"rate": rate, "n": len(run.results), "errors": sum(r.status != "ok"
                                                               for r in run.results),
            "p50": _percentile(late_ms, 50), "p99": _percentile(late_ms, 99),
            "max": late_ms[-1] if late_ms else math.nan, "peak": run.peak_in_flight,
            "cpu_ms": cpu_s * 1e3 / n,
            "sent_rate": len(run.results) / max(run.results[-1].sent_s, 1e-9)
            if run.results else 0.0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,100,200,400,800,1600",
                        help="Poisson rates in requests/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run (s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-in-flight", type=int, default=10_000)
    parser.add_argument("--p99-ms", type=float, default=1.0)
    parser.add_argument("--no-pin", action="store_true", help="do not pin to CPUs")
    args = parser.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]

    client_cpu, server_cpu = _cpus(not args.no_pin)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    proc, port = start_server(server_cpu)
    base_url = f"http://127.0.0.1:{port}/v1"
    print(f"load generator on CPU {client_cpu}, server on CPU {server_cpu} "
          f"({os.cpu_count()} CPUs); Poisson, seed {args.seed}, {args.seconds:g} s a rate; "
          f"server answers at once with one token; load average {os.getloadavg()[0]:.1f} "
          f"(other processes on these CPUs show as lateness)")
    try:
        one_rate(base_url, 50.0, 0.5, args.seed + 1, args.max_in_flight)  # warm-up
        print(f"{'rate/s':>8} {'sent/s':>8} {'requests':>8} {'errors':>6} {'peak':>5} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'cpu ms/req':>10}")
        best: float | None = None
        for rate in rates:
            row = one_rate(base_url, rate, args.seconds, args.seed, args.max_in_flight)
            print(f"{row['rate']:>8.0f} {row['sent_rate']:>8.0f} {row['n']:>8.0f} "
                  f"{row['errors']:>6.0f} {row['peak']:>5.0f} {row['p50']:>7.3f} "
                  f"{row['p99']:>7.3f} {row['max']:>7.2f} {row['cpu_ms']:>10.2f}")
            if row["p99"] <= args.p99_ms and row["errors"] == 0:
                best = rate if best is None else max(best, rate)
            time.sleep(0.2)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    shown = "none" if best is None else f"{best:.0f} req/s"
    print(f"highest rate with p99 send lateness <= {args.p99_ms:g} ms: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
