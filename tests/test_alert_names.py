"""Alerts name their venue and person: the history list carries venue names, the live feed adds the
venue's name to each event, and queue rows carry the masked person and since when the alert waits."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from checkin.platform.context import Context
from checkin.platform.instants import format_ms, now_ms
from checkin.platform.settings import Settings
from tests.support.trace_world import make_key
from tests.support.values import REDIS_URL
from tracing.api.alerts import AlertHub, FeedFilter, VenueNamer, feed
from tracing.rules import alerts as al
from tracing.storage.store import Store

COMMUNITY = "620102001001"


def alert(n: int, at_ms: int, venue: int, person: int | None, level: str = "community") -> al.Alert:
    return al.Alert(
        alert_id=f"{at_ms:012x}000{n:05x}00",
        kind="red_code_entry",
        severity="critical",
        at=format_ms(at_ms),
        person_id=person,
        venue_id=venue,
        district=COMMUNITY[:6],
        street=COMMUNITY[:9],
        community=COMMUNITY,
        details={},
        level=level,
        escalated_at=None if level == "community" else format_ms(at_ms + 900_000),
    )


async def test_alert_answers_name_venues_and_persons(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    now = dt.datetime.now(dt.UTC)
    store.insert(
        "venues",
        ["venue_id", "name", "community", "updated_at"],
        [[7, "海底捞(南京西路店)", COMMUNITY, now]],
        column_oriented=False,
    )
    at = now_ms() - 3_600_000
    alerts = [alert(1, at, 7, 12), alert(2, at + 1000, 8, None, level="city")]
    al.insert_alerts(store, alerts)
    client = aioredis.Redis.from_url(REDIS_URL)
    ctx = Context.build(settings, client, "test")
    await client.hset(ctx.keys.person(12), mapping={"name": "王小明"})
    for a in alerts:
        await client.xadd(ctx.keys.alerts_stream(), al.to_fields(a))
    analyst = await make_key(settings, "analyst")

    r = await tracing.get("/v1/alerts", params={"since": format_ms(at - 1000)}, headers=analyst)
    assert r.status_code == 200, r.text
    assert r.json()["venue_names"] == {"7": "海底捞(南京西路店)"}  # venue 8 has no name on record

    r = await tracing.get("/v1/alerts/queue", params={"level": "community"}, headers=analyst)
    [item] = r.json()["alerts"]
    assert item["person_name"] == "王*明" and item["venue_name"] == "海底捞(南京西路店)"
    assert item["waiting_since"] == format_ms(at)
    r = await tracing.get("/v1/alerts/queue", headers=analyst)  # a city key: the city level
    [item] = r.json()["alerts"]
    assert item["person_name"] == "" and item["waiting_since"] == format_ms(at + 1000 + 900_000)

    # the live feed (replayed from the start of the stream) adds the venue's name to each event
    hub = AlertHub(ctx)
    stream = feed(ctx, hub, FeedFilter(), "0-0", heartbeat_s=0.05, namer=VenueNamer(store))
    events = []
    async for chunk in stream:
        text = chunk.decode()
        if text.startswith(": heartbeat"):
            break
        events += [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    await stream.aclose()
    await hub.close()
    await client.aclose()
    assert [(e["venue_id"], e.get("venue_name")) for e in events] == [(7, "海底捞(南京西路店)"), (8, None)]
