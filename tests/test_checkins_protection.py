"""Rate limits, back-pressure and load shedding on the check-in path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from litestar.testing import AsyncTestClient

from checkin.app import create_app
from checkin.platform.settings import Settings
from checkin.protection import guard_of
from tests.support.ingest import bearer, keys_of, put_venue, register, stream_events


async def wait_for_sample(guard: Any, expected: int) -> None:
    """The app samples the backlog in its own loop every 0.5 s; wait for it to see ``expected``."""
    for _ in range(40):
        if guard.backlog == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"backlog sample stayed at {guard.backlog}, expected {expected}")


@pytest.fixture
async def tight(make_settings: Any) -> AsyncIterator[tuple[AsyncTestClient[Any], Settings]]:
    settings: Settings = make_settings(
        rate_resident_per_min=3, rate_ip_per_min=1000, backlog_limit=5, shed_inflight=50, degrade_inflight=20
    )
    async with AsyncTestClient(app=create_app(settings)) as client:
        yield client, settings


async def test_per_resident_rate_limit(
    tight: tuple[AsyncTestClient[Any], Settings], sync_redis: redis.Redis
) -> None:
    client, settings = tight
    codes = [put_venue(sync_redis, settings, vid) for vid in range(80, 85)]
    _pid, token = await register(client, 50)
    statuses = [
        (await client.post("/v1/checkins", json={"code": c}, headers=bearer(token))).status_code
        for c in codes
    ]
    assert statuses == [201, 201, 201, 429, 429]
    r = await client.post("/v1/checkins", json={"code": codes[3]}, headers=bearer(token))
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert r.json()["reason"] == "rate_limited"
    assert r.headers["content-type"].startswith("application/problem+json")
    # a repeat of an earlier check-in writes nothing and costs nothing
    r = await client.post("/v1/checkins", json={"code": codes[0]}, headers=bearer(token))
    assert r.status_code == 200 and r.json()["duplicate"] is True
    # refused scans write nothing (each stay after the first ends the one before it: 2 end rows)
    assert [e.kind for e in stream_events(sync_redis, settings)].count("in") == 3
    # another resident is not affected
    _other, token2 = await register(client, 51)
    r = await client.post("/v1/checkins", json={"code": codes[4]}, headers=bearer(token2))
    assert r.status_code == 201
    # batches count against the same budget
    r = await client.post("/v1/checkins/batch", json={"items": [{"code": codes[4]}]}, headers=bearer(token))
    assert r.status_code == 200 and r.json()["results"][0]["status"] == 429
    assert r.json()["results"][0]["error_reason"] == "rate_limited" and "retry-after" in r.headers


async def test_backlog_answers_503_until_the_sink_catches_up(
    tight: tuple[AsyncTestClient[Any], Settings], sync_redis: redis.Redis
) -> None:
    client, settings = tight
    code = put_venue(sync_redis, settings, 90)
    _pid, token = await register(client, 52)
    stream = keys_of(settings).stream(0)
    for i in range(6):
        sync_redis.xadd(stream, {"t": "in", "n": str(i)})
    guard = guard_of(client.app.state["ctx"])
    await wait_for_sample(guard, 6)
    r = await client.post("/v1/checkins", json={"code": code}, headers=bearer(token))
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0
    assert "backlog" in r.json()["detail"]
    sync_redis.delete(stream)  # the sink acked and trimmed
    await wait_for_sample(guard, 0)
    r = await client.post("/v1/checkins", json={"code": code}, headers=bearer(token))
    assert r.status_code == 201
    metrics = (await client.get("/metrics")).text
    assert 'checkin_rejections_total{reason="backlog"} 1' in metrics


async def test_overload_degrades_then_sheds(
    tight: tuple[AsyncTestClient[Any], Settings], sync_redis: redis.Redis
) -> None:
    client, settings = tight
    code = put_venue(sync_redis, settings, 91, requires_negative_test_hours=48)
    other = put_venue(sync_redis, settings, 92)
    _pid, token = await register(client, 53)
    guard = guard_of(client.app.state["ctx"])
    r = await client.post("/v1/checkins", json={"code": code}, headers=bearer(token))
    assert r.json()["people"][0]["reason"] == "test_expired" and "degraded" not in r.json()
    guard.inflight = 30  # past the degrade threshold: the test lookup is skipped, the scan still recorded
    r = await client.post("/v1/checkins", json={"code": other}, headers=bearer(token))
    assert r.status_code == 201 and r.json()["degraded"] is True
    code3 = put_venue(sync_redis, settings, 93, requires_negative_test_hours=48)
    r = await client.post("/v1/checkins", json={"code": code3}, headers=bearer(token))
    person = r.json()["people"][0]
    assert (person["verdict"], person["reason"], person["last_negative_test_at"]) == (
        "restricted",
        "test_unchecked",
        None,
    )
    guard.inflight = 50  # at capacity: a fast 503, nothing written
    before = len(stream_events(sync_redis, settings))
    r = await client.post("/v1/checkins", json={"code": code}, headers=bearer(token))
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert len(stream_events(sync_redis, settings)) == before
    guard.inflight = 0
    guard.lag_s = 10.0  # a stalled event loop sheds too
    r = await client.post("/v1/checkins", json={"code": code}, headers=bearer(token))
    assert r.status_code == 503
    guard.lag_s = 0.0
    metrics = (await client.get("/metrics")).text
    assert 'checkin_rejections_total{reason="shed"} 2' in metrics


async def test_redis_down_is_a_clear_503(make_settings: Any, sync_redis: redis.Redis) -> None:
    settings = make_settings()
    code = put_venue(sync_redis, settings, 94)
    async with AsyncTestClient(app=create_app(settings)) as client:
        _pid, token = await register(client, 54)
        ctx = client.app.state["ctx"]
        from checkin.checkins.scripts import scripts

        hot = scripts(ctx).hot
        assert hot is not None
        hot.port = 1  # the next connection attempt fails
        hot.close()
        r = await client.post("/v1/checkins", json={"code": code}, headers=bearer(token))
        assert r.status_code == 503, r.text
        assert "unavailable" in r.json()["detail"]
