"""Soak run (not in CI): `checkin up` on its own data dir, ports and Redis, a small city seeded
through the API, check-ins driven at a steady rate for a long time, RSS of every process of the
system sampled every 10 s.

    python -m loadtest.soak --minutes 30 --rate 2000

The load comes from ``wrk`` (C, one thread per core's worth of connections) paced with wrk's
``delay()`` hook, so the generator costs little of the machine it measures. Two short
calibration runs first measure how long a paced cycle really takes (answer time and wrk's timer
slack) and set the delay, and the number of connections if need be, to reach ``--rate``; when
the machine cannot sustain it the figure recorded is the rate it did sustain.

Stable means: after the warm-up, the RSS of every process of the services (launcher, granian
main and workers of both services) stays within 10 % (max vs min of its samples), and so does
their sum. redis-server is sampled and reported apart: it holds the check-in records for the
check-out window (13 h TTL) and the dedupe keys, so its memory grows with the check-ins by
design; the run reports its growth per accepted check-in instead. The run also records the
scan-stream backlog at the end (the sink keeping up) and the check-in answers that were not 2xx.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import redis

from loadtest.bench_ingest import lua_list, run_wrk, wrk_threads_lua
from loadtest.results import Figure, record
from loadtest.system import scan_backlog, seed_city, start_system, stop_system, system_env

PACED_LUA = (
    wrk_threads_lua(7919)
    + """
function delay()
  return DELAY_MS
