"""Exposure notices and own visits over a month of a city's stays, through real served services.

Reuses (or builds) bench_trace's history (``--days`` x ``--scans-per-day`` stays in the embedded
engine under ``--data-dir``), picks the busiest venue of the last 14 days and the shortest window
ending with the history that ``--exposed`` persons (10,000) visited, registers those persons in Redis
with a phone on record, then starts the tracing service (worker ``notices`` only) and the ingest API
as granian processes and:

1. flags the site through ``POST /v1/exposure-sites`` and times from its 201 until every exposed
   person's notice is readable (and each one's text is in the SMS outbox);
2. times ``GET /v1/residents/me/notices`` for random exposed persons (p50, p99);
3. drives ``GET /v1/residents/me/visits?days=14`` for random residents of the history with ``wrk
   -c --concurrency`` for ``--seconds``, straight from the tracing service and then relayed by the
   ingest API (ingest -> tracing -> ClickHouse): requests a second and p99.

    python -m loadtest.bench_notices                      # 30 days x 1.7 M (51 M stays), 10,000 exposed
    python -m loadtest.bench_notices --days 3 --exposed 2000 --seconds 10   # a quick look
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis

from checkin.platform import resident_tokens
from checkin.platform.instants import format_ms
from checkin.platform.keyring import Keyring
from checkin.platform.persons import phone_cipher
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.settings import load_settings
from loadtest.bench_ingest import WrkResult, _cpu_s, free_port, lua_list, run_wrk, wrk_threads_lua
from loadtest.bench_trace import DATABASE, generate, settle
from loadtest.results import Figure, record
from venues.model import Venue

ROOT = Path(__file__).resolve().parent.parent
MAX_WINDOW_MS = 14 * 86_400_000
"""The longest exposure window looked at (an incubation period): a venue of the reference city sees
about 3,700 different visitors on its busiest day, so 10,000 exposed persons take several days."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] if ordered else 0.0


def progress(text: str) -> None:
    print(f"\r{text}   ", end="", file=sys.stderr, flush=True)


def ensure_history(store: Any, args: argparse.Namespace) -> None:
    expected = args.days * args.scans_per_day
    have = int(store.scalar(f"SELECT count() FROM {DATABASE}.scans FINAL") or 0)
    if have != expected:
        print(f"building the history ({expected:,} stays) ...", file=sys.stderr)
        if have:
            store.command(f"DROP DATABASE IF EXISTS {DATABASE}")
            store.apply_schema(args.days + 7)
        today = dt.datetime.now(dt.UTC).date()
        generate(store, args.days, args.scans_per_day, args.venues, args.persons, today)
        settle(store)


def pick_site(store: Any, want: int) -> tuple[int, int, int, list[tuple[int, int]]]:
    """(venue, since ms, until ms, [(person, first stay start)]) of a window with about ``want`` visitors."""
    from tracing.queries import trace

    day_end = int(store.scalar(f"SELECT toUnixTimestamp64Milli(max(at)) FROM {DATABASE}.scans") or 0)
    day_start = day_end - MAX_WINDOW_MS
    venue = int(
        store.scalar(
            f"SELECT venue_id FROM {DATABASE}.scans WHERE at >= fromUnixTimestamp64Milli({{s:Int64}}, 'UTC') "
            "GROUP BY venue_id ORDER BY uniqExact(person_id) DESC LIMIT 1",
            {"s": day_start},
        )
    )
    lo, hi = 60_000, MAX_WINDOW_MS
    found: list[Any] = []
    while hi - lo > 60_000:  # the shortest window ending at day_end with at least `want` visitors
        mid = (lo + hi) // 2
        found = trace.exposures(store, [trace.Site(venue, day_end - mid, day_end)])
        if len(found) >= want:
            hi = mid
        else:
            lo = mid
    found = trace.exposures(store, [trace.Site(venue, day_end - hi, day_end)])
    return venue, day_end - hi, day_end, [(e.person_id, e.first_ms) for e in found]


