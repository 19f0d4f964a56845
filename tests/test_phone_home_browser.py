"""The resident's phone in Chromium at 390x844 (issue 26): the home is the health code, a poster opened
without network queues the scan on a grey "not verified" screen, a dependant's notice reaches the
guardian, a code request and a screen's code survive registration, and 长辈模式 keeps the essentials on
the first screen. Screenshots are checked by element colour and position, at phone and desktop size
(``CHECKIN_SCREENSHOT_DIR`` keeps them)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis

from checkin.platform.redis_keys import RedisKeys
from tests.support.ingest import born_years_ago, child_id_number
from tests.support.phone import (
    PHONE,
    RGB,
    City,
    Server,
    api_venue,
    background,
    both_sizes,
    fill_in_with_code,
    font_px,
    health_key,
    id_number,
    import_resident,
    local_text,
    negative_test,
    new_phone,
    open_signed_in,
    put_venue,
    screenshot_dir,
    served,
    served_city,
    set_status,
    shot,
    stream_entries,
)
from tests.support.values import ADMIN_KEY

pytestmark = pytest.mark.browser
ZONE = ZoneInfo("Asia/Shanghai")
GREY = "rgb(95, 104, 114)"
SIGN_IN = (
    "([t, p]) => localStorage.setItem('venue-checkin.resident', JSON.stringify({token: t, person_id: p}))"
)


@pytest.fixture
def server(tmp_path: Path, prefix: str) -> Iterator[Server]:
    with served(tmp_path, prefix) as srv:
        yield srv


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return screenshot_dir(tmp_path)


@pytest.fixture
def city(tmp_path: Path, make_settings: Any) -> Iterator[City]:
    with served_city(tmp_path, make_settings) as world:
        yield world


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_dependant(srv: Server, token: str, name: str, idn: str) -> int:
    with srv.api() as c:
        r = c.post(
            "/v1/residents/me/companions", json={"name": name, "id_number": idn}, headers=bearer(token)
        )
    assert r.status_code == 201, r.text
    return int(r.json()["person_id"])


async def box(page: Any, selector: str) -> dict[str, float]:
    found = await page.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not rendered"
    return dict(found)


async def open_home(page: Any, base: str, person_id: int, token: str) -> None:
    await page.goto(f"{base}/me")
    await page.evaluate(SIGN_IN, [token, person_id])
    await page.reload()
    await page.wait_for_selector("#view-ready:not([hidden])")
    await page.wait_for_selector("#code-panel[data-status]:not([data-status=''])", timeout=10_000)


# --- 1. home = the health code --------------------------------------------------------------------


async def test_home_shows_the_health_code_the_pass_the_family_and_pending_guardians(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    from playwright.async_api import expect

    venue = put_venue(sync_redis, server, 9801, "幸福路华联超市")
    key = health_key(server)
    pid, token = import_resident(server.base, 9801, "赵敏")
    son = add_dependant(server, token, "赵小明", child_id_number(9802))
    grandma = add_dependant(server, token, "钱奶奶", born_years_ago(81, 9803))
    with server.api() as c:
        r = c.put(f"/v1/health/{pid}", json={"status": "red", "reason": "核酸阳性"}, headers=bearer(key))
        assert r.status_code == 200
        since = datetime.fromisoformat(r.json()["updated_at"].replace("Z", "+00:00"))
    tested = negative_test(server, key, pid, 30)
    set_status(server, key, grandma, "yellow")
    with server.api() as c:
        r = c.post("/v1/checkins", json={"code": venue, "companions": [son]}, headers=bearer(token))
        assert r.status_code == 201, r.text
    # an unread notice: it comes first on the page
    from checkin.platform import notices

    notice = notices.Notice(
        notice_id="e" * 18,
        venue_id=9801,
        venue_name="幸福路华联超市",
        since="2026-01-01T00:00:00.000Z",
        until="2026-01-01T02:00:00.000Z",
        level="test",
        visited_at="2026-01-01T01:00:00.000Z",
        at="2026-01-02T00:00:00.000Z",
    )
    import msgspec

    sync_redis.hset(server.keys.notices(pid), notice.notice_id, msgspec.json.encode(notice))

    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await open_home(page, server.base, pid, token)
    assert await page.is_hidden("#venue-card") and await page.is_hidden("#checkin-button")
    # the colour on the first screen, as 健康码 apps show it: the panel is the person's colour
    assert await page.get_attribute("#code-panel", "data-status") == "red"
    assert await background(page, "#code-panel") == RGB["red"]
    assert await page.text_content("#code-colour") == "红码"
    assert await page.text_content("#code-name") == "赵*"
    assert await page.text_content("#code-reason") == "原因：核酸阳性"
    local = since.astimezone(ZONE)
    assert await page.text_content("#code-since") == f"{local:%m/%d %H:%M} 起"
    assert await page.text_content("#code-test") == f"最近核酸阴性：{tested.astimezone(ZONE):%m/%d %H:%M}"
    assert await font_px(page, "#code-colour") >= 36
    # unread notices come first, then the code; the pass QR refreshes on the first screen
    notice_box, code_box = await box(page, "#notices"), await box(page, "#code-panel")
    assert notice_box["y"] < code_box["y"]
    qr = page.locator("#home-pass-qr")
    await expect(qr).to_have_attribute("data-pass", re.compile(r"^p1\."), timeout=10_000)
    # the family below, each in their colour
    members = page.locator("#family-list li")
    await expect(members).to_have_count(2)
    colours = {
        int(await m.get_attribute("data-person-id") or 0): await m.locator(".f-chip").evaluate(
            "el => getComputedStyle(el).backgroundColor"
        )
        for m in await members.all()
    }
    assert colours == {son: RGB["green"], grandma: RGB["yellow"]}
    grandma_row = page.locator(f"#family-list li[data-person-id='{grandma}']")
    assert await grandma_row.locator(".f-colour").text_content() == "黄码"
    son_row = page.locator(f"#family-list li[data-person-id='{son}']")
    assert await son_row.locator(".f-stay").text_content() == "在场：幸福路华联超市"
    assert (await box(page, "#family"))["y"] > (await box(page, "#home-pass-qr"))["y"]
    # the open stay comes from the server
    assert await page.text_content("#stay-list .stay-venue") == "幸福路华联超市"
    await both_sizes(page, shots, "home-health-code")
    # scrolled to the top again: the colour and the QR on the first screen at phone size
    await page.evaluate("window.scrollTo(0, 0)")
    await page.click("#notice-list .n-ack")
    await page.wait_for_selector("#notices", state="hidden")
    code_box, qr_box = await box(page, "#code-panel"), await box(page, "#home-pass-qr")
    assert code_box["y"] < 200 and qr_box["y"] + qr_box["height"] <= PHONE["height"]

    # a door reads the pass: the home shows a fresh one within seconds
    shown = str(await qr.get_attribute("data-pass"))
    with server.api() as c:
        door = c.post("/v1/keys", json={"role": "device", "venue_id": 9801}, headers=bearer(ADMIN_KEY))
        r = c.post(
            "/v1/sentinel/scans", json={"scans": [{"pass": shown}]}, headers=bearer(door.json()["key"])
        )
    assert r.json()["results"][0]["status"] in (200, 201), r.text
    await expect(qr).not_to_have_attribute("data-pass", shown, timeout=10_000)

    # the colour changes on the server: the home says so at its next look (the page polls; reload here)
    set_status(server, key, pid, "green")
    await page.reload()
    await page.wait_for_selector("#code-panel[data-status='green']", timeout=10_000)
    assert await background(page, "#code-panel") == RGB["green"]
    assert await page.text_content("#code-colour") == "绿码"
    assert errors == []
    await ctx.close()


async def test_a_resident_who_took_over_confirms_or_refuses_each_guardian_on_the_home(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    mother, mother_token = import_resident(server.base, 9811, "孙丽")
    father, _ = import_resident(server.base, 9812, "孙强")
    idn = child_id_number(9813)
    child = add_dependant(server, mother_token, "孙小宝", idn)
    # a second guardian's link (the father would have added the child with a code of theirs), directly
    sync_redis.sadd(server.keys.companions(father), child)
    sync_redis.sadd(server.keys.guardians(child), father)

    # the child grows up and registers with their own phone on the page: the record is taken over
    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    await page.goto(f"{server.base}/me")
    await fill_in_with_code(page, server, "孙小宝", "13900009813", idn)
    await page.click("#register-submit")
    await page.wait_for_selector("#view-ready:not([hidden])", timeout=10_000)
    await page.wait_for_selector("#guardians:not([hidden])", timeout=10_000)
    rows = page.locator("#guardian-list li")
    assert await rows.count() == 2
    assert await page.locator(f"#guardian-list li[data-person-id='{mother}'] .g-name").text_content() == (
        "孙* 此前可以代您登记"
    )
    guardians_box, code_box = await box(page, "#guardians"), await box(page, "#code-panel")
    assert guardians_box["y"] > code_box["y"] and guardians_box["y"] < PHONE["height"]
    await both_sizes(page, shots, "home-guardians")
    await page.click(f"#guardian-list li[data-person-id='{mother}'] .g-confirm")
    refuse = page.locator(f"#guardian-list li[data-person-id='{father}'] .g-refuse")
    await refuse.click()  # the first tap asks again
    assert await refuse.text_content() == "确定不再允许“孙*”代您登记吗？"
    assert (
        await background(page, f"#guardian-list li[data-person-id='{father}'] .g-refuse")
        == "rgb(138, 28, 20)"
    )
    await refuse.click()
    await page.wait_for_selector("#guardians", state="hidden", timeout=10_000)
    stored = await page.evaluate("JSON.parse(localStorage.getItem('venue-checkin.resident'))")
    with server.api() as c:
        listed = c.get("/v1/residents/me/guardians", headers=bearer(stored["token"])).json()
    assert listed == [{"person_id": mother, "name_masked": "孙*", "pending": False}]
    await ctx.close()


# --- 3. offline first -----------------------------------------------------------------------------


async def test_a_poster_opened_without_network_queues_the_scan_on_a_grey_screen_and_sends_it_once(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    from playwright.async_api import expect

    seen = put_venue(sync_redis, server, 9821, "幸福路地铁站")
    basement = put_venue(sync_redis, server, 9822, "地下美食城")
    pid, token = import_resident(server.base, 9821, "周八")
    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # first visits, with network: the basement's poster once (its name is remembered), a check-in at
    # the station (the server's colour and its time are remembered)
    await open_signed_in(page, server.base, basement, pid, token)
    await open_signed_in(page, server.base, seen, pid, token)
    await page.click("#checkin-button")
    await page.wait_for_selector("#result-panel[data-verdict='pass']", timeout=10_000)
    assert await page.evaluate("navigator.serviceWorker.ready.then(r => !!r.active)")
    await page.goto(f"{server.base}/me")  # a page the worker controls
    await page.wait_for_selector("#code-panel[data-status='green']", timeout=10_000)
    assert await page.evaluate("!!navigator.serviceWorker.controller")
    last = await page.evaluate("JSON.parse(localStorage.getItem('venue-checkin.last-colour'))")
    checked = local_text(datetime.fromisoformat(last["at"].replace("Z", "+00:00")))

    # the network is cut before the poster is opened
    await ctx.set_offline(True)
    before = datetime.now(UTC)
    await page.goto(f"{server.base}/v/{basement}")
    await page.wait_for_selector("#view-offline:not([hidden])", timeout=10_000)
    assert await page.get_attribute("#app", "data-page") == "home"  # the cached shell answered
    assert await page.text_content("#o-title") == "未联网核验"
    assert await page.text_content("#o-sub") == "NOT VERIFIED"
    assert await page.text_content("#o-venue") == "地下美食城"
    assert await page.text_content("#o-last") == f"最近一次联网核验：绿码（{checked}）"
    # grey, no verdict, no live clock, no moving band, nothing in a health colour
    assert await background(page, "#offline-panel") == GREY
    for selector in ("#view-result", "#r-live", "#venue-card", "#view-ready"):
        assert await page.is_hidden(selector)
    visible_colours = await page.evaluate(
        """() => [...document.querySelectorAll('body *')].filter(e => e.offsetParent !== null)
             .map(e => getComputedStyle(e).backgroundColor)"""
    )
    assert not set(RGB.values()) & set(visible_colours)
    assert await page.locator(".live-dot:visible").count() == 0
    title, panel = await box(page, "#o-title"), await box(page, "#offline-panel")
    assert panel["y"] < 120 and title["y"] + title["height"] < PHONE["height"] / 2
    assert await font_px(page, "#o-title") >= 40
    queued = await page.evaluate("JSON.parse(localStorage.getItem('venue-checkin.queue'))")
    assert len(queued) == 1 and queued[0]["code"] == basement and queued[0]["venue_name"] == "地下美食城"
    scanned = datetime.fromisoformat(queued[0]["scanned_at"].replace("Z", "+00:00"))
    assert abs((scanned - before).total_seconds()) < 5
    await both_sizes(page, shots, "offline-poster")
    # opened again without network within the minute: the same scan, not a second one
    await page.reload()
    await page.wait_for_selector("#view-offline:not([hidden])", timeout=10_000)
    assert len(await page.evaluate("JSON.parse(localStorage.getItem('venue-checkin.queue'))")) == 1
    await page.wait_for_timeout(1000)
    assert [e for e in stream_entries(sync_redis, server, 9822) if e.kind == "in"] == []

    # the network is back: the queue is sent once and the server's verdict replaces the grey screen
    await ctx.set_offline(False)
    await page.wait_for_selector("#result-panel[data-verdict='pass']", timeout=15_000)
    assert await page.text_content("#r-panel-venue") == "地下美食城"
    assert await page.is_visible("#r-live")
    await expect(page.locator("#view-offline")).to_be_hidden()
    assert await page.evaluate("localStorage.getItem('venue-checkin.queue')") is None
    events = [e for e in stream_entries(sync_redis, server, 9822) if e.kind == "in"]
    assert len(events) == 1 and events[0].person_id == pid
    assert abs(events[0].at_ms / 1000 - scanned.timestamp()) < 1  # recorded when it was scanned
    await page.reload()
    await page.wait_for_timeout(1500)
    assert len([e for e in stream_entries(sync_redis, server, 9822) if e.kind == "in"]) == 1
    # the worker never answers an API request from a cache
    await ctx.set_offline(True)
    failed = await page.evaluate(
        "fetch('/v1/residents/me', {headers: {Authorization: 'Bearer x'}}).then(() => false, () => true)"
    )
    assert failed
    await ctx.set_offline(False)
    assert errors == []
    await ctx.close()


async def test_a_tap_without_network_on_an_open_page_shows_the_grey_screen(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    code = put_venue(sync_redis, server, 9831, "幸福路体育馆")
    pid, token = import_resident(server.base, 9831, "吴九")
    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    await open_signed_in(page, server.base, code, pid, token)
    await ctx.set_offline(True)
    await page.click("#checkin-button")
    await page.wait_for_selector("#view-offline:not([hidden])", timeout=10_000)
    assert await background(page, "#offline-panel") == GREY
    assert await page.text_content("#o-venue") == "幸福路体育馆"
    # the colour the page read from the server on load, with its time
    assert re.fullmatch(
        r"最近一次联网核验：绿码（\d{4}/\d\d/\d\d \d\d:\d\d:\d\d）", await page.text_content("#o-last") or ""
    )
    await shot(page, shots, "offline-tap-phone")
    await page.click("#offline-back")
    assert await page.text_content("#queue-list .queue-state") == "待上传"
    await ctx.set_offline(False)
    await page.wait_for_selector("#queue", state="hidden", timeout=15_000)
    assert len([e for e in stream_entries(sync_redis, server, 9831) if e.kind == "in"]) == 1
    await ctx.close()


# --- 4. family ------------------------------------------------------------------------------------


async def test_grandmas_notice_reaches_her_guardian_who_acknowledges_it_for_her(
    city: City, browser: Any, shots: Path
) -> None:
    site_vid, site_code = api_venue(city.base, "幸福路菜市场")
    pid, token = import_resident(city.base, 9841, "吴强")
    r = httpx.post(
        f"{city.base}/v1/residents/me/companions",
        json={"name": "吴奶奶", "id_number": born_years_ago(82, 9842)},
        headers=bearer(token),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    grandma = int(r.json()["person_id"])
    r = httpx.post(
        f"{city.base}/v1/checkins",
        json={"code": site_code, "companions": [grandma]},
        headers=bearer(token),
        timeout=10,
    )
    assert r.status_code == 201, r.text
    tracer = httpx.post(
        f"{city.base}/v1/keys",
        json={"role": "tracer", "name": "family test"},
        headers=bearer(ADMIN_KEY),
        timeout=10,
    ).json()["key"]
    for _ in range(100):  # the sink writes the stays within a second or two
        visits = httpx.get(f"{city.base}/v1/residents/me/visits", headers=bearer(token), timeout=10)
        if visits.status_code == 200 and visits.json()["count"] == 1:
            break
        time.sleep(0.2)
    now = datetime.now(UTC)
    flagged = httpx.post(
        f"{city.tracing}/v1/exposure-sites",
        json={
            "venue_id": site_vid,
            "since": (now - timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
            "until": (now + timedelta(hours=1)).isoformat().replace("+00:00", "Z"),
            "reason": "case 26",
            "level": "test",
        },
        headers=bearer(tracer),
        timeout=10,
    )
    assert flagged.status_code == 201, flagged.text
    site = flagged.json()["site_id"]
    copy = f"{site}-{grandma}"

    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    card = page.locator(f"#notice-list li[data-notice-id='{copy}']")
    for _ in range(40):
        await page.goto(f"{city.base}/me#notice-{copy}")  # the text's link
        await page.evaluate(SIGN_IN, [token, pid])
        await page.reload()
        try:
            await card.wait_for(timeout=500)
            break
        except Exception:
            continue
    assert await card.count() == 1, "no notice about grandma on the guardian's page"
    assert await card.get_attribute("data-for-person-id") == str(grandma)
    assert await card.locator(".n-title").text_content() == "家人 吴*奶：请尽快做核酸检测"
    body = await card.locator(".n-body").text_content() or ""
    assert body.startswith("您的家人 吴*奶 于 ") and "“幸福路菜市场”" in body
    assert await card.locator(".n-ack").text_content() == "代 吴*奶 确认"
    # both notices (his own, grandma's) come before anything else, and the linked one is marked
    own = page.locator(f"#notice-list li[data-notice-id='{site}']")
    assert await own.count() == 1
    assert "target" in (await card.get_attribute("class") or "")
    assert (await box(page, "#notices"))["y"] < (await box(page, "#code-panel"))["y"]
    border = await card.evaluate("el => getComputedStyle(el).borderLeftColor")
    assert border == "rgb(239, 108, 0)"  # level test
    await both_sizes(page, shots, "family-notice")
    texts = [json.loads(x) for x in city.outbox.read_text().splitlines() if x.strip()]
    mine = [m["text"] for m in texts if m["kind"] == "notice" and m["phone"] == "13900009841"]
    assert len(mine) == 2 and any("您的家人吴*奶到访的“幸福路菜市场”" in t and copy in t for t in mine), mine

    await card.locator(".n-ack").click()
    await card.wait_for(state="detached", timeout=10_000)
    assert await own.count() == 1  # his own notice is still to read
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        keys = RedisKeys(city.settings.key_prefix)
        hers = json.loads(client.hget(keys.notices(grandma), site) or b"{}")
    finally:
        client.close()
    assert hers["acked_by"] == pid and hers["acked_at"]
    await ctx.close()


# --- 6. registration and rotating codes -----------------------------------------------------------


async def test_a_code_request_survives_a_reload(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    from playwright.async_api import expect

    code = put_venue(sync_redis, server, 9851, "幸福路书店")
    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    await page.goto(f"{server.base}/v/{code}")
    await fill_in_with_code(page, server, "冯十一", "13900009851", id_number(9851))
    sent = server.last_code("13900009851")
    # the browser is killed while the resident reads the SMS
    await page.reload()
    await page.wait_for_selector("#view-register:not([hidden])")
    assert await page.input_value("#reg-phone") == "13900009851"
    await expect(page.locator("#otp-send")).to_have_text(re.compile(r"重新获取\((5\d|60)s\)"))
    assert await page.is_disabled("#otp-send")
    assert await page.text_content("#message") == "验证码已发送到 139****9851，5 分钟内有效。"
    await shot(page, shots, "otp-after-reload-phone")
    await page.fill("#reg-name", "冯十一")
    await page.fill("#reg-id", id_number(9851))
    await page.fill("#reg-otp", sent)
    await page.click("#register-submit")
    await page.wait_for_selector("#view-ready:not([hidden])", timeout=10_000)
    assert await page.evaluate("localStorage.getItem('venue-checkin.otp')") is None
    # only the one code was sent
    lines = [json.loads(x) for x in server.outbox.read_text().splitlines() if x.strip()]
    assert len([m for m in lines if m["phone"] == "13900009851"]) == 1
    await ctx.close()


@pytest.fixture
def rotating_server(tmp_path: Path, prefix: str) -> Iterator[Server]:
    """Screen codes of 2 s steps, taken 15 s after the page saw them."""
    with served(tmp_path, prefix, CHECKIN_ROTATING_STEP_S="2", CHECKIN_ROTATING_REGISTER_S="15") as srv:
        yield srv


async def test_a_screen_code_scanned_before_registering_is_honoured_and_a_photo_still_expires(
    rotating_server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    srv = rotating_server
    adm = bearer(ADMIN_KEY)
    with srv.api() as c:
        vid = int(c.post("/v1/venues", json=venue("幸福路影城"), headers=adm).json()["venue_id"])
        assert c.patch(f"/v1/venues/{vid}", json={"code_mode": "rotating"}, headers=adm).status_code == 200
        screen = c.get(f"/v1/venues/{vid}/code", headers=adm).json()["token"]
    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    opened = datetime.now(UTC)
    await page.goto(f"{srv.base}/v/{screen}")
    await page.wait_for_selector("#view-register:not([hidden])")
    proof = await page.get_attribute("#app", "data-code-proof")
    assert proof and re.fullmatch(r"\d+\.\d+\.[A-Za-z0-9_-]{16}", proof)
    seen_ms = int(proof.split(".")[1])
    assert abs(seen_ms / 1000 - opened.timestamp()) < 3
    # registering takes longer than the code lives (2 s steps: dead after at most 4 s)
    await fill_in_with_code(page, srv, "陈十二", "13900009861", id_number(9861))
    await page.wait_for_timeout(5000)
    with srv.api() as c:
        assert c.get(f"/v/{screen}").status_code == 410  # a photo of the screen is refused by now
    await page.click("#register-submit")
    await page.wait_for_selector("#view-ready:not([hidden])", timeout=10_000)
    await page.click("#checkin-button")
    await page.wait_for_selector("#result-panel[data-verdict='pass']", timeout=10_000)
    assert await page.text_content("#r-panel-venue") == "幸福路影城"
    events = [e for e in stream_entries(sync_redis, srv, vid) if e.kind == "in"]
    assert len(events) == 1 and events[0].at_ms == seen_ms  # recorded when the code was seen
    await both_sizes(page, shots, "rotating-after-registering")

    # a page whose proof is older than CHECKIN_ROTATING_REGISTER_S (15 s here) no longer checks in
    with srv.api() as c:
        screen = c.get(f"/v1/venues/{vid}/code", headers=adm).json()["token"]
    await page.goto(f"{srv.base}/v/{screen}")
    await page.wait_for_selector("#view-ready:not([hidden])")
    await page.wait_for_timeout(16_000)
    await page.click("#checkin-button")
    await page.wait_for_selector("#message:not([hidden])", timeout=10_000)
    assert await page.text_content("#message") == (
        "请重新扫描屏幕上的场所码（屏幕上的场所码每隔一段时间更新，此码已过期）。"
    )
    assert len([e for e in stream_entries(sync_redis, srv, vid) if e.kind == "in"]) == 1
    await ctx.close()


def venue(name: str) -> dict[str, Any]:
    from tests.support.access_world import venue_body

    return venue_body(name, "110101")


# --- 7. 长辈模式 --------------------------------------------------------------------------------------


async def test_elder_mode_keeps_the_colour_and_the_button_on_the_first_screen_with_a_family_of_four(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    code = put_venue(sync_redis, server, 9871, "幸福路社区医院", requires_negative_test_hours=72)
    earlier = put_venue(sync_redis, server, 9872, "幸福路菜市场")
    key = health_key(server)
    pid, token = import_resident(server.base, 9871, "王建国")
    negative_test(server, key, pid, 10)
    family = [
        add_dependant(server, token, "王小明", child_id_number(9873)),
        add_dependant(server, token, "王小红", child_id_number(9874)),
        add_dependant(server, token, "李秀英", born_years_ago(78, 9875)),
    ]
    set_status(server, key, family[2], "yellow")
    with server.api() as c:  # the family is somewhere else now: an open stay
        r = c.post("/v1/checkins", json={"code": earlier, "companions": family}, headers=bearer(token))
        assert r.status_code == 201, r.text
    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    await page.add_init_script("localStorage.setItem('venue-checkin.elder', 'true')")
    await open_signed_in(page, server.base, code, pid, token)
    await page.wait_for_selector("#code-panel[data-status='green']", timeout=10_000)
    await page.locator("#companion-choices input[type=checkbox]").nth(2).wait_for()
    await page.wait_for_selector("#stays:not([hidden])")
    assert await page.evaluate("document.documentElement.classList.contains('elder')")
    # 登记 and the colour are on the first screen, the open stay below them
    button, colour = await box(page, "#checkin-button"), await box(page, "#code-panel")
    assert button["y"] + button["height"] <= PHONE["height"], button
    assert colour["y"] + colour["height"] <= PHONE["height"] and colour["y"] < button["y"]
    assert await background(page, "#code-panel") == RGB["green"]
    assert (await box(page, "#stays"))["y"] > button["y"]
    assert await font_px(page, "#checkin-button") >= 30
    # each family member's colour beside their name
    dot = page.locator(f"#companion-choices input[value='{family[2]}'] + .dot")
    assert await dot.evaluate("el => getComputedStyle(el).backgroundColor") == RGB["yellow"]
    await both_sizes(page, shots, "elder-family-ready")
    await page.evaluate("window.scrollTo(0, 0)")
    for box_ in await page.locator("#companion-choices input[type=checkbox]").all():
        await box_.check()
    await page.click("#checkin-button")
    await page.wait_for_selector("#view-result:not([hidden])", timeout=10_000)
    # the counts never break inside one: "0 人限制" stays on one line
    status = page.locator("#r-status")
    assert await status.text_content() == "4 人同行 · 2 人禁止 · 1 人限制"
    for counter in await status.locator(".counter").all():
        lines = await counter.evaluate("el => el.getClientRects().length")
        height = await counter.evaluate("el => el.getBoundingClientRect().height")
        size = float((await counter.evaluate("el => getComputedStyle(el).fontSize")).removesuffix("px"))
        assert lines == 1 and height < size * 1.8, (await counter.text_content(), lines, height)
    await both_sizes(page, shots, "elder-family-result")

    # check-out asks to confirm: one tap does not end the stay, the second does
    out = page.locator("#checkout-button")
    await out.click()
    assert await out.text_content() == "再点一次确认离场"
    assert await background(page, "#checkout-button") == "rgb(138, 28, 20)"
    assert await page.is_hidden("#checkout-done")
    await page.wait_for_timeout(500)
    assert [e for e in stream_entries(sync_redis, server, 9871) if e.kind == "out"] == []
    await shot(page, shots, "elder-checkout-confirm-phone")
    await out.click()
    await page.wait_for_selector("#checkout-done:not([hidden])", timeout=10_000)
    ended = [e for e in stream_entries(sync_redis, server, 9871) if e.kind == "out"]
    assert {e.ended_by for e in ended} == {"checkout"} and len(ended) == 4
    await ctx.close()
