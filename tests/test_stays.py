"""One place at a time, over HTTP: a person's stays never overlap, whatever order their scans arrive
in; a repeat adds the persons it names; a check-out keeps an end a later stay set
(docs/ARCHITECTURE.md, "Stays and contacts")."""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis
from litestar.testing import AsyncTestClient

from checkin.platform.settings import Settings
from tests.support.ingest import bearer, child_id_number, put_venue, register, stream_events
from tests.support.instants import iso

MIN = dt.timedelta(minutes=1)


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


async def scan(
    client: AsyncTestClient[Any], token: str, code: str, when: dt.datetime, **extra: Any
) -> dict[str, Any]:
    r = await client.post(
        "/v1/checkins", json={"code": code, "scanned_at": iso(when), **extra}, headers=bearer(token)
    )
    assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = r.json()
    return body


async def current(client: AsyncTestClient[Any], token: str, cid: str) -> dict[str, Any]:
    r = await client.get(f"/v1/checkins/{cid}", headers=bearer(token))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def ends_in_stream(sync_redis: redis.Redis, settings: Settings) -> dict[tuple[str, int], tuple[int, str]]:
    """(check-in id, person) -> (end, ended_by) of the highest row version in the streams: what
    ClickHouse keeps."""
    best: dict[tuple[str, int], tuple[int, int, str]] = {}
    for e in stream_events(sync_redis, settings):
        key = (e.checkin_id, e.person_id)
        if key not in best or e.version >= best[key][0]:
            best[key] = (e.version, e.end_ms, e.ended_by)
    return {k: (v[1], v[2]) for k, v in best.items()}