def register(sync: redis.Redis, keys: RedisKeys, keyring: Keyring, persons: list[int]) -> None:
    """A person record with an encrypted phone for each exposed person (what the notice texts need)."""
    cipher = phone_cipher(keyring)
    pipe = sync.pipeline(transaction=False)
    for n, pid in enumerate(persons):
        idh = f"bench{pid}"
        phone = f"139{pid % 100_000_000:08d}"
        pipe.hset(keys.person(pid), mapping={"name": "居民", "phone": cipher.encrypt(phone, idh), "idh": idh})
        if n % 5000 == 4999:
            pipe.execute()
            pipe = sync.pipeline(transaction=False)
    pipe.execute()


def serve(app: str, port: int, env: dict[str, str], log: Path, workers: int = 1) -> subprocess.Popen[bytes]:
    granian = str(Path(sys.executable).with_name("granian"))
    args = ["--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--workers", str(workers), "--no-access-log"]
    return subprocess.Popen(
        [granian, *args, app],
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{base} exited:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"{base} did not become healthy; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=20)


VISITS_LUA = (
    wrk_threads_lua(31)
    + """
request = function()
  local t = tokens[math.random(#tokens)]
  return wrk.format("GET", "/v1/residents/me/visits?days=14", {["Authorization"] = "Bearer " .. t})
end
"""
)


def per(before: float, after: float, requests: int) -> float:
    """CPU microseconds per request between two CPU-second samples."""
    return (after - before) / max(requests, 1) * 1e6


def drive_visits(base: str, tokens: list[str], seconds: float, concurrency: int, work: Path) -> WrkResult:
    """``wrk`` (a C load generator: a Python client tops out near 100 requests a second here, far below
    what it measures) asking for random residents' visits."""
    script = work / "visits.lua"
    script.write_text(lua_list("tokens", tokens) + VISITS_LUA)
    return run_wrk(base + "/", script, int(seconds), concurrency)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scans-per-day", type=int, default=1_700_000)
    parser.add_argument("--venues", type=int, default=239_000)
    parser.add_argument("--persons", type=int, default=3_850_000)
    parser.add_argument("--exposed", type=int, default=10_000)
    parser.add_argument("--reads", type=int, default=2_000, help="single notice reads timed")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the visits run")
    parser.add_argument("--concurrency", type=int, default=32, help="residents reading their visits at once")
    parser.add_argument("--data-dir", default=str(ROOT / "var" / "bench-trace"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)

    import logging

    from tracing.storage.store import Store

    logging.getLogger("httpx").setLevel(logging.WARNING)
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(f"chdb://{data_dir / 'clickhouse'}", DATABASE)
    store.apply_schema(args.days + 7)
    ensure_history(store, args)
    rows = int(store.scalar(f"SELECT count() FROM {DATABASE}.scans FINAL") or 0)
    venue, since, until, exposed = pick_site(store, args.exposed)
    store.close()
    print(
        f"{rows:,} stays; site: venue {venue}, {(until - since) / 60_000:.0f} min, {len(exposed):,} visitors",
        file=sys.stderr,
    )

    run_dir = Path(tempfile.mkdtemp(prefix="bench-notices-"))
    prefix = f"bench:notices:{uuid.uuid4().hex[:8]}:"
    keyring_text = Keyring.generate(1)
    admin = "adm_" + uuid.uuid4().hex
    ingest_port, tracing_port = free_port(), free_port()
    env = {
        "CHECKIN_DATA_DIR": str(run_dir),
        "CHECKIN_REDIS_URL": args.redis_url,
        "CHECKIN_KEY_PREFIX": prefix,
        "CHECKIN_ADMIN_KEY": admin,
        "CHECKIN_KEYRING": keyring_text,
        "CHECKIN_CLICKHOUSE_DSN": f"chdb://{data_dir / 'clickhouse'}",
        "CHECKIN_CLICKHOUSE_DATABASE": DATABASE,
        "CHECKIN_RETENTION_DAYS": str(args.days + 7),
        "CHECKIN_INGEST_PORT": str(ingest_port),
        "CHECKIN_TRACING_PORT": str(tracing_port),
        "CHECKIN_TRACING_WORKERS": "notices",
        "CHECKIN_RATE_VISITS_PER_MIN": "1000000",
    }
    settings = load_settings(env)
    keys = RedisKeys(prefix, settings.stream_shards)
    keyring = Keyring.parse(keyring_text)
    sync = redis.Redis.from_url(args.redis_url)
    figures: list[Figure] = []
    tracing = ingest = None
    try:
        site_venue = Venue(
            venue_id=venue,
            name=f"场所 {venue}",
            district="620101",
            street="620101001",
            community="620101001001",
            lat=36.06,
            lon=103.83,
        )
        sync.hset(keys.venue(venue), mapping=site_venue.to_hash())  # type: ignore[arg-type]
        register(sync, keys, keyring, [p for p, _ in exposed])
        tracing = serve("tracing.app:create_app", tracing_port, env, run_dir / "tracing.log")
        ingest = serve("checkin.app:create_app", ingest_port, env, run_dir / "ingest.log", workers=2)
        tracing_base, ingest_base = f"http://127.0.0.1:{tracing_port}", f"http://127.0.0.1:{ingest_port}"
        wait_healthy(tracing_base, tracing, run_dir / "tracing.log")
        wait_healthy(ingest_base, ingest, run_dir / "ingest.log")
        adm = {"Authorization": f"Bearer {admin}"}
        tracer = httpx.post(
            f"{ingest_base}/v1/keys", json={"role": "tracer", "name": "bench"}, headers=adm
        ).json()
        body = {
            "venue_id": venue,
            "since": format_ms(since),
            "until": format_ms(until),
            "reason": "bench",
            "level": "test",
        }

        # 1. flag -> every notice readable
        started = time.monotonic()
        r = httpx.post(
            f"{tracing_base}/v1/exposure-sites",
            json=body,
            headers={"Authorization": f"Bearer {tracer['key']}"},
            timeout=30,
        )
        assert r.status_code == 201, r.text
        answered = time.monotonic()
        waiting = [p for p, _ in exposed]
        while waiting and time.monotonic() - answered < 300:
            pipe = sync.pipeline(transaction=False)
            for pid in waiting:
                pipe.exists(keys.notices(pid))
            waiting = [pid for pid, there in zip(waiting, pipe.execute(), strict=True) if not there]
            progress(f"notices readable: {len(exposed) - len(waiting):,}/{len(exposed):,}")
            if waiting:
                time.sleep(0.05)
        all_readable = time.monotonic() - answered
        print(file=sys.stderr)
        outbox = run_dir / "sms-outbox.ndjson"
        texts = 0
        while texts < len(exposed) and time.monotonic() - answered < 120:  # texts follow the notices
            texts = outbox.read_bytes().count(b"\n") if outbox.exists() else 0
            progress(f"texts in the outbox: {texts:,}/{len(exposed):,}")
            time.sleep(0.1)
        all_texted = time.monotonic() - answered
        print(file=sys.stderr)
        figures.append(
            Figure(
                "exposure flag -> every notice readable",
                all_readable,
                "s",
                "<= 10 s",
                not waiting and all_readable <= 10,
                note=f"{len(exposed):,} exposed of {rows / 1e6:.1f} M stays; POST answered in "
                f"{(answered - started) * 1000:.0f} ms; served tracing + ingest",
            )
        )
        figures.append(
            Figure(
                "exposure flag -> every text handed to the SMS gateway (outbox)",
                all_texted,
                "s",
                "",
                None,
                note=f"{texts:,} texts for {len(exposed):,} exposed persons with a phone on record",
            )
        )

        # 2. single notice reads
        rng = random.Random(5)
        sample = [exposed[rng.randrange(len(exposed))][0] for _ in range(args.reads)]
        reads: list[float] = []
        with httpx.Client(base_url=ingest_base, timeout=10) as client:
            for n, pid in enumerate(sample):
                token = resident_tokens.issue(keyring, pid, 3600)[0]
                t0 = time.perf_counter()
                r = client.get("/v1/residents/me/notices", headers={"Authorization": f"Bearer {token}"})
                reads.append(time.perf_counter() - t0)
                assert r.status_code == 200 and r.json()["unread"] == 1, r.text
                if n % 200 == 0:
                    progress(f"notice reads: {n:,}/{len(sample):,}")
        print(file=sys.stderr)
        figures.append(
            Figure(
                "notice read p99",
                percentile(reads, 99) * 1000,
                "ms",
                "< 20 ms",
                percentile(reads, 99) < 0.020,
                note="GET /v1/residents/me/notices over HTTP, one client; "
                f"median {statistics.median(reads) * 1000:.1f} ms",
            )
        )

        # 3. own visits
        residents = [rng.randrange(1, args.persons + 1) for _ in range(5000)]
        tokens = [resident_tokens.issue(keyring, pid, 3600)[0] for pid in residents]
        print(f"visits: {args.concurrency} clients for {args.seconds:.0f} s, twice ...", file=sys.stderr)
        cpu0 = (_cpu_s(tracing.pid), _cpu_s(ingest.pid))
        direct = drive_visits(tracing_base, tokens, args.seconds, args.concurrency, run_dir)
        cpu1 = (_cpu_s(tracing.pid), _cpu_s(ingest.pid))
        relayed = drive_visits(ingest_base, tokens, args.seconds, args.concurrency, run_dir)
        cpu2 = (_cpu_s(tracing.pid), _cpu_s(ingest.pid))
        cpu_note = (
            f"CPU per request: tracing {per(cpu0[0], cpu1[0], direct.requests):.0f} us alone; "
            f"relayed: tracing {per(cpu1[0], cpu2[0], relayed.requests):.0f} us, "
            f"ingest {per(cpu1[1], cpu2[1], relayed.requests):.0f} us"
        )
        print(cpu_note, file=sys.stderr)
        rate = relayed.rps
        errors = relayed.non2xx + relayed.errors
        figures.append(
            Figure(
                "own visits straight from the tracing service (tracing -> ClickHouse)",
                direct.rps,
                "req/s",
                "",
                None,
                note=f"same load and tokens, run first (the engine's caches are cold then), p99 "
                f"{direct.p99_ms:.0f} ms, {direct.non2xx + direct.errors} errors",
            )
        )
        figures.append(
            Figure(
                "own visits (ingest -> tracing -> ClickHouse)",
                rate,
                "req/s",
                ">= 200 req/s",
                rate >= 200 and errors == 0,
                note=f"GET /v1/residents/me/visits?days=14, wrk -c{args.concurrency}, p99 "
                f"{relayed.p99_ms:.0f} ms, {errors} errors; "
                f"2 ingest workers, one tracing process; {cpu_note}",
            )
        )
    finally:
        for proc in (ingest, tracing):
            if proc is not None:
                stop(proc)
        with contextlib.suppress(redis.RedisError):
            names = list(sync.scan_iter(match=prefix + "*", count=5000))
            for i in range(0, len(names), 1000):
                sync.delete(*names[i : i + 1000])
        sync.close()
    for f in figures:
        print(f"{f.figure}: {f.value:,.2f} {f.unit}  target {f.target}  {'met' if f.met else 'MISSED'}")
    command = "python -m loadtest.bench_notices " + " ".join(argv if argv is not None else sys.argv[1:])
    record("notices", command.strip(), figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
