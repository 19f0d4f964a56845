"""Offline batches and sentinel devices: per-item results, nothing accepted is lost."""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis
from litestar.testing import AsyncTestClient

from checkin.platform.keyring import Keyring
from checkin.platform.settings import Settings
from tests.support.ingest import bearer, id_number, make_key, put_venue, register, stream_events
from tests.support.instants import iso
from venues import codes


async def test_batch_answers_each_item(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    venues = [put_venue(sync_redis, settings, vid) for vid in (50, 51, 52, 53)]  # four shards
    put_venue(sync_redis, settings, 54, code_version=3)
    owner, token = await register(ingest, 40)
    now = dt.datetime.now(dt.UTC)
    items: list[dict[str, Any]] = [
        {"code": venues[i], "scanned_at": iso(now - dt.timedelta(hours=5 - i)), "client_id": f"q{i}"}
        for i in range(4)
    ]
    items += [
        {"code": "garbage", "scanned_at": iso(now)},
        {"code": venues[0], "scanned_at": iso(now - dt.timedelta(hours=80))},
        {"code": codes.sign(Keyring.parse(settings.keyring), 54, 2), "scanned_at": iso(now)},
        {
            "code": venues[1],
            "scanned_at": iso(now - dt.timedelta(hours=4)),
            "client_id": "q1",
        },  # retry of item 1
        {"code": venues[2], "companions": [999], "scanned_at": iso(now)},
    ]
    r = await ingest.post("/v1/checkins/batch", json={"items": items}, headers=bearer(token))
    assert r.status_code == 200, r.text
    body = r.json()
    statuses = [x["status"] for x in body["results"]]
    assert [x["index"] for x in body["results"]] == list(range(9))
    assert statuses == [201, 201, 201, 201, 400, 422, 410, 200, 403]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (4, 1, 4)
    assert body["results"][7]["checkin_id"] == body["results"][1]["checkin_id"]
    events = stream_events(sync_redis, settings)
    assert sorted(e.venue_id for e in events) == [50, 51, 52, 53]
    assert {e.source for e in events} == {"batch"} and {e.person_id for e in events} == {owner}
    at = {e.venue_id: e.at_ms for e in events}
    assert at[50] == int((now - dt.timedelta(hours=5)).timestamp() * 1000)
    # the upload replayed whole (lost answer) changes nothing
    r = await ingest.post("/v1/checkins/batch", json={"items": items[:4]}, headers=bearer(token))
    assert [x["status"] for x in r.json()["results"]] == [200, 200, 200, 200]
    assert len(stream_events(sync_redis, settings)) == 4


async def test_batch_limits(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 60)
    _pid, token = await register(ingest, 41)
    r = await ingest.post("/v1/checkins/batch", json={"items": [{"code": code}] * 501}, headers=bearer(token))
    assert r.status_code == 400 and "500" in r.json()["detail"]
    r = await ingest.post("/v1/checkins/batch", json={"items": []}, headers=bearer(token))
    assert r.status_code == 400
    r = await ingest.post("/v1/checkins/batch", json=[{"code": code}], headers=bearer(token))
    assert r.status_code == 400
    r = await ingest.post("/v1/checkins/batch", json={"items": [{"code": code}]})
    assert r.status_code == 401
    big = b'{"items":[' + b",".join([b'{"code":"' + b"A" * 60 + b'"}'] * 20000) + b"]}"
    r = await ingest.post(
        "/v1/checkins/batch", content=big, headers={**bearer(token), "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert stream_events(sync_redis, settings) == []


async def test_sentinel_device_scans_at_its_venue(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    put_venue(sync_redis, settings, 70, requires_negative_test_hours=24)
    put_venue(sync_redis, settings, 71)
    device = await make_key(ingest, "device", venue_id=70)
    a, token_a = await register(ingest, 42, name="赵一")
    b, _ = await register(ingest, 43, name="钱二")
    health = await make_key(ingest, "health")
    await ingest.put(f"/v1/health/{b}", json={"status": "red", "reason": "case"}, headers=health)
    sampled = iso(dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    await ingest.post(
        "/v1/health/tests",
        json=[{"person_id": a, "sampled_at": sampled, "result": "negative"}],
        headers=health,
    )
    door = (await ingest.get("/v1/residents/me/pass", headers=bearer(token_a))).json()["pass"]
    scans = [
        {"pass": door},
        {"id_number": id_number(43)},
        {"id_number": id_number(44)},  # not registered
        {"pass": "p1.forged"},
        {"pass": door, "id_number": id_number(43)},
        {"pass": door},  # the same person again within 60 s
    ]
    r = await ingest.post("/v1/sentinel/scans", json={"scans": scans}, headers=device)
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["status"] for x in res] == [201, 201, 404, 401, 400, 200]
    assert (res[0]["name_masked"], res[0]["health_status"], res[0]["verdict"]) == ("赵*", "green", "pass")
    assert (res[1]["health_status"], res[1]["verdict"], res[1]["reason"]) == ("red", "deny", "red_code")
    # the door learns no one's id, check-in or test times: a device key is not a population lookup
    for field in ("person_id", "checkin_id", "last_negative_test_at"):
        assert all(field not in x for x in res), field
    assert res[5]["duplicate"] is True and res[5]["at"] == res[0]["at"]
    events = stream_events(sync_redis, settings)
    assert sorted((e.person_id, e.venue_id, e.source) for e in events) == [
        (a, 70, "sentinel"),
        (b, 70, "sentinel"),
    ]
    assert all(e.owner_id == e.person_id for e in events)
    # a device is bound to its venue; other roles are refused
    r = await ingest.post("/v1/sentinel/scans?venue_id=71", json={"scans": scans[:1]}, headers=device)
    assert r.status_code == 403
    r = await ingest.post("/v1/sentinel/scans", json={"scans": scans[:1]}, headers=health)
    assert r.status_code == 403
    r = await ingest.post("/v1/sentinel/scans", json={"scans": scans[:1]}, headers=bearer(token_a))
    assert r.status_code == 403
    # the resident checks out of a sentinel check-in with their own token (the id is theirs to
    # see, not the door's)
    own = next(e.checkin_id for e in stream_events(sync_redis, settings) if e.person_id == a)
    r = await ingest.post(f"/v1/checkins/{own}/checkout", headers=bearer(token_a))
    assert r.status_code == 200, r.text
