"""The operator page as a venue operator uses it (a key bound to one venue), in headless Chromium at a
desktop (1440x900) and a phone (390x844) size against a real ingest server:

1. door screen: switch the venue to a screen (the sentence for each mode; the "Check-in URL" field says
   what a screen's code is), the poster offered becomes the notice without a check-in QR, a device key
   and a one-time set-up QR for the tablet: the tablet opens it, confirms, and shows a working rotating
   code; the same link again is refused; revoking the key on the page stops the tablet;
2. posters: the PDF (A4 and A3) downloaded from the page has the venue name as text and a QR code that
   zxing-cpp reads from a 300 dpi and a 72 dpi render;
3. the venue's day: the chart's numbers equal the check-ins made here, hour by hour, beside last week;
   occupancy against capacity and the capacity alert from the real rule engine; read again each minute;
4. closing: with a reason; the page then offers the closed notice, and scans answer 410 with the date.

Screenshots go to ``CHECKIN_SCREENSHOT_DIR`` (or the test's tmp dir)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis
import zxingcpp
from PIL import Image

from checkin.platform.instants import HOUR_MS, format_ms, now_ms
from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.settings import Settings
from tests.support.ingest import id_number
from tests.support.pdf import pdf_page, pdf_text
from tests.support.servers import ingest_server
from tests.support.values import ADMIN_KEY
from venues import codes
from venues.day import day_hours

pytestmark = pytest.mark.browser

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
TZ = "Asia/Shanghai"
STEP_S = 4
SIZES = {"desktop": (1440, 900), "phone": (390, 844)}
PREVIEW_LOADED = (
    "(() => { const i = document.getElementById('poster-preview');"
    " return i.complete && i.naturalWidth > 0 })()"
)


@dataclass
class Server:
    base: str
    keyring: Keyring
    keys: RedisKeys


@pytest.fixture
def server(tmp_path: Path, prefix: str) -> Iterator[Server]:
    with ingest_server(tmp_path, prefix, CHECKIN_ROTATING_STEP_S=str(STEP_S)) as (base, keyring, _log):
        yield Server(base=base, keyring=Keyring.parse(keyring), keys=RedisKeys(prefix))


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CHECKIN_SCREENSHOT_DIR") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def poll(page: Any, script: str, timeout_s: float = 10.0) -> None:
    """Wait until ``script`` is true (page.evaluate runs outside the page's CSP)."""
    deadline = time.monotonic() + timeout_s
    while not await page.evaluate(script):
        assert time.monotonic() < deadline, f"timed out waiting for {script}"
        await asyncio.sleep(0.1)


def decode(png: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def make_venue(base: str, venue_id: int, name: str, capacity: int = 0) -> dict[str, str]:
    """The venue and the headers of an operator key bound to it."""
    body = {
        "venue_id": venue_id,
        "name": name,
        "address": "城关区金城关 1 号",
        "type": "market",
        "district": "620102",
        "street": "620102001",
        "community": "620102001001",
        "lat": 36.06,
        "lon": 103.83,
        "capacity": capacity,
    }
    with httpx.Client(base_url=base, timeout=10) as c:
        assert c.post("/v1/venues", json=body, headers=ADMIN).status_code == 201
        key = c.post("/v1/keys", json={"role": "operator", "venue_id": venue_id}, headers=ADMIN).json()["key"]
    return {"key": key}


def residents(base: str, n: int, first: int) -> list[str]:
    lines = "\n".join(
        json.dumps({"name": f"居民{i}", "phone": f"139{i:08d}", "id_number": id_number(i)})
        for i in range(first, first + n)
    )
    with httpx.Client(base_url=base, timeout=10) as c:
        r = c.post("/v1/residents/import", content=lines.encode(), headers=ADMIN)
    return [json.loads(line)["token"] for line in r.content.splitlines() if b'"token"' in line]


async def open_page(
    browser: Any, base: str, key: str, size: str, clock: bool = False
) -> tuple[Any, Any, list[str]]:
    width, height = SIZES[size]
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        accept_downloads=True,
        is_mobile=size == "phone",
        has_touch=size == "phone",
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    if clock:
        await page.clock.install()
    r = await page.goto(f"{base}/operator")
    assert r is not None and r.status == 200
    await page.fill("#api-key", key)
    await page.click("#login")
    await page.wait_for_selector("#venue-detail:not([hidden])")
    await poll(page, PREVIEW_LOADED)
    return context, page, errors


async def shot(page: Any, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def preview_codes(page: Any) -> list[str]:
    await poll(page, PREVIEW_LOADED)
    return decode(await page.locator("#poster-preview").screenshot())


async def assert_fits(page: Any) -> None:
    """Nothing wider than the viewport (no sideways scrolling on a phone)."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= await page.evaluate("window.innerWidth"), width


# --- 1. the door screen -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", list(SIZES))
async def test_door_screen_set_up_from_the_operator_page(
    server: Server, browser: Any, shots: Path, size: str
) -> None:
    from playwright.async_api import expect

    name = "金城关夜市牛肉面"
    operator = make_venue(server.base, 501, name)
    context, page, errors = await open_page(browser, server.base, operator["key"], size)
    assert await page.is_checked("#mode-static")
    await expect(page.locator("#poster-kind")).to_contain_text("Check-in poster")
    assert len(await preview_codes(page)) == 1  # the check-in poster carries its code
    assert "printed on the poster" in (await page.text_content("#mode-panel") or "")

    await page.check("#mode-rotating")
    await expect(page.locator("#message")).to_contain_text("Switched to a screen")
    await expect(page.locator("#poster-kind")).to_contain_text("Screen notice")
    assert await preview_codes(page) == []  # the notice has no check-in code
    await expect(page.locator("#code-url-label")).to_contain_text("The screen's code now")
    note = await page.text_content("#code-url-note") or ""
    assert f"changes every {STEP_S} s" in note and "never print" in note
    assert f"every {STEP_S} s" in (await page.text_content("#mode-rotating-text") or "")
    assert not await page.is_visible("#rotate")
    await expect(page.locator("#device-keys")).to_contain_text("No device keys yet")

    await page.click("#setup-tablet")
    await page.wait_for_selector("#setup-result:not([hidden])")
    await poll(page, "document.getElementById('setup-qr').naturalWidth > 0")
    link = await page.get_attribute("#setup-link", "href")
    assert link is not None and link.startswith(f"{server.base}/display/501/setup?code=")
    assert decode(await page.locator("#setup-qr").screenshot()) == [link]
    await expect(page.locator("#device-keys li")).to_have_count(1)
    await assert_fits(page)
    await shot(page, shots, f"operator-door-screen-{size}")

    # The tablet: scan the QR (open its link), confirm, and it shows the venue's rotating code.
    tablet_ctx = await browser.new_context(viewport={"width": 1280, "height": 800})
    tablet = await tablet_ctx.new_page()
    await tablet.goto(link)
    await expect(tablet.locator("#setup-venue")).to_have_text(name)
    await shot(tablet, shots, f"tablet-setup-{size}")
    await tablet.click("#setup-confirm")
    await tablet.wait_for_url(f"{server.base}/display/501")
    await tablet.wait_for_selector("#qr:not([hidden])")
    shown = await tablet.get_attribute("#qr", "data-url")
    assert shown is not None
    claims = codes.verify(server.keyring, shown.rsplit("/", 1)[1])
    assert claims.venue_id == 501 and claims.kind == "r"
    await shot(tablet, shots, f"tablet-screen-{size}")

    # The link is spent: a second device (or a photo of the QR) gets nothing.
    other_ctx = await browser.new_context()
    other = await other_ctx.new_page()
    r = await other.goto(link)
    assert r is not None and r.status == 410
    assert "设置码已使用或已过期" in (await other.content())
    await other_ctx.close()

    # Revoking the key on the page stops the tablet.
    await page.click("#device-keys li button")
    await expect(page.locator("#device-keys")).to_contain_text("No device keys yet")
    await expect(tablet.locator("#status")).to_contain_text("设备密钥无效或已被撤销", timeout=25_000)
    assert await tablet.is_hidden("#qr")
    assert errors == []
    await tablet_ctx.close()
    await context.close()


# --- 2 and 3. posters and the venue's day -------------------------------------------------------------


def local_hour(ms: int) -> int:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(TZ)).hour


async def run_rules(make_settings: Any, redis_client: Any) -> list[Any]:
    """The real rule engine over the server's scan streams, as the tracing service runs it."""
    from tests.support.rules import Clock, Harness

    settings: Settings = make_settings()
    harness = Harness(settings, redis_client, Clock(now_ms()))
    return await harness.run()


async def chart(page: Any) -> dict[int, tuple[int, int]]:
    """hour -> (today, last week) as the page's chart draws them."""
    bars = await page.eval_on_selector_all(
        "#day-chart g.hour",
        "gs => gs.map(g => [g.dataset.hour, g.dataset.today, g.dataset.lastWeek])",
    )
    return {int(h): (int(t), int(w)) for h, t, w in bars}


@pytest.mark.parametrize("size", list(SIZES))
async def test_the_venues_day_and_its_print_posters(
    server: Server,
    browser: Any,
    shots: Path,
    size: str,
    make_settings: Any,
    redis_client: Any,
    sync_redis: redis.Redis,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    name = "幸福路社区菜市场"
    operator = make_venue(server.base, 601, name, capacity=2)
    with httpx.Client(base_url=server.base, timeout=10) as c:
        code = c.get("/v1/venues/601/code", headers=ADMIN).json()
    tokens = residents(server.base, 5, first=10)
    now = now_ms()
    tz = ZoneInfo(TZ)
    today = dt.datetime.fromtimestamp(now / 1000, tz).date()
    earlier = now - 2 * HOUR_MS
    if dt.datetime.fromtimestamp(earlier / 1000, tz).date() != today:
        earlier = now
    expected: dict[int, int] = {}
    with httpx.Client(base_url=server.base, timeout=10) as c:
        for i, token in enumerate(tokens[:4]):
            at = earlier if i == 0 else now
            body: dict[str, Any] = {"code": code["token"]}
            if at != now:
                body["scanned_at"] = format_ms(at)
            r = c.post("/v1/checkins", json=body, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 201, r.text
            expected[local_hour(at)] = expected.get(local_hour(at), 0) + 1
    # the same weekday last week, as the check-in script counted it then
    week_ago = today - dt.timedelta(days=7)
    hours = dict(day_hours(week_ago, TZ))
    last_key = server.keys.venue_entries(server.keys.shard_of(601), week_ago.strftime("%Y%m%d"))
    sync_redis.hset(last_key, mapping={"601": "9", f"601:{hours[9]}": "6", f"601:{hours[18]}": "3"})
    alerts = await run_rules(make_settings, redis_client)
    assert [a.kind for a in alerts] == ["capacity_exceeded"]

    context, page, errors = await open_page(browser, server.base, operator["key"], size, clock=True)
    await expect(page.locator("#entries-today")).to_have_text("4")
    await expect(page.locator("#entries-last-week")).to_have_text("9")
    drawn = await chart(page)
    assert sorted(drawn) == list(range(24))
    assert {h: t for h, (t, _) in drawn.items() if t} == expected
    assert {h: w for h, (_, w) in drawn.items() if w} == {9: 6, 18: 3}
    labels = await page.eval_on_selector_all("#day-chart text.value", "ts => ts.map(t => t.textContent)")
    if size == "desktop":  # a phone's bars are too narrow for a number above each
        assert sorted(int(x) for x in labels) == sorted(expected.values())
    # the stay checked in two hours ago has ended (60 minutes): the others are here now
    open_now = sum(1 for i in range(4) if i > 0 or earlier == now)
    await expect(page.locator("#occupancy")).to_have_text(str(open_now))
    await expect(page.locator("#capacity")).to_contain_text("capacity 2")
    await expect(page.locator("#alerts li.alert")).to_have_count(1)
    await expect(page.locator("#alerts li.alert")).to_contain_text("Over capacity: 3 / 2")
    assert await page.is_visible("#occupancy-meter")
    await assert_fits(page)
    await shot(page, shots, f"operator-day-{size}")

    # A minute later the page has read the day again: one more check-in is on the chart.
    with httpx.Client(base_url=server.base, timeout=10) as c:
        r = c.post(
            "/v1/checkins", json={"code": code["token"]}, headers={"Authorization": f"Bearer {tokens[4]}"}
        )
        assert r.status_code == 201
    expected[local_hour(now_ms())] = expected.get(local_hour(now_ms()), 0) + 1
    await page.clock.run_for(61_000)
    await expect(page.locator("#entries-today")).to_have_text("5")
    assert {h: t for h, (t, _) in (await chart(page)).items() if t} == expected

    # The print shop's PDF, downloaded from the page: A4 and A3.
    for button, size_name, width_pt in (("#download-pdf", "a4", 595.28), ("#download-pdf-a3", "a3", 841.89)):
        async with page.expect_download() as info:
            await page.click(button)
        download = await info.value
        assert download.suggested_filename == f"venue-601-checkin-{size_name}.pdf"
        pdf = Path(await download.path()).read_bytes()
        (tmp_path / f"poster-{size_name}.pdf").write_bytes(pdf)
        assert name in pdf_text(pdf)
        for dpi in (300, 72):
            rendered = pdf_page(pdf, dpi)
            assert abs(rendered.width - width_pt / 72 * dpi) <= 2
            assert [r.text for r in zxingcpp.read_barcodes(rendered)] == [code["url"]], (size_name, dpi)
    assert errors == []
    await context.close()


# --- 4. closing a venue -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", list(SIZES))
async def test_closing_a_venue_from_the_operator_page(
    server: Server, browser: Any, shots: Path, size: str
) -> None:
    from playwright.async_api import expect

    name = "黄河夜市 12 号摊"
    operator = make_venue(server.base, 701, name)
    with httpx.Client(base_url=server.base, timeout=10) as c:
        token = c.get("/v1/venues/701/code", headers=ADMIN).json()["token"]
    (resident,) = residents(server.base, 1, first=30)
    auth = {"Authorization": f"Bearer {resident}"}
    with httpx.Client(base_url=server.base, timeout=10) as c:
        first = c.post("/v1/checkins", json={"code": token}, headers=auth)
        assert first.status_code == 201

    context, page, errors = await open_page(browser, server.base, operator["key"], size)
    await page.fill("#close-reason", "夜市活动结束")
    await page.click("#close-venue")
    await expect(page.locator("#venue-status")).to_have_text("已停用 closed")
    date = dt.datetime.now(ZoneInfo(TZ)).strftime("%Y-%m-%d")
    await expect(page.locator("#closed-banner")).to_contain_text("夜市活动结束")
    assert date.replace("-", "/") in (await page.text_content("#closed-banner") or "").replace("-", "/")
    await expect(page.locator("#poster-kind")).to_contain_text("Closed notice")
    assert await preview_codes(page) == []
    assert await page.is_visible("#reopen-venue") and not await page.is_visible("#close-form")
    assert not await page.is_visible("#rotate")
    await assert_fits(page)
    await shot(page, shots, f"operator-closed-{size}")

    async with page.expect_download() as info:
        await page.click("#download-pdf-a3")
    pdf = Path(await (await info.value).path()).read_bytes()
    text = pdf_text(pdf)
    assert "本场所已停用" in text and name in text and date in text
    assert zxingcpp.read_barcodes(pdf_page(pdf, 72)) == []

    # A resident who scans an old poster is told the venue closed, and when.
    phone_ctx = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, locale="zh-CN"
    )
    phone = await phone_ctx.new_page()
    r = await phone.goto(f"{server.base}/v/{token}")
    assert r is not None and r.status == 410
    await expect(phone.locator("#error-title")).to_have_text("该场所已停用")
    await expect(phone.locator("#error-message")).to_contain_text(date)
    await shot(phone, shots, f"phone-closed-venue-{size}")
    await phone_ctx.close()
    with httpx.Client(base_url=server.base, timeout=10) as c:
        again = c.post("/v1/checkins", json={"code": token}, headers=auth)
        assert again.status_code == 410
        assert again.json()["detail"].startswith(f"该场所已停用 / this venue has closed ({date})")
        # the record is kept: the earlier check-in still answers
        assert c.get(f"/v1/checkins/{first.json()['checkin_id']}", headers=auth).status_code == 200
    assert errors == []
    await context.close()
