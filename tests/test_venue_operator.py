"""What a venue's operator does without an admin (issue: door screen, posters, the venue's day, closing),
over HTTP against real Redis: device keys for its own venue only (403 for another, audited), the door
tablet's one-time set-up link, the day's entries per hour beside last week with occupancy and capacity
alerts, closing a venue with a reason (410 with the date on the check-in API and the phone page), and the
posters a print shop takes (PDF text extractable, QR decodable at 300 and 72 dpi, A4 and A3)."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import redis
import zxingcpp
from litestar.testing import AsyncTestClient

from checkin.platform import audit_trail
from checkin.platform.instants import HOUR_MS, format_ms, now_ms
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.settings import Settings
from tests.support.ingest import id_number
from tests.support.pdf import pdf_fonts, pdf_images, pdf_page, pdf_text
from tests.support.values import admin_headers
from venues import codes, poster, qr, scanned_code
from venues.day import day_hours
from venues.model import VenueAlert

TZ = "Asia/Shanghai"


def venue_body(venue_id: int, name: str = "金城关夜市牛肉面", **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "venue_id": venue_id,
        "name": name,
        "address": "城关区金城关 1 号",
        "type": "market",
        "district": "620102",
        "street": "620102001",
        "community": "620102001001",
        "lat": 36.06,
        "lon": 103.83,
    }
    data.update(over)
    return data


async def add_venue(ingest: AsyncTestClient[Any], venue_id: int, **over: Any) -> None:
    r = await ingest.post("/v1/venues", json=venue_body(venue_id, **over), headers=admin_headers())
    assert r.status_code == 201, r.text


async def operator_of(ingest: AsyncTestClient[Any], venue_id: int | None, scope: str = "") -> dict[str, str]:
    record: dict[str, Any] = {"role": "operator", "scope": scope}
    if venue_id is not None:
        record["venue_id"] = venue_id
    r = await ingest.post("/v1/keys", json=record, headers=admin_headers())
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['key']}"}


async def residents(ingest: AsyncTestClient[Any], n: int, first: int = 1) -> list[str]:
    lines = "\n".join(
        json.dumps({"name": f"居民{i}", "phone": f"139{i:08d}", "id_number": id_number(i)})
        for i in range(first, first + n)
    )
    r = await ingest.post("/v1/residents/import", content=lines.encode(), headers=admin_headers())
    assert r.status_code == 200, r.text
    return [json.loads(line)["token"] for line in r.content.splitlines() if b'"token"' in line]


def audit_rows(sync_redis: redis.Redis, keys: RedisKeys) -> list[audit_trail.AuditRow]:
    return [audit_trail.decode(fields) for _, fields in sync_redis.xrange(keys.audit_stream())]


# --- 1. the door screen --------------------------------------------------------------------------


async def test_operator_creates_device_keys_of_its_own_venue_only(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    await add_venue(ingest, 701)
    await add_venue(ingest, 702, name="另一家店")
    operator = await operator_of(ingest, 701)

    other = await ingest.post("/v1/keys", json={"role": "device", "venue_id": 702}, headers=operator)
    assert other.status_code == 403, other.text
    assert other.json()["reason"] == "not_your_venue"
    nowhere = await ingest.post("/v1/keys", json={"role": "device", "venue_id": 99_999}, headers=operator)
    assert nowhere.status_code == 403  # an unknown venue answers like another's: no registry oracle
    admin_key = await ingest.post("/v1/keys", json={"role": "admin"}, headers=operator)
    assert admin_key.status_code == 403 and admin_key.json()["reason"] == "operator_role"
    another_operator = await ingest.post(
        "/v1/keys", json={"role": "operator", "venue_id": 701}, headers=operator
    )
    assert another_operator.status_code == 403

    own = await ingest.post(
        "/v1/keys", json={"role": "device", "venue_id": 701, "name": "门口屏幕"}, headers=operator
    )
    assert own.status_code == 201, own.text
    record = own.json()["record"]
    assert record["role"] == "device" and record["venue_id"] == 701 and record["scope"] == "620102001001"
    device = {"Authorization": f"Bearer {own.json()['key']}"}
    assert (await ingest.get("/v1/venues/701/code", headers=device)).status_code == 200
    assert (await ingest.get("/v1/venues/702/code", headers=device)).status_code == 403

    # The audit trail has every attempt: who, which venue, refused or not.
    rows = [r for r in audit_rows(sync_redis, keys) if r.action == "device_key_create"]
    refused = [r for r in rows if r.reason == "refused"]
    assert [r.params["venue_id"] for r in refused] == [702, 99_999, None, 701]
    assert [r.params["role"] for r in refused] == ["device", "device", "admin", "operator"]
    made = [r for r in rows if r.reason == ""]
    assert len(made) == 1 and made[0].params["key_id"] == record["key_id"] and made[0].rows == 1
    assert all(r.role == "operator" and r.actor != "admin" for r in rows)

    # Listing and revoking: the venue's device keys, nobody else's.
    listed = await ingest.get("/v1/keys", params={"venue_id": 701}, headers=operator)
    assert [r["key_id"] for r in listed.json()] == [record["key_id"]]
    assert (await ingest.get("/v1/keys", params={"venue_id": 702}, headers=operator)).status_code == 403
    assert (await ingest.get("/v1/keys", headers=operator)).status_code == 403
    theirs = await ingest.post("/v1/keys", json={"role": "device", "venue_id": 702}, headers=admin_headers())
    theirs_id = theirs.json()["record"]["key_id"]
    r = await ingest.delete(f"/v1/keys/{theirs_id}", headers=operator)
    assert r.status_code == 403
    assert (await ingest.delete(f"/v1/keys/{record['key_id']}", headers=operator)).status_code == 204
    assert (await ingest.get("/v1/keys", params={"venue_id": 701}, headers=operator)).json() == []
    revokes = [r for r in audit_rows(sync_redis, keys) if r.action == "device_key_revoke"]
    assert [(r.reason, r.params["key_id"]) for r in revokes] == [
        ("refused", theirs_id),
        ("", record["key_id"]),
    ]


async def test_a_scoped_operator_manages_device_keys_inside_its_scope(ingest: AsyncTestClient[Any]) -> None:
    await add_venue(ingest, 711)
    await add_venue(ingest, 712, district="620103", street="620103001", community="620103001001")
    operator = await operator_of(ingest, None, scope="620102")
    ok = await ingest.post("/v1/keys", json={"role": "device", "venue_id": 711}, headers=operator)
    assert ok.status_code == 201
    out = await ingest.post("/v1/keys", json={"role": "device", "venue_id": 712}, headers=operator)
    assert out.status_code == 403


async def test_a_one_time_setup_link_puts_the_device_key_on_the_tablet(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    await add_venue(ingest, 721)
    operator = await operator_of(ingest, 721)
    created = await ingest.post("/v1/keys", json={"role": "device", "venue_id": 721}, headers=operator)
    key = created.json()["key"]
    device = {"Authorization": f"Bearer {key}"}
    # A printed-poster venue has no door screen yet.
    assert (await ingest.post("/display/721/setup-codes", headers=device)).status_code == 409
    r = await ingest.patch("/v1/venues/721", json={"code_mode": "rotating"}, headers=operator)
    assert r.status_code == 200
    # Only the device key makes a link carrying itself: not the operator's, not the admin's.
    assert (await ingest.post("/display/721/setup-codes", headers=operator)).status_code == 403
    assert (await ingest.post("/display/721/setup-codes", headers=admin_headers())).status_code == 403
    r = await ingest.post("/display/721/setup-codes", headers=device)
    assert r.status_code == 201, r.text
    setup = r.json()
    assert setup["url"].startswith("http://testserver.local/display/721/setup?code=")
    assert setup["expires_in_s"] == 900
    code = setup["url"].split("code=", 1)[1]
    # Redis holds the code's hash and the key sealed with it, never either in clear.
    stored = [k for k in sync_redis.scan_iter(f"{settings.key_prefix}display-setup:*")]
    assert len(stored) == 1 and code.encode() not in stored[0]
    assert key.encode() not in sync_redis.get(stored[0]) and code.encode() not in sync_redis.get(stored[0])
    assert 800 < sync_redis.ttl(stored[0]) <= 900
    # The QR the operator page shows is the link.
    svg = setup["qr_svg"]
    assert svg.startswith("data:image/svg+xml;base64,")

    page = await ingest.get(f"/display/721/setup?code={code}")
    assert page.status_code == 200 and "金城关夜市牛肉面" in page.text and 'name="code"' in page.text
    assert "form-action 'self'" in page.headers["content-security-policy"]
    assert (await ingest.get(f"/display/722/setup?code={code}")).status_code in (404, 410)
    wrong_venue = await ingest.post("/display/999/setup", data={"code": code}, follow_redirects=False)
    assert wrong_venue.status_code == 410
    done = await ingest.post("/display/721/setup", data={"code": code}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/display/721"
    cookie = done.headers["set-cookie"]
    assert (
        cookie.startswith(f"checkin_display={key};")
        and "HttpOnly" in cookie
        and "Path=/display/721" in cookie
    )
    screen = await ingest.get("/display/721/code", headers={"Cookie": f"checkin_display={key}"})
    assert screen.status_code == 200 and screen.json()["venue_id"] == 721
    # Spent: a second tablet (or whoever photographed the QR) gets nothing.
    again = await ingest.post("/display/721/setup", data={"code": code}, follow_redirects=False)
    assert again.status_code == 410 and "set-cookie" not in again.headers
    assert (await ingest.get(f"/display/721/setup?code={code}")).status_code == 410
    assert not list(sync_redis.scan_iter(f"{settings.key_prefix}display-setup:*"))


def test_a_setup_code_seals_the_key() -> None:
    from checkin.pages import display

    sealed = display.seal("code-1", "ck_secret_key_value_of_35_chars____")
    assert "ck_" not in sealed
    assert display.unseal("code-1", sealed) == "ck_secret_key_value_of_35_chars____"
    try:
        wrong = display.unseal("code-2", sealed)
    except UnicodeDecodeError:
        wrong = ""
    assert wrong != "ck_secret_key_value_of_35_chars____"


# --- 3. the venue's day ---------------------------------------------------------------------------


def local_hour(ms: int) -> int:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(TZ)).hour


async def test_the_day_counts_entries_per_hour_beside_last_week(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    await add_venue(ingest, 731, capacity=2)
    operator = await operator_of(ingest, 731)
    token = (await ingest.get("/v1/venues/731/code", headers=operator)).json()["token"]
    tokens = await residents(ingest, 4)
    now = now_ms()
    earlier = now - 2 * HOUR_MS
    today = dt.datetime.fromtimestamp(now / 1000, ZoneInfo(TZ)).date()
    same_day = dt.datetime.fromtimestamp(earlier / 1000, ZoneInfo(TZ)).date() == today
    expected: dict[int, int] = {}
    for i, resident in enumerate(tokens):
        at = earlier if i == 0 and same_day else now
        body: dict[str, Any] = {"code": token}
        if at != now:
            body["scanned_at"] = format_ms(at)
        r = await ingest.post("/v1/checkins", json=body, headers={"Authorization": f"Bearer {resident}"})
        assert r.status_code == 201, r.text
        expected[local_hour(at)] = expected.get(local_hour(at), 0) + 1
    # last week: what the check-in script wrote then (same fields)
    week_ago = today - dt.timedelta(days=7)
    last_key = keys.venue_entries(keys.shard_of(731), week_ago.strftime("%Y%m%d"))
    nine = day_hours(week_ago, TZ)[9][1]
    sync_redis.hset(last_key, mapping={"731": "5", f"731:{nine}": "5"})
    # the rule engine's state: two stays open, one ended; one capacity alert today, one yesterday
    occ = keys.occupancy(731)
    sync_redis.zadd(occ, {"a:1": now + 600_000, "b:2": now + 900_000, "c:3": now - 1000})
    for at in (now - 60_000, now - 86_400_000 - 60_000):
        alert = VenueAlert(
            alert_id=f"a{at}", kind="capacity_exceeded", at=format_ms(at), occupancy=3, capacity=2
        )
        sync_redis.lpush(keys.venue_alerts(731), msgspec.json.encode(alert))
    sync_redis.lpush(
        keys.venue_alerts(731), b'{"alert_id":"x","kind":"red_code_entry","at":"2026-01-01T00:00:00Z"}'
    )

    r = await ingest.get("/v1/venues/731/day", headers=operator)
    assert r.status_code == 200, r.text
    day = r.json()
    assert day["today"]["local_day"] == today.strftime("%Y%m%d") and day["tz"] == TZ
    assert day["today"]["entries"] == 4
    hours = {h["hour"]: h["entries"] for h in day["today"]["hours"]}
    assert [h["hour"] for h in day["today"]["hours"]] == list(range(24))
    assert {h: n for h, n in hours.items() if n} == expected
    assert day["last_week"]["local_day"] == week_ago.strftime("%Y%m%d") and day["last_week"]["entries"] == 5
    assert {h["hour"]: h["entries"] for h in day["last_week"]["hours"] if h["entries"]} == {9: 5}
    assert day["capacity"] == 2 and day["occupancy"] == 2
    assert [a["kind"] for a in day["alerts"]] == ["capacity_exceeded"]
    assert day["alerts"][0] == {
        "alert_id": f"a{now - 60_000}",
        "kind": "capacity_exceeded",
        "at": format_ms(now - 60_000),
        "occupancy": 3,
        "capacity": 2,
    }
    assert "person" not in r.text
    # Another operator's venue: 403; without a capacity occupancy is not counted.
    await add_venue(ingest, 732)
    assert (await ingest.get("/v1/venues/732/day", headers=operator)).status_code == 403
    assert (await ingest.get("/v1/venues/732/day", headers=admin_headers())).json()["occupancy"] is None


def test_day_hours_follow_the_local_clock() -> None:
    day = dt.date(2026, 3, 8)
    hours = day_hours(day, "Asia/Shanghai")
    assert [h for h, _ in hours] == list(range(24))
    midnight = int(dt.datetime(2026, 3, 8, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
    assert hours[0][1] == midnight // HOUR_MS and hours[23][1] == midnight // HOUR_MS + 23
    spring = day_hours(day, "America/New_York")  # the clocks go forward: 23 hours
    assert len(spring) == 23 and 2 not in [h for h, _ in spring]


async def test_the_rule_engine_keeps_capacity_alerts_for_the_operator(
    settings: Settings, redis_client: Any
) -> None:
    from tests.support.rules import Clock, Harness, scan, venue

    clock = Clock(now_ms())
    h = Harness(settings, redis_client, clock)
    v = venue(741, capacity=1)
    await h.add_venues(v)
    alerts = await h.run(*(scan(v, p, clock.ms - 1000) for p in (1, 2)))
    assert [a.kind for a in alerts] == ["capacity_exceeded"]
    kept = await redis_client.lrange(h.ctx.keys.venue_alerts(741), 0, -1)
    assert len(kept) == 1
    row = json.loads(kept[0])
    assert row == {
        "alert_id": alerts[0].alert_id,
        "kind": "capacity_exceeded",
        "at": alerts[0].at,
        "occupancy": 2,
        "capacity": 1,
    }
    assert 0 < await redis_client.ttl(h.ctx.keys.venue_alerts(741)) <= 2 * 86_400


# --- 4. closing a venue ---------------------------------------------------------------------------


async def test_closing_needs_a_reason_and_scans_then_say_closed_with_the_date(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    await add_venue(ingest, 751)
    operator = await operator_of(ingest, 751)
    token = (await ingest.get("/v1/venues/751/code", headers=operator)).json()["token"]
    (resident,) = await residents(ingest, 1, first=20)
    auth = {"Authorization": f"Bearer {resident}"}
    first = await ingest.post("/v1/checkins", json={"code": token}, headers=auth)
    assert first.status_code == 201
    checkin_id = first.json()["checkin_id"]

    r = await ingest.patch("/v1/venues/751", json={"active": False}, headers=operator)
    assert r.status_code == 400 and r.json()["reason"] == "reason_required"
    r = await ingest.patch("/v1/venues/751", json={"reason": "活动结束"}, headers=operator)
    assert r.status_code == 400 and r.json()["reason"] == "reason_unexpected"
    r = await ingest.patch(
        "/v1/venues/751", json={"active": False, "reason": "见 http://x.cn"}, headers=operator
    )
    assert r.status_code == 400 and r.json()["reason"] == "text_url"
    r = await ingest.patch(
        "/v1/venues/751", json={"active": False, "reason": "夜市活动结束"}, headers=operator
    )
    assert r.status_code == 200, r.text
    closed = r.json()
    assert closed["active"] is False and closed["closed_reason"] == "夜市活动结束"
    date = scanned_code.date_of(closed["closed_at"], TZ)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)

    again = await ingest.post("/v1/checkins", json={"code": token}, headers=auth)
    assert again.status_code == 410
    problem = again.json()
    assert problem["reason"] == "inactive" and problem["closed_on"] == date
    assert problem["detail"].startswith(f"该场所已停用 / this venue has closed ({date})")
    batch = await ingest.post("/v1/checkins/batch", json={"items": [{"code": token}]}, headers=auth)
    assert batch.json()["results"][0]["status"] == 410
    assert date in batch.json()["results"][0]["error"]
    page = await ingest.get(f"/v/{token}")
    assert page.status_code == 410 and "该场所已停用" in page.text and date in page.text
    page_en = await ingest.get(f"/v/{token}", headers={"Accept-Language": "en"})
    assert "This venue has closed" in page_en.text and date in page_en.text

    # History and stays are kept.
    history = (await ingest.get("/v1/venues/751/history", headers=admin_headers())).json()["changes"]
    assert history[0]["after"]["active"] == "0" and history[0]["after"]["closed_reason"] == "夜市活动结束"
    assert (await ingest.get(f"/v1/checkins/{checkin_id}", headers=auth)).status_code == 200
    assert sync_redis.exists(keys.venue_history(751))

    # Reopening clears the date; the code works again.
    r = await ingest.patch("/v1/venues/751", json={"active": True}, headers=operator)
    assert r.json()["closed_at"] == "" and r.json()["closed_reason"] == ""
    assert (await ingest.get(f"/v/{token}")).status_code == 200


async def test_the_poster_follows_the_venue_state(ingest: AsyncTestClient[Any]) -> None:
    await add_venue(ingest, 761)
    operator = await operator_of(ingest, 761)
    url = (await ingest.get("/v1/venues/761/code", headers=operator)).json()["url"]

    def qr_of(pdf: bytes) -> list[str]:
        return [r.text for r in zxingcpp.read_barcodes(pdf_page(pdf, 72))]

    r = await ingest.get(
        "/v1/venues/761/poster.pdf", params={"size": "a3", "download": True}, headers=operator
    )
    assert r.headers["content-disposition"] == 'attachment; filename="venue-761-v1-a3.pdf"'
    assert qr_of(r.content) == [url]
    await ingest.patch("/v1/venues/761", json={"code_mode": "rotating"}, headers=operator)
    r = await ingest.get("/v1/venues/761/poster.pdf", headers=operator)
    text = pdf_text(r.content)
    assert "请扫描门口屏幕上的场所码" in text and "Scan the code on the screen at the entrance" in text
    assert qr_of(r.content) == []
    assert "screen-notice" in r.headers["content-disposition"]
    png = await ingest.get("/v1/venues/761/poster.png", headers=operator)
    assert [x.text for x in zxingcpp.read_barcodes(pdf_page(r.content, 150))] == []
    assert png.status_code == 200
    await ingest.patch("/v1/venues/761", json={"active": False, "reason": "搬迁"}, headers=operator)
    r = await ingest.get("/v1/venues/761/poster.pdf", headers=operator)
    text = pdf_text(r.content)
    assert "本场所已停用" in text and "This venue has closed" in text and "金城关夜市牛肉面" in text
    assert qr_of(r.content) == []
    assert (await ingest.get("/v1/venues/761/poster.pdf?size=a5", headers=operator)).status_code == 400


# --- 2. posters a print shop takes ------------------------------------------------------------------

NAME = "兰州牛肉拉面（张掖路店）"


def _checkin_poster(size: str) -> tuple[bytes, str]:
    from checkin.platform.keyring import Keyring

    keyring = Keyring.parse(Keyring.generate(1))
    url = codes.checkin_url("https://checkin.example.cn", codes.sign(keyring, 4242, 3))
    data = poster.PosterData(venue_id=4242, name=NAME, address="城关区张掖路 88 号", url=url)
    return poster.render("pdf", data, size), url


@pytest.mark.parametrize("size", ["a4", "a3"])
def test_the_pdf_poster_is_vector_text_and_a_vector_code(size: str) -> None:
    pdf, url = _checkin_poster(size)
    text = pdf_text(pdf)
    assert NAME in text and "场所编号 Venue No. 00004242" in text and url in text
    fonts = pdf_fonts(pdf).splitlines()[2:]
    assert fonts and all(line.split()[-5:-2] == ["yes", "yes", "yes"] for line in fonts), fonts  # emb sub uni
    assert pdf_images(pdf) == [] and b"/Subtype /Image" not in pdf  # nothing rasterised
    width_pt, height_pt = poster.PAGE_POINTS[size]
    box = re.search(rb"/MediaBox \[ 0 0 ([0-9.]+) ([0-9.]+) \]", pdf)
    assert box and abs(float(box[1]) - width_pt) < 0.01 and abs(float(box[2]) - height_pt) < 0.01
    for dpi in (300, 72):
        page = pdf_page(pdf, dpi)
        assert abs(page.width - width_pt / 72 * dpi) <= 2
        assert [r.text for r in zxingcpp.read_barcodes(page)] == [url], dpi


def test_the_code_is_drawn_with_few_rectangles() -> None:
    matrix = qr.encode("https://checkin.example.cn/v/AAAQkgADAX_EbXbuifx-KAzG-w")
    rects = qr.rectangles(matrix)
    cells = bytearray(matrix.size * matrix.size)
    for col, row, w, h in rects:
        for r in range(row, row + h):
            for c in range(col, col + w):
                assert cells[r * matrix.size + c] == 0  # no overlap
                cells[r * matrix.size + c] = 1
    assert bytes(cells) == matrix.cells
    runs = sum(1 for part in qr.svg_path(matrix).split("M") if part)
    assert len(rects) < runs  # runs repeated on the rows below are merged
