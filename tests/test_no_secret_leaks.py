"""After a scenario touching every kind of personal data and secret, search everything the system
stores or says: every Redis value under the test prefix (all types), every ClickHouse row of the
test database (all tables, as text), the captured logs and every error response body. No raw id
number, phone number, API key, admin key or keyring secret may appear in any of them."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from checkin.platform.context import Context
from checkin.platform.settings import Settings
from tests.support.access_world import build_world, iso
from tests.support.ingest import id_number
from tests.support.sink import make_consumer, run_until
from tests.support.values import ADMIN_KEY, admin_headers
from tracing.rules.engine import run_rules
from tracing.storage.store import Store


def _count(store: Store, table: str) -> int:
    return int(store.scalar(f"SELECT count() FROM {store.table(table)}"))


async def run_rules_until_alert(settings: Settings, store: Store, timeout: float = 20.0) -> None:
    client = aioredis.Redis.from_url(settings.redis_url)
    ctx = Context.build(settings, client, "tracing")
    stop = asyncio.Event()
    task = asyncio.create_task(run_rules(ctx, store, stop))
    deadline = time.monotonic() + timeout
    try:
        while _count(store, "alerts") < 1:
            assert not task.done(), task.result()
            assert time.monotonic() < deadline, "no alert was written"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await client.aclose()


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings(rate_register_per_min=100_000, rate_resident_per_min=100_000)
    return settings


def redis_text(client: redis.Redis, prefix: str) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    for name in client.scan_iter(match=prefix + "*", count=1000):
        kind = client.type(name).decode()
        if kind == "string":
            value = client.get(name) or b""
        elif kind == "hash":
            value = b"\n".join(k + b"=" + v for k, v in client.hgetall(name).items())
        elif kind == "list":
            value = b"\n".join(client.lrange(name, 0, -1))
        elif kind == "set":
            value = b"\n".join(client.smembers(name))
        elif kind == "zset":
            value = b"\n".join(m for m, _ in client.zrange(name, 0, -1, withscores=True))
        elif kind == "stream":
            value = b"\n".join(k + b"=" + v for _, fields in client.xrange(name) for k, v in fields.items())
        else:
            raise AssertionError(f"unexpected Redis type {kind} at {name!r}")
        out.append((name.decode(errors="replace"), name + b"\n" + value))
    return out


def clickhouse_text(store: Store, database: str) -> list[tuple[str, str]]:
    tables = [
        r[0]
        for r in store.rows(
            "SELECT name FROM system.tables WHERE database = {db:String} AND engine NOT IN "
            "('MaterializedView', 'View')",
            {"db": database},
        )
    ]
    assert "scans" in tables and "audit" in tables, tables
    out = []
    for table in tables:
        rows = store.rows(f"SELECT * FROM {database}.`{table}`")
        out.append((table, "\n".join(repr(r) for r in rows)))
    return out


async def test_no_secret_or_raw_identifier_leaks(
    settings: Settings,
    ingest: AsyncTestClient[Any],
    tracing: AsyncTestClient[Any],
    store: Store,
    sync_redis: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    w = await build_world(settings, ingest, tracing, store)
    h = w.headers
    adm = admin_headers()
    now = dt.datetime.now(dt.UTC)
    since, until = iso(now - dt.timedelta(days=1)), iso(now + dt.timedelta(hours=1))
    errors: list[str] = []

    async def call(client: AsyncTestClient[Any], method: str, url: str, **kw: Any) -> Any:
        r = await client.request(method, url, **kw)
        if r.status_code >= 400:
            errors.append(f"{method} {url} {r.status_code} {dict(r.headers)} {r.text}")
        return r

    # health feed, sentinel by id number, imports, a trace with contact details, bad inputs
    await call(ingest, "PUT", f"/v1/health/{w.p}", json={"status": "red", "reason": "case"}, headers=adm)
    await call(
        ingest,
        "POST",
        "/v1/health/tests",
        json=[{"person_id": w.p, "sampled_at": since, "result": "positive"}],
        headers=adm,
    )
    await call(ingest, "PUT", f"/v1/watchlist/{w.q}", json={"reason": "q", "until": until}, headers=adm)
    await call(
        ingest,
        "POST",
        "/v1/sentinel/scans",
        json={"scans": [{"id_number": id_number(2)}, {"id_number": id_number(7)}]},
        headers=h["device"],
    )
    lines = [
        f'{{"name":"Imp","phone":"13900000011","id_number":"{id_number(11)}"}}',
        f'{{"name":"Bad","phone":"13900000012","id_number":"{id_number(12)[:-1]}Q"}}',
        f'{{"name":"Bad","phone":"not-a-phone-13900000013","id_number":"{id_number(13)}"}}',
    ]
    await call(ingest, "POST", "/v1/residents/import", content="\n".join(lines).encode(), headers=adm)
    # refused registrations echo nothing personal
    await call(
        ingest, "POST", "/v1/residents", json={"name": "x", "phone": "13900000014", "id_number": "123"}
    )
    await call(
        ingest,
        "POST",
        "/v1/residents",
        json={"name": "x", "phone": "1390000001x5", "id_number": id_number(15)},
    )
    await call(ingest, "POST", "/v1/residents", json={"name": "x", "phone": "13900000016"})
    await call(ingest, "GET", "/v1/keys", headers={"Authorization": "Bearer ck_" + ADMIN_KEY})
    await call(ingest, "GET", "/v1/keys", headers={"Authorization": "Bearer " + ADMIN_KEY + "x"})
    await call(ingest, "POST", "/v1/checkins", json={"code": w.code_a + "A"}, headers=h["resident"])
    for seq in (1, 2):
        await call(
            tracing,
            "GET",
            f"/v1/trace/persons/{w.p if seq == 1 else w.q}/contact-details",
            params={"reason": "call the person"},
            headers=h["tracer"],
        )
    await call(
        tracing,
        "POST",
        "/v1/trace/contacts",
        json={"person_id": w.p, "since": since, "until": until, "reason": "case 1"},
        headers=h["tracer"],
    )
    await call(tracing, "GET", "/v1/audit", headers=h["tracer"])
    assert errors, "the scenario produced no error responses to search"
    # a red-code entry at venue B: the rules raise an alert, the sink lands every scan
    code_b = (await ingest.get(f"/v1/venues/{w.venue_b}/code", headers=adm)).json()["token"]
    r = await call(ingest, "POST", "/v1/checkins", json={"code": code_b}, headers=h["resident"])
    assert r.status_code == 201, r.text
    await run_rules_until_alert(settings, store)
    consumer, ctx = await make_consumer(settings, store)
    try:
        await run_until(consumer, lambda: _count(store, "scans") >= 3)
    finally:
        await ctx.redis.aclose()
    alerts = (await call(tracing, "GET", "/v1/alerts", params={"since": since}, headers=h["analyst"])).json()
    assert alerts["alerts"] if isinstance(alerts, dict) else alerts

    secrets = {"admin key": ADMIN_KEY, "keyring": settings.keyring}
    for part in settings.keyring.split(","):
        secrets[f"keyring part {part[:2]}"] = part.split(":", 1)[-1]
    for role, hdr in h.items():
        token = hdr.get("Authorization", "").removeprefix("Bearer ")
        if token.startswith("ck_") and role != "forged":
            secrets[f"{role} key"] = token
    for seq in (1, 2, 3, 4, 7, 9, 10, 11, 12, 13, 15):
        secrets[f"id number {seq}"] = id_number(seq)
        secrets[f"id number {seq} (lower case)"] = id_number(seq).lower()
    for seq in (1, 2, 11, 12, 13, 14, 16):
        secrets[f"phone {seq}"] = f"139{seq:08d}"
    secrets["phone 15"] = "1390000001x5"

    def scan(where: str, text: str) -> list[str]:
        return [f"{label} in {where}" for label, value in secrets.items() if value and value in text]

    found: list[str] = []
    for name, value in redis_text(sync_redis, settings.key_prefix):
        found += scan(f"redis {name}", value.decode(errors="replace"))
    for table, text in clickhouse_text(store, settings.clickhouse_database):
        found += scan(f"clickhouse {table}", text)
    for record in caplog.records:
        found += scan(f"log {record.name}", record.getMessage() + str(record.exc_info or ""))
    for body in errors:
        found += scan("error response", body)
    assert not found, "\n".join(found)
    # the search itself can see what it looks for: a decrypted phone is in a tracer's answer
    r = await tracing.get(
        f"/v1/trace/persons/{w.p}/contact-details", params={"reason": "check"}, headers=h["tracer"]
    )
    assert r.status_code == 200 and secrets["phone 1"] in r.text
