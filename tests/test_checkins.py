"""Check-ins: the single route, verdicts, dedupe, companions, codes, the stream entries."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
import redis
from litestar.testing import AsyncTestClient

from checkin.platform.keyring import Keyring
from checkin.platform.scan_stream import entry_line, line_values
from checkin.platform.settings import Settings
from tests.support.ingest import (
    bearer,
    child_id_number,
    keys_of,
    make_key,
    put_venue,
    raw_entries,
    register,
    stream_events,
)
from tests.support.instants import iso
from venues import codes


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def test_a_check_in_answers_the_door_view_and_writes_one_entry(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 101, name="兰州牛肉面", dwell_minutes=45)
    pid, token = await register(ingest, 1)
    before = now()
    r = await ingest.post(
        "/v1/checkins",
        json={"code": code, "client_id": "c1", "location": {"lat": 39.91, "lon": 116.41, "accuracy_m": 20}},
        headers=bearer(token),
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["venue"] == {"venue_id": 101, "name": "兰州牛肉面"}
    assert body["duplicate"] is False
    assert body["people"] == [
        {
            "person_id": pid,
            "name_masked": "张*丰",
            "status": "green",
            "last_negative_test_at": None,
            "verdict": "pass",
            "stay_at": body["at"],
            "stay_ends_at": body["ends_at"],
        }
    ]
    at = dt.datetime.fromisoformat(body["at"].replace("Z", "+00:00"))
    assert before - dt.timedelta(seconds=1) <= at <= now()
    assert body["at"].endswith("Z") and len(body["at"]) == 24
    ends = dt.datetime.fromisoformat(body["ends_at"].replace("Z", "+00:00"))
    assert ends - at == dt.timedelta(minutes=45)

    events = stream_events(sync_redis, settings)
    assert len(events) == 1
    ev = events[0]
    assert (ev.kind, ev.checkin_id, ev.person_id, ev.venue_id, ev.owner_id) == (
        "in",
        body["checkin_id"],
        pid,
        101,
        pid,
    )
    assert ev.dwell_s == 45 * 60 and ev.end_ms - ev.at_ms == 45 * 60_000
    assert (ev.district, ev.street, ev.community) == ("110105", "110105001", "110105001001")
    assert (ev.status, ev.verdict, ev.source, ev.watchlisted) == ("green", "pass", "phone", False)
    assert (ev.lat, ev.lon, ev.accuracy_m, ev.venue_lat, ev.venue_lon) == (39.91, 116.41, 20.0, 39.9, 116.4)
    assert ev.received_ms >= ev.at_ms
    # the stream of the venue's shard, and today's count for operators
    keys = keys_of(settings)
    assert sync_redis.xlen(keys.stream(101 % settings.stream_shards)) == 1
    day = at.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y%m%d")
    hour = int(at.timestamp()) // 3600
    assert sync_redis.hget(keys.venue_entries(101 % settings.stream_shards, day), f"101:{hour}") == b"1"
    # the check-in id names the shard
    assert int(body["checkin_id"][:3], 16) == 101 % settings.stream_shards


@pytest.mark.parametrize(
    ("status", "policy", "test_age_h", "verdict", "reason"),
    [
        ("green", None, None, "pass", None),
        ("yellow", None, None, "restricted", "yellow_code"),
        ("red", None, None, "deny", "red_code"),
        ("green", 48, None, "deny", "test_expired"),
        ("green", 48, 50, "deny", "test_expired"),
        ("green", 48, 20, "pass", None),
        ("red", 48, 20, "deny", "red_code"),
    ],
)
async def test_verdict_at_the_door(
    ingest: AsyncTestClient[Any],
    sync_redis: redis.Redis,
    settings: Settings,
    status: str,
    policy: int | None,
    test_age_h: int | None,
    verdict: str,
    reason: str | None,
) -> None:
    code = put_venue(sync_redis, settings, 7, requires_negative_test_hours=policy)
    pid, token = await register(ingest, 2)
    health = await make_key(ingest, "health")
    r = await ingest.put(f"/v1/health/{pid}", json={"status": status, "reason": "feed"}, headers=health)
    assert r.status_code == 200, r.text
    sampled = None
    if test_age_h is not None:
        sampled = iso(now() - dt.timedelta(hours=test_age_h))
        r = await ingest.post(
            "/v1/health/tests",
            json=[{"person_id": pid, "sampled_at": sampled, "result": "negative"}],
            headers=health,
        )
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    r = await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(token))
    assert r.status_code == 201, r.text
    person = r.json()["people"][0]
    assert (person["status"], person["verdict"], person.get("reason")) == (status, verdict, reason)
    assert person["last_negative_test_at"] == sampled
    ev = stream_events(sync_redis, settings)[0]
    assert (ev.status, ev.verdict, ev.reason) == (status, verdict, reason or "")


async def test_a_positive_test_after_the_negative_one_voids_it(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 8, requires_negative_test_hours=72)
    pid, token = await register(ingest, 3)
    health = await make_key(ingest, "health")
    tests = [
        {"person_id": pid, "sampled_at": iso(now() - dt.timedelta(hours=10)), "result": "negative"},
        {"person_id": pid, "sampled_at": iso(now() - dt.timedelta(hours=5)), "result": "positive"},
        # an older negative result arriving late changes nothing
        {"person_id": pid, "sampled_at": iso(now() - dt.timedelta(hours=30)), "result": "negative"},
    ]
    r = await ingest.post("/v1/health/tests", json=tests, headers=health)
    assert [x.get("applied") for x in r.json()["results"]] == [True, True, False]
    r = await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(token))
    assert r.json()["people"][0]["verdict"] == "deny"
    assert r.json()["people"][0]["reason"] == "test_expired"


async def test_watchlisted_scans_are_flagged_in_the_stream_only(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 9)
    pid, token = await register(ingest, 4)
    health = await make_key(ingest, "health")
    until = iso(now() + dt.timedelta(days=1))
    r = await ingest.put(
        f"/v1/watchlist/{pid}", json={"reason": "home quarantine", "until": until}, headers=health
    )
    assert r.status_code == 200 and r.json()["watchlist"]["reason"] == "home quarantine", r.text
    r = await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(token))
    assert r.status_code == 201 and "watch" not in r.text
    r = await ingest.delete(f"/v1/watchlist/{pid}", headers=health)
    assert r.status_code == 204
    code2 = put_venue(sync_redis, settings, 10)
    await ingest.post("/v1/checkins", json={"code": code2}, headers=bearer(token))
    flags = {ev.venue_id: ev.watchlisted for ev in stream_events(sync_redis, settings)}
    assert flags == {9: True, 10: False}


async def test_repeat_scans_are_the_same_check_in(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 11)
    other = put_venue(sync_redis, settings, 15)  # same stream shard as 11 (client ids are kept per shard)
    _pid, token = await register(ingest, 5)
    first = await ingest.post("/v1/checkins", json={"code": code, "client_id": "a"}, headers=bearer(token))
    assert first.status_code == 201
    cid = first.json()["checkin_id"]
    # same person and venue within 60 s, another client id
    again = await ingest.post("/v1/checkins", json={"code": code, "client_id": "b"}, headers=bearer(token))
    assert (
        again.status_code == 200 and again.json()["checkin_id"] == cid and again.json()["duplicate"] is True
    )
    assert again.json()["at"] == first.json()["at"]
    # a retry with the first client id is the same check-in, whatever it carries
    retry = await ingest.post("/v1/checkins", json={"code": other, "client_id": "a"}, headers=bearer(token))
    assert retry.json()["checkin_id"] == cid
    # another venue is another check-in
    new = await ingest.post("/v1/checkins", json={"code": other}, headers=bearer(token))
    assert new.status_code == 201 and new.json()["checkin_id"] != cid
    events = stream_events(sync_redis, settings)
    assert [(e.kind, e.checkin_id) for e in events if e.kind == "in"] == [
        ("in", cid),
        ("in", new.json()["checkin_id"]),
    ]
    # the new check-in ended the first stay where it began (one place at a time)
    ends = [e for e in events if e.kind == "out"]
    assert [(e.checkin_id, e.end_ms, e.ended_by, e.version) for e in ends] == [
        (cid, [e for e in events if e.kind == "in"][-1].at_ms, "next_stay", 1)
    ]
    r = await ingest.get("/metrics")
    assert 'checkin_dedupes_total{source="phone"} 2' in r.text
    assert 'checkin_accepted_total{source="phone"} 2' in r.text


async def test_an_offline_scan_a_minute_apart_is_a_new_check_in(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 13)
    _pid, token = await register(ingest, 6)
    t0 = now() - dt.timedelta(hours=2)
    a = await ingest.post("/v1/checkins", json={"code": code, "scanned_at": iso(t0)}, headers=bearer(token))
    b = await ingest.post(
        "/v1/checkins",
        json={"code": code, "scanned_at": iso(t0 + dt.timedelta(seconds=59))},
        headers=bearer(token),
    )
    c = await ingest.post(
        "/v1/checkins",
        json={"code": code, "scanned_at": iso(t0 + dt.timedelta(seconds=125))},
        headers=bearer(token),
    )
    assert a.json()["checkin_id"] == b.json()["checkin_id"] != c.json()["checkin_id"]
    assert a.json()["at"] == iso(t0)


async def test_companions_check_in_together_and_must_belong_to_the_resident(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 14)
    owner, token = await register(ingest, 7, name="王小明")
    stranger, _ = await register(ingest, 8, name="赵四")
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "王小红", "id_number": child_id_number(70)},
        headers=bearer(token),
    )
    assert r.status_code == 201, r.text
    child = r.json()["person_id"]
    assert r.json()["name_masked"] == "王*红"
    health = await make_key(ingest, "health")
    await ingest.put(f"/v1/health/{child}", json={"status": "yellow", "reason": ""}, headers=health)

    r = await ingest.post(
        "/v1/checkins", json={"code": code, "companions": [stranger]}, headers=bearer(token)
    )
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert str(stranger) in r.json()["detail"]
    r = await ingest.post(
        "/v1/checkins", json={"code": code, "companions": [child, child]}, headers=bearer(token)
    )
    assert r.status_code == 400
    assert stream_events(sync_redis, settings) == []

    r = await ingest.post("/v1/checkins", json={"code": code, "companions": [child]}, headers=bearer(token))
    assert r.status_code == 201, r.text
    people = r.json()["people"]
    assert [(p["person_id"], p["status"], p["verdict"]) for p in people] == [
        (owner, "green", "pass"),
        (child, "yellow", "restricted"),
    ]
    events = stream_events(sync_redis, settings)
    assert sorted(e.person_id for e in events) == sorted([owner, child])
    assert {e.checkin_id for e in events} == {r.json()["checkin_id"]}
    assert {e.at_ms for e in events} == {events[0].at_ms} and {e.owner_id for e in events} == {owner}
    r = await ingest.get("/v1/residents/me/companions", headers=bearer(token))
    assert r.json() == [{"person_id": child, "name_masked": "王*红", "dependant": True}]
    r = await ingest.delete(f"/v1/residents/me/companions/{child}", headers=bearer(token))
    assert r.status_code == 204
    other = put_venue(sync_redis, settings, 15)
    r = await ingest.post("/v1/checkins", json={"code": other, "companions": [child]}, headers=bearer(token))
    assert r.status_code == 403


async def test_venue_code_states(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    _pid, token = await register(ingest, 9)
    keyring = Keyring.parse(settings.keyring)
    put_venue(sync_redis, settings, 20, code_version=2)
    old = codes.sign(keyring, 20, 1)
    r = await ingest.post("/v1/checkins", json={"code": old}, headers=bearer(token))
    assert r.status_code == 410 and "new poster" in r.json()["detail"]
    put_venue(sync_redis, settings, 21, active=False)
    r = await ingest.post("/v1/checkins", json={"code": codes.sign(keyring, 21, 1)}, headers=bearer(token))
    assert r.status_code == 410
    r = await ingest.post("/v1/checkins", json={"code": codes.sign(keyring, 22, 1)}, headers=bearer(token))
    assert r.status_code == 404
    good = codes.sign(keyring, 20, 2)
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    r = await ingest.post("/v1/checkins", json={"code": tampered}, headers=bearer(token))
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    foreign = codes.sign(Keyring.parse(Keyring.generate(1)), 20, 2)
    r = await ingest.post("/v1/checkins", json={"code": foreign}, headers=bearer(token))
    assert r.status_code == 400
    assert stream_events(sync_redis, settings) == []
    r = await ingest.post("/v1/checkins", json={"code": good}, headers=bearer(token))
    assert r.status_code == 201
    metrics = (await ingest.get("/metrics")).text
    for reason, n in (("old_code", 1), ("inactive", 1), ("unknown_venue", 1), ("bad_code", 2)):
        assert f'checkin_rejections_total{{reason="{reason}"}} {n}' in metrics


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"code": 5}', 400),
        (b'{"code": "x", "extra": 1}', 400),
        (b'{"code": "x", "companions": ["a"]}', 400),
        (b'{"code": "x", "location": {"lat": 91, "lon": 0}}', 400),
        (b'{"code": "x", "scanned_at": "yesterday"}', 400),
        (b'{"code": "x", "scanned_at": "2026-01-01T00:00:00"}', 400),
        (b'{"code": "x", "client_id": "has space"}', 400),
        (b"[]", 400),
    ],
)
async def test_bad_bodies_are_clear_4xx(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings, body: bytes, status: int
) -> None:
    _pid, token = await register(ingest, 10)
    r = await ingest.post(
        "/v1/checkins", content=body, headers={**bearer(token), "Content-Type": "application/json"}
    )
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"]


async def test_tokens_and_time_window(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 30)
    pid, token = await register(ingest, 11)
    r = await ingest.post("/v1/checkins", json={"code": code})
    assert r.status_code == 401
    r = await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(token[:-3] + "AAA"))
    assert r.status_code == 401
    from checkin.platform import resident_tokens

    expired, _ = resident_tokens.issue(Keyring.parse(settings.keyring), pid, 10, now=1_000_000)
    r = await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(expired))
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    health = await make_key(ingest, "health")
    r = await ingest.post("/v1/checkins", json={"code": code}, headers=health)
    assert r.status_code == 403
    for when in (now() - dt.timedelta(hours=73), now() + dt.timedelta(minutes=6)):
        r = await ingest.post(
            "/v1/checkins", json={"code": code, "scanned_at": iso(when)}, headers=bearer(token)
        )
        assert r.status_code == 422, r.text
    assert stream_events(sync_redis, settings) == []


async def test_checkout_writes_an_out_entry_per_person(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 40)
    owner, token = await register(ingest, 12)
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "李雷", "id_number": child_id_number(71)},
        headers=bearer(token),
    )
    child = r.json()["person_id"]
    t0 = now() - dt.timedelta(minutes=30)
    r = await ingest.post(
        "/v1/checkins",
        json={
            "code": code,
            "companions": [child],
            "scanned_at": iso(t0),
            "location": {"lat": 1.5, "lon": 2.5},
        },
        headers=bearer(token),
    )
    cid = r.json()["checkin_id"]
    _stranger, other_token = await register(ingest, 13)
    r = await ingest.post(f"/v1/checkins/{cid}/checkout", json={}, headers=bearer(other_token))
    assert r.status_code == 404
    r = await ingest.post(f"/v1/checkins/{cid}/checkout", headers=bearer(token))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (
        out["checkin_id"] == cid and out["at"] == iso(t0) and sorted(out["people"]) == sorted([owner, child])
    )
    r = await ingest.post(f"/v1/checkins/{cid}/checkout", headers=bearer(token))
    assert r.status_code == 409
    for bad in ("zzz", "fff" + "0" * 20, "000" + "0" * 20):
        r = await ingest.post(f"/v1/checkins/{bad}/checkout", headers=bearer(token))
        assert r.status_code == 404, r.text

    entries = [line_values(entry_line(fields) or b"") for fields in raw_entries(sync_redis, settings)]
    ins = {e["person_id"]: e for e in entries if e["version"] == "0"}
    outs = {e["person_id"]: e for e in entries if e["version"] == "1"}
    assert set(ins) == set(outs) == {str(owner), str(child)}
    ended = dt.datetime.fromisoformat(out["ended_at"].replace("Z", "+00:00"))
    for pid, e_in in ins.items():
        e_out = outs[pid]
        assert {k: v for k, v in e_in.items() if k not in ("version", "end_at", "ended_by")} == {
            k: v for k, v in e_out.items() if k not in ("version", "end_at", "ended_by")
        }
        assert int(e_out["end_at"]) == int(ended.timestamp() * 1000)
        assert (e_in["ended_by"], e_out["ended_by"]) == ("", "checkout")
    events = [e for e in stream_events(sync_redis, settings) if e.kind == "out"]
    assert all(e.end_ms > e.at_ms for e in events)


async def test_checkout_windows(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 41)
    _pid, token = await register(ingest, 14)
    late = await ingest.post(
        "/v1/checkins",
        json={"code": code, "scanned_at": iso(now() - dt.timedelta(hours=13))},
        headers=bearer(token),
    )
    r = await ingest.post(f"/v1/checkins/{late.json()['checkin_id']}/checkout", headers=bearer(token))
    assert r.status_code == 410
    code2 = put_venue(sync_redis, settings, 42)
    early = await ingest.post(
        "/v1/checkins",
        json={"code": code2, "scanned_at": iso(now() + dt.timedelta(minutes=3))},
        headers=bearer(token),
    )
    r = await ingest.post(f"/v1/checkins/{early.json()['checkin_id']}/checkout", headers=bearer(token))
    assert r.status_code == 409
    assert [e.kind for e in stream_events(sync_redis, settings)] == ["in", "in"]


async def post_chunks(
    client: AsyncTestClient[Any], token: str, chunks: list[bytes]
) -> tuple[int, dict[bytes, bytes], bytes]:
    """POST /v1/checkins straight through ASGI, the body in several messages, no Content-Length.

    The app runs in the test client's own event loop (its portal thread), where its Redis
    connections live; calling it from the test's loop would share them across loops."""
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/checkins",
        "raw_path": b"/v1/checkins",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver.local", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.to_thread(client.blocking_portal.call, client.app, scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


