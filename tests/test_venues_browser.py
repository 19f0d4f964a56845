"""The operator page in headless Chromium against a real ingest server (granian):
log in with an operator key, find the venue, the poster preview renders the
venue name and a decodable QR code (checked on a screenshot), today's entry
count shows, and rotating the code through the page invalidates the old one."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import zxingcpp
from PIL import Image

from checkin.platform.instants import local_day, now_ms
from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from tests.support.servers import ingest_server
from tests.support.values import ADMIN_KEY
from venues import codes, importer

pytestmark = pytest.mark.browser

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
NAME = "金城关夜市牛肉面"
PREVIEW_LOADED = (
    "(() => { const i = document.getElementById('poster-preview');"
    " return i.complete && i.naturalWidth > 0 })()"
)


async def poll(page: Any, script: str, timeout_s: float = 10.0) -> None:
    """Wait until ``script`` is true (page.evaluate runs outside the page's CSP, unlike wait_for_function)."""
    deadline = time.monotonic() + timeout_s
    while not await page.evaluate(script):
        assert time.monotonic() < deadline, f"timed out waiting for {script}"
        await asyncio.sleep(0.1)


@dataclass
class Server:
    base: str
    keyring: Keyring
    keys: RedisKeys


@pytest.fixture
def server(tmp_path: Path, prefix: str) -> Iterator[Server]:
    with ingest_server(tmp_path, prefix, CHECKIN_MAX_IMPORT_BYTES="4000") as (base, keyring, _log):
        yield Server(base=base, keyring=Keyring.parse(keyring), keys=RedisKeys(prefix))


def test_streamed_import_over_the_limit_is_413(server: Server) -> None:
    header = ",".join(importer.COLUMNS)
    rows = "\n".join(f"{i},店,,other,620102,620102001,620102001001,36,103,0,60," for i in range(1, 80))
    payload = (header + "\n" + rows).encode()
    # Just over the limit, so the whole body is sent before the server answers (no broken pipe).
    assert 4000 < len(payload) < 5000

    def chunks() -> Iterator[bytes]:  # chunked transfer: no Content-Length to refuse up front
        for i in range(0, len(payload), 1000):
            yield payload[i : i + 1000]

    with httpx.Client(base_url=server.base, timeout=10) as client:
        r = client.post("/v1/venues/import", content=chunks(), headers=ADMIN)
        assert r.status_code == 413 and "import limit of 4000 bytes" in r.json()["detail"]
        assert client.get("/v1/venues", headers=ADMIN).json()["items"] == []


async def test_operator_page_shows_poster_entries_and_rotates(
    server: Server, browser: Any, sync_redis: redis.Redis, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    with httpx.Client(base_url=server.base, timeout=10) as client:
        for vid, name in ((501, NAME), (502, "另一家店")):
            r = client.post(
                "/v1/venues",
                json={
                    "venue_id": vid,
                    "name": name,
                    "address": "城关区金城关 1 号",
                    "district": "620102",
                    "street": "620102001",
                    "community": "620102001001",
                    "lat": 36.06,
                    "lon": 103.83,
                },
                headers=ADMIN,
            )
            assert r.status_code == 201, r.text
        r = client.post("/v1/keys", json={"role": "operator", "venue_id": 501}, headers=ADMIN)
        key = r.json()["key"]
        old_token = client.get("/v1/venues/501/code", headers=ADMIN).json()["token"]
    day = local_day(now_ms(), "Asia/Shanghai")
    sync_redis.hincrby(server.keys.venue_entries(server.keys.shard_of(501), day), "501", 42)

    page = await browser.new_page(viewport={"width": 1200, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    response = await page.goto(f"{server.base}/operator")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]

    await page.fill("#api-key", "ck_not_a_real_key")
    await page.click("#login")
    await expect(page.locator("#message")).to_contain_text("not valid")

    await page.fill("#api-key", key)
    await page.click("#login")
    # A key bound to one venue lists only that venue, and the page opens it.
    await expect(page.locator("#venue-name")).to_have_text(NAME)
    assert await page.locator("#venue-list li").count() == 1
    assert await page.text_content("#venue-name") == NAME
    await expect(page.locator("#entries-today")).to_have_text("42")
    await poll(page, PREVIEW_LOADED)
    assert await page.text_content("#code-version") == "1"

    shot = await page.locator("#poster-preview").screenshot()
    image = Image.open(io.BytesIO(shot))
    image.save(tmp_path / "operator-preview.png")
    found = [r.text for r in zxingcpp.read_barcodes(image)]
    assert found == [f"{server.base}/v/{old_token}"], found
    full = Image.open(io.BytesIO(await page.screenshot(full_page=True)))
    full.save(tmp_path / "operator-page.png")
    assert full.size[0] >= 1200
    assert await page.locator("text=" + NAME).first.is_visible()
    # The name is drawn with real glyphs: its screenshot has plenty of dark ink.
    name_shot = Image.open(io.BytesIO(await page.locator("#venue-name").screenshot())).convert("L")
    dark = sum(1 for px in name_shot.getdata() if px < 100)
    assert dark > 20 * len(NAME), dark

    await page.click("#rotate")
    await expect(page.locator("#code-version")).to_have_text("2")
    await poll(page, PREVIEW_LOADED)
    new_url = await page.text_content("#code-url")
    assert new_url is not None and new_url != f"{server.base}/v/{old_token}"
    assert codes.verify(server.keyring, new_url.rsplit("/", 1)[1]).code_version == 2
    with httpx.Client(base_url=server.base, timeout=10) as client:
        assert client.get(f"/v/{old_token}").status_code == 410
        assert client.get(new_url.replace(server.base, "")).status_code == 200
    shot = await page.locator("#poster-preview").screenshot()
    assert [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)))] == [new_url]

    async with page.expect_download() as info:
        await page.click("#download-pdf")
    download = await info.value
    assert download.suggested_filename == "venue-501-checkin-a4.pdf"
    assert errors == []
    await page.close()