async def test_a_new_check_in_ends_the_stay_before_it(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    noodles = put_venue(sync_redis, settings, 201, name="老王牛肉面馆", dwell_minutes=45)
    market = put_venue(sync_redis, settings, 202, name="超市", dwell_minutes=60)
    _pid, token = await register(ingest, 21)
    t0 = dt.datetime.now(dt.UTC) - 40 * MIN
    a = await scan(ingest, token, noodles, t0)
    b = await scan(ingest, token, market, t0 + 20 * MIN)
    c = await scan(ingest, token, noodles, t0 + 25 * MIN)
    assert a["checkin_id"] != c["checkin_id"]  # 25 minutes later is a new stay, not a repeat
    first, second, third = [await current(ingest, token, x["checkin_id"]) for x in (a, b, c)]
    assert (first["ends_at"], first["people"][0]["ended_by"]) == (iso(t0 + 20 * MIN), "next_stay")
    assert (second["ends_at"], second["people"][0]["ended_by"]) == (iso(t0 + 25 * MIN), "next_stay")
    assert third["ends_at"] == iso(t0 + 70 * MIN) and "ended_by" not in third["people"][0]
    ends = ends_in_stream(sync_redis, settings)
    pid = first["people"][0]["person_id"]
    assert ends == {
        (a["checkin_id"], pid): (ms(t0 + 20 * MIN), "next_stay"),
        (b["checkin_id"], pid): (ms(t0 + 25 * MIN), "next_stay"),
        (c["checkin_id"], pid): (ms(t0 + 70 * MIN), ""),
    }


async def test_a_late_scan_ends_the_stay_before_it_and_is_ended_by_the_one_after(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    codes = [put_venue(sync_redis, settings, 210 + i, dwell_minutes=60) for i in range(3)]
    pid, token = await register(ingest, 22)
    t0 = dt.datetime.now(dt.UTC) - 30 * 60 * MIN  # 30 h ago: inside the 72 h a phone may send
    times = [t0, t0 + 20 * MIN, t0 + 50 * MIN]
    # the offline queue arrives out of order: the last scan, then the first, then the middle one
    order = [2, 0, 1]
    ids: dict[int, str] = {}
    for i in order:
        r = await ingest.post(
            "/v1/checkins/batch",
            json={"items": [{"code": codes[i], "scanned_at": iso(times[i]), "client_id": f"q{i}"}]},
            headers=bearer(token),
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
        ids[i] = r.json()["results"][0]["checkin_id"]
    ends = ends_in_stream(sync_redis, settings)
    assert ends == {
        (ids[0], pid): (ms(times[1]), "next_stay"),
        (ids[1], pid): (ms(times[2]), "next_stay"),
        (ids[2], pid): (ms(times[2] + 60 * MIN), ""),
    }
    # the middle scan came last: its own check-in row already carries the end the next stay gives it
    middle = [e for e in stream_events(sync_redis, settings) if e.checkin_id == ids[1]]
    assert [(e.version, e.end_ms, e.ended_by) for e in middle] == [(0, ms(times[2]), "next_stay")]


async def test_a_repeat_adds_the_child_it_names(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 220)
    owner, token = await register(ingest, 23)
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "李小雷", "id_number": child_id_number(231)},
        headers=bearer(token),
    )
    assert r.status_code == 201, r.text
    child = r.json()["person_id"]
    t0 = dt.datetime.now(dt.UTC) - 2 * MIN
    first = await scan(ingest, token, code, t0)
    assert [p["person_id"] for p in first["people"]] == [owner]
    # the parent ticks the child and taps again 30 s later: the same check-in, now with the child
    again = await scan(ingest, token, code, t0 + dt.timedelta(seconds=30), companions=[child])
    assert again["checkin_id"] == first["checkin_id"] and again["duplicate"] is True
    assert [p["person_id"] for p in again["people"]] == [owner, child]
    assert again["people"][1]["stay_at"] == iso(t0 + dt.timedelta(seconds=30))
    assert again["people"][0]["stay_at"] == iso(t0)
    resumed = await current(ingest, token, first["checkin_id"])
    assert [p["person_id"] for p in resumed["people"]] == [owner, child]
    stays = {(e.person_id, e.at_ms) for e in stream_events(sync_redis, settings) if e.kind == "in"}
    assert stays == {(owner, ms(t0)), (child, ms(t0 + dt.timedelta(seconds=30)))}
    # a third tap with both is a plain repeat: no stay is added
    await scan(ingest, token, code, t0 + dt.timedelta(seconds=40), companions=[child])
    assert len([e for e in stream_events(sync_redis, settings) if e.kind == "in"]) == 2


async def test_a_repeat_naming_a_stranger_writes_nothing(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 221)
    _owner, token = await register(ingest, 24)
    stranger, _ = await register(ingest, 25)
    first = await scan(ingest, token, code, dt.datetime.now(dt.UTC) - MIN)
    before = stream_events(sync_redis, settings)
    r = await ingest.post(
        "/v1/checkins", json={"code": code, "companions": [stranger]}, headers=bearer(token)
    )
    assert r.status_code == 403 and r.json()["reason"] == "foreign_companion", r.text
    assert stream_events(sync_redis, settings) == before
    resumed = await current(ingest, token, first["checkin_id"])
    assert len(resumed["people"]) == 1


async def test_a_check_out_of_a_stay_a_later_check_in_ended_keeps_that_end(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    a_code = put_venue(sync_redis, settings, 230)
    b_code = put_venue(sync_redis, settings, 231)
    _pid, token = await register(ingest, 26)
    t0 = dt.datetime.now(dt.UTC) - 30 * MIN
    a = await scan(ingest, token, a_code, t0)
    b = await scan(ingest, token, b_code, t0 + 10 * MIN)
    rows_before = len(stream_events(sync_redis, settings))
    r = await ingest.post(f"/v1/checkins/{a['checkin_id']}/checkout", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["ended_at"] == iso(t0 + 10 * MIN)
    assert len(stream_events(sync_redis, settings)) == rows_before  # nothing changed, nothing written
    # checking out of the stay in progress ends it now
    r = await ingest.post(f"/v1/checkins/{b['checkin_id']}/checkout", headers=bearer(token))
    assert r.status_code == 200, r.text
    ended = dt.datetime.fromisoformat(r.json()["ended_at"].replace("Z", "+00:00"))
    assert abs(ended - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
    assert (await current(ingest, token, b["checkin_id"]))["people"][0]["ended_by"] == "checkout"
    # someone else's check-in, or an unknown one
    _other, other_token = await register(ingest, 27)
    r = await ingest.post(f"/v1/checkins/{b['checkin_id']}/checkout", headers=bearer(other_token))
    assert r.status_code == 404
    r = await ingest.post("/v1/checkins/000" + "a" * 20 + "/checkout", headers=bearer(token))
    assert r.status_code == 404


async def test_a_check_out_after_the_natural_end_runs_to_the_next_stay_at_most(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    """A check-out replaces the natural end, even past it; the next stay still ends the stay."""
    a_code = put_venue(sync_redis, settings, 240, dwell_minutes=5)
    _pid, token = await register(ingest, 28)
    t0 = dt.datetime.now(dt.UTC) - 30 * MIN
    a = await scan(ingest, token, a_code, t0)
    r = await ingest.post(f"/v1/checkins/{a['checkin_id']}/checkout", headers=bearer(token))
    ended = dt.datetime.fromisoformat(r.json()["ended_at"].replace("Z", "+00:00"))
    assert ended - t0 > 29 * MIN  # the check-out, not the 5-minute dwell
    pid = (await current(ingest, token, a["checkin_id"]))["people"][0]["person_id"]
    # a scan elsewhere 10 minutes after t0, uploaded only now, ends the stay there
    b_code = put_venue(sync_redis, settings, 241)
    await scan(ingest, token, b_code, t0 + 10 * MIN)
    assert ends_in_stream(sync_redis, settings)[(a["checkin_id"], pid)] == (ms(t0 + 10 * MIN), "next_stay")


async def test_a_door_device_upload_a_day_late_fits_between_phone_stays(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    from tests.support.ingest import make_key

    phone_venue = put_venue(sync_redis, settings, 250)
    door_venue = 251
    put_venue(sync_redis, settings, door_venue, dwell_minutes=120)
    pid, token = await register(ingest, 29)
    t0 = dt.datetime.now(dt.UTC) - 20 * 60 * MIN
    a = await scan(ingest, token, phone_venue, t0)
    c = await scan(ingest, token, phone_venue, t0 + 90 * MIN)
    device = await make_key(ingest, "device", venue_id=door_venue)
    from tests.support.ingest import id_number

    r = await ingest.post(
        "/v1/sentinel/scans",
        json={"scans": [{"id_number": id_number(29), "scanned_at": iso(t0 + 30 * MIN)}]},
        headers=device,
    )
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    ends = ends_in_stream(sync_redis, settings)
    door = [k for k in ends if k[0] not in (a["checkin_id"], c["checkin_id"])]
    assert ends[(a["checkin_id"], pid)] == (ms(t0 + 30 * MIN), "next_stay")
    assert ends[door[0]] == (ms(t0 + 90 * MIN), "next_stay")


async def test_a_queued_batch_writes_each_stay_once_with_its_last_end(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    """Each scan of a queued batch ends the one before: every stay goes out as one row (version 0,
    its end the next scan), and a stay kept from an earlier call that the batch ends twice (a scan
    before the batch's earliest arrives in the same batch) moves one version."""
    codes = [put_venue(sync_redis, settings, 260 + i, dwell_minutes=60) for i in range(4)]
    pid, token = await register(ingest, 30)
    t0 = dt.datetime.now(dt.UTC) - 10 * 60 * MIN
    first = await scan(ingest, token, codes[0], t0)
    times = [t0 + (20 + 10 * i) * MIN for i in range(3)]
    # out of order inside the batch: the last scan first, so the kept stay is ended at times[2] and
    # then again at times[0]
    items = [{"code": codes[i + 1], "scanned_at": iso(times[i]), "client_id": f"b{i}"} for i in (2, 0, 1)]
    r = await ingest.post("/v1/checkins/batch", json={"items": items}, headers=bearer(token))
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    ids = {i: res["checkin_id"] for i, res in zip((2, 0, 1), r.json()["results"], strict=True)}
    rows = [(e.checkin_id, e.version, e.end_ms, e.ended_by) for e in stream_events(sync_redis, settings)]
    assert sorted(rows) == sorted(
        [
            (first["checkin_id"], 0, ms(t0 + 60 * MIN), ""),
            (first["checkin_id"], 1, ms(times[0]), "next_stay"),
            (ids[0], 0, ms(times[1]), "next_stay"),
            (ids[1], 0, ms(times[2]), "next_stay"),
            (ids[2], 0, ms(times[2] + 60 * MIN), ""),
        ]
    )
    assert {cid for cid, *_ in rows} == {first["checkin_id"], *ids.values()}
    assert all(e.person_id == pid for e in stream_events(sync_redis, settings))
