"""``checkin loadtest``: synthetic city, seeding, headless Locust, benchmarks.

- ``checkin loadtest city --preset city|megacity|small --seed N --out DIR``
- ``checkin loadtest seed --city DIR [--out FILE]`` (a running system, through the API)
- ``checkin loadtest run --seed-file FILE --users N --run-time 60s [--shape ...]``
- ``checkin loadtest bench [--only NAME] [--render-only]``
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from checkin.platform.settings import Settings

LOADTEST_DIR = Path(__file__).resolve().parent
ROOT = LOADTEST_DIR.parent
LOCUSTFILE = LOADTEST_DIR / "locustfile.py"
SHAPE_NAMES = ("steady", "morning-peak", "spike")
"""Load shapes of loadtest/shapes.py (named here so that the CLI never imports Locust,
which monkey-patches the standard library with gevent on import)."""


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _local_url(settings: Settings, port: int) -> str:
    host = "127.0.0.1" if settings.bind in ("0.0.0.0", "::", "") else settings.bind
    return f"http://{host}:{port}"


def _default_dir(settings: Settings) -> Path:
    return settings.data_path / "loadtest"


# --- city ---------------------------------------------------------------------------------------


def cmd_city(args: argparse.Namespace, settings: Settings) -> int:
    from loadtest.city import PRESETS, write_city

    spec = PRESETS[args.preset]
    overrides: dict[str, Any] = {}
    for name in ("venues", "residents", "scans_per_day", "venue_id_start"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if overrides:
        spec = msgspec.structs.replace(spec, **overrides)
    try:
        spec.validate()
    except ValueError as exc:
        return _fail(str(exc))
    if args.scan_days < 0:
        return _fail("--scan-days must be >= 0")
    try:
        start = dt.date.fromisoformat(args.start_date) if args.start_date else None
    except ValueError:
        return _fail(f"--start-date: expected YYYY-MM-DD, got {args.start_date!r}")
    out = Path(args.out) if args.out else _default_dir(settings) / f"city-{args.preset}"
    started = time.monotonic()
    manifest = write_city(spec, args.seed, out, scan_days=args.scan_days, start_date=start)
    counts = ", ".join(f"{v:,} {k}" for k, v in manifest.counts.items())
    took = time.monotonic() - started
    print(f"city {spec.name} seed {args.seed} written to {out} in {took:.1f} s: {counts}")
    return 0


# --- seed ---------------------------------------------------------------------------------------


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    from loadtest.seed import Seeder, SeedError

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line a request would drown the progress
    city = Path(args.city)
    if not (city / "city.json").exists():
        return _fail(f"{city}/city.json not found; generate it first: checkin loadtest city --out {city}")
    admin_key = args.admin_key or settings.admin_key
    if not admin_key:
        return _fail("no admin key: pass --admin-key or set CHECKIN_ADMIN_KEY")
    out = Path(args.out) if args.out else _default_dir(settings) / "seed.json"
    seeder = Seeder(
        city,
        args.ingest or _local_url(settings, settings.ingest_port),
        args.tracing or _local_url(settings, settings.tracing_port),
        admin_key,
        residents_sample=args.residents_sample,
        venues_sample=args.venues_sample,
        devices=args.devices,
        companions=args.companions,
        parallel=args.parallel,
        venue_chunk=args.chunk_rows,
        resident_chunk=args.chunk_rows,
    )
    try:
        seeder.run(out, skip_venues=args.skip_venues)
    except SeedError as exc:
        return _fail(str(exc))
    finally:
        seeder.close()
    print(f"seed file {out}")
    return 0


# --- run ------------------------------------------------------------------------------------------


def locust_command(
    seed_file: Path,
    host: str,
    users: int,
    spawn_rate: float,
    run_time: str,
    csv_prefix: Path,
    *,
    classes: list[str] | None = None,
    processes: int = 0,
    html: Path | None = None,
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(spawn_rate),
        "--run-time",
        run_time,
        "--host",
        host,
        "--csv",
        str(csv_prefix),
        "--only-summary",
        "--stop-timeout",
        "10",
    ]
    if processes:
        cmd += ["--processes", str(processes)]
    if html is not None:
        cmd += ["--html", str(html)]
    cmd += classes or []
    return cmd


class RunSummary(msgspec.Struct):
    requests: int
    failures: int
    rps: float
    median_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    per_name: list[dict[str, str]]


def read_stats(csv_prefix: Path) -> RunSummary:
    """The aggregated and per-request figures of a Locust run (its ``_stats.csv``)."""
    rows = list(csv.DictReader((csv_prefix.parent / f"{csv_prefix.name}_stats.csv").open(encoding="utf-8")))
    total = next((r for r in rows if r["Name"] == "Aggregated"), None)
    if total is None:
        raise ValueError("no Aggregated row in the Locust stats")

    def num(row: dict[str, str], key: str) -> float:
        value = row.get(key, "") or "0"
        return 0.0 if value == "N/A" else float(value)

    return RunSummary(
        requests=int(num(total, "Request Count")),
        failures=int(num(total, "Failure Count")),
        rps=num(total, "Requests/s"),
        median_ms=num(total, "50%"),
        p95_ms=num(total, "95%"),
        p99_ms=num(total, "99%"),
        max_ms=num(total, "Max Response Time"),
        per_name=[r for r in rows if r["Name"] != "Aggregated"],
    )


def parse_run_time(text: str) -> int:
    """Seconds in a Locust duration such as ``60s``, ``5m``, ``1h30m``."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?", text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise ValueError(f"expected a duration such as 60s, 5m or 1h30m, got {text!r}")
    h, m, s = (int(g) if g else 0 for g in match.groups())
    return h * 3600 + m * 60 + s


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from loadtest.seed import read_seed

    seed_file = Path(args.seed_file) if args.seed_file else _default_dir(settings) / "seed.json"
    if not seed_file.exists():
        return _fail(f"seed file {seed_file} not found; run `checkin loadtest seed --city DIR` first")
    try:
        seed = read_seed(seed_file)
        parse_run_time(args.run_time)
    except (ValueError, msgspec.DecodeError) as exc:
        return _fail(str(exc))
    if args.users < 1 or args.spawn_rate <= 0:
        return _fail("--users must be >= 1 and --spawn-rate > 0")
    out_dir = Path(args.out) if args.out else _default_dir(settings) / "runs"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    prefix = out_dir / f"run-{stamp}"
    cmd = locust_command(
        seed_file,
        args.host or seed.ingest_url,
        args.users,
        args.spawn_rate,
        args.run_time,
        prefix,
        classes=args.user_classes,
        processes=args.processes,
        html=prefix.with_suffix(".html") if args.html else None,
    )
    env = {**os.environ, "LOADTEST_SEED_FILE": str(seed_file), "LOADTEST_SHAPE": args.shape}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    print("running: " + " ".join(cmd), file=sys.stderr, flush=True)
    code = subprocess.call(cmd, env=env, cwd=str(ROOT))
    try:
        summary = read_stats(prefix)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: Locust exited with {code} and left no statistics ({exc})", file=sys.stderr)
        return code or 1
    print(
        f"{summary.requests:,} requests, {summary.failures:,} failures, {summary.rps:,.1f} req/s, "
        f"median {summary.median_ms:.0f} ms, p95 {summary.p95_ms:.0f} ms, p99 {summary.p99_ms:.0f} ms "
        f"(stats: {prefix}_stats.csv)"
    )
    for row in summary.per_name:
        print(
            f"  {row['Type']:<5} {row['Name']:<34} {row['Request Count']:>8} req "
            f"{row['Failure Count']:>6} fail  p50 {row['50%']:>5} ms  p95 {row['95%']:>5} ms"
        )
    if summary.failures:
        failures = out_dir / f"{prefix.name}_failures.csv"
        print(f"failures: see {failures}", file=sys.stderr)
    return code if code else (1 if summary.failures else 0)


