"""Faults survived by the check-in path: the tracing service down while ingest goes on, Redis at
``maxmemory``, Redis killed with SIGKILL and restarted from its append-only file.

Every scenario asserts the same contract: a check-in answered 201 is in the scan stream (and, once
the sink runs, in ClickHouse exactly once); a refused one is a 503 problem+json with Retry-After.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import AsyncTestClient

from checkin.platform.settings import Settings
from loadtest.redis_proc import RedisProcess
from tests.support.ingest import bearer, put_venue, register, stream_events
from tests.support.sink import count, make_consumer, run_until, sink_pending
from tests.support.values import free_port
from tracing.storage.store import Store

FAST = {"rate_resident_per_min": 1_000_000, "rate_ip_per_min": 1_000_000, "rate_register_per_min": 100_000}


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    # as `checkin up` runs it: under everysec an answered write can wait behind a running fsync
    proc = RedisProcess(free_port(), tmp_path / "redis", appendfsync="always").start()
    try:
        yield proc
    finally:
        proc.stop()


async def _residents(client: AsyncTestClient[Any], n: int, base: int) -> list[str]:
    return [(await register(client, base + i))[1] for i in range(n)]


async def _check_in(client: AsyncTestClient[Any], token: str, code: str, client_id: str) -> Any:
    return await client.post(
        "/v1/checkins", json={"code": code, "client_id": client_id}, headers=bearer(token)
    )


def _assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["status"] == 503


async def test_tracing_down_ingest_goes_on_and_the_backlog_drains_once(
    make_settings: Any, store: Store, sync_redis: redis.Redis
) -> None:
    settings: Settings = make_settings(**FAST, sink_batch_rows=200, sink_batch_ms=200)
    from checkin.app import create_app

    codes = [put_venue(sync_redis, settings, 500 + v) for v in range(40)]
    accepted: list[str] = []
    async with AsyncTestClient(app=create_app(settings)) as ingest:
        tokens = await _residents(ingest, 15, 9100)
        for i, token in enumerate(tokens):  # no sink, no rules, no tracing service anywhere
            for v, code in enumerate(codes):
                r = await _check_in(ingest, token, code, f"down-{i}-{v}")
                assert r.status_code == 201, r.text
                accepted.append(r.json()["checkin_id"])
        assert (await ingest.get("/healthz")).status_code == 200
    assert len(set(accepted)) == 600
    # the backlog waits in the streams
    assert sorted(ev.checkin_id for ev in stream_events(sync_redis, settings) if ev.kind == "in") == sorted(
        accepted
    )
    assert count(store) == 0

    consumer, ctx = await make_consumer(settings, store)
    try:
        await run_until(
            consumer, lambda: sink_pending(sync_redis, settings) == (0, 0) and count(store) >= 600
        )
    finally:
        await ctx.redis.aclose()
    t = store.table("scans")
    assert count(store) == 600
    assert int(store.scalar(f"SELECT count() FROM {t}")) == 600  # not even a duplicate part row
    landed = [r[0] for r in store.rows(f"SELECT checkin_id FROM {t} FINAL ORDER BY checkin_id")]
    assert landed == sorted(accepted)


async def test_redis_at_maxmemory_answers_503_then_recovers_and_loses_nothing(
    make_settings: Any, private_redis: RedisProcess
) -> None:
    settings: Settings = make_settings(**FAST, redis_url=private_redis.url)
    from checkin.app import create_app

    admin = private_redis.client()
    codes = [put_venue(admin, settings, 700 + v) for v in range(200)]
    accepted: dict[str, str] = {}
    refused = 0
    async with AsyncTestClient(app=create_app(settings)) as ingest:
        tokens = await _residents(ingest, 30, 9300)
        used = int(admin.info("memory")["used_memory"])
        admin.config_set("maxmemory", used + 256 * 1024)
        pairs = [(t, c, f"oom-{i}-{v}") for i, t in enumerate(tokens) for v, c in enumerate(codes)]
        pending = iter(pairs)
        for token, code, cid in pending:
            r = await _check_in(ingest, token, code, cid)
            if r.status_code == 201:
                accepted[cid] = r.json()["checkin_id"]
                continue
            _assert_unavailable(r)
            refused += 1
            if refused >= 20:
                break
        assert refused >= 20, "Redis never refused a write"
        assert accepted, "Redis refused before the first check-in"
        health = await ingest.get("/healthz")
        assert health.status_code in (200, 503)  # a full Redis still answers PING
        # room again: the same check-ins (same client_id) and the rest go through
        admin.config_set("maxmemory", 0)
        retried = 0
        for token, code, cid in pairs:
            if cid in accepted:
                continue
            r = await _check_in(ingest, token, code, cid)
            assert r.status_code == 201, r.text
            accepted[cid] = r.json()["checkin_id"]
            retried += 1
            if retried >= 50:
                break
        # a repeat of an acknowledged check-in is the same check-in, not a second stay
        first_cid = next(iter(accepted))
        i, v = (int(x) for x in first_cid.split("-")[1:])
        again = await _check_in(ingest, tokens[i], codes[v], first_cid)
        assert again.status_code in (200, 201), again.text
        assert again.json()["duplicate"] is True and again.json()["checkin_id"] == accepted[first_cid]
    in_stream = [ev.checkin_id for ev in stream_events(admin, settings) if ev.kind == "in"]
    assert sorted(in_stream) == sorted(accepted.values())
    admin.close()


async def test_redis_kill_9_and_restart_keeps_every_acknowledged_check_in(
    make_settings: Any, private_redis: RedisProcess
) -> None:
    settings: Settings = make_settings(**FAST, redis_url=private_redis.url)
    from checkin.app import create_app

    admin = private_redis.client()
    codes = [put_venue(admin, settings, 900 + v) for v in range(50)]
    admin.close()
    accepted: list[str] = []
    async with AsyncTestClient(app=create_app(settings)) as ingest:
        tokens = await _residents(ingest, 10, 9500)
        for i, token in enumerate(tokens):
            for v, code in enumerate(codes[:30]):
                r = await _check_in(ingest, token, code, f"aof-{i}-{v}")
                assert r.status_code == 201, r.text
                accepted.append(r.json()["checkin_id"])

        private_redis.kill9()
        r = await _check_in(ingest, tokens[0], codes[40], "while-down")
        _assert_unavailable(r)
        assert (await ingest.get("/healthz")).status_code == 503

        private_redis.start()
        deadline = time.monotonic() + 20
        while (await ingest.get("/healthz")).status_code != 200:
            assert time.monotonic() < deadline, "ingest did not recover after the restart"
            await asyncio.sleep(0.1)
        for i, token in enumerate(tokens):
            r = await _check_in(ingest, token, codes[45], f"after-{i}")
            assert r.status_code == 201, r.text
            accepted.append(r.json()["checkin_id"])

    admin = private_redis.client()
    in_stream = sorted(ev.checkin_id for ev in stream_events(admin, settings) if ev.kind == "in")
    admin.close()
    assert in_stream == sorted(accepted)
    assert len(in_stream) == 310
