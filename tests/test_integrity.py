"""What is recorded is what happened: the abuses of docs/ARCHITECTURE.md "Integrity of the record",
each played over HTTP against the real ingest (and tracing) app, Redis and ClickHouse, and refused.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
import redis
from litestar.testing import AsyncTestClient

from checkin.platform.keyring import Keyring
from checkin.platform.settings import Settings
from tests.support.access_world import iso, venue_body
from tests.support.ingest import (
    bearer,
    child_id_number,
    id_number,
    make_key,
    put_venue,
    register,
    stream_events,
)
from tests.support.servers import ingest_server
from tests.support.sink import make_consumer, run_until
from tests.support.values import admin_headers
from tests.support.waiting import fresh_window, fresh_window_async
from tracing.storage.store import Store
from venues import codes

HOUR_S = 3600


async def metric(client: AsyncTestClient[Any], name: str, **labels: str) -> float:
    text = (await client.get("/metrics")).text
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{inner}}} "):
            return float(line.split()[-1])
    return 0.0


# --- scans are counted, not requests -----------------------------------------------------------------


async def test_batches_spend_the_budget_of_the_scans_they_carry(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    _, token = await register(ingest, 1)
    code = put_venue(sync_redis, settings, 4001)
    now = await fresh_window_async()

    def batch(first: int) -> dict[str, Any]:  # 100 scans, 2 min apart: none is a repeat of another
        at = [dt.datetime.fromtimestamp((now - (first + i) * 120_000) / 1000, dt.UTC) for i in range(100)]
        return {"items": [{"code": code, "scanned_at": iso(t)} for t in at]}

    answers = [
        await ingest.post("/v1/checkins/batch", json=batch(n * 100), headers=bearer(token)) for n in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200]
    bodies = [a.json() for a in answers]
    assert [b["accepted"] for b in bodies] == [100, 20, 0]  # rate_resident_per_min = 120
    refused = [r for b in bodies for r in b["results"] if r["status"] == 429]
    assert len(refused) == 180
    assert {r["error_reason"] for r in refused} == {"rate_limited"}
    assert "retry-after" not in answers[0].headers
    for a in answers[1:]:
        assert 1 <= int(a.headers["retry-after"]) <= 60
    assert len(stream_events(sync_redis, settings)) == 120
    assert await metric(ingest, "checkin_rejections_total", reason="rate_limited") == 180


async def test_companions_count_as_scans(
    ingest: AsyncTestClient[Any], make_settings: Any, sync_redis: redis.Redis
) -> None:
    settings = make_settings(rate_resident_per_min=5)
    from checkin.app import create_app

    async with AsyncTestClient(app=create_app(settings)) as client:
        _, token = await register(client, 2)
        kids = []
        for seq in (3, 4):
            r = await client.post(
                "/v1/residents/me/companions",
                json={"name": f"child {seq}", "id_number": child_id_number(seq)},
                headers=bearer(token),
            )
            assert r.status_code == 201, r.text
            kids.append(r.json()["person_id"])
        await fresh_window_async()
        a = await client.post(
            "/v1/checkins",
            json={"code": put_venue(sync_redis, settings, 4002), "companions": kids},
            headers=bearer(token),
        )
        assert a.status_code == 201, a.text  # three scans
        b = await client.post(
            "/v1/checkins",
            json={"code": put_venue(sync_redis, settings, 4003), "companions": kids},
            headers=bearer(token),
        )
        assert b.status_code == 429 and b.json()["reason"] == "rate_limited", b.text
        assert "retry-after" in b.headers
        c = await client.post(
            "/v1/checkins", json={"code": put_venue(sync_redis, settings, 4004)}, headers=bearer(token)
        )
        assert c.status_code == 201, c.text  # the refused three were not spent: 3 + 1 <= 5
        events = stream_events(sync_redis, settings)
        assert [e.kind for e in events].count("in") == 4
        # the owner's stay at 4002 ended where the one at 4004 began; the children's went on
        assert [(e.venue_id, e.person_id, e.ended_by) for e in events if e.kind == "out"] == [
            (4002, events[0].person_id, "next_stay")
        ]


# --- the repeat rule -------------------------------------------------------------------------------


async def test_alternating_timestamps_make_at_most_two_stays(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    _, token = await register(ingest, 5)
    code = put_venue(sync_redis, settings, 4010)
    t0 = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    times = [t0, t0 + dt.timedelta(seconds=61)] * 3
    statuses = []
    for t in times:
        r = await ingest.post(
            "/v1/checkins", json={"code": code, "scanned_at": iso(t)}, headers=bearer(token)
        )
        statuses.append(r.status_code)
    assert statuses == [201, 201, 200, 200, 200, 200]
    # and in one batch, in any order
    _, other = await register(ingest, 6)
    r = await ingest.post(
        "/v1/checkins/batch",
        json={"items": [{"code": code, "scanned_at": iso(t)} for t in times]},
        headers=bearer(other),
    )
    assert r.json()["accepted"] == 2 and r.json()["duplicates"] == 4, r.text
    assert [e.kind for e in stream_events(sync_redis, settings)].count("in") == 4


# --- door devices learn nothing ----------------------------------------------------------------------


async def test_a_device_answer_names_no_one_and_a_device_has_its_own_budget(
    make_settings: Any, sync_redis: redis.Redis
) -> None:
    settings = make_settings(rate_device_per_min=5)
    from checkin.app import create_app

    async with AsyncTestClient(app=create_app(settings)) as client:
        for seq in range(10, 18):
            await register(client, seq, name="王小明")
        put_venue(sync_redis, settings, 4020)
        device = await make_key(client, "device", venue_id=4020)
        await fresh_window_async()
        scans = [{"id_number": id_number(seq)} for seq in range(10, 18)]
        r = await client.post("/v1/sentinel/scans", json={"scans": scans}, headers=device)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["status"] for x in results] == [201] * 5 + [429] * 3
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert results[5]["error_reason"] == "rate_limited"
        door = results[0]
        assert door["name_masked"] == "王*明" and door["health_status"] and door["verdict"]
        assert "person_id" not in r.text and "checkin_id" not in r.text
        assert "last_negative_test_at" not in r.text
        # nor a registry lookup: an unknown number spends the budget like a scan (429 now, not 404)
        r = await client.post(
            "/v1/sentinel/scans", json={"scans": [{"id_number": id_number(99)}]}, headers=device
        )
        assert r.json()["results"][0]["status"] == 429 and "retry-after" in r.headers
        # a device may backdate a day, not the phone's three
        old = iso(dt.datetime.now(dt.UTC) - dt.timedelta(hours=25))
        r = await client.post(
            "/v1/sentinel/scans",
            json={"scans": [{"id_number": id_number(10), "scanned_at": old}]},
            headers=device,
        )
        assert r.json()["results"][0]["status"] == 422
        assert r.json()["results"][0]["error_reason"] == "too_old"


# --- venues cannot be blinded ------------------------------------------------------------------------


async def test_an_operator_cannot_move_or_blind_its_venue_and_every_change_is_kept(
    ingest: AsyncTestClient[Any], settings: Settings
) -> None:
    adm = admin_headers()
    r = await ingest.post("/v1/venues", json=venue_body("Venue H", "110101"), headers=adm)
    assert r.status_code == 201, r.text
    vid = r.json()["venue_id"]
    operator = await make_key(ingest, "operator", venue_id=vid)
    moved = await ingest.patch(f"/v1/venues/{vid}", json={"district": "120101"}, headers=operator)
    assert moved.status_code == 403 and moved.json()["reason"] == "place_change", moved.text
    for field in ("street", "community"):
        r = await ingest.patch(
            f"/v1/venues/{vid}",
            json={field: "110101002001"[: 9 if field == "street" else 12]},
            headers=operator,
        )
        assert r.status_code == 403, (field, r.text)
    for dwell in (1, 4, 721, 1440):
        r = await ingest.patch(f"/v1/venues/{vid}", json={"dwell_minutes": dwell}, headers=operator)
        assert r.status_code == 400 and "dwell_minutes" in r.json()["detail"], (dwell, r.text)
    ok = await ingest.patch(
        f"/v1/venues/{vid}", json={"dwell_minutes": 45, "name": "Venue H2"}, headers=operator
    )
    assert ok.status_code == 200, ok.text
    venue = (await ingest.get(f"/v1/venues/{vid}", headers=adm)).json()
    assert venue["district"] == "110101" and venue["dwell_minutes"] == 45

    moved = await ingest.patch(
        f"/v1/venues/{vid}",
        json={"district": "110102", "street": "110102001", "community": "110102001001"},
        headers=adm,
    )
    assert moved.status_code == 200, moved.text
    history = await ingest.get(f"/v1/venues/{vid}/history", headers=adm)
    assert history.status_code == 200, history.text
    changes = history.json()["changes"]
    assert [c["action"] for c in changes] == ["update", "update", "create"]
    assert changes[0]["role"] == "admin" and changes[0]["before"]["district"] == "110101"
    assert changes[0]["after"]["district"] == "110102"
    assert changes[1]["role"] == "operator" and changes[1]["actor"] not in ("", "admin")
    assert changes[1]["before"] == {"dwell_minutes": "60", "name": "Venue H"}
    assert changes[1]["after"] == {"dwell_minutes": "45", "name": "Venue H2"}
    assert changes[2]["after"]["district"] == "110101" and changes[2]["after"]["name"] == "Venue H"

    analyst_in = await make_key(ingest, "analyst", scope="110102")
    analyst_out = await make_key(ingest, "analyst", scope="110101")
    assert (await ingest.get(f"/v1/venues/{vid}/history", headers=analyst_in)).status_code == 200
    assert (await ingest.get(f"/v1/venues/{vid}/history", headers=analyst_out)).status_code == 403
    assert (await ingest.get(f"/v1/venues/{vid}/history", headers=operator)).status_code == 403
    assert (await ingest.get("/v1/venues/999999/history", headers=adm)).status_code == 404


async def test_an_import_row_with_the_largest_id_does_not_exhaust_the_ids(
    ingest: AsyncTestClient[Any],
) -> None:
    header = "venue_id,name,address,type,district,street,community,lat,lon,capacity,dwell_minutes,"
    header += "requires_negative_test_hours\n"
    row = "4294967295,Last,1 Road,other,110101,110101001,110101001001,39.9,116.4,10,30,\n"
    r = await ingest.post(
        "/v1/venues/import",
        content=(header + row).encode(),
        headers={**admin_headers(), "content-type": "text/csv"},
    )
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    new = await ingest.post("/v1/venues", json=venue_body("After", "110101"), headers=admin_headers())
    assert new.status_code == 201, new.text
    assert new.json()["venue_id"] < 1000
    refused = await ingest.post(
        "/v1/venues/import",
        content=(header + row.replace(",30,\n", ",1,\n")).encode(),
        headers={**admin_headers(), "content-type": "text/csv"},
    )
    assert refused.json()["rejected"] == 1 and "dwell_minutes" in refused.text


# --- the client address --------------------------------------------------------------------------------


def _otp_statuses(base: str, forwarded: list[str], first_phone: int = 0) -> list[int]:
    """Statuses of one-time code requests (each to a new phone) with these X-Forwarded-For headers."""
    out = []
    with httpx.Client(base_url=base, timeout=10) as c:
        for n, hop in enumerate(forwarded, first_phone):
            r = c.post(
                "/v1/residents/otp", json={"phone": f"1370000{n:04d}"}, headers={"X-Forwarded-For": hop}
            )
            out.append(r.status_code)
    return out


def test_forwarded_for_counts_only_behind_a_trusted_proxy(tmp_path: Any, prefix: str) -> None:
    spoofed = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    fresh_window()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with ingest_server(tmp_path / "a", prefix + "a:", CHECKIN_RATE_REGISTER_PER_MIN="2") as (base, _k, _l):
        # the peer is not a proxy: a header it sends changes nothing, the third request is refused
        assert _otp_statuses(base, spoofed) == [202, 202, 429]
    fresh_window()
    with ingest_server(
        tmp_path / "b",
        prefix + "b:",
        CHECKIN_RATE_REGISTER_PER_MIN="2",
        CHECKIN_TRUSTED_PROXIES="127.0.0.1/32",
    ) as (base, _k, _l):
        # behind a trusted proxy the forwarded client is the one counted
        assert _otp_statuses(base, spoofed) == [202, 202, 202]
        # the right-most untrusted hop: what the client wrote left of it does not matter
        hops = ["1.1.1.1, 192.0.2.7", "2.2.2.2, 192.0.2.7", "3.3.3.3, 192.0.2.7"]
        assert _otp_statuses(base, hops, first_phone=10) == [202, 202, 429]


# --- rotating screen codes -------------------------------------------------------------------------------


async def test_a_screen_code_is_accepted_in_its_step_and_refused_two_steps_later(
    make_settings: Any, sync_redis: redis.Redis
) -> None:
    settings = make_settings(rotating_step_s=HOUR_S)  # a step boundary never falls inside the test
    from checkin.app import create_app

    async with AsyncTestClient(app=create_app(settings)) as client:
        adm = admin_headers()
        vid = (await client.post("/v1/venues", json=venue_body("Screen", "110101"), headers=adm)).json()[
            "venue_id"
        ]
        poster = (await client.get(f"/v1/venues/{vid}/code", headers=adm)).json()["token"]
        operator = await make_key(client, "operator", venue_id=vid)
        r = await client.patch(f"/v1/venues/{vid}", json={"code_mode": "rotating"}, headers=operator)
        assert r.status_code == 200 and r.json()["code_mode"] == "rotating", r.text
        device = await make_key(client, "device", venue_id=vid)
        other_device = await make_key(client, "device", venue_id=vid + 1)
        current = await client.get(f"/v1/venues/{vid}/code", headers=device)
        assert current.status_code == 200, current.text
        body = current.json()
        assert body["code_mode"] == "rotating" and len(body["token"]) == codes.ROTATING_TOKEN_CHARS
        assert body["expires_at"]
        assert (await client.get(f"/v1/venues/{vid}/code", headers=other_device)).status_code == 403

        keyring = Keyring.parse(settings.keyring)
        step = codes.current_step(HOUR_S)
        previous = codes.sign_rotating(keyring, vid, 1, step - 1)
        stale = codes.sign_rotating(keyring, vid, 1, step - 2)
        people = [(await register(client, seq))[1] for seq in (30, 31, 32, 33)]
        ok = await client.post("/v1/checkins", json={"code": body["token"]}, headers=bearer(people[0]))
        assert ok.status_code == 201, ok.text
        ok = await client.post("/v1/checkins", json={"code": previous}, headers=bearer(people[1]))
        assert ok.status_code == 201, ok.text
        old = await client.post("/v1/checkins", json={"code": stale}, headers=bearer(people[2]))
        assert old.status_code == 410 and old.json()["reason"] == "code_expired", old.text
        assert "请重新扫描屏幕上的场所码" in old.json()["detail"]
        photo = await client.post("/v1/checkins", json={"code": poster}, headers=bearer(people[3]))
        assert photo.status_code == 410 and photo.json()["reason"] == "static_code", photo.text
        batch = await client.post(
            "/v1/checkins/batch",
            json={"items": [{"code": stale}, {"code": poster}]},
            headers=bearer(people[3]),
        )
        assert [x["error_reason"] for x in batch.json()["results"]] == ["code_expired", "static_code"]
        # the phone page says so too
        for token in (stale, poster):
            page = await client.get(f"/v/{token}")
            assert page.status_code == 410 and "请重新扫描屏幕上的场所码" in page.text
        assert (await client.get(f"/v/{previous}")).status_code == 200
        assert len(stream_events(sync_redis, settings)) == 2
        assert await metric(client, "checkin_rejections_total", reason="code_expired") == 2
        assert await metric(client, "checkin_rejections_total", reason="static_code") == 2
        # a rotated code version ends the screen's codes as it ends posters
        await client.post(f"/v1/venues/{vid}/code/rotate", headers=operator)
        again = await client.post("/v1/checkins", json={"code": previous}, headers=bearer(people[3]))
        assert again.status_code == 410 and again.json()["reason"] == "old_code"


def test_the_step_window_with_an_injected_clock() -> None:
    claims = codes.CodeClaims(venue_id=1, code_version=1, key_id=1, kind="r", step=100)
    for now_s in (100 * 30, 100 * 30 + 29.9, 101 * 30, 101 * 30 + 29.9):
        codes.check_step(claims, 30, now_s)
    for now_s in (102 * 30, 99 * 30 + 29.9, 500 * 30):
        with pytest.raises(codes.CodeExpired) as refused:
            codes.check_step(claims, 30, now_s)
        assert refused.value.status == 410 and refused.value.extra["reason"] == "code_expired"
    poster = codes.CodeClaims(venue_id=1, code_version=1, key_id=1)
    codes.check_step(poster, 30, 10**9)  # a poster has no step


async def test_the_display_needs_the_venues_device_key(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    adm = admin_headers()
    vid = (await ingest.post("/v1/venues", json=venue_body("Door", "110101"), headers=adm)).json()["venue_id"]
    device = (await ingest.post("/v1/keys", json={"role": "device", "venue_id": vid}, headers=adm)).json()[
        "key"
    ]
    other = (await ingest.post("/v1/keys", json={"role": "device", "venue_id": vid + 1}, headers=adm)).json()[
        "key"
    ]
    operator = (await ingest.post("/v1/keys", json={"role": "operator"}, headers=adm)).json()["key"]
    assert (await ingest.get(f"/display/{vid}")).status_code == 401
    assert (await ingest.get(f"/display/{vid}", params={"key": other})).status_code == 403
    assert (await ingest.get(f"/display/{vid}", params={"key": operator})).status_code == 403
    assert (await ingest.get(f"/display/{vid}/code", headers=bearer(other))).status_code == 403
    not_yet = await ingest.get(f"/display/{vid}/code", headers=bearer(device))
    assert not_yet.status_code == 409 and not_yet.json()["reason"] == "not_rotating"
    await ingest.patch(f"/v1/venues/{vid}", json={"code_mode": "rotating"}, headers=adm)
    opened = await ingest.get(f"/display/{vid}", params={"key": device}, follow_redirects=False)
    assert opened.status_code == 303 and opened.headers["location"] == f"/display/{vid}"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and f"Path=/display/{vid}" in cookie
    page = await ingest.get(f"/display/{vid}")  # the client keeps the cookie
    assert page.status_code == 200 and "Door" in page.text and device not in page.text
    code = await ingest.get(f"/display/{vid}/code")
    assert code.status_code == 200, code.text
    assert code.json()["qr_svg"].startswith("data:image/svg+xml;base64,")
    assert code.json()["url"].startswith(settings.public_base_url + "/v/")
    # revoking the device key ends the screen
    keys = (await ingest.get("/v1/keys", headers=adm)).json()
    device_id = next(k["key_id"] for k in keys if k["role"] == "device" and k.get("venue_id") == vid)
    assert (await ingest.delete(f"/v1/keys/{device_id}", headers=adm)).status_code == 204
    assert (await ingest.get(f"/display/{vid}/code")).status_code == 401


# --- purpose binding and audited alert reads ----------------------------------------------------------------


async def test_contact_details_only_of_persons_a_trace_named_to_the_key(
    ingest: AsyncTestClient[Any], tracing: AsyncTestClient[Any], settings: Settings, store: Store
) -> None:
    adm = admin_headers()
    vid = (await ingest.post("/v1/venues", json=venue_body("Cafe", "110101"), headers=adm)).json()["venue_id"]
    code = (await ingest.get(f"/v1/venues/{vid}/code", headers=adm)).json()["token"]
    case, case_token = await register(ingest, 40)
    contact, contact_token = await register(ingest, 41)
    stranger, _ = await register(ingest, 42)
    for token in (case_token, contact_token):
        r = await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(token))
        assert r.status_code == 201, r.text
    consumer, ctx = await make_consumer(settings, store)
    try:
        await run_until(
            consumer, lambda: int(store.scalar(f"SELECT count() FROM {store.table('scans')}")) >= 2
        )
    finally:
        await ctx.redis.aclose()
    tracer = await make_key(ingest, "tracer")
    other_tracer = await make_key(ingest, "tracer")

    def details(pid: int, headers: dict[str, str]) -> Any:
        return tracing.get(
            f"/v1/trace/persons/{pid}/contact-details", params={"reason": "case 7"}, headers=headers
        )

    for pid in (case, contact, stranger):
        r = await details(pid, tracer)
        assert r.status_code == 403 and r.json()["reason"] == "not_traced", r.text
    now = dt.datetime.now(dt.UTC)
    r = await tracing.post(
        "/v1/trace/contacts",
        json={
            "person_id": case,
            "since": iso(now - dt.timedelta(hours=2)),
            "until": iso(now + dt.timedelta(hours=1)),
            "min_overlap_minutes": 1,
            "reason": "case 7",
        },
        headers=tracer,
    )
    assert r.status_code == 200 and [c["person_id"] for c in r.json()["contacts"]] == [contact], r.text
    assert (await details(case, tracer)).status_code == 200  # the index case
    named = await details(contact, tracer)
    assert named.status_code == 200 and named.json()["phone"].endswith("41"), named.text
    assert (await details(stranger, tracer)).status_code == 403  # never named
    assert (await details(contact, other_tracer)).status_code == 403  # named to another key
    r = await tracing.post(
        "/v1/trace/exposures",
        json={
            "sites": [{"venue_id": vid, "since": iso(now - dt.timedelta(hours=1)), "until": iso(now)}],
            "reason": "site",
        },
        headers=other_tracer,
    )
    assert r.json()["count"] == 2
    assert (await details(contact, other_tracer)).status_code == 200
    audit = await tracing.get("/v1/audit", params={"action": "contact_details"}, headers=adm)
    outcomes = [e["params"].get("outcome", "ok") for e in audit.json()["entries"]]
    assert outcomes.count("not_traced") == 5 and outcomes.count("ok") == 3


async def test_reading_alerts_is_audited(tracing: AsyncTestClient[Any], ingest: AsyncTestClient[Any]) -> None:
    analyst = await make_key(ingest, "analyst", scope="110101")
    r = await tracing.get("/v1/alerts", params={"kind": "red_code_entry"}, headers=analyst)
    assert r.status_code == 200, r.text
    audit = await tracing.get("/v1/audit", params={"action": "alerts"}, headers=admin_headers())
    entries = audit.json()["entries"]
    assert (
        len(entries) == 1
        and entries[0]["role"] == "analyst"
        and entries[0]["params"]["kind"] == "red_code_entry"
    )
