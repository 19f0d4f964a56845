"""The health feed: roles, validation, state as the door sees it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis
from litestar.testing import AsyncTestClient

from checkin.platform.settings import Settings
from tests.support.ingest import bearer, keys_of, make_key, put_venue, register
from tests.support.instants import iso
from tests.support.values import admin_headers


async def test_health_feed_roles_and_validation(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    pid, token = await register(ingest, 60)
    health = await make_key(ingest, "health")
    tracer = await make_key(ingest, "tracer")
    body = {"status": "yellow", "reason": "contact of a case"}
    assert (await ingest.put(f"/v1/health/{pid}", json=body)).status_code == 401
    assert (await ingest.put(f"/v1/health/{pid}", json=body, headers=tracer)).status_code == 403
    assert (await ingest.put(f"/v1/health/{pid}", json=body, headers=bearer(token))).status_code == 403
    assert (await ingest.put("/v1/health/999999", json=body, headers=health)).status_code == 404
    r = await ingest.put(f"/v1/health/{pid}", json={"status": "purple"}, headers=health)
    assert r.status_code == 400 and "status" in r.json()["detail"]
    r = await ingest.put(f"/v1/health/{pid}", json=body, headers=admin_headers())
    assert r.status_code == 200
    state = r.json()
    assert (state["status"], state["reason"], state["watchlist"]) == ("yellow", "contact of a case", None)
    assert state["updated_at"].endswith("Z")
    # every copy of the hot state carries the colour
    for key in keys_of(settings).pstate_copies(pid):
        assert sync_redis.hget(key, "st") == b"yellow"

    past = iso(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    r = await ingest.put(f"/v1/watchlist/{pid}", json={"reason": "x", "until": past}, headers=health)
    assert r.status_code == 422 and "until" in r.json()["detail"]  # a time the schema cannot judge
    r = await ingest.put(
        f"/v1/watchlist/{pid}", json={"reason": "x", "until": "2030-01-01T00:00:00"}, headers=health
    )
    assert r.status_code == 400
    assert (await ingest.delete("/v1/watchlist/999999", headers=health)).status_code == 404

    future = iso(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
    r = await ingest.post(
        "/v1/health/tests",
        json=[
            {"person_id": pid, "sampled_at": past, "result": "negative"},
            {"person_id": 999999, "sampled_at": past, "result": "negative"},
            {"person_id": pid, "sampled_at": future, "result": "negative"},
        ],
        headers=health,
    )
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.json()["results"]] == [200, 404, 422]
    r = await ingest.post(
        "/v1/health/tests", json=[{"person_id": pid, "sampled_at": past, "result": "maybe"}], headers=health
    )
    assert r.status_code == 400
    r = await ingest.get(f"/v1/health/{pid}", headers=health)
    assert r.json()["last_negative_test_at"] == past and r.json()["last_positive_test_at"] is None


async def test_unknown_colour_follows_the_setting(make_settings: Any, sync_redis: redis.Redis) -> None:
    from checkin.app import create_app

    settings = make_settings(unknown_status="yellow")
    code = put_venue(sync_redis, settings, 95)
    async with AsyncTestClient(app=create_app(settings)) as client:
        _pid, token = await register(client, 61)
        r = await client.post("/v1/checkins", json={"code": code}, headers=bearer(token))
        assert r.json()["people"][0]["status"] == "yellow"
        assert r.json()["people"][0]["verdict"] == "restricted"
