"""Helpers of the exposure-notice tests: a venue made through the API, an exposure site flagged on the
tracing service, and the sink run until ClickHouse holds the stays."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar.testing import AsyncTestClient

from checkin.platform.settings import Settings
from tests.support.access_world import iso, venue_body
from tests.support.sink import make_consumer, run_until
from tests.support.values import admin_headers
from tracing.storage.store import Store

HOUR = dt.timedelta(hours=1)


async def new_venue(ingest: AsyncTestClient[Any], name: str, **extra: Any) -> tuple[int, str]:
    """A venue (id, code) made by the admin through the registry's route."""
    adm = admin_headers()
    r = await ingest.post("/v1/venues", json={**venue_body(name, "110101"), **extra}, headers=adm)
    assert r.status_code == 201, r.text
    vid = int(r.json()["venue_id"])
    return vid, str((await ingest.get(f"/v1/venues/{vid}/code", headers=adm)).json()["token"])


async def flag(tracing: AsyncTestClient[Any], tracer: dict[str, str], vid: int, **extra: Any) -> Any:
    """Flag the venue as an exposure site for the last two hours and the next one."""
    now = dt.datetime.now(dt.UTC)
    body = {
        "venue_id": vid,
        "since": iso(now - 2 * HOUR),
        "until": iso(now + HOUR),
        "reason": "case 9",
        **extra,
    }
    return await tracing.post("/v1/exposure-sites", json=body, headers=tracer)


async def sink_until(settings: Settings, store: Store, rows: int) -> None:
    """Run a sink consumer until ClickHouse holds ``rows`` stay rows."""
    consumer, ctx = await make_consumer(settings, store)
    try:
        await run_until(
            consumer, lambda: int(store.scalar(f"SELECT count() FROM {store.table('scans')}")) >= rows
        )
    finally:
        await ctx.redis.aclose()
