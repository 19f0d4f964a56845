"""Benchmark: the cost of one histogram observation and one counter increment, the project's
:class:`checkin.platform.metrics.Metrics` against ``prometheus_client``.

Both record the same thing: a labelled histogram with the same 13 buckets (what the rule engine does
per scan, ``rules_delay_seconds``, and the tracing API per query, ``tracing_query_seconds``) and a
labelled counter. ``prometheus_client`` is measured in its default mode (one process) and, when it is
importable, in its multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), the mode that adds up several
worker processes on one machine as our Redis hash does for every worker of a service. It is not a
dependency of the project: install it beside it to compare (``pip install prometheus_client``).

Prints nanoseconds per call, the median of ``--rounds`` rounds of ``--n`` calls each:

    .venv/bin/python -m loadtest.bench_metrics [--n 200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from checkin.platform.metrics import DEFAULT_BUCKETS, Metrics

HISTOGRAM = "bench_seconds"
COUNTER = "bench_total"


def per_call_ns(fn: Callable[[int], None], n: int, rounds: int) -> float:
    """Median nanoseconds per call of ``fn`` over ``rounds`` rounds of ``n`` calls."""
    fn(min(n, 10_000))  # warm up: series names, label children
    figures = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        fn(n)
        figures.append((time.perf_counter_ns() - start) / n)
    return statistics.median(figures)


def own(n: int, rounds: int) -> dict[str, float]:
    metrics = Metrics("bench")
    metrics.histogram(HISTOGRAM, "bench")
    metrics.counter(COUNTER, "bench")
    values = [(i % 1000) / 1000 for i in range(n)]

    def observe(count: int) -> None:
        for i in range(count):
            metrics.observe(HISTOGRAM, values[i], kind="contacts")

    def inc(count: int) -> None:
        for _ in range(count):
            metrics.inc(COUNTER, kind="contacts")

    return {"observe": per_call_ns(observe, n, rounds), "inc": per_call_ns(inc, n, rounds)}


def library(n: int, rounds: int, multiprocess_dir: str | None) -> dict[str, float]:
    if multiprocess_dir is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
    for name in [m for m in sys.modules if m.startswith("prometheus_client")]:
        del sys.modules[name]  # the mode is chosen when the values module is imported
    prometheus_client = importlib.import_module("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    histogram = prometheus_client.Histogram(
        HISTOGRAM, "bench", ["kind"], buckets=DEFAULT_BUCKETS, registry=registry
    )
    counter = prometheus_client.Counter(COUNTER, "bench", ["kind"], registry=registry)
    values = [(i % 1000) / 1000 for i in range(n)]

    def observe(count: int) -> None:
        for i in range(count):
            histogram.labels(kind="contacts").observe(values[i])

    def inc(count: int) -> None:
        for _ in range(count):
            counter.labels(kind="contacts").inc()

    try:
        return {"observe": per_call_ns(observe, n, rounds), "inc": per_call_ns(inc, n, rounds)}
    finally:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rows = [("checkin.platform.metrics", own(args.n, args.rounds))]
    try:
        importlib.import_module("prometheus_client")
    except ImportError:
        print("prometheus_client is not installed: only the project's writer is measured", file=sys.stderr)
    else:
        rows.append(("prometheus_client", library(args.n, args.rounds, None)))
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(("prometheus_client multiprocess", library(args.n, args.rounds, tmp)))
    print(f"{'writer':34} {'observe ns':>11} {'inc ns':>8}")
    for name, figures in rows:
        print(f"{name:34} {figures['observe']:11.0f} {figures['inc']:8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