async def test_a_body_in_several_messages_is_read_whole_and_capped(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    code = put_venue(sync_redis, settings, 31)
    _pid, token = await register(ingest, 12)
    body = b'{"code": "' + code.encode() + b'", "client_id": "chunked-1"}'
    status, _headers, _ = await post_chunks(ingest, token, [body[i : i + 7] for i in range(0, len(body), 7)])
    assert status == 201
    assert len(stream_events(sync_redis, settings)) == 1
    # no Content-Length: the cap is enforced while the body arrives
    big = [b" " * 65536] * (settings.max_body_bytes // 65536 + 1)
    status, headers, answer = await post_chunks(ingest, token, big)
    assert status == 413 and headers[b"content-type"] == b"application/problem+json", answer
    status, _headers, answer = await post_chunks(ingest, token, [b""])
    assert status == 400 and b"empty" in answer
    assert len(stream_events(sync_redis, settings)) == 1


def test_the_hot_connection_runs_on_uvloop(settings: Settings) -> None:
    """granian picks uvloop when it is installed; its transports do not subclass asyncio's."""
    import uvloop

    from checkin.platform.hot_redis import HotRedis

    async def run() -> list[Any]:
        hot = HotRedis(settings.redis_url, timeout_s=2)
        try:
            return [await hot.execute("PING"), *(await hot.pipeline([("ECHO", "a"), ("ECHO", "b")]))]
        finally:
            hot.close()

    assert uvloop.run(run()) == [b"PONG", b"a", b"b"]
