"""Faults of whole processes: an ingest worker SIGKILLed under load (granian respawns it, clients
only retry), and the rule engine SIGKILLed mid-batch then restarted (every alert once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis

from checkin.platform.redis_keys import ALERTS_HISTORY_GROUP, RULES_GROUP, RedisKeys
from checkin.platform.scan_stream import encode_scan
from checkin.platform.settings import Settings
from tests.support.ingest import bearer, id_number, put_venue, stream_events
from tests.support.processes import ROOT, kill_9, reaped, running, start_cli, stop, terminate, wait_for
from tests.support.rules import BASE_MS, scan, venue
from tests.support.values import ADMIN_KEY, REDIS_URL, admin_headers, free_port
from tracing.rules.alerts import from_fields

pytestmark = pytest.mark.slow


def _env(settings: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CHECKIN_DATA_DIR": str(tmp_path / "var"),
        "CHECKIN_REDIS_URL": REDIS_URL,
        "CHECKIN_KEY_PREFIX": settings.key_prefix,
        "CHECKIN_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'clickhouse'}",
        "CHECKIN_ADMIN_KEY": ADMIN_KEY,
        "CHECKIN_KEYRING": settings.keyring,
        **extra,
    }


def _workers(server: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The granian worker processes (children running Python; not the resource tracker)."""
    out = []
    for child in psutil.Process(server.pid).children(recursive=False):
        try:
            if "resource_tracker" not in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


def test_ingest_worker_killed_under_load_clients_only_retry(
    make_settings: Any, tmp_path: Path, sync_redis: redis.Redis
) -> None:
    settings: Settings = make_settings()
    port = free_port()
    env = _env(
        settings,
        tmp_path,
        CHECKIN_INGEST_PORT=str(port),
        CHECKIN_RATE_RESIDENT_PER_MIN="1000000",
        CHECKIN_RATE_IP_PER_MIN="1000000",
        CHECKIN_RATE_REGISTER_PER_MIN="100000",
    )
    codes = [put_venue(sync_redis, settings, 1200 + v) for v in range(50)]
    log = tmp_path / "ingest.log"
    server = start_cli("serve-ingest", "--workers", "2", env=env, log=log)
    base = f"http://127.0.0.1:{port}"

    def serving_with_two_workers() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200 and len(_workers(server)) == 2
        except httpx.TransportError:
            return False

    try:
        wait_for(server, log, serving_with_two_workers, timeout=60, interval=0.1)

        with httpx.Client(base_url=base, timeout=5) as client:
            lines = "\n".join(
                json.dumps({"name": "李四", "phone": f"137{i:08d}", "id_number": id_number(8000 + i)})
                for i in range(16)
            )
            r = client.post("/v1/residents/import", content=lines.encode(), headers=admin_headers())
            assert r.status_code == 200, r.text
            tokens = [json.loads(line)["token"] for line in r.text.splitlines() if line.strip()]
            assert len(tokens) == 16

        # each (resident, venue) pair is one check-in with its own client_id
        jobs = [(t, c, f"w-{i}-{v}") for i, t in enumerate(tokens) for v, c in enumerate(codes)]
        answers: dict[str, set[str]] = {}
        statuses: dict[int, int] = {}
        transport_errors = [0]
        done = [0]
        lock = threading.Lock()

        def client_loop(part: list[tuple[str, str, str]]) -> None:
            with httpx.Client(base_url=base, timeout=5) as client:
                for token, code, cid in part:
                    for _attempt in range(100):
                        try:
                            r = client.post(
                                "/v1/checkins",
                                json={"code": code, "client_id": cid},
                                headers=bearer(token),
                            )
                        except httpx.TransportError:
                            with lock:
                                transport_errors[0] += 1
                            time.sleep(0.05)
                            continue
                        with lock:
                            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                        if r.status_code == 503:
                            time.sleep(0.05)
                            continue
                        if r.status_code in (200, 201):
                            with lock:
                                answers.setdefault(cid, set()).add(r.json()["checkin_id"])
                                done[0] += 1
                        break

        threads = [threading.Thread(target=client_loop, args=(jobs[k::6],)) for k in range(6)]
        for t in threads:
            t.start()
        while done[0] < len(jobs) // 4:
            time.sleep(0.01)
        victim = _workers(server)[0]
        victim.send_signal(signal.SIGKILL)  # kill -9 of one granian worker, not of the server
        victim.wait(10)
        for t in threads:
            t.join(120)
        assert server.poll() is None, log.read_text()

        # granian put a fresh worker in its place and it serves
        wait_for(server, log, lambda: len(_workers(server)) >= 2, timeout=30, interval=0.1)
        assert victim.pid not in [w.pid for w in _workers(server)]
    finally:
        terminate(server, timeout=30)

    print(f"worker kill: statuses {statuses}, transport errors {transport_errors[0]}")
    assert set(statuses) <= {200, 201, 503}, statuses  # never a 500, never a 4xx
    assert len(answers) == len(jobs), f"{len(jobs) - len(answers)} check-ins never answered"
    assert all(len(ids) == 1 for ids in answers.values()), "a retry got a second check-in id"
    in_stream = [ev.checkin_id for ev in stream_events(sync_redis, settings) if ev.kind == "in"]
    assert len(in_stream) == len(set(in_stream)) == len(jobs)
    assert set(in_stream) == {next(iter(ids)) for ids in answers.values()}


