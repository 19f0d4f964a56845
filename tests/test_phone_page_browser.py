"""The phone check-in page in headless Chromium against a real ingest server:
scan URL -> register -> check in -> the result panel colour matches the health
state set through the API -> check out."""

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

from checkin.platform import resident_tokens
from checkin.platform.keyring import Keyring
from tests.support.ingest import born_years_ago, child_id_number
from tests.support.phone import (
    CJK,
    DESKTOP,
    PHONE,
    RGB,
    VENUE_LAT,
    VENUE_LON,
    VERDICT_OF,
    City,
    Server,
    api_venue,
    background,
    both_sizes,
    font_px,
    health_key,
    id_number,
    import_resident,
    local_text,
    negative_test,
    new_phone,
    open_signed_in,
    put_venue,
    register,
    screenshot_dir,
    served,
    served_city,
    set_status,
    shot,
    stream_entries,
)
from tests.support.values import ADMIN_KEY

pytestmark = pytest.mark.browser


@pytest.fixture
def server(tmp_path: Path, prefix: str) -> Iterator[Server]:
    with served(tmp_path, prefix) as srv:
        yield srv


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return screenshot_dir(tmp_path)


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
    negative_at: datetime | None = None
    if status == "green":
        negative_at = negative_test(server, key, person_id, hours_ago=20)
    companion_id = None
    if status == "green":  # a family member, yellow, checked in from the same phone
        await page.click("#companion-toggle")
        await page.fill("#cmp-name", "李小红")
        await page.fill("#cmp-id", child_id_number(seq + 500))
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
        assert negative_at is not None
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
    await page.click("#checkout-button")  # the first tap asks again ...
    assert await page.text_content("#checkout-button") == "再点一次确认离场"
    await page.click("#checkout-button")  # ... the second checks out
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
    # kept on the phone: the grey screen says so, no verdict
    await page.wait_for_selector("#view-offline:not([hidden])", timeout=10_000)
    assert await page.text_content("#o-title") == "未联网核验"
    assert len(bodies) == 3 and len({b["client_id"] for b in bodies}) == 1
    await page.click("#offline-back")
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
    await page.fill("#cmp-id", child_id_number(22))
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


# --- the door screen, stays, queue, notices, visits, languages ------------------------------------------


