"""A live code from a venue's screen cannot be backdated (docs/ARCHITECTURE.md, "Integrity of the
record"): a screen's code proves presence during its own time step, so the offline queue's 72 h
window does not apply to it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import redis
from litestar.testing import AsyncTestClient

from checkin.platform.errors import Unprocessable
from tests.support.access_world import iso, venue_body
from tests.support.ingest import bearer, make_key, register, stream_events
from tests.support.values import admin_headers
from venues import codes


async def test_one_live_screen_code_backdated_through_the_batch_records_nothing(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Any
) -> None:
    adm = admin_headers()
    r = await ingest.post("/v1/venues", json=venue_body("Screen", "110101"), headers=adm)
    vid = r.json()["venue_id"]
    r = await ingest.patch(f"/v1/venues/{vid}", json={"code_mode": "rotating"}, headers=adm)
    assert r.status_code == 200, r.text
    device = await make_key(ingest, "device", venue_id=vid)
    live = (await ingest.get(f"/v1/venues/{vid}/code", headers=device)).json()["token"]
    _pid, token = await register(ingest, 90)
    now = dt.datetime.now(dt.UTC)
    # the attack as it was played: one live code, scanned_at 1 to 69 hours ago
    items = [{"code": live, "scanned_at": iso(now - dt.timedelta(hours=h))} for h in range(1, 70)]
    r = await ingest.post("/v1/checkins/batch", json={"items": items}, headers=bearer(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 0 and body["rejected"] == 69
    assert {x["status"] for x in body["results"]} == {422}
    assert {x["error_reason"] for x in body["results"]} == {"scanned_at_outside_code"}
    r = await ingest.post(
        "/v1/checkins",
        json={"code": live, "scanned_at": iso(now - dt.timedelta(minutes=5))},
        headers=bearer(token),
    )
    assert r.status_code == 422 and r.json()["reason"] == "scanned_at_outside_code", r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert stream_events(sync_redis, settings) == []
    # scanned now, the same code is a check-in
    r = await ingest.post("/v1/checkins", json={"code": live}, headers=bearer(token))
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("offset_s", "ok"),
    [(0, True), (29.9, True), (30, True), (59.9, True), (60, False), (-0.1, False), (-3600, False)],
)
def test_the_scan_instant_must_lie_in_the_code_step_or_the_next(offset_s: float, ok: bool) -> None:
    claims = codes.CodeClaims(venue_id=1, code_version=1, key_id=1, kind="r", step=1000)
    at_ms = int((1000 * 30 + offset_s) * 1000)
    if ok:
        codes.check_scanned_at(claims, 30, at_ms)
    else:
        with pytest.raises(Unprocessable) as refused:
            codes.check_scanned_at(claims, 30, at_ms)
        assert refused.value.extra["reason"] == "scanned_at_outside_code"
    poster = codes.CodeClaims(venue_id=1, code_version=1, key_id=1, kind="s", step=0)
    codes.check_scanned_at(poster, 30, at_ms)  # a poster's code carries no time


async def test_a_screen_code_seen_before_registering_is_taken_for_the_grace_and_recorded_when_seen(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Any
) -> None:
    """The phone page's seen proof (made when it served a current code) lets a first-time visitor's
    check-in through after the code expired, within CHECKIN_ROTATING_REGISTER_S, at the instant seen;
    no proof, a forged or an old one, or one of another code does not."""
    import time

    from checkin.platform.keyring import Keyring

    keyring = Keyring.parse(settings.keyring)
    adm = admin_headers()
    vid = (await ingest.post("/v1/venues", json=venue_body("Cinema", "110101"), headers=adm)).json()[
        "venue_id"
    ]
    assert (
        await ingest.patch(f"/v1/venues/{vid}", json={"code_mode": "rotating"}, headers=adm)
    ).status_code == 200
    step_s = settings.rotating_step_s
    now_ms = int(time.time() * 1000)
    # a code seen current 4 minutes ago: expired long since (30 s steps)
    seen_ms = now_ms - 240_000
    old = codes.sign_rotating(keyring, vid, 1, seen_ms // 1000 // step_s)
    proof = codes.sign_seen(keyring, old, seen_ms)
    _pid, token = await register(ingest, 91)
    r = await ingest.post("/v1/checkins", json={"code": old}, headers=bearer(token))
    assert r.status_code == 410 and r.json()["reason"] == "code_expired"
    forged = proof[:-2] + ("AA" if not proof.endswith("AA") else "BB")
    other = codes.sign_rotating(keyring, vid, 1, seen_ms // 1000 // step_s - 1)
    too_old = codes.sign_seen(keyring, old, now_ms - 301_000)
    for bad in (
        {"code": old, "code_proof": forged},
        {"code": other, "code_proof": proof},
        {"code": old, "code_proof": too_old},
    ):
        r = await ingest.post("/v1/checkins", json=bad, headers=bearer(token))
        assert r.status_code == 410 and r.json()["reason"] == "code_expired", (bad, r.text)
    assert stream_events(sync_redis, settings) == []
    # the proof of that code: taken, recorded at the instant it was seen whatever scanned_at says
    r = await ingest.post(
        "/v1/checkins",
        json={"code": old, "code_proof": proof, "scanned_at": iso(dt.datetime.now(dt.UTC))},
        headers=bearer(token),
    )
    assert r.status_code == 201, r.text
    events = stream_events(sync_redis, settings)
    assert [e.at_ms for e in events if e.kind == "in"] == [seen_ms]
    # the same through the offline queue
    _pid2, token2 = await register(ingest, 92)
    r = await ingest.post(
        "/v1/checkins/batch", json={"items": [{"code": old, "code_proof": proof}]}, headers=bearer(token2)
    )
    assert r.status_code == 200 and r.json()["results"][0]["status"] == 201, r.text
    assert sorted(e.at_ms for e in stream_events(sync_redis, settings) if e.kind == "in") == [
        seen_ms,
        seen_ms,
    ]
