"""The phone check-in page in headless Chromium against a real ingest server:
scan URL -> register -> check in -> the result panel colour matches the health
state set through the API -> check out."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import redis

from checkin.platform import resident_tokens
from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.scan_stream import decode_scan
from tests.support.servers import ingest_server
from tests.support.values import ADMIN_KEY, free_port
from venues import codes
from venues.model import Venue

pytestmark = pytest.mark.browser
QUEUED_ZH = "网络不可用：本次登记已保存在本机（待上传），联网后自动上传。"

SHOTS = (
    Path(os.environ.get("CHECKIN_SCREENSHOT_DIR", "")) if os.environ.get("CHECKIN_SCREENSHOT_DIR") else None
)
RGB = {"green": "rgb(18, 132, 63)", "yellow": "rgb(242, 180, 0)", "red": "rgb(208, 39, 29)"}
VERDICT_OF = {"green": "pass", "yellow": "restricted", "red": "deny"}
VENUE_LAT, VENUE_LON = 36.0611, 103.8343


@dataclass
class Server:
    base: str
    keyring: Keyring
    keys: RedisKeys
    log: Path
    outbox: Path

    def last_code(self, phone: str) -> str:
        """The last one-time code the outbox gateway texted to ``phone``."""
        lines = [json.loads(x) for x in self.outbox.read_text().splitlines() if x.strip()]
        return str([m for m in lines if m["phone"] == phone and m["kind"] == "otp"][-1]["otp"])

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=10)


@pytest.fixture
def server(tmp_path: Path, prefix: str) -> Iterator[Server]:
    # no tracing service behind it: own visits answer 503 (a dead port, not whatever runs on 8001)
    dead = f"http://127.0.0.1:{free_port()}"
    with ingest_server(tmp_path, prefix, CHECKIN_TZ="Asia/Shanghai", CHECKIN_TRACING_URL=dead) as (
        base,
        keyring,
        log,
    ):
        yield Server(
            base=base,
            keyring=Keyring.parse(keyring),
            keys=RedisKeys(prefix),
            log=log,
            outbox=tmp_path / "var" / "sms-outbox.ndjson",
        )


def id_number(seq: int) -> str:
    """A well-formed 18-digit resident id (GB 11643 check digit)."""
    body = f"620102199{seq % 10}0101{seq % 1000:03d}"[:17]
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(c) * w for c, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def put_venue(sync_redis: redis.Redis, srv: Server, venue_id: int, name: str, **fields: Any) -> str:
    venue = Venue(
        venue_id=venue_id,
        name=name,
        address="城关区幸福路 12 号",
        district="620102",
        street="620102001",
        community="620102001001",
        lat=VENUE_LAT,
        lon=VENUE_LON,
        **fields,
    )
    sync_redis.hset(srv.keys.venue(venue_id), mapping=venue.to_hash())  # type: ignore[arg-type]
    return codes.sign(srv.keyring, venue_id, venue.code_version)


def health_key(srv: Server) -> str:
    with srv.api() as c:
        r = c.post(
            "/v1/keys",
            json={"role": "health", "name": "phone-page test"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
    assert r.status_code == 201, r.text
    return str(r.json()["key"])


async def new_phone(browser: Any, **options: Any) -> Any:
    options.setdefault("viewport", {"width": 375, "height": 740})
    return await browser.new_context(
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        timezone_id="Europe/London",  # the page must show the configured zone, not the phone's
        **options,
    )


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: CHECKIN_SCREENSHOT_DIR to keep them, else the test's tmp dir."""
    folder = Path(os.environ.get("CHECKIN_SCREENSHOT_DIR") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def shot(page: Any, folder: Path, name: str) -> None:
    path = folder / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000


async def fill_in_with_code(page: Any, srv: Server, name: str, phone: str, idn: str) -> None:
    """Fill the registration form, ask for the code and type it as the SMS brought it."""
    from playwright.async_api import expect

    await page.wait_for_selector("#view-register:not([hidden])")
    await page.fill("#reg-name", name)
    await page.fill("#reg-id", idn)
    await page.fill("#reg-phone", phone)
    await page.click("#otp-send")
    await expect(page.locator("#otp-send")).to_have_text(re.compile(r"重新获取\(\d+s\)"))
    await page.fill("#reg-otp", srv.last_code(phone.replace("-", "").replace(" ", "")))


async def register(page: Any, srv: Server, name: str, phone: str, idn: str) -> int:
    await fill_in_with_code(page, srv, name, phone, idn)
    await page.click("#register-submit")
    await page.wait_for_selector("#view-ready:not([hidden])", timeout=10_000)
    stored = await page.evaluate("JSON.parse(localStorage.getItem('venue-checkin.resident'))")
    assert stored["token"].startswith("r2.")
    return int(stored["person_id"])


def set_status(srv: Server, key: str, person_id: int, status: str) -> None:
    with srv.api() as c:
        r = c.put(
            f"/v1/health/{person_id}",
            json={"status": status, "reason": "phone-page test"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert r.status_code in (200, 204), r.text


def local_text(instant: datetime) -> str:
    """What Intl.DateTimeFormat('zh-CN', 2-digit fields, Asia/Shanghai) shows."""
    t = instant.astimezone(ZoneInfo("Asia/Shanghai"))
    return t.strftime("%Y/%m/%d %H:%M:%S")


def stream_entries(sync_redis: redis.Redis, srv: Server, venue_id: int) -> list[Any]:
    out = []
    for stream in srv.keys.streams():
        entries: list[tuple[bytes, dict[bytes, bytes]]] = sync_redis.xrange(stream)  # type: ignore[assignment]
        for entry_id, fields in entries:
            event = decode_scan(entry_id, fields)
            if event.venue_id == venue_id:
                out.append(event)
    return out


@pytest.mark.parametrize(("status", "verdict"), [("green", "通行"), ("yellow", "限制"), ("red", "禁止")])
async def test_scan_register_check_in_and_out(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path, status: str, verdict: str
) -> None:
    venue_id = {"green": 9201, "yellow": 9202, "red": 9203}[status]
    venue_name = "<b>兰州</b>牛肉面（幸福路店）"
    token = put_venue(sync_redis, server, venue_id, venue_name)
    key = health_key(server)
    ctx = await new_phone(
        browser, permissions=["geolocation"], geolocation={"latitude": VENUE_LAT, "longitude": VENUE_LON}
    )
    page = await ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    await page.goto(f"{server.base}/v/{token}")
    assert await page.text_content("#venue-name") == venue_name

    seq = venue_id
    person_id = await register(page, server, "张三丰", f"139{seq:08d}", id_number(seq))
    set_status(server, key, person_id, status)
    negative_at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=20)
    if status == "green":
        with server.api() as c:
            r = c.post(
                "/v1/health/tests",
                json=[
                    {
                        "person_id": person_id,
                        "sampled_at": negative_at.isoformat().replace("+00:00", "Z"),
                        "result": "negative",
                    }
                ],
                headers={"Authorization": f"Bearer {key}"},
            )
        assert r.status_code in (200, 201, 204), r.text
    companion_id = None
    if status == "green":  # a family member, yellow, checked in from the same phone
        await page.click("#companion-toggle")
        await page.fill("#cmp-name", "李小红")
        await page.fill("#cmp-id", id_number(seq + 500))
        await page.click("#companion-submit")
        box = page.locator("#companion-choices input[type=checkbox]")
        await box.wait_for(timeout=10_000)
        assert await box.is_checked()
        assert await page.text_content("#companion-choices label") == "李*红"
        companion_id = int(await box.get_attribute("value") or 0)
        set_status(server, key, companion_id, "yellow")
    await shot(page, shots, f"{status}-ready")

    before = datetime.now(UTC)
    await page.click("#checkin-button")
    await page.wait_for_selector("#view-result:not([hidden])", timeout=10_000)
    panel = page.locator("#result-panel")
    assert await panel.get_attribute("data-status") == status
    # with the yellow family member the group's worst verdict is 限制: the big panel is yellow
    worst = "yellow" if companion_id is not None else status
    assert await panel.get_attribute("data-verdict") == VERDICT_OF[worst]
    colour = await panel.evaluate("el => getComputedStyle(el).backgroundColor")
    assert colour == RGB[worst]
    assert await page.text_content("#r-verdict") == {"green": "通行", "yellow": "限制", "red": "禁止"}[worst]
    assert await page.text_content("#r-venue") == venue_name
    shown_at = await page.text_content("#r-time")
    assert shown_at is not None
    after = datetime.now(UTC)
    assert shown_at in {local_text(before), local_text(after)} or (
        local_text(before) <= shown_at <= local_text(after)
    ), shown_at
    if companion_id is None:
        assert await page.text_content("#r-status") == {"yellow": "黄码", "red": "红码"}[status]
        assert await page.text_content("#r-test") == "无"
        assert await page.is_hidden("#r-people")
    else:
        assert await page.text_content("#r-status") == "2 人同行 · 0 人禁止 · 1 人限制"
        mine = page.locator(f"#r-people .person[data-person-id='{person_id}']")
        assert await mine.locator(".p-verdict").text_content() == "通行"
        assert await mine.locator(".p-status").text_content() == "绿码"
        assert local_text(negative_at)[5:16] in (await mine.locator(".p-test").text_content() or "")
        row = page.locator(f"#r-people .person[data-person-id='{companion_id}']")
        assert await row.get_attribute("data-status") == "yellow"
        assert await row.locator(".p-name").text_content() == "李*红"
        assert await row.locator(".p-verdict").text_content() == "限制"
        assert await row.locator(".p-reason").text_content() == "黄码：限制进入，请配合工作人员核查"
        assert await row.evaluate("el => getComputedStyle(el).backgroundColor") == RGB["yellow"]
    await shot(page, shots, f"{status}-result")

    # the scan reached the stream with the phone's location
    events = [e for e in stream_entries(sync_redis, server, venue_id) if e.kind == "in"]
    expected = {person_id: status} if companion_id is None else {person_id: status, companion_id: "yellow"}
    assert {e.person_id: e.status for e in events} == expected
    assert len(events) == len(expected)
    mine = next(e for e in events if e.person_id == person_id)
    assert mine.lat == pytest.approx(VENUE_LAT, abs=1e-4)
    assert mine.lon == pytest.approx(VENUE_LON, abs=1e-4)

    if status == "red":  # the page was closed meanwhile: reopening it lists the open stay
        await page.goto(f"{server.base}/v/{token}")
        await page.wait_for_selector("#stays:not([hidden])")
        assert await page.locator("#stay-list li").count() == 1
        assert await page.text_content("#stay-list .stay-venue") == venue_name
        await page.click("#stay-list .stay-view")
        await page.wait_for_selector("#result-panel[data-verdict='deny']")
        assert await panel.get_attribute("data-status") == "red"
    await page.click("#checkout-button")
    await page.wait_for_selector("#checkout-done:not([hidden])", timeout=10_000)
    done = await page.text_content("#checkout-done")
    assert done is not None and done.startswith("已离场 ")
    assert await page.is_hidden("#checkout-button")
    await shot(page, shots, f"{status}-checked-out")
    outs = [e for e in stream_entries(sync_redis, server, venue_id) if e.kind == "out"]
    assert sorted(e.person_id for e in outs) == sorted(expected)

    # a later visit resumes without the form
    await page.goto(f"{server.base}/v/{token}")
    await page.wait_for_selector("#view-ready:not([hidden])")
    assert await page.is_hidden("#view-register") and await page.is_hidden("#stays")
    assert errors == []
    await ctx.close()


async def test_bad_resident_token_leads_back_to_registration(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    token = put_venue(sync_redis, server, 9301, "幸福路社区菜市场")
    ctx = await new_phone(browser)
    page = await ctx.new_page()
    await page.goto(f"{server.base}/v/{token}")
    await page.wait_for_selector("#view-register:not([hidden])")
    # a token from another keyring (forged or from a wiped deployment)
    forged, _ = resident_tokens.issue(Keyring.parse(Keyring.generate(1)), 42, 3600)
    await page.evaluate(
        "t => localStorage.setItem('venue-checkin.resident', JSON.stringify({token: t, person_id: 42}))",
        forged,
    )
    await page.reload()
    # the page's first request (the notices) is refused: back to the form before any tap
    await page.wait_for_selector("#view-register:not([hidden])", timeout=10_000)
    message = await page.text_content("#message")
    assert message == "登记信息已失效，请重新填写个人信息。"
    assert await page.evaluate("localStorage.getItem('venue-checkin.resident')") is None
    await shot(page, shots, "token-rejected")

    # an expired token is noticed before any request
    expired, _ = resident_tokens.issue(server.keyring, 42, 60, now=time.time() - 3600)
    await page.evaluate(
        "t => localStorage.setItem('venue-checkin.resident', JSON.stringify({token: t, person_id: 42}))",
        expired,
    )
    await page.reload()
    await page.wait_for_selector("#view-register:not([hidden])")
    assert await page.text_content("#message") == "登记信息已过期，请重新填写个人信息。"
    await ctx.close()


async def test_api_errors_are_shown_in_chinese(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    token = put_venue(sync_redis, server, 9401, "幸福路社区菜市场")
    ctx = await new_phone(browser)
    page = await ctx.new_page()
    await page.goto(f"{server.base}/v/{token}")
    # client-side checks before any request
    await page.fill("#reg-name", "李四")
    await page.fill("#reg-phone", "12345")
    await page.fill("#reg-id", id_number(7))
    await page.click("#otp-send")
    assert await page.text_content("#register-error") == "请填写 11 位手机号码。"
    await page.fill("#reg-phone", "137-0000-1111")  # pasted with dashes
    await page.fill("#reg-id", id_number(7)[:-1] + ("0" if id_number(7)[-1] != "0" else "1"))
    await page.click("#register-submit")
    assert await page.text_content("#register-error") == "身份证号不正确，请核对后重新填写。"
    await page.fill("#reg-id", id_number(7))
    await page.click("#register-submit")
    assert await page.text_content("#register-error") == "请先点击“获取验证码”。"
    await page.click("#otp-send")
    from playwright.async_api import expect

    await expect(page.locator("#otp-send")).to_have_text(re.compile(r"重新获取\(\d+s\)"))
    await page.fill("#reg-otp", "000000" if server.last_code("13700001111") != "000000" else "111111")
    await page.click("#register-submit")
    await page.wait_for_selector("#register-error:not([hidden])")
    assert await page.text_content("#register-error") == "验证码不正确，还可尝试 4 次。"
    await shot(page, shots, "register-wrong-code")
    await page.fill("#reg-otp", server.last_code("13700001111"))
    await page.click("#register-submit")
    await page.wait_for_selector("#view-ready:not([hidden])", timeout=10_000)

    # the venue closes while the page is open: the check-in API refuses with 410
    sync_redis.hset(server.keys.venue(9401), "active", "0")
    await page.click("#checkin-button")
    await page.wait_for_selector("#message:not([hidden])", timeout=10_000)
    assert await page.text_content("#message") == "场所码已失效，请向场所索取新的场所码。"
    assert await page.is_visible("#view-ready") and await page.is_enabled("#checkin-button")
    await shot(page, shots, "venue-closed")
    await ctx.close()


async def test_overload_and_network_failures_are_explained(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    """Shedding (503 + Retry-After) and a lost connection, as the phone sees them."""
    from playwright.async_api import expect

    token = put_venue(sync_redis, server, 9501, "幸福路社区菜市场")
    ctx = await new_phone(browser)
    page = await ctx.new_page()
    await page.goto(f"{server.base}/v/{token}")
    await register(page, server, "王五", "13600002222", id_number(11))

    async def shed(route: Any) -> None:
        await route.fulfill(
            status=503,
            headers={"Retry-After": "7", "Content-Type": "application/problem+json"},
            body='{"status": 503, "title": "Service unavailable", "detail": "overloaded"}',
        )

    await page.route("**/v1/checkins", shed)
    await page.click("#checkin-button")
    await page.wait_for_selector("#message:not([hidden])")
    assert await page.text_content("#message") == "当前登记人数较多，系统繁忙，请 7 秒后再试。"
    assert await page.is_enabled("#checkin-button")
    await shot(page, shots, "overloaded")
    await page.unroute("**/v1/checkins")

    # the connection drops: the same check-in (same client_id) is retried, then explained
    bodies: list[dict[str, Any]] = []

    async def drop(route: Any) -> None:
        bodies.append(route.request.post_data_json)
        await route.abort("connectionreset")

    await page.route("**/v1/checkins", drop)
    await page.click("#checkin-button")
    await expect(page.locator("#message")).to_have_text(QUEUED_ZH, timeout=10_000)
    assert len(bodies) == 3 and len({b["client_id"] for b in bodies}) == 1
    assert await page.locator("#queue-list li").count() == 1
    assert await page.get_attribute("#queue-list li", "data-client-id") == bodies[0]["client_id"]
    await page.unroute("**/v1/checkins")

    # and a new tap goes through with a new client_id
    await page.click("#checkin-button")
    await page.wait_for_selector("#view-result:not([hidden])", timeout=10_000)
    assert await page.get_attribute("#result-panel", "data-verdict") == "pass"
    events = stream_entries(sync_redis, server, 9501)
    assert len(events) == 1
    # the queued scan, uploaded now, is a repeat of that stay (same person, venue, minute): no second one
    await page.click("#result-back")
    await page.click("#queue-send")
    await page.wait_for_selector("#queue", state="hidden", timeout=10_000)
    assert len(stream_entries(sync_redis, server, 9501)) == 1
    await ctx.close()


async def test_door_pass_shows_a_qr_that_refreshes_and_companions_are_removed(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    import zxingcpp
    from PIL import Image

    token = put_venue(sync_redis, server, 9501, "幸福路社区卫生服务中心")
    ctx = await new_phone(browser, viewport={"width": 390, "height": 844})
    page = await ctx.new_page()
    await page.clock.install()
    page.on("dialog", lambda d: d.accept())
    await page.goto(f"{server.base}/v/{token}")
    await register(page, server, "赵六", "13600003333", id_number(21))
    # a family member added and removed from the page
    await page.click("#companion-toggle")
    await page.fill("#cmp-name", "赵小宝")
    await page.fill("#cmp-id", id_number(22))
    await page.click("#companion-submit")
    await page.locator("#companion-choices .remove").wait_for(timeout=10_000)
    await shot(page, shots, "companion-added")
    await page.click("#companion-choices .remove")
    await page.wait_for_selector("#companion-removed:not([hidden])")
    assert await page.locator("#companion-choices li").count() == 0
    stored = await page.evaluate("JSON.parse(localStorage.getItem('venue-checkin.resident'))")
    with server.api() as c:
        listed = c.get("/v1/residents/me/companions", headers={"Authorization": f"Bearer {stored['token']}"})
    assert listed.json() == []

    # the pass: a QR a door scanner reads, replaced before it expires
    await page.click("#pass-button")
    qr = page.locator("#pass-qr")
    await expect_attr(page, "#pass-qr", "data-pass")
    first = await qr.get_attribute("data-pass")
    path = shots / "pass.png"
    await qr.screenshot(path=str(path))
    decoded = [r.text for r in zxingcpp.read_barcodes(Image.open(path))]
    assert decoded == [first]
    await shot(page, shots, "pass-view")
    await page.clock.fast_forward("01:45")
    second = await wait_for_new_pass(page, first)
    assert second != first and second.startswith("p1.")
    device = None
    with server.api() as c:
        r = c.post(
            "/v1/keys",
            json={"role": "device", "venue_id": 9501},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        device = r.json()["key"]
        r = c.post(
            "/v1/sentinel/scans",
            json={"scans": [{"pass": second}]},
            headers={"Authorization": f"Bearer {device}"},
        )
    assert r.json()["results"][0]["status"] == 201, r.text
    await ctx.close()


async def expect_attr(page: Any, selector: str, name: str) -> None:
    from playwright.async_api import expect

    await expect(page.locator(selector)).to_have_attribute(name, re.compile(r"^p1\."))


async def wait_for_new_pass(page: Any, old: str) -> str:
    from playwright.async_api import expect

    await expect(page.locator("#pass-qr")).not_to_have_attribute("data-pass", old, timeout=10_000)
    return str(await page.locator("#pass-qr").get_attribute("data-pass"))