# --- bench ----------------------------------------------------------------------------------------


def bench_scripts(only: str | None = None) -> list[Path]:
    scripts = sorted(LOADTEST_DIR.glob("bench_*.py"))
    if only:
        wanted = only.removesuffix(".py").removeprefix("bench_")
        scripts = [p for p in scripts if p.stem.removeprefix("bench_") == wanted]
    return scripts


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    from loadtest import results

    failed: list[str] = []
    if not args.render_only:
        scripts = bench_scripts(args.only)
        if not scripts:
            known = ", ".join(p.stem.removeprefix("bench_") for p in bench_scripts()) or "none"
            return _fail(f"no benchmark named {args.only!r} (known: {known})")
        env = {**os.environ}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        for script in scripts:
            print(f"== {script.name}", flush=True)
            started = time.monotonic()
            code = subprocess.call([sys.executable, str(script)], cwd=str(ROOT), env=env)
            took = time.monotonic() - started
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            print(f"== {script.name}: {status} in {took:.0f} s", flush=True)
            if code != 0:
                failed.append(script.name)
    results.render()
    print(f"rendered {results.BENCHMARKS_MD} from {len(results.load_all())} result files")
    if failed:
        print(f"error: benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


# --- registration ---------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    from loadtest.city import PRESETS

    lt = subparsers.add_parser("loadtest", help="synthetic city, seeding, Locust load tests, benchmarks")
    sub = lt.add_subparsers(dest="loadtest_command", required=True)

    p = sub.add_parser("city", help="write a synthetic city (venues CSV, residents NDJSON, scan plan)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="city", help="size (default city)")
    p.add_argument("--seed", type=int, default=1, help="random seed; same seed, same bytes (default 1)")
    p.add_argument("--out", help="output directory (default <data dir>/loadtest/city-<preset>)")
    p.add_argument("--venues", type=int, help="override the preset's venue count")
    p.add_argument("--residents", type=int, help="override the preset's resident count")
    p.add_argument("--scans-per-day", type=int, help="override the preset's scans a day")
    p.add_argument("--venue-id-start", type=int, help="first venue id (default 1)")
    p.add_argument("--scan-days", type=int, default=1, help="days of scan plan to write (0 = none)")
    p.add_argument("--start-date", help="first local day of the scan plan, YYYY-MM-DD (default 2026-11-30)")
    p.set_defaults(handler=cmd_city)

    p = sub.add_parser("seed", help="load a generated city into a running system through the API")
    p.add_argument("--city", required=True, help="directory written by `checkin loadtest city`")
    p.add_argument("--out", help="seed file to write (default <data dir>/loadtest/seed.json)")
    p.add_argument("--ingest", help="ingest URL (default http://127.0.0.1:$CHECKIN_INGEST_PORT)")
    p.add_argument("--tracing", help="tracing URL (default http://127.0.0.1:$CHECKIN_TRACING_PORT)")
    p.add_argument("--admin-key", help="admin API key (default CHECKIN_ADMIN_KEY / the data dir's)")
    p.add_argument("--residents-sample", type=int, default=2000, help="resident tokens to keep (2000)")
    p.add_argument("--venues-sample", type=int, default=2000, help="venue codes to keep (2000)")
    p.add_argument("--devices", type=int, default=20, help="sentinel device keys (20)")
    p.add_argument("--companions", type=int, default=100, help="residents given a companion (100)")
    p.add_argument("--chunk-rows", type=int, default=20_000, help="rows per import request (20000)")
    p.add_argument("--parallel", type=int, default=2, help="import requests in flight (2)")
    p.add_argument("--skip-venues", action="store_true", help="the venues are already imported")
    p.set_defaults(handler=cmd_seed)

    p = sub.add_parser("run", help="headless Locust run against a seeded system")
    p.add_argument("--seed-file", help="seed file (default <data dir>/loadtest/seed.json)")
    p.add_argument("--host", help="ingest URL (default: the seed file's)")
    p.add_argument("--users", type=int, default=50, help="(peak) concurrent users (50)")
    p.add_argument("--spawn-rate", type=float, default=10.0, help="users started a second (10)")
    p.add_argument("--run-time", default="60s", help="duration, e.g. 60s, 5m (60s)")
    p.add_argument("--shape", default="none", choices=["none", *SHAPE_NAMES], help="load shape (none)")
    p.add_argument("--processes", type=int, default=0, help="Locust worker processes (0 = one process)")
    p.add_argument("--out", help="directory for the stats CSVs (default <data dir>/loadtest/runs)")
    p.add_argument("--html", action="store_true", help="also write Locust's HTML report")
    p.add_argument(
        "user_classes",
        nargs="*",
        help="user classes to run (default all: ResidentUser SentinelUser OperatorUser TracerUser "
        "AnalystUser)",
    )
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("bench", help="run the benchmark scripts and re-render docs/BENCHMARKS.md")
    p.add_argument("--only", help="run one benchmark (loadtest/bench_<NAME>.py)")
    p.add_argument("--render-only", action="store_true", help="only re-render docs/BENCHMARKS.md")
    p.set_defaults(handler=cmd_bench)
