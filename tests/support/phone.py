"""The phone page's browser tests share these: the served ingest API as the tests see it, venues and
residents written for them, a phone in Chromium, screenshots, and what a page shows (colour, size,
position)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import redis

from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.scan_stream import decode_scan
from tests.support.ingest import write_venue
from tests.support.servers import ingest_server
from tests.support.values import ADMIN_KEY, free_port
from venues import codes

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


def id_number(seq: int) -> str:
    """A well-formed 18-digit resident id (GB 11643 check digit)."""
    body = f"620102199{seq % 10}0101{seq % 1000:03d}"[:17]
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(c) * w for c, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def put_venue(sync_redis: redis.Redis, srv: Server, venue_id: int, name: str, **fields: Any) -> str:
    fields.setdefault("address", "城关区幸福路 12 号")
    place = ("620102", "620102001", "620102001001", VENUE_LAT, VENUE_LON)
    venue = write_venue(sync_redis, srv.keys, venue_id, place, name=name, **fields)
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
    options.setdefault("locale", "zh-CN")
    return await browser.new_context(
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        timezone_id="Europe/London",  # the page must show the configured zone, not the phone's
        **options,
    )


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


CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
PHONE = {"width": 390, "height": 844}
SIGN_IN_JS = (
    "([t, p]) => localStorage.setItem('venue-checkin.resident', JSON.stringify({token: t, person_id: p}))"
)
DESKTOP = {"width": 1440, "height": 900}


def import_resident(base: str, seq: int, name: str) -> tuple[int, str]:
    """A resident registered through the registry's bulk import (the tests of registration itself
    use the one-time code flow above)."""
    line = json.dumps({"name": name, "phone": f"139{seq:08d}", "id_number": id_number(seq)})
    r = httpx.post(
        f"{base}/v1/residents/import",
        content=line.encode(),
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body = json.loads(r.text.splitlines()[0])
    return int(body["person_id"]), str(body["token"])


async def open_signed_in(page: Any, base: str, code: str, person_id: int, token: str) -> None:
    """Open the venue page as a phone that registered before (its token in localStorage)."""
    await page.goto(f"{base}/v/{code}")
    await page.evaluate(SIGN_IN_JS, [token, person_id])
    await page.reload()
    await page.wait_for_selector("#view-ready:not([hidden])")


async def both_sizes(page: Any, folder: Path, name: str) -> None:
    """Screenshots at phone (390x844) and desktop (1440x900) size."""
    await page.set_viewport_size(DESKTOP)
    await shot(page, folder, f"{name}-desktop")
    await page.set_viewport_size(PHONE)
    await shot(page, folder, f"{name}-phone")


async def background(page: Any, selector: str) -> str:
    return str(await page.locator(selector).first.evaluate("el => getComputedStyle(el).backgroundColor"))


async def font_px(page: Any, selector: str) -> float:
    size = await page.locator(selector).first.evaluate("el => getComputedStyle(el).fontSize")
    return float(str(size).removesuffix("px"))


def negative_test(srv: Server, key: str, person_id: int, hours_ago: float) -> datetime:
    """A negative test of ``person_id`` sampled ``hours_ago`` hours ago, from the health feed; its instant."""
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=hours_ago)
    with srv.api() as c:
        r = c.post(
            "/v1/health/tests",
            json=[
                {
                    "person_id": person_id,
                    "sampled_at": at.isoformat().replace("+00:00", "Z"),
                    "result": "negative",
                }
            ],
            headers={"Authorization": f"Bearer {key}"},
        )
    assert r.status_code in (200, 201, 204), r.text
    return at


@dataclass
class City:
    """The ingest API and the tracing service (sink, venue mirror, notices) of one test's settings."""

    base: str
    tracing: str
    settings: Any
    outbox: Path


def api_venue(base: str, name: str) -> tuple[int, str]:
    from tests.support.access_world import venue_body

    adm = {"Authorization": f"Bearer {ADMIN_KEY}"}
    r = httpx.post(f"{base}/v1/venues", json=venue_body(name, "110101"), headers=adm, timeout=10)
    assert r.status_code == 201, r.text
    vid = int(r.json()["venue_id"])
    code = httpx.get(f"{base}/v1/venues/{vid}/code", headers=adm, timeout=10).json()["token"]
    return vid, str(code)


@contextmanager
def served(tmp_path: Path, prefix: str, **env: str) -> Iterator[Server]:
    """The ingest API alone (own visits answer 503: a dead port, not whatever runs on 8001)."""
    dead = f"http://127.0.0.1:{free_port()}"
    with ingest_server(tmp_path, prefix, CHECKIN_TZ="Asia/Shanghai", CHECKIN_TRACING_URL=dead, **env) as (
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


def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: CHECKIN_SCREENSHOT_DIR to keep them, else the test's tmp dir."""
    folder = Path(os.environ.get("CHECKIN_SCREENSHOT_DIR") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def served_city(tmp_path: Path, make_settings: Any) -> Iterator[City]:
    """The ingest API and the tracing service (sink, venue mirror, notices) of one test's settings."""
    from tests.support.servers import ingest_server_of, tracing_server

    settings = make_settings(
        clickhouse_dsn=f"chdb://{tmp_path / 'ch'}",
        tracing_port=free_port(),
        ingest_port=free_port(),
        tz="Asia/Shanghai",
    )
    with (
        tracing_server(settings, "sink,mirror,notices", tmp_path / "tracing.log") as tracing,
        ingest_server_of(settings, tmp_path / "ingest.log") as base,
    ):
        yield City(base, tracing, settings, tmp_path / "var" / "sms-outbox.ndjson")