def test_a_served_worker_stops_when_its_server_is_killed(make_settings: Any, tmp_path: Path) -> None:
    """kill -9 of the serving process (no handler runs, nothing tells the worker): the worker sees
    its parent gone, stops within seconds and frees the port, instead of serving on unsupervised."""
    settings: Settings = make_settings()
    port = free_port()
    env = _env(settings, tmp_path, CHECKIN_INGEST_PORT=str(port))
    log = tmp_path / "ingest.log"
    server = start_cli("serve-ingest", "--workers", "1", env=env, log=log)
    with reaped(server):

        def serving() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(server, log, lambda: serving() and len(_workers(server)) == 1, timeout=60, interval=0.1)
        [worker] = _workers(server)
        kill_9(server)
        try:
            deadline = time.monotonic() + 15
            while running(worker):
                assert time.monotonic() < deadline, f"the worker outlived its server\n{log.read_text()}"
                time.sleep(0.1)
        finally:
            if running(worker):
                worker.kill()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)


HISTORY_COUNT = """
import json, sys
from tracing.storage.store import Store
store = Store(sys.argv[1], "checkin")
t = store.table("alerts")
print(json.dumps({
    "final": store.scalar(f"SELECT count() FROM {t} FINAL"),
    "distinct": store.scalar(f"SELECT uniqExact(alert_id) FROM {t}"),
}))
"""


def _group_state(client: redis.Redis, streams: list[str], group: str) -> tuple[int, int] | None:
    """(pending, lag) of a consumer group summed over these streams; None when none has the group."""
    state: tuple[int, int] | None = None
    for stream in streams:
        if not client.exists(stream):
            continue
        for g in client.xinfo_groups(stream):
            if g["name"] in (group, group.encode()):
                pending, lag = state or (0, 0)
                state = (pending + int(g["pending"]), lag + int(g.get("lag") or 0))
    return state


def _rules_state(client: redis.Redis, keys: RedisKeys) -> tuple[int, int]:
    """(pending, lag) of group rules over every shard."""
    return _group_state(client, keys.streams(), RULES_GROUP) or (0, 0)


def _history_caught_up(client: redis.Redis, keys: RedisKeys) -> bool:
    """Whether the alerts-history group has read and acknowledged (written) every alert entry."""
    return _group_state(client, [keys.alerts_stream()], ALERTS_HISTORY_GROUP) == (0, 0)


def test_rules_process_killed_mid_batch_delivers_each_alert_once(
    make_settings: Any, tmp_path: Path, sync_redis: redis.Redis
) -> None:
    settings: Settings = make_settings()
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    venues = [venue(3000 + v) for v in range(400)]
    pipe = sync_redis.pipeline(transaction=False)
    for v in venues:
        pipe.hset(keys.venue(v.venue_id), mapping=v.to_hash())  # type: ignore[arg-type]
    events = [
        scan(
            venues[i % len(venues)], 50_000 + i, BASE_MS + i, status="red", verdict="deny", reason="red_code"
        )
        for i in range(8000)
    ]
    for ev in events:
        pipe.xadd(keys.stream(keys.shard_of(ev.venue_id)), encode_scan(ev))  # type: ignore[arg-type]
    pipe.execute()

    env = _env(settings, tmp_path, CHECKIN_SINK_CLAIM_IDLE_MS="1000")
    log = tmp_path / "rules.log"

    def mid_batch() -> bool:
        published = sync_redis.xlen(keys.alerts_stream()) if sync_redis.exists(keys.alerts_stream()) else 0
        return published >= 500 and _rules_state(sync_redis, keys)[0] > 0

    with reaped(start_cli("rules", env=env, log=log)) as first:
        wait_for(first, log, mid_batch, timeout=60, interval=0.002)
        kill_9(first)
    pending, lag = _rules_state(sync_redis, keys)
    assert pending > 0 or lag > 0, "the engine finished before it was killed"

    def drained() -> bool:
        return _rules_state(sync_redis, keys) == (0, 0) and _history_caught_up(sync_redis, keys)

    with reaped(start_cli("rules", env=env, log=log)) as second:
        wait_for(second, log, drained, timeout=90, interval=0.1)
        stop(second, log)

    entries: list[tuple[bytes, dict[bytes, bytes]]] = sync_redis.xrange(keys.alerts_stream())  # type: ignore[assignment]
    alerts = [from_fields(f) for _, f in entries]
    ids = {a.alert_id for a in alerts}
    assert len(ids) == len(events)  # one alert per red scan: none lost, none raised twice
    assert {(a.kind, a.person_id) for a in alerts} == {("red_code_entry", ev.person_id) for ev in events}
    republished = len(alerts) - len(ids)
    print(f"rules kill: pending {pending} lag {lag} at the kill; {republished} alert entries republished")
    out = subprocess.run(
        [sys.executable, "-c", HISTORY_COUNT, f"chdb://{tmp_path / 'clickhouse'}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
    )
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert counts == {"final": len(events), "distinct": len(events)}, (counts, republished)