end
request = function()
  counter = counter + 1
  local t = tokens[math.random(#tokens)]
  local c = codes[math.random(#codes)]
  local body = '{"code":"' .. c .. '","client_id":"s' .. tid .. '-' .. counter .. '"}'
  return wrk.format("POST", "/v1/checkins", {["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. t}, body)
end
"""
)


@dataclass
class Samples:
    """RSS (bytes) per process label, one list per label, sampled at the same instants."""

    at: list[float] = field(default_factory=list)
    rss: dict[str, list[int]] = field(default_factory=dict)
    backlog: list[int] = field(default_factory=list)
    services: list[int] = field(default_factory=list)
    """Sum of the service processes (all but redis-server) at each sampling instant."""


def _label(proc: psutil.Process) -> str:
    cmd = " ".join(proc.cmdline())
    if "redis-server" in cmd:
        return "redis-server"
    if "resource_tracker" in cmd:
        return "resource-tracker"
    if "checkin.cli up" in cmd or cmd.endswith(" up"):
        return "launcher"
    if "serve-ingest" in cmd or "checkin.app" in cmd:
        return "ingest"
    if "serve-tracing" in cmd or "tracing.app" in cmd:
        return "tracing"
    return str(proc.name())


def system_rss(root: psutil.Process) -> dict[str, int]:
    """RSS by process: the launcher and every descendant, workers numbered in pid order."""
    procs = [root, *root.children(recursive=True)]
    out: dict[str, int] = {}
    counts: dict[str, int] = {}
    for proc in sorted(procs, key=lambda p: p.pid):
        try:
            parent = proc.parent()
            if parent is not None and "redis-server" in parent.name():
                continue  # the AOF-rewrite fork: transient, its pages shared copy-on-write
            label = _label(proc)
            rss = proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        n = counts[label] = counts.get(label, 0) + 1
        out[f"{label}#{n}" if n > 1 or label in ("ingest", "tracing") else label] = rss
    return out


def sampler(
    root: psutil.Process, samples: Samples, stop: threading.Event, every_s: float, redis_url: str
) -> None:
    start = time.monotonic()
    while not stop.is_set():
        rss = system_rss(root)
        samples.at.append(time.monotonic() - start)
        samples.services.append(sum(v for k, v in rss.items() if not k.startswith("redis-server")))
        for label, value in rss.items():
            samples.rss.setdefault(label, []).append(value)
        try:
            samples.backlog.append(scan_backlog(redis_url))
        except Exception:
            samples.backlog.append(-1)
        mb = sum(rss.values()) / 2**20
        print(
            f"  t={samples.at[-1]:6.0f}s  system RSS {mb:7.1f} MB  sink backlog {samples.backlog[-1]:,}",
            flush=True,
        )
        stop.wait(every_s)


def redis_used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])  # type: ignore[index]


def stability(samples: Samples, warmup_s: float) -> tuple[dict[str, float], float]:
    """(max/min - 1 per service process after warm-up, same for their total); redis-server apart."""
    keep = [i for i, t in enumerate(samples.at) if t >= warmup_s]
    spread: dict[str, float] = {}
    for label, values in samples.rss.items():
        if label == "redis-server":
            continue
        after = [values[i] for i in keep if i < len(values)]
        if len(after) >= 2 and min(after) > 0:
            spread[label] = max(after) / min(after) - 1
    totals = [samples.services[i] for i in keep]
    total = max(totals) / min(totals) - 1 if len(totals) >= 2 else float("nan")
    return spread, total


def paced_script(work: Path, tokens: list[str], codes: list[str], delay_ms: int) -> Path:
    script = work / f"soak-{delay_ms}.lua"
    script.write_text(
        lua_list("tokens", tokens) + lua_list("codes", codes) + PACED_LUA.replace("DELAY_MS", str(delay_ms))
    )
    return script


def calibrate(
    ingest: str,
    work: Path,
    tokens: list[str],
    codes: list[str],
    rate: int,
    connections: int,
    latency_ms: float,
    seconds: int,
) -> tuple[int, int]:
    """(connections, pacing delay in ms) that give ``rate`` check-ins a second on this machine.

    A paced connection sends one request per (answer time + delay + wrk's own timer slack); the
    slack is not known in advance, so two short runs measure the cycle and the delay is set from it
    (more connections when the delay would have to go below zero).
    """
    delay_ms = max(1, round(connections * 1000 / rate - latency_ms))
    for attempt in (1, 2):
        got = run_wrk(
            f"{ingest}/v1/checkins", paced_script(work, tokens, codes, delay_ms), seconds, connections
        )
        cycle_ms = connections * 1000 / max(got.rps, 1.0)
        overhead_ms = max(0.0, cycle_ms - delay_ms)
        print(
            f"calibration {attempt}: {connections} connections, delay {delay_ms} ms -> {got.rps:,.0f}/s "
            f"(cycle {cycle_ms:.1f} ms, {overhead_ms:.1f} ms beyond the delay)",
            flush=True,
        )
        want_cycle_ms = connections * 1000 / rate
        if want_cycle_ms - overhead_ms < 2:
            connections = int(rate * (overhead_ms + 5) / 1000) + 1
            want_cycle_ms = connections * 1000 / rate
        delay_ms = max(1, round(want_cycle_ms - overhead_ms))
    print(f"pacing: {connections} connections, delay {delay_ms} ms", flush=True)
    return connections, delay_ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="duration of the load (default 30)")
    ap.add_argument("--rate", type=int, default=2000, help="target check-ins a second (default 2000)")
    ap.add_argument(
        "--warmup", type=float, default=0.0, help="warm-up seconds (default: 20%% of the run, >= 60)"
    )
    ap.add_argument("--every", type=float, default=10.0, help="RSS sample period in seconds (default 10)")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    ap.add_argument(
        "--latency-ms", type=float, default=5.0, help="expected answer time, taken off the pacing delay (5)"
    )
    ap.add_argument(
        "--calibrate-s", type=int, default=20, help="length of each pacing calibration run (default 20)"
    )
    ap.add_argument("--workers", type=int, default=2, help="ingest workers (default 2)")
    ap.add_argument("--data-dir", help="data dir (default: a fresh temporary directory)")
    ap.add_argument("--no-record", action="store_true", help="do not write docs/bench/soak.json")
    args = ap.parse_args(argv)
    if args.minutes <= 0 or args.rate <= 0 or args.connections <= 0:
        print("error: --minutes, --rate and --connections must be positive", file=sys.stderr)
        return 2
    seconds = int(args.minutes * 60)
    warmup = args.warmup or max(60.0, 0.2 * seconds)

    work = Path(args.data_dir or tempfile.mkdtemp(prefix="checkin-soak-"))
    env = system_env(work, args.workers)
    print(f"soak: data in {work}; {args.minutes:g} min at {args.rate:,}/s target", flush=True)
    system = start_system(work, env)
    ingest = system.ingest
    client = system.redis()
    samples = Samples()
    stop = threading.Event()
    try:
        seed = seed_city(system, venues=5000, residents=20000, sample=2000)
        tokens, codes = [r.token for r in seed.residents], [v.token for v in seed.venues]
        print(f"seeded: {len(codes):,} venue codes, {len(tokens):,} resident tokens", flush=True)
        connections, delay_ms = calibrate(
            ingest, work, tokens, codes, args.rate, args.connections, args.latency_ms, args.calibrate_s
        )
        redis_before = redis_used_memory(client)
        script = paced_script(work, tokens, codes, delay_ms)
        root = psutil.Process(system.proc.pid)
        thread = threading.Thread(
            target=sampler, args=(root, samples, stop, args.every, system.redis_url), daemon=True
        )
        thread.start()
        result = run_wrk(f"{ingest}/v1/checkins", script, seconds, connections, threads=2)
        stop.set()
        thread.join(30)
        # give the sink a moment to catch up, then read the backlog once more
        time.sleep(5)
        final_backlog = scan_backlog(system.redis_url)
        redis_growth = redis_used_memory(client) - redis_before
        healthy = system.healthy()
    finally:
        stop.set()
        client.close()
        stop_system(system.proc)

    (work / "rss.json").write_text(
        json.dumps(
            {"at": samples.at, "rss": samples.rss, "services": samples.services, "backlog": samples.backlog},
            indent=1,
        )
    )
    print(f"samples written to {work / 'rss.json'}")
    spread, total = stability(samples, warmup)
    worst = max(spread.items(), key=lambda kv: kv[1]) if spread else ("-", float("nan"))
    stable = bool(spread) and all(v <= 0.10 for v in spread.values()) and total <= 0.10
    first = {k: v[0] / 2**20 for k, v in samples.rss.items() if v}
    last = {k: v[-1] / 2**20 for k, v in samples.rss.items() if v}
    print(
        f"\nrate {result.rps:,.0f}/s over {result.seconds:.0f} s; "
        f"non-2xx {result.non2xx:,}; errors {result.errors:,}"
    )
    print(
        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms; sink backlog at the end {final_backlog:,}"
    )
    for label in sorted(spread):
        print(
            f"  {label:<18} {first[label]:8.1f} -> {last[label]:8.1f} MB"
            f"  spread after warm-up {spread[label]:6.1%}"
        )
    accepted = max(1, result.requests - result.non2xx - result.errors)
    per_checkin = redis_growth / accepted
    print(f"  system total spread after warm-up {total:.1%}; stable within 10 %: {stable}")
    redis_rss = samples.rss.get("redis-server", [0])
    print(
        f"  redis-server       {redis_rss[0] / 2**20:8.1f} -> {redis_rss[-1] / 2**20:8.1f} MB"
        f"  used_memory +{redis_growth / 2**20:.1f} MB = {per_checkin:.0f} B per accepted check-in"
    )
    if args.no_record:
        return 0 if stable and healthy else 1
    short = " (short run)" if seconds < 1800 else ""
    command = "python -m loadtest.soak " + " ".join(sys.argv[1:] if argv is None else argv)
    record(
        "soak",
        command.strip(),
        [
            Figure(
                figure=f"soak check-in rate, {args.minutes:g} min{short}",
                value=result.rps,
                unit="check-ins/s",
                target=f">= {args.rate:,} for 30 min",
                met=result.rps >= 0.95 * args.rate and seconds >= 1800,
                note=f"wrk -c{connections} paced (delay {delay_ms} ms, calibrated); "
                f"{result.non2xx:,} non-2xx, {result.errors:,} socket errors; "
                f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms; `checkin up`, "
                f"{args.workers} ingest workers + tracing (sink, rules) + redis-server on the same machine",
            ),
            Figure(
                figure="soak RSS spread after warm-up, worst process",
                value=worst[1] * 100,
                unit="%",
                target="<= 10",
                met=worst[1] <= 0.10,
                note=f"{worst[0]}; warm-up {warmup:.0f} s; {len(samples.at)} samples every {args.every:g} s; "
                + ", ".join(f"{k} {first[k]:.0f}->{last[k]:.0f} MB" for k in sorted(spread)),
            ),
            Figure(
                figure="soak RSS spread after warm-up, whole system",
                value=total * 100,
                unit="%",
                target="<= 10",
                met=total <= 0.10,
                note=f"sum of the {len(spread)} service processes (redis-server reported apart)",
            ),
            Figure(
                figure="soak redis-server memory per accepted check-in",
                value=per_checkin,
                unit="bytes",
                target="",
                met=None,
                note=f"used_memory +{redis_growth / 2**20:.0f} MB for {accepted:,} check-ins: records kept "
                "for the check-out window and dedupe keys (TTL), not a leak; RSS "
                f"{redis_rss[0] / 2**20:.0f}->{redis_rss[-1] / 2**20:.0f} MB",
            ),
            Figure(
                figure="soak sink backlog 5 s after the load stopped",
                value=final_backlog,
                unit="entries",
                target="0 (sink keeps up)",
                met=final_backlog == 0,
                note=f"largest backlog sampled during the run {max(samples.backlog, default=0):,}",
            ),
        ],
    )
    return 0 if stable and healthy else 1


if __name__ == "__main__":
    sys.exit(main())
