"""The phone page's door pass in Chromium: the QR it shows stays the same while no door has read it,
and is replaced within seconds of a read (a pass is read once: docs/ARCHITECTURE.md, "Residents and
identity")."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.support.access_world import venue_body
from tests.support.ingest import born_years_ago
from tests.support.servers import ingest_server
from tests.support.values import admin_headers

pytestmark = pytest.mark.browser


async def test_the_phone_replaces_its_pass_right_after_a_door_reads_it(
    tmp_path: Path, prefix: str, browser: Any
) -> None:
    from playwright.async_api import expect

    with (
        ingest_server(tmp_path, prefix) as (base, _keyring, _log),
        httpx.Client(base_url=base, timeout=10) as api,
    ):
        line = msgspec.json.encode(
            {"name": "陈一", "phone": "13900000301", "id_number": born_years_ago(30, 301)}
        )
        r = api.post("/v1/residents/import", content=line, headers=admin_headers())
        resident = json.loads(r.text.splitlines()[0])
        venue = api.post("/v1/venues", json=venue_body("门岗", "110101"), headers=admin_headers()).json()
        code = api.get(f"/v1/venues/{venue['venue_id']}/code", headers=admin_headers()).json()["token"]
        r = api.post(
            "/v1/keys", json={"role": "device", "venue_id": venue["venue_id"]}, headers=admin_headers()
        )
        door = {"Authorization": f"Bearer {r.json()['key']}"}

        ctx = await browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
        stored = {"token": resident["token"], "person_id": resident["person_id"]}
        await ctx.add_init_script(
            f"localStorage.setItem('venue-checkin.resident', {json.dumps(json.dumps(stored))})"
        )
        page = await ctx.new_page()
        await page.goto(f"{base}/v/{code}")
        await page.click("#pass-button")
        qr = page.locator("#pass-qr")
        await expect(qr).to_have_attribute("data-pass", re.compile(r"^p1\."))
        shown = str(await qr.get_attribute("data-pass"))
        await asyncio.sleep(7)  # two polls at least: no door read it, the same pass stays
        assert await qr.get_attribute("data-pass") == shown

        r = api.post("/v1/sentinel/scans", json={"scans": [{"pass": shown}]}, headers=door)
        assert r.json()["results"][0]["status"] == 201, r.text
        await expect(qr).not_to_have_attribute("data-pass", shown, timeout=8_000)
        fresh = str(await qr.get_attribute("data-pass"))
        # the read spent the old pass; the fresh one works, at another door too
        other_venue = api.post(
            "/v1/venues", json=venue_body("另一处", "110101"), headers=admin_headers()
        ).json()
        r = api.post(
            "/v1/keys", json={"role": "device", "venue_id": other_venue["venue_id"]}, headers=admin_headers()
        )
        elsewhere = {"Authorization": f"Bearer {r.json()['key']}"}
        r = api.post("/v1/sentinel/scans", json={"scans": [{"pass": shown}]}, headers=elsewhere)
        assert r.json()["results"][0]["error_reason"] == "pass_used", r.text
        r = api.post("/v1/sentinel/scans", json={"scans": [{"pass": fresh}]}, headers=elsewhere)
        assert r.json()["results"][0]["status"] == 201, r.text
        await ctx.close()
