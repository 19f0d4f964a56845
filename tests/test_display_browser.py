"""The door screen of a venue with a rotating code, in headless Chromium against a real ingest server:
opened once with the venue's device key, it shows a QR that zxing-cpp reads as a check-in URL that
works, and a different one after a step (CHECKIN_ROTATING_STEP_S=3 here). The code may turn over
between two looks at the screen, so each look accepts the code shown just before or just after it."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.access_world import venue_body
from tests.support.ingest import id_number
from tests.support.servers import ingest_server
from tests.support.values import ADMIN_KEY
from tests.support.waiting import eventually

pytestmark = pytest.mark.browser

STEP_S = 3
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def base(tmp_path: Path, prefix: str) -> Iterator[str]:
    with ingest_server(tmp_path, prefix, CHECKIN_ROTATING_STEP_S=str(STEP_S)) as (url, _keyring, _log):
        yield url


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CHECKIN_SCREENSHOT_DIR") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def decode(png: bytes) -> list[str]:
    import zxingcpp
    from PIL import Image

    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


def screen_venue(base: str) -> tuple[int, str, str]:
    """A venue switched to a screen code, its device key and a resident's token."""
    with httpx.Client(base_url=base, timeout=10) as c:
        venue = c.post("/v1/venues", json=venue_body("幸福路社区服务中心", "620102"), headers=ADMIN).json()
        vid = int(venue["venue_id"])
        assert c.patch(f"/v1/venues/{vid}", json={"code_mode": "rotating"}, headers=ADMIN).status_code == 200
        device = c.post("/v1/keys", json={"role": "device", "venue_id": vid}, headers=ADMIN).json()["key"]
        line = json.dumps({"name": "张三", "phone": "13900000001", "id_number": id_number(1)})
        r = c.post("/v1/residents/import", content=line.encode(), headers=ADMIN)
        token = json.loads(r.content.splitlines()[0])["token"]
    return vid, str(device), str(token)


async def shown_url(page: Any, previous: str | None = None, timeout_s: float = 4 * STEP_S) -> str:
    """The check-in URL the screen shows now (a new one when ``previous`` is given)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        url = await page.get_attribute("#qr", "data-url")
        if url and url != previous and await page.is_visible("#qr"):
            return str(url)
        await page.wait_for_timeout(100)
    raise AssertionError(f"the screen did not show a {'new ' if previous else ''}code in {timeout_s} s")


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}])
async def test_the_screen_shows_a_working_code_and_replaces_it(
    base: str, browser: Any, shots: Path, viewport: dict[str, int]
) -> None:
    vid, device, resident = screen_venue(base)
    ctx = await browser.new_context(viewport=viewport, locale="zh-CN")
    page = await ctx.new_page()
    await page.goto(f"{base}/display/{vid}?key={device}")
    assert page.url == f"{base}/display/{vid}"  # the key left the address bar
    cookies = await ctx.cookies()
    assert [c["httpOnly"] for c in cookies if c["name"] == "checkin_display"] == [True]

    before = await shown_url(page)
    size = f"{viewport['width']}x{viewport['height']}"
    png = await page.screenshot(path=str(shots / f"display-{size}.png"))
    after = await shown_url(page)
    seen = decode(png)  # read off the whole screen, as a phone camera would
    assert seen in ([before], [after])
    first = seen[0]
    box = await page.locator("#qr").bounding_box()
    assert box is not None and box["width"] >= 0.45 * min(viewport["width"], viewport["height"])
    assert first.startswith(f"{base}/v/")
    with httpx.Client(base_url=base, timeout=10) as c:
        r = c.post(
            "/v1/checkins",
            json={"code": first.rsplit("/", 1)[1]},
            headers={"Authorization": f"Bearer {resident}"},
        )
    assert r.status_code == 201, r.text
    assert r.json()["venue"]["venue_id"] == vid

    second = await shown_url(page, previous=first)
    assert second != first
    seen = decode(await page.locator("#qr").screenshot())
    assert seen in ([second], [await shown_url(page)])
    # a code two steps old no longer checks anyone in: wait until its page says so, then scan it
    token = first.rsplit("/", 1)[1]

    async def expired() -> bool:
        async with httpx.AsyncClient(base_url=base, timeout=10) as c:
            return (await c.get(f"/v/{token}")).status_code == 410

    assert await eventually(expired, timeout=3 * STEP_S + 5, interval=0.25)
    with httpx.Client(base_url=base, timeout=10) as c:
        r = c.post(
            "/v1/checkins",
            json={"code": first.rsplit("/", 1)[1]},
            headers={"Authorization": f"Bearer {resident}"},
        )
    assert r.status_code == 410 and r.json()["reason"] == "code_expired", r.text
    await ctx.close()


async def test_a_screen_opened_without_the_key_says_what_to_do(base: str, browser: Any, shots: Path) -> None:
    vid, _device, _resident = screen_venue(base)
    ctx = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = await ctx.new_page()
    r = await page.goto(f"{base}/display/{vid}")
    assert r is not None and r.status == 401
    assert "设备密钥" in (await page.text_content("h1") or "")
    assert "key=" in (await page.text_content("#error-message") or "")
    await page.screenshot(path=str(shots / "display-no-key.png"))
    await ctx.close()