async def test_a_repeat_scan_shows_the_colour_of_now_not_of_the_first_scan(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    code = put_venue(sync_redis, server, 9601, "幸福路社区菜市场")
    key = health_key(server)
    pid, token = import_resident(server.base, 9601, "钱七")
    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    await open_signed_in(page, server.base, code, pid, token)
    await page.click("#checkin-button")
    await page.wait_for_selector("#result-panel[data-verdict='pass']", timeout=10_000)
    assert await background(page, "#result-panel") == RGB["green"]
    first = await page.evaluate("JSON.parse(localStorage.getItem('venue-checkin.stays'))[0].checkin_id")

    set_status(server, key, pid, "red")  # the health feed turns them red
    await page.click("#result-back")
    await page.click("#checkin-button")  # the repeat scan within 60 s
    await page.wait_for_selector("#result-panel[data-verdict='deny']", timeout=10_000)
    assert await page.text_content("#r-verdict") == "禁止"
    assert await page.text_content("#r-reason") == "红码：禁止进入"
    assert await background(page, "#result-panel") == RGB["red"]
    # the same stay, not a second one
    stays = await page.evaluate("JSON.parse(localStorage.getItem('venue-checkin.stays'))")
    assert [s["checkin_id"] for s in stays] == [first]
    assert len([e for e in stream_entries(sync_redis, server, 9601) if e.kind == "in"]) == 1
    # a guard reads it at 1 m: the big word and the live band
    assert await font_px(page, "#r-verdict") >= 48
    assert await page.locator("#r-live").is_visible()
    await both_sizes(page, shots, "door-repeat-deny")
    await ctx.close()


async def test_a_resumed_page_shows_only_what_the_server_says_now(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    code = put_venue(sync_redis, server, 9602, "幸福路社区图书馆")
    key = health_key(server)
    pid, token = import_resident(server.base, 9602, "孙八")
    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    await open_signed_in(page, server.base, code, pid, token)
    await page.click("#checkin-button")
    await page.wait_for_selector("#result-panel[data-verdict='pass']", timeout=10_000)
    kept = await page.evaluate("localStorage.getItem('venue-checkin.stays')")
    assert "verdict" not in kept and "status" not in kept  # the phone keeps no verdict to show later

    set_status(server, key, pid, "red")
    await page.goto(f"{server.base}/v/{code}")  # the page was closed and opened again
    await page.wait_for_selector("#stays:not([hidden])")
    assert await page.text_content("#stays h2") == "在场中"
    elapsed = await page.text_content("#stay-list .stay-elapsed")
    assert elapsed is not None and elapsed.startswith("已停留 ")
    assert (await page.locator("#stay-list .stay-times").all_text_contents())[1].startswith("预计 ")
    await shot(page, shots, "stays-phone")
    await page.click("#stay-list .stay-view")
    await page.wait_for_selector("#result-panel[data-verdict='deny']", timeout=10_000)
    assert await background(page, "#result-panel") == RGB["red"]

    # offline: no verdict and no live clock, a sentence saying it cannot be checked now
    await page.click("#result-back")
    await ctx.set_offline(True)
    await page.click("#stay-list .stay-view")
    await page.wait_for_selector("#r-stale:not([hidden])", timeout=10_000)
    assert await page.get_attribute("#result-panel", "data-verdict") == "unknown"
    assert await page.text_content("#r-verdict") == "无法核验"
    assert "无法向服务器核验" in (await page.text_content("#r-stale-text") or "")
    assert await page.is_hidden("#r-live") and await page.is_hidden("#r-people")
    assert await background(page, "#result-panel") not in RGB.values()
    await both_sizes(page, shots, "door-resume-offline")
    await ctx.set_offline(False)
    set_status(server, key, pid, "green")
    await page.click("#r-retry")
    await page.wait_for_selector("#result-panel[data-verdict='pass']", timeout=10_000)
    assert await page.is_visible("#r-live")
    # checked out from the door screen (two taps): the stay leaves 在场中
    await page.click("#checkout-button")
    await page.click("#checkout-button")
    await page.wait_for_selector("#checkout-done:not([hidden])", timeout=10_000)
    await page.click("#result-back")
    assert await page.is_hidden("#stays")
    await ctx.close()


async def test_the_verdict_names_the_venue_it_is_for(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    """A supermarket stay's result opened from a noodle shop's poster names the supermarket, large,
    on the verdict panel, and the poster's venue card is not shown above it."""
    noodles = put_venue(sync_redis, server, 9611, "老王牛肉面馆")
    market = put_venue(sync_redis, server, 9612, "幸福路华联超市")
    pid, token = import_resident(server.base, 9611, "吴十一")
    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    await open_signed_in(page, server.base, market, pid, token)
    await page.click("#checkin-button")
    await page.wait_for_selector("#result-panel[data-verdict='pass']", timeout=10_000)
    assert await page.text_content("#r-panel-venue") == "幸福路华联超市"
    await page.goto(f"{server.base}/v/{noodles}")
    await page.wait_for_selector("#stays:not([hidden])")
    assert await page.is_visible("#venue-card")  # before the tap: the poster's venue
    await page.click("#stay-list .stay-view")
    await page.wait_for_selector("#result-panel[data-verdict='pass']", timeout=10_000)
    assert await page.text_content("#r-panel-venue") == "幸福路华联超市"
    assert await page.is_hidden("#venue-card")
    assert "老王牛肉面馆" not in await visible_text(page)
    for size in (PHONE, DESKTOP):
        await page.set_viewport_size(size)
        assert await font_px(page, "#r-panel-venue") >= 28  # read at 1 m
        panel = await page.locator("#result-panel").bounding_box()
        name = await page.locator("#r-panel-venue").bounding_box()
        assert (
            panel
            and name
            and panel["y"] <= name["y"]
            and name["y"] + name["height"] <= panel["y"] + panel["height"]
        )
        assert name["y"] < size["height"]  # on the first screen
    for lang, elder in (("en", False), ("zh-CN", True)):
        await page.evaluate(
            "([l, e]) => { localStorage.setItem('venue-checkin.lang', JSON.stringify(l)); "
            "localStorage.setItem('venue-checkin.elder', JSON.stringify(e)); }",
            [lang, elder],
        )
        await page.goto(f"{server.base}/v/{noodles}")
        await page.wait_for_selector("#stays:not([hidden])")
        await page.click("#stay-list .stay-view")
        await page.wait_for_selector("#result-panel[data-verdict='pass']", timeout=10_000)
        assert await page.text_content("#r-panel-venue") == "幸福路华联超市"
        assert await font_px(page, "#r-panel-venue") >= 28
    await both_sizes(page, shots, "door-names-venue")
    await ctx.close()


async def test_a_family_is_judged_person_by_person_at_a_venue_that_needs_a_test(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    code = put_venue(
        sync_redis, server, 9603, "幸福路社区医院", requires_negative_test_hours=72, dwell_minutes=45
    )
    key = health_key(server)
    pid, token = import_resident(server.base, 9603, "周九")
    negative_test(server, key, pid, 20)
    family = []
    with server.api() as c:
        for idn, name in ((child_id_number(9604), "周小宝"), (born_years_ago(80, 9605), "吴奶奶")):
            r = c.post(
                "/v1/residents/me/companions",
                json={"name": name, "id_number": idn},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 201, r.text
            family.append(int(r.json()["person_id"]))
    child, grandmother = family
    set_status(server, key, child, "red")
    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    await open_signed_in(page, server.base, code, pid, token)
    # the venue's rules before the tap
    rules = await page.locator("#venue-rules li").all_text_contents()
    assert rules == ["需 72 小时内核酸阴性", "预计停留 45 分钟"]
    await page.locator("#companion-choices input[type=checkbox]").nth(1).wait_for()
    for box in await page.locator("#companion-choices input[type=checkbox]").all():
        await box.check()
    await both_sizes(page, shots, "family-ready")
    await page.click("#checkin-button")
    await page.wait_for_selector("#view-result:not([hidden])", timeout=10_000)
    # the adult is green and tested, but the big panel is the group's worst: 禁止, red
    assert await page.get_attribute("#result-panel", "data-verdict") == "deny"
    assert await background(page, "#result-panel") == RGB["red"]
    assert await page.text_content("#r-verdict") == "禁止"
    assert await page.text_content("#r-status") == "3 人同行 · 2 人禁止 · 0 人限制"
    panels = {
        pid: ("pass", "通行", None),
        child: ("deny", "禁止", "红码：禁止进入"),
        grandmother: ("deny", "禁止", "没有本场所要求的 72 小时内核酸阴性结果"),
    }
    for person, (verdict, word, reason) in panels.items():
        panel = page.locator(f"#r-people .person[data-person-id='{person}']")
        assert await panel.is_visible()
        assert await panel.get_attribute("data-verdict") == verdict
        assert await panel.locator(".p-verdict").text_content() == word
        assert (
            await panel.evaluate("el => getComputedStyle(el).backgroundColor")
            == RGB["green" if verdict == "pass" else "red"]
        )
        if reason is None:
            assert await panel.locator(".p-reason").count() == 0
        else:
            assert await panel.locator(".p-reason").text_content() == reason
            assert await panel.locator(".p-reason").is_visible()  # words on the screen, no tooltip
    assert await font_px(page, "#r-verdict") >= 48
    assert await font_px(page, "#r-people .p-verdict") >= 28
    assert await font_px(page, "#r-people .p-reason") >= 16
    # the anti-screenshot band moves (an animation, not only the clock) in the colour of the day
    assert (
        await page.locator(".live-dot").evaluate("el => getComputedStyle(el).animationName") == "live-slide"
    )
    first = await page.locator(".live-dot").evaluate("el => el.getBoundingClientRect().left")
    await page.wait_for_timeout(700)
    later = await page.locator(".live-dot").evaluate("el => el.getBoundingClientRect().left")
    assert abs(later - first) > 5
    day = await page.text_content("#r-day")
    assert day is not None and re.fullmatch(r"今日色：[紫蓝橙青粉棕黑]", day)
    assert re.search(r"day-[0-6]", await page.get_attribute("#r-track", "class") or "")
    await both_sizes(page, shots, "family-result")
    await ctx.close()


async def test_a_scan_without_network_waits_on_the_phone_and_is_sent_once(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    code = put_venue(sync_redis, server, 9606, "幸福路地铁站")
    pid, token = import_resident(server.base, 9606, "郑十")
    ctx = await new_phone(browser, viewport=PHONE)
    page = await ctx.new_page()
    await open_signed_in(page, server.base, code, pid, token)

    await ctx.set_offline(True)
    tapped = datetime.now(UTC)
    await page.click("#checkin-button")
    # the grey screen: kept on the phone, not verified by anyone
    await page.wait_for_selector("#view-offline:not([hidden])", timeout=10_000)
    assert await page.text_content("#o-title") == "未联网核验"
    assert await page.text_content("#o-state") == "待上传"
    queued = await page.evaluate("JSON.parse(localStorage.getItem('venue-checkin.queue'))")
    assert len(queued) == 1 and re.fullmatch(r"[0-9a-f]{32}", queued[0]["client_id"])
    scanned = datetime.fromisoformat(queued[0]["scanned_at"].replace("Z", "+00:00"))
    assert abs((scanned - tapped).total_seconds()) < 3
    await both_sizes(page, shots, "queue-waiting")
    await page.click("#offline-back")
    assert await page.text_content("#queue-list .queue-state") == "待上传"
    assert await page.is_visible("#view-ready") and await page.is_enabled("#checkin-button")
    await page.wait_for_timeout(1500)  # time passes before the network comes back
    assert stream_entries(sync_redis, server, 9606) == []

    await ctx.set_offline(False)  # the `online` event sends the queue
    await page.wait_for_selector("#queue", state="hidden", timeout=15_000)
    await page.wait_for_selector("#stays:not([hidden])", timeout=10_000)
    assert await page.text_content("#message") == "1 条待上传的登记已上传。"
    events = [e for e in stream_entries(sync_redis, server, 9606) if e.kind == "in"]
    assert len(events) == 1 and events[0].person_id == pid
    # recorded at the tap, not at the upload
    assert abs(events[0].at_ms / 1000 - scanned.timestamp()) < 1
    assert await page.evaluate("localStorage.getItem('venue-checkin.queue')") is None
    await shot(page, shots, "queue-sent-phone")

    # the first send did arrive but its answer was lost: the upload is a repeat, not a second stay
    other = put_venue(sync_redis, server, 9607, "幸福路体育馆")
    await page.goto(f"{server.base}/v/{other}")
    await page.wait_for_selector("#view-ready:not([hidden])")
    arrived: list[int] = []

    async def lose_answer(route: Any) -> None:
        response = await route.fetch()
        arrived.append(response.status)
        await route.abort("connectionreset")

    await page.route("**/v1/checkins", lose_answer)
    await page.click("#checkin-button")
    await page.wait_for_selector("#view-offline:not([hidden])", timeout=15_000)
    assert arrived[0] == 201 and set(arrived[1:]) <= {200}
    await page.unroute("**/v1/checkins")
    await page.click("#offline-back")
    await page.click("#queue-send")
    await page.wait_for_selector("#queue", state="hidden", timeout=10_000)
    events = [e for e in stream_entries(sync_redis, server, 9607) if e.kind == "in"]
    assert len(events) == 1
    # one place at a time: the stay at the stadium ended the one at the station, which leaves 在场中
    stays = await page.evaluate("JSON.parse(localStorage.getItem('venue-checkin.stays'))")
    assert [s["checkin_id"] for s in stays] == [events[0].checkin_id]
    assert await page.locator("#stay-list li").count() == 1
    assert [e.ended_by for e in stream_entries(sync_redis, server, 9606) if e.kind == "out"] == ["next_stay"]
    await page.locator("#stay-list li .stay-checkout").click()  # asks again
    assert await page.locator("#stay-list li .stay-checkout").text_content() == "再点一次确认离场"
    await page.locator("#stay-list li .stay-checkout").click()
    await expect_count(page, "#stay-list li", 0)
    assert [e.ended_by for e in stream_entries(sync_redis, server, 9607) if e.kind == "out"] == ["checkout"]
    await ctx.close()


async def expect_count(page: Any, selector: str, count: int) -> None:
    from playwright.async_api import expect

    await expect(page.locator(selector)).to_have_count(count, timeout=10_000)


async def visible_text(page: Any) -> str:
    """The text a person sees on the page, without the language switch (named in the other language)."""
    return str(
        await page.evaluate(
            """() => {
              const t = document.getElementById('lang-toggle');
              const keep = t.textContent; t.textContent = '';
              const text = document.body.innerText; t.textContent = keep; return text; }"""
        )
    )


async def test_english_and_the_large_text_mode(
    server: Server, browser: Any, sync_redis: redis.Redis, shots: Path
) -> None:
    code = put_venue(
        sync_redis, server, 9608, "Riverside Market", address="12 River Road", requires_negative_test_hours=48
    )
    pid, token = import_resident(server.base, 9608, "Li Lei")
    ctx = await new_phone(browser, viewport=PHONE, locale="en-GB")  # Accept-Language: en-GB
    page = await ctx.new_page()
    await page.goto(f"{server.base}/v/{code}")
    await page.wait_for_selector("#view-register:not([hidden])")
    assert await page.get_attribute("html", "lang") == "en"
    assert await page.text_content("#lang-toggle") == "中文"
    text = await visible_text(page)
    assert not CJK.search(text), CJK.findall(text)
    assert "Negative test within 48 h required" in text and "Your details" in text
    await both_sizes(page, shots, "en-register")
    # a pasted number with spaces and dashes is kept whole (no maxlength cuts it)
    await page.fill("#reg-phone", "+86 138-1234-5678")
    assert await page.input_value("#reg-phone") == "+86 138-1234-5678"
    await page.click("#otp-send")
    await page.wait_for_selector("#message:not([hidden])", timeout=10_000)
    assert await page.text_content("#message") == "Code sent to 138****5678; it is valid for 5 minutes."

    await open_signed_in(page, server.base, code, pid, token)
    await page.click("#checkin-button")
    await page.wait_for_selector("#view-result:not([hidden])", timeout=10_000)
    assert await page.text_content("#r-verdict") == "NO ENTRY"
    assert await page.text_content("#r-reason") == "No negative test within the 48 h this venue requires"
    text = await visible_text(page)
    assert not CJK.search(text), CJK.findall(text)
    assert re.search(r"Colour of the day: (purple|blue|orange|teal|pink|brown|black)", text)
    assert await font_px(page, "#r-verdict") >= 48
    await both_sizes(page, shots, "en-result")
    await page.click("#result-back")
    await page.click("#visits-button")
    await page.wait_for_selector("#visits-status.error", timeout=10_000)
    assert (
        await page.text_content("#visits-status") == "Your visits cannot be read right now; try again later."
    )
    text = await visible_text(page)
    assert not CJK.search(text), CJK.findall(text)
    await both_sizes(page, shots, "en-visits-down")
    await page.click("#visits-back")
    await page.click("#pass-button")
    await page.wait_for_selector("#pass-qr[data-pass]", timeout=10_000)
    text = await visible_text(page)
    assert not CJK.search(text), CJK.findall(text)
    await page.click("#pass-back")

    # the choice is remembered: back to Chinese, which the next load (and the server) keeps
    await page.click("#lang-toggle")
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert await page.text_content("#checkin-button") == "登记"
    await page.reload()
    await page.wait_for_selector("#view-ready:not([hidden])")
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert await page.text_content("#visits-button") == "我的行程"
    bad = await page.goto(f"{server.base}/v/not-a-code")
    assert bad is not None and bad.status == 400
    assert await page.text_content("#error-title") == "场所码无效"

    # 长辈模式: larger type, higher contrast, fewer words; remembered too
    await page.goto(f"{server.base}/v/{code}")
    await page.wait_for_selector("#view-ready:not([hidden])")
    normal = await font_px(page, "#checkin-button")
    words = len(await visible_text(page))
    assert await page.is_visible("#revoke-button")
    await page.click("#elder-toggle")
    assert await page.get_attribute("#elder-toggle", "aria-pressed") == "true"
    assert await font_px(page, "#checkin-button") > normal * 1.3
    assert await font_px(page, "#venue-rules li") >= 22
    assert await page.is_hidden("#revoke-button") and await page.is_hidden("#view-ready .wordy >> nth=0")
    assert len(await visible_text(page)) < words
    assert await page.text_content("#pass-button") == "通行码"
    muted = await page.locator("#venue-address").evaluate("el => getComputedStyle(el).color")
    assert muted == "rgb(46, 51, 56)"  # darker than the standard grey
    await page.reload()
    await page.wait_for_selector("#view-ready:not([hidden])")
    assert await page.evaluate("document.documentElement.classList.contains('elder')")
    await both_sizes(page, shots, "elder-ready")
    await page.click("#stay-list .stay-view")
    await page.wait_for_selector("#result-panel[data-verdict='deny']", timeout=10_000)
    assert await font_px(page, "#r-verdict") >= 90
    await both_sizes(page, shots, "elder-result")
    await ctx.close()


@pytest.fixture
def city(tmp_path: Path, make_settings: Any) -> Iterator[City]:
    with served_city(tmp_path, make_settings) as world:
        yield world


async def test_a_notice_reaches_the_exposed_resident_and_no_one_else(
    city: City, browser: Any, shots: Path
) -> None:
    site_vid, site_code = api_venue(city.base, "幸福路菜市场")
    _, other_code = api_venue(city.base, "滨河路图书馆")
    exposed = import_resident(city.base, 9701, "冯一")
    elsewhere = import_resident(city.base, 9702, "陈二")
    pages = []
    for (pid, token), code in ((exposed, site_code), (elsewhere, other_code)):
        ctx = await new_phone(browser, viewport=PHONE)
        page = await ctx.new_page()
        await open_signed_in(page, city.base, code, pid, token)
        await page.click("#checkin-button")
        await page.wait_for_selector("#view-result:not([hidden])", timeout=10_000)
        pages.append(page)
    mine, theirs = pages
    auth = {"Authorization": f"Bearer {exposed[1]}"}
    for _ in range(150):  # the sink writes the stays within a second or two
        visits = httpx.get(f"{city.base}/v1/residents/me/visits", headers=auth, timeout=10)
        if visits.status_code == 200 and visits.json()["count"] == 1:
            break
        time.sleep(0.2)
    assert visits.json()["visits"][0]["venue_name"] == "幸福路菜市场", visits.text

    key = httpx.post(
        f"{city.base}/v1/keys",
        json={"role": "tracer", "name": "phone-page test"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    ).json()["key"]
    now = datetime.now(UTC)
    since, until = now - timedelta(hours=2), now + timedelta(hours=1)
    flagged = httpx.post(
        f"{city.tracing}/v1/exposure-sites",
        json={
            "venue_id": site_vid,
            "since": since.isoformat().replace("+00:00", "Z"),
            "until": until.isoformat().replace("+00:00", "Z"),
            "reason": "case 12",
            "level": "test",
            "message": "请到幸福路社区卫生站检测",
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert flagged.status_code == 201, flagged.text
    t0 = time.monotonic()
    card = mine.locator("#notice-list li.exposure")
    for _ in range(40):
        await mine.reload()
        await mine.wait_for_selector("#view-ready:not([hidden])")
        try:
            await card.wait_for(timeout=500)
            break
        except Exception:
            continue
    seen_after = time.monotonic() - t0
    assert await card.count() == 1, "no notice on the exposed resident's page"
    print(f"notice on the page {seen_after:.1f} s after the flag")
    assert seen_after < 20
    assert await card.get_attribute("data-notice-id") == flagged.json()["site_id"]
    assert await card.locator(".n-title").text_content() == "请尽快做核酸检测"
    local = ZoneInfo("Asia/Shanghai")
    window = f"在 {since.astimezone(local):%m/%d %H:%M} 至 {until.astimezone(local):%m/%d %H:%M} 期间"
    body = await card.locator(".n-body").text_content() or ""
    assert "“幸福路菜市场”" in body and window in body, body
    assert await card.locator(".n-advice").text_content() == "请尽快就近进行一次核酸检测。"
    assert await card.locator(".n-message-text").text_content() == "请到幸福路社区卫生站检测"
    # before anything else on the page
    notice_top = await mine.locator("#notices").evaluate("el => el.getBoundingClientRect().top")
    venue_top = await mine.locator("#venue-name").evaluate("el => el.getBoundingClientRect().top")
    assert notice_top < venue_top
    await both_sizes(mine, shots, "notice")

    await theirs.reload()
    await theirs.wait_for_selector("#view-ready:not([hidden])")
    await theirs.wait_for_timeout(1000)
    assert await theirs.is_hidden("#notices") and await theirs.locator("#notice-list li").count() == 0
    texts = [json.loads(x) for x in city.outbox.read_text().splitlines() if x.strip()]
    assert [m["phone"] for m in texts if m["kind"] == "notice"] == ["13900009701"]

    await card.locator(".n-ack").click()
    await mine.wait_for_selector("#notices", state="hidden", timeout=10_000)
    read = httpx.get(f"{city.base}/v1/residents/me/notices", headers=auth, timeout=10).json()
    assert read["unread"] == 0 and read["notices"][0]["acked_at"]
    await mine.reload()
    await mine.wait_for_selector("#view-ready:not([hidden])")
    await mine.wait_for_timeout(500)
    assert await mine.is_hidden("#notices")

    # 我的行程: the resident's own stays
    await mine.click("#visits-button")
    await mine.wait_for_selector("#visit-list li", timeout=10_000)
    assert await mine.text_content("#visits-status") == "共 1 次登记"
    assert await mine.text_content("#visit-list .v-venue") == "幸福路菜市场"
    assert await mine.text_content("#visit-list .v-verdict") == "通行"
    assert "在场中" in (await mine.text_content("#visit-list .v-time") or "")
    await both_sizes(mine, shots, "visits")
    for page in pages:
        await page.context.close()
