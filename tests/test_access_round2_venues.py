"""Issue 25, items 5, 7 and 8 (venue names): an operator can neither phish through official texts
nor move its venue.

Each test plays the attacker over HTTP through the real apps (Redis, ClickHouse, the notices worker
and the outbox SMS gateway) and fails if the attack works:

* item 5: the operator renames its venue to "万达广场。【卫健委】补贴发放：请点击 http://… 填写银行卡";
  a tracer flags the venue and every exposed resident gets the text as an official notice SMS;
* item 7: the operator PATCHes its venue's ``lat``/``lon`` 1,000 km away (and imports a CSV that does);
* item 8: a venue name with U+202E (right-to-left override).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis
from litestar.testing import AsyncTestClient

from checkin.platform.settings import Settings
from tests.support.access_world import iso, venue_body
from tests.support.ingest import bearer, keys_of, make_key, outbox, register
from tests.support.sink import make_consumer, run_until
from tests.support.values import admin_headers
from tracing.notices.worker import NoticeWorker
from tracing.storage.store import Store
from venues.importer import COLUMNS

HOUR = dt.timedelta(hours=1)
PHISHING = "万达广场。【卫健委】补贴发放：请点击 http://wd-subsidy.example.cn/pay 填写银行卡"
HEADER = ",".join(COLUMNS)

BAD_TEXTS = [
    (PHISHING, "text_brackets"),
    ("万达广场 补贴发放 请点击 http://x 填写银行卡", "text_url"),
    ("万达广场 领补贴 wd-pay.cn", "text_url"),
    ("万达广场 ｗｄ－ｐａｙ．ｃｏｍ", "text_url"),
    ("万达广场 wd-pay。com", "text_url"),
    ("万达广场 10.20.30.40", "text_url"),
    ("万达广场 www 补贴", "text_url"),
    ("〖卫健委〗万达广场", "text_brackets"),
    ("万达广场\u202e卡行银写填", "text_bidi"),
    ("万达\u2066广场\u2069", "text_bidi"),
    ("万达\u200b广场", "text_invisible"),
    ("万达\ufeff广场", "text_invisible"),
    ("万达\x07广场", "text_control"),
    ("万达\n广场", "text_control"),
    ("万达\u2028广场", "text_control"),
    ("万" * 61, "text_length"),
    ("   ", "text_length"),
]


async def operator_and_venue(
    ingest: AsyncTestClient[Any], name: str = "万达广场"
) -> tuple[int, dict[str, str]]:
    r = await ingest.post("/v1/venues", json=venue_body(name, "110101"), headers=admin_headers())
    assert r.status_code == 201, r.text
    vid = int(r.json()["venue_id"])
    return vid, await make_key(ingest, "operator", venue_id=vid)


def refused(r: Any, rule: str) -> bool:
    return (
        r.status_code == 400
        and r.headers["content-type"].startswith("application/problem+json")
        and r.json().get("reason") == rule
        and rule in r.json()["detail"]
    )


# --- item 5 and 8: what an operator writes ----------------------------------------------------------------


async def test_an_operator_cannot_name_its_venue_with_a_phishing_text(ingest: AsyncTestClient[Any]) -> None:
    vid, operator = await operator_and_venue(ingest)
    scoped = await make_key(ingest, "operator", scope="110101")
    for text, rule in BAD_TEXTS:
        for field in ("name", "address") if text.strip() else ("name",):
            r = await ingest.patch(f"/v1/venues/{vid}", json={field: text}, headers=operator)
            assert refused(r, rule) or (rule == "text_length" and r.status_code == 400), (field, text, r.text)
            assert field in r.json()["detail"], r.text
            body = {**venue_body("新店", "110101"), field: text}
            r = await ingest.post("/v1/venues", json=body, headers=scoped)
            assert r.status_code == 400, (field, text, r.text)
    venue = (await ingest.get(f"/v1/venues/{vid}", headers=operator)).json()
    assert venue["name"] == "万达广场" and venue["address"] == "1 Test Road"
    history = (await ingest.get(f"/v1/venues/{vid}/history", headers=admin_headers())).json()
    assert [c["action"] for c in history["changes"]] == ["create"]

    ok = await ingest.patch(f"/v1/venues/{vid}", json={"name": "万达广场 No.1 (东门)"}, headers=operator)
    assert ok.status_code == 200 and ok.json()["name"] == "万达广场 No.1 (东门)", ok.text


async def test_a_right_to_left_override_is_refused_everywhere_an_operator_writes(
    ingest: AsyncTestClient[Any],
) -> None:
    """Item 8: U+202E in a name, on create, PATCH and CSV import."""
    vid, operator = await operator_and_venue(ingest)
    name = "Noodles\u202egnp.exe"
    r = await ingest.patch(f"/v1/venues/{vid}", json={"name": name}, headers=operator)
    assert refused(r, "text_bidi"), r.text
    r = await ingest.post("/v1/venues", json=venue_body(name, "110101"), headers=admin_headers())
    assert refused(r, "text_bidi"), r.text
    csv = f"{HEADER}\n777,{name},1 Road,other,110101,110101001,110101001001,39.9,116.4,0,60,\n"
    r = await ingest.post("/v1/venues/import", content=csv.encode(), headers=admin_headers())
    assert r.status_code == 200 and r.json()["created"] == 0, r.text
    assert "text_bidi" in r.json()["errors"][0]["reason"]


async def test_a_csv_import_names_the_rule_of_each_refused_row(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    rows = [
        f"{900 + i},{text},1 Road,other,110101,110101001,110101001001,39.9,116.4,0,60,"
        for i, (text, rule) in enumerate(BAD_TEXTS)
        if "\n" not in text and "," not in text and rule != "text_length"
    ]
    rows.append("999,好店,1 Road,other,110101,110101001,110101001001,39.9,116.4,0,60,")
    op = await make_key(ingest, "operator", scope="110101")
    r = await ingest.post(
        "/v1/venues/import", content=("\n".join([HEADER, *rows]) + "\n").encode(), headers=op
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["created"] == 1 and report["rejected"] == len(rows) - 1, report
    assert all("(rule text_" in e["reason"] for e in report["errors"]), report["errors"]
    assert not sync_redis.exists(keys_of(settings).venue(900))


# --- item 5: the official text ------------------------------------------------------------------------------


async def test_a_notice_text_is_the_project_template_never_anyones_free_text(
    ingest: AsyncTestClient[Any],
    tracing: AsyncTestClient[Any],
    settings: Settings,
    store: Store,
    sync_redis: redis.Redis,
    notice_worker: NoticeWorker,
) -> None:
    """The rename is refused; a tracer's message never reaches the SMS; and a name stored before the
    rules (written into Redis as an old registry would have kept it) is replaced by the venue's number.
    The text names the venue, the window in local time, the level's instruction in the resident's
    language and links to the notice on the phone page."""
    vid, operator = await operator_and_venue(ingest)
    r = await ingest.patch(f"/v1/venues/{vid}", json={"name": PHISHING}, headers=operator)
    assert r.status_code == 400, r.text
    legacy, _ = await operator_and_venue(ingest, "旧名字")
    sync_redis.hset(keys_of(settings).venue(legacy), "name", PHISHING)

    adm = admin_headers()
    codes = {
        v: (await ingest.get(f"/v1/venues/{v}/code", headers=adm)).json()["token"] for v in (vid, legacy)
    }
    zh_pid, zh_token = await register(ingest, 31)
    en_pid, en_token = await register(ingest, 32)
    sync_redis.hset(keys_of(settings).person(en_pid), "lang", "en")
    now = dt.datetime.now(dt.UTC)
    for token in (zh_token, en_token):
        for v, ago in ((vid, 2 * HOUR), (legacy, HOUR)):
            body = {"code": codes[v], "scanned_at": iso(now - ago)}
            r = await ingest.post("/v1/checkins", json=body, headers=bearer(token))
            assert r.status_code in (200, 201), r.text
    consumer, ctx = await make_consumer(settings, store)
    try:
        await run_until(
            consumer, lambda: int(store.scalar(f"SELECT count() FROM {store.table('scans')}")) >= 4
        )
    finally:
        await ctx.redis.aclose()

    tracer = await make_key(ingest, "tracer")
    since, until = now - 3 * HOUR, now + HOUR
    sites = {}
    for v, level in ((vid, "test"), (legacy, "isolate")):
        r = await tracing.post(
            "/v1/exposure-sites",
            json={
                "venue_id": v,
                "since": iso(since),
                "until": iso(until),
                "reason": "case 25",
                "level": level,
                "message": "【卫健委】补贴发放：请点击 http://evil.example.cn 填写银行卡",
            },
            headers=tracer,
        )
        assert r.status_code == 201, r.text
        sites[v] = r.json()["site_id"]
        assert await notice_worker.flagged_step() is True

    texts = [m for m in outbox(settings) if m["kind"] == "notice"]
    assert len(texts) == 4, texts
    local_since = since.astimezone(dt.timezone(dt.timedelta(hours=8)))
    for m in texts:
        text = m["text"]
        assert "http://evil" not in text and "补贴" not in text and "银行卡" not in text, text
        assert text.count("【") == 1 and text.startswith("【场所码】"), text
        assert f"http://testserver.local/me#notice-{sites[vid]}" in text or (
            f"http://testserver.local/me#notice-{sites[legacy]}" in text
        ), text
        assert local_since.strftime("%H:%M") in text, text
    zh = [m["text"] for m in texts if m["phone"] == "13900000031"]
    en = [m["text"] for m in texts if m["phone"] == "13900000032"]
    assert any("万达广场" in t and "核酸检测" in t for t in zh), zh
    assert any(f"场所 {legacy} 号" in t and "居家" in t for t in zh), zh
    assert any("万达广场" in t and "Get a test" in t for t in en), en
    assert any(f"venue no. {legacy}" in t and "Go home now" in t for t in en), en
    # the tracer's words are on the phone page, with the notice
    page = (await ingest.get("/v1/residents/me/notices", headers=bearer(zh_token))).json()
    assert all("evil" in n["message"] for n in page["notices"])
    assert {n["notice_id"] for n in page["notices"]} == set(sites.values())
    _ = zh_pid


# --- item 7: moving a venue -------------------------------------------------------------------------------


async def test_an_operator_cannot_move_its_venue_a_thousand_km(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    vid, operator = await operator_and_venue(ingest)
    far = {"lat": 31.2, "lon": 121.5}  # Beijing -> Shanghai, about 1,070 km
    for patch in (far, {"lat": 31.2}, {"lon": 121.5}, {"lat": 39.9001}):
        r = await ingest.patch(f"/v1/venues/{vid}", json=patch, headers=operator)
        assert r.status_code == 403 and r.json()["reason"] == "place_change", (patch, r.text)
    same = await ingest.patch(
        f"/v1/venues/{vid}", json={"lat": 39.9, "lon": 116.4, "capacity": 5}, headers=operator
    )
    assert same.status_code == 200, same.text
    venue = (await ingest.get(f"/v1/venues/{vid}", headers=operator)).json()
    assert (venue["lat"], venue["lon"]) == (39.9, 116.4)

    # the same move through a CSV import: refused whole, nothing written
    scoped = await make_key(ingest, "operator", scope="110101")
    moving = (
        f"{HEADER}\n"
        "4001,新店,1 Road,other,110101,110101001,110101001001,39.9,116.4,0,60,\n"
        f"{vid},万达广场,1 Test Road,other,110101,110101001,110101001001,31.2,121.5,0,60,\n"
    )
    r = await ingest.post("/v1/venues/import", content=moving.encode(), headers=scoped)
    assert r.status_code == 403 and r.json()["reason"] == "place_change", r.text
    assert not sync_redis.exists(keys_of(settings).venue(4001))
    assert float(sync_redis.hget(keys_of(settings).venue(vid), "lat") or 0) == 39.9
    unmoved = moving.replace("31.2,121.5", "39.9,116.4")
    r = await ingest.post("/v1/venues/import", content=unmoved.encode(), headers=scoped)
    assert r.status_code == 200 and r.json()["created"] == 1, r.text

    # the admin moves it, and the history keeps who and where from
    r = await ingest.patch(f"/v1/venues/{vid}", json=far, headers=admin_headers())
    assert r.status_code == 200 and (r.json()["lat"], r.json()["lon"]) == (31.2, 121.5), r.text
    changes = (await ingest.get(f"/v1/venues/{vid}/history", headers=admin_headers())).json()["changes"]
    assert changes[0]["role"] == "admin" and changes[0]["before"]["lat"] == "39.9"
