"""Alert latency and rule-state memory at a steady scan rate.

Serves the real tracing app (granian subprocess, rules worker inside, its own data dir and Redis key
prefix), connects to its SSE feed ``/v1/alerts/stream``, and XADDs red-code check-ins to the scan streams
at ``--rate`` per second, each by a new person so each raises exactly one alert. The latency of one alert
is from the moment its XADD returned (a stand-in for the ingest API's 201: the check-in script answers
right after its XADD) to the moment the alert's event was read from the SSE feed.

Rule-state memory: after the run, ``MEMORY USAGE`` over a sample of each kind of rule key (occupancy sets,
last check-ins, dedupe keys), extrapolated to every key and divided per million scans. Every scan here
raises an alert, so the dedupe share is a worst case; the state every scan leaves (last check-in and
occupancy) is reported on its own.

    python -m loadtest.bench_alerts --rate 2000 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis

from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.scan_stream import ScanEvent, encode_scan
from checkin.platform.settings import Settings, load_settings
from loadtest.bench_ingest import free_port
from loadtest.results import Figure, record
from venues.model import Venue

DISTRICTS = [f"3101{n:02d}" for n in range(1, 9)]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def make_venues(count: int) -> list[Venue]:
    rng = random.Random(7)
    out = []
    for i in range(count):
        district = DISTRICTS[i % len(DISTRICTS)]
        street = f"{district}{i % 50:03d}"
        out.append(
            Venue(
                venue_id=100_000 + i,
                name=f"bench venue {i}",
                district=district,
                street=street,
                community=f"{street}{i % 9:03d}",
                lat=31.0 + rng.random() * 0.5,
                lon=121.2 + rng.random() * 0.5,
                capacity=10_000 if i % 2 == 0 else 0,
            )
        )
    return out


class Producer(threading.Thread):
    """XADDs red-code check-ins at a fixed rate in 10 ms ticks; records when each XADD returned."""

    def __init__(self, settings: Settings, venues: list[Venue], rate: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.keys = RedisKeys(settings.key_prefix, settings.stream_shards)
        self.venues = venues
        self.rate = rate
        self.seconds = seconds
        self.sent: dict[int, float] = {}
        """person id (one scan and one alert each; entry ids repeat across shards) -> XADD returned."""
        self.count = 0
        self.elapsed = 0.0

    def run(self) -> None:
        client = redis.Redis.from_url(self.settings.redis_url)
        rng = random.Random(11)
        tick = 0.01
        start = time.perf_counter()
        person = 1_000_000_000
        try:
            while True:
                now = time.perf_counter() - start
                if now >= self.seconds:
                    break
                due = int(now * self.rate) + 1
                batch = due - self.count
                if batch > 0:
                    pipe = client.pipeline(transaction=False)
                    wall = time.time()
                    persons = []
                    for _ in range(batch):
                        v = self.venues[rng.randrange(len(self.venues))]
                        person += 1
                        persons.append(person)
                        at = int(wall * 1000)
                        event = ScanEvent(
                            entry_id="",
                            kind="in",
                            checkin_id=uuid.uuid4().hex[:20],
                            person_id=person,
                            venue_id=v.venue_id,
                            at_ms=at,
                            dwell_s=3600,
                            district=v.district,
                            street=v.street,
                            community=v.community,
                            status="red",
                            verdict="deny",
                            reason="red_code",
                            lat=v.lat + 0.001,
                            lon=v.lon,
                            accuracy_m=20.0,
                            venue_lat=v.lat,
                            venue_lon=v.lon,
                            received_ms=at,
                        )
                        fields: dict[Any, Any] = encode_scan(event)
                        pipe.xadd(self.keys.stream(self.keys.shard_of(v.venue_id)), fields)
                    pipe.execute()
                    done = time.time()
                    for pid in persons:
                        self.sent[pid] = done
                    self.count += batch
                time.sleep(max(0.0, tick - ((time.perf_counter() - start) % tick)))
        finally:
            self.elapsed = time.perf_counter() - start
            client.close()


async def read_feed(
    url: str, key: str, received: dict[int, float], ready: asyncio.Event, stop: asyncio.Event
) -> None:
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream("GET", url, headers={"Authorization": f"Bearer {key}"}) as resp,
    ):
        resp.raise_for_status()
        ready.set()
        data, event = "", "alert"
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and data:
                if event == "alert":  # escalated / acked / resolved events repeat an alert already seen
                    try:
                        alert = json.loads(data)
                        received.setdefault(int(alert["person_id"]), time.time())
                    except (ValueError, KeyError):
                        pass
                data, event = "", "alert"
            if stop.is_set():
                return


def memory_sample(client: redis.Redis, prefix: str, per_type: int = 3000) -> dict[str, tuple[int, float]]:
    """{kind: (key count, mean bytes)} over the rule keys, MEMORY USAGE sampled per kind."""
    groups = {
        "occupancy": "rules:occupancy:",
        "last_checkin": "rules:last-checkin:",
        "dedupe": "rules:dedupe:",
        "capacity": "rules:capacity:",
    }
    out: dict[str, tuple[int, float]] = {}
    for name, part in groups.items():
        keys = list(client.scan_iter(match=f"{prefix}{part}*", count=5000))
        sample = random.Random(3).sample(keys, min(per_type, len(keys)))
        sizes = [int(client.memory_usage(k, samples=0) or 0) for k in sample]
        out[name] = (len(keys), sum(sizes) / len(sizes) if sizes else 0.0)
    return out


async def main_async(args: argparse.Namespace) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    prefix = f"bench:alerts:{uuid.uuid4().hex[:8]}:"
    port = free_port()
    env_settings = {
        "CHECKIN_DATA_DIR": str(data_dir),
        "CHECKIN_REDIS_URL": args.redis_url,
        "CHECKIN_KEY_PREFIX": prefix,
        "CHECKIN_ADMIN_KEY": "adm_" + uuid.uuid4().hex,
        "CHECKIN_KEYRING": Keyring.generate(1),
        "CHECKIN_TRACING_PORT": str(port),
    }
    settings = load_settings(env_settings)
    sync = redis.Redis.from_url(args.redis_url)
    keys = RedisKeys(prefix, settings.stream_shards)
    venues = make_venues(args.venues)
    pipe = sync.pipeline(transaction=False)
    for v in venues:
        mapping: dict[Any, Any] = v.to_hash()
        pipe.hset(keys.venue(v.venue_id), mapping=mapping)
    pipe.execute()

    granian = str(Path(sys.executable).with_name("granian"))
    log_path = data_dir / "tracing.log"
    log = log_path.open("wb")
    args_ = ["--interface", "asgi", "--factory", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once before the measurement
        [granian, *args_, "tracing.app:create_app"],
        env={
            **os.environ,
            **settings.to_env(),
            "CHECKIN_TRACING_WORKERS": args.workers,
            "CHECKIN_ESCALATION_S": str(args.escalation_s),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                print(log_path.read_text()[-3000:], file=sys.stderr)
                return 1
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:  # noqa: ASYNC210
                    break
            if time.monotonic() > deadline:
                print("tracing app did not become healthy", file=sys.stderr)
                return 1
            await asyncio.sleep(0.2)

        received: dict[int, float] = {}
        ready, stop = asyncio.Event(), asyncio.Event()
        reader = asyncio.create_task(
            read_feed(base + "/v1/alerts/stream", settings.admin_key, received, ready, stop)
        )
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(0.5)
        producer = Producer(settings, venues, args.rate, args.seconds)
        print(
            f"XADD {args.rate}/s red-code check-ins for {args.seconds:.0f} s ...", file=sys.stderr, flush=True
        )
        producer.start()
        while producer.is_alive():
            await asyncio.sleep(1.0)
            print(
                f"  sent {producer.count:,}  alerts on the feed {len(received):,}",
                file=sys.stderr,
                flush=True,
            )
        drain = time.monotonic() + 10
        while len(received) < producer.count and time.monotonic() < drain:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        stop.set()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await reader

        published_at: dict[int, float] = {}
        entries: list[Any] = sync.xrange(keys.alerts_stream())  # type: ignore[assignment]
        state_events = 0
        for eid, fields in entries:
            if b"e" in fields:  # an escalation (or ack) of an alert published before it
                state_events += 1
                continue
            alert = json.loads(fields[b"a"])
            published_at[int(alert["person_id"])] = int(eid.split(b"-")[0]) / 1000
        to_stream = [(published_at[p] - t) * 1000 for p, t in producer.sent.items() if p in published_at]
        latencies = [(received[pid] - sent) * 1000 for pid, sent in producer.sent.items() if pid in received]
        missing = producer.count - len(latencies)
        rate = producer.count / producer.elapsed if producer.elapsed else 0.0
        mem = memory_sample(sync, prefix)
        scans = producer.count
        total = {k: n * mean for k, (n, mean) in mem.items()}
        per_m = 1_000_000 / max(1, scans)
        stream_bytes = int(sync.memory_usage(keys.alerts_stream(), samples=0) or 0)
        published = int(sync.xlen(keys.alerts_stream())) - state_events
        print(
            f"  alerts published {published:,}, received on the feed {len(received):,}, "
            f"escalation events {state_events:,}",
            file=sys.stderr,
        )
        for name, (n, mean) in mem.items():
            print(f"  {name}: {n:,} keys, mean {mean:.0f} B", file=sys.stderr)
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        command = f"python -m loadtest.bench_alerts --rate {args.rate} --seconds {args.seconds:g}"
        if args.escalation_s != 900.0:
            command += f" --escalation-s {args.escalation_s:g}"
        note = "XADD return as stand-in for the 201; real served tracing app, SSE over HTTP"
        record(
            "alerts",
            command,
            [
                Figure(
                    "alert scan rate (XADD, red-code check-ins)",
                    rate,
                    "scans/s",
                    f">= {args.rate}",
                    rate >= args.rate * 0.98,
                ),
                Figure("alert latency p50, XADD -> SSE event", p50, "ms", note=note),
                Figure("alert latency p99, XADD -> SSE event", p99, "ms", "< 1000 ms", p99 < 1000, note=note),
                Figure("alert latency max, XADD -> SSE event", max(latencies, default=float("nan")), "ms"),
                Figure(
                    "alert latency p99, XADD -> alert in the alerts stream",
                    percentile(to_stream, 99),
                    "ms",
                    note="rule engine part of the above (alert entry id time; ms resolution)",
                ),
                Figure("alerts missing from the SSE feed", float(missing), "alerts", "0", missing == 0),
                Figure(
                    "rule state per 1 M scans (each scan raising an alert)",
                    sum(total.values()) * per_m / 2**20,
                    "MiB",
                    note="MEMORY USAGE sample of occupancy, last check-in and dedupe keys",
                ),
                Figure(
                    "rule state per 1 M scans, per-scan part (occupancy + last check-in)",
                    (total["occupancy"] + total["last_checkin"]) * per_m / 2**20,
                    "MiB",
                    note="kept for the dwell time / impossible_travel_window_hours",
                ),
                Figure(
                    "alerts stream memory",
                    stream_bytes / 2**20,
                    "MiB",
                    note=f"capped at ~{settings.alerts_stream_maxlen:,} entries",
                ),
            ],
        )
        return 0 if latencies and p99 < 1000 and missing == 0 else 1
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()
        batch: list[Any] = []
        for key in sync.scan_iter(match=prefix + "*", count=5000):
            batch.append(key)
            if len(batch) >= 1000:
                sync.delete(*batch)
                batch = []
        if batch:
            sync.delete(*batch)
        sync.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=2000, help="scans per second (default 2000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to send (default 30)")
    parser.add_argument("--venues", type=int, default=5000, help="venues the scans spread over")
    parser.add_argument(
        "--redis-url", default=os.environ.get("CHECKIN_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument(
        "--workers",
        default="rules,escalation",
        help="workers inside the served tracing app (default rules,escalation: escalation beside the rules)",
    )
    parser.add_argument(
        "--escalation-s",
        type=float,
        default=900.0,
        help="CHECKIN_ESCALATION_S of the run (a few seconds: every alert escalates during the run)",
    )
    args = parser.parse_args(argv)
    if args.rate < 1 or args.seconds <= 0 or args.venues < 1:
        print("error: --rate, --seconds and --venues must be positive", file=sys.stderr)
        return 2
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
