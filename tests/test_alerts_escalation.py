"""Command-centre escalation with an injected clock, and the queue / ack / resolve API per level."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from checkin.platform.context import Context
from checkin.platform.instants import format_ms
from checkin.platform.settings import Settings
from tests.support.rules import (
    BASE_MS,
    DISTRICT_A,
    DISTRICT_B,
    Clock,
    Harness,
    collect_events,
    key_for,
    scan,
    venue,
    write_history,
)
from tests.support.values import admin_headers
from tracing.api.alerts import AlertHub, FeedFilter, feed
from tracing.rules import alerts as al
from tracing.rules.escalation import Escalator
from tracing.storage.store import Store

S = 900
COMMUNITY_A = DISTRICT_A + "001001"


def current(store: Store, alert_id: str) -> dict[str, Any]:
    rows = store.dicts(
        f"SELECT toString(level) AS level, escalated_at, acked, resolved, outcome "
        f"FROM {store.table('alerts')} FINAL WHERE alert_id = {{id:String}}",
        {"id": alert_id},
    )
    assert len(rows) == 1
    return rows[0]


async def events(h: Harness, name: str) -> list[al.Alert]:
    entries = await h.ctx.redis.xrange(h.ctx.keys.alerts_stream())
    return [al.from_fields(f) for _, f in entries if f.get(b"e") == name.encode()]


async def one_alert(h: Harness, store: Store, person: int = 1, district: str = DISTRICT_A) -> al.Alert:
    [alert] = await h.run(scan(venue(100 + person, district), person, status="red"))
    await write_history(h, store, len(await h.ctx.redis.xrange(h.ctx.keys.alerts_stream())))
    return alert


async def test_an_unanswered_alert_climbs_every_level_once(
    settings: Settings, redis_client: Any, store: Store
) -> None:
    h = Harness(settings, redis_client)
    alert = await one_alert(h, store)
    clock = Clock(BASE_MS)
    esc = Escalator(h.ctx, store, clock)
    clock.ms = BASE_MS + S * 1000 - 1
    assert await esc.step() == []
    assert current(store, alert.alert_id)["level"] == "community"
    for n, level in enumerate(["street", "district", "city"], start=1):
        clock.ms = BASE_MS + n * S * 1000
        [moved] = await esc.step()
        assert (moved.alert_id, moved.level, moved.escalated_at) == (
            alert.alert_id,
            level,
            format_ms(clock.ms),
        )
        assert current(store, alert.alert_id)["level"] == level
        assert esc.ctx.metrics.value("checkin_alerts_escalated_total", level=level) == 1
        assert await esc.step() == []  # the same instant again moves nothing
    clock.ms += 10 * S * 1000
    assert await esc.step() == []  # the city is the last level
    assert [e.level for e in await events(h, "escalated")] == ["street", "district", "city"]


async def test_ack_stops_escalation_and_resolve_closes(
    settings: Settings, redis_client: Any, store: Store, tracing: AsyncTestClient[Any]
) -> None:
    h = Harness(settings, redis_client)
    alert = await one_alert(h, store)
    clock = Clock(BASE_MS + S * 1000)
    esc = Escalator(h.ctx, store, clock)
    assert [a.level for a in await esc.step()] == ["street"]
    street = await key_for(settings, redis_client, "analyst", DISTRICT_A + "001")
    r = await tracing.post(f"/v1/alerts/{alert.alert_id}/ack", headers=street)
    assert r.status_code == 200, r.text
    assert r.json()["acked"] is True and r.json()["level"] == "street"
    clock.ms += 5 * S * 1000
    assert await esc.step() == []
    assert current(store, alert.alert_id)["level"] == "street"

    r = await tracing.post(
        f"/v1/alerts/{alert.alert_id}/resolve", json={"outcome": "isolated"}, headers=street
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resolved"] is True and body["outcome"] == "isolated" and body["resolved_at"].endswith("Z")
    assert body["resolved_by"] == body["acked_by"]
    again = await tracing.post(
        f"/v1/alerts/{alert.alert_id}/resolve", json={"outcome": "false_alarm"}, headers=admin_headers()
    )
    assert again.json()["outcome"] == "isolated" and again.json()["resolved_at"] == body["resolved_at"]
    assert current(store, alert.alert_id)["resolved"] == 1
    assert [e.alert_id for e in await events(h, "resolved")] == [alert.alert_id]


async def test_resolve_without_ack_and_ack_racing_an_escalation(
    settings: Settings, redis_client: Any, store: Store, tracing: AsyncTestClient[Any]
) -> None:
    h = Harness(settings, redis_client)
    first, second = await one_alert(h, store, 1), await one_alert(h, store, 2)
    r = await tracing.post(
        f"/v1/alerts/{first.alert_id}/resolve",
        json={"outcome": "false_alarm", "note": "  staff test  "},
        headers=admin_headers(),
    )
    assert r.json()["acked"] is True and r.json()["note"] == "staff test"
    # the escalation step read the second alert before the ack landed and writes its move afterwards
    esc = Escalator(h.ctx, store, Clock(BASE_MS + S * 1000))
    [stale] = [a for a in esc.due(BASE_MS + S * 1000) if a.alert_id == second.alert_id]
    assert (
        await tracing.post(f"/v1/alerts/{second.alert_id}/ack", headers=admin_headers())
    ).status_code == 200
    esc.climb(stale, BASE_MS + S * 1000)
    al.insert_alerts(store, [stale])
    state = current(store, second.alert_id)
    assert state["acked"] == 1 and state["level"] == "community"  # the ack is never undone


async def test_a_restart_loses_no_escalation_and_doubles_none(
    settings: Settings, redis_client: Any, store: Store
) -> None:
    h = Harness(settings, redis_client)
    alert = await one_alert(h, store)
    clock = Clock(BASE_MS + S * 1000)
    before = Escalator(h.ctx, store, clock)
    assert [a.level for a in await before.step()] == ["street"]
    # a new process (new counters) at the same instant: the move is there, nothing moves twice
    after = Escalator(Context.build(settings, redis_client, "tracing"), store, clock)
    assert await after.step() == []
    # the move written again (a step repeated after a crash before its events) is the same row
    [row] = store.dicts(f"SELECT * FROM {store.table('alerts')} FINAL")
    al.insert_alerts(store, [al.from_row(row)])
    assert current(store, alert.alert_id)["level"] == "street"
    # down for two periods: the first step after the restart climbs both levels it missed, each once
    clock.ms = BASE_MS + 3 * S * 1000 + 5
    [moved] = await after.step()
    assert moved.level == "city" and moved.escalated_at == format_ms(BASE_MS + 3 * S * 1000)
    assert after.ctx.metrics.value("checkin_alerts_escalated_total", level="district") == 1
    assert after.ctx.metrics.value("checkin_alerts_escalated_total", level="city") == 1
    assert after.ctx.metrics.value("checkin_alerts_escalated_total", level="street") == 0
    assert await after.step() == []
    assert [e.level for e in await events(h, "escalated")] == ["street", "city"]


async def test_queue_per_level_and_scope(
    settings: Settings, redis_client: Any, store: Store, tracing: AsyncTestClient[Any]
) -> None:
    h = Harness(settings, redis_client)
    a, b = await one_alert(h, store, 1, DISTRICT_A), await one_alert(h, store, 2, DISTRICT_B)
    community_a = await key_for(settings, redis_client, "analyst", COMMUNITY_A)
    community_b = await key_for(settings, redis_client, "analyst", DISTRICT_B + "001001")
    street_a = await key_for(settings, redis_client, "analyst", DISTRICT_A + "001")
    district_a = await key_for(settings, redis_client, "analyst", DISTRICT_A)
    city = await key_for(settings, redis_client, "analyst")

    async def queue(headers: dict[str, str], **params: str) -> dict[str, Any]:
        r = await tracing.get("/v1/alerts/queue", params=params, headers=headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    q = await queue(community_a)
    assert q["level"] == "community" and [i["alert"]["alert_id"] for i in q["alerts"]] == [a.alert_id]
    assert q["alerts"][0]["overdue"] is True  # raised yesterday: far beyond 900 s
    assert [i["alert"]["alert_id"] for i in (await queue(community_b))["alerts"]] == [b.alert_id]
    assert (await queue(street_a))["level"] == "street" and (await queue(street_a))["alerts"] == []
    assert (await queue(district_a))["level"] == "district" and (await queue(city))["level"] == "city"
    # a street key looking at the community level still sees its own street only
    assert [i["alert"]["alert_id"] for i in (await queue(street_a, level="community"))["alerts"]] == [
        a.alert_id
    ]

    esc = Escalator(h.ctx, store, Clock(BASE_MS + S * 1000))
    await esc.step()
    assert (await queue(community_a))["alerts"] == []
    assert [i["alert"]["alert_id"] for i in (await queue(street_a))["alerts"]] == [a.alert_id]
    assert [i["alert"]["level"] for i in (await queue(city, level="street"))["alerts"]] == [
        "street",
        "street",
    ]

    # another community's key cannot ack, resolve or even learn of the alert: 404 as for an unknown id
    for path in (f"/v1/alerts/{a.alert_id}/ack", "/v1/alerts/" + "f" * 22 + "/ack"):
        r = await tracing.post(path, headers=community_b)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
        assert r.json()["detail"] == f"no alert {path.split('/')[3]}"
    r = await tracing.post(
        f"/v1/alerts/{a.alert_id}/resolve", json={"outcome": "handled"}, headers=community_b
    )
    assert r.status_code == 404
    assert (await tracing.post(f"/v1/alerts/{a.alert_id}/ack", headers=street_a)).status_code == 200
    assert (await queue(street_a))["alerts"] == []
    acked = await queue(street_a, state="acked")
    assert [i["alert"]["alert_id"] for i in acked["alerts"]] == [a.alert_id] and not acked["alerts"][0][
        "overdue"
    ]
    times = {t["level"]: t for t in (await queue(city))["ack_times"]}
    assert list(times) == list(al.LEVELS)
    assert times["street"]["acked"] == 1 and times["street"]["median_s"] > S  # raised yesterday, acked now
    assert times["community"]["acked"] == 0


async def test_queue_and_dispositions_refuse_bad_input(
    settings: Settings, redis_client: Any, store: Store, tracing: AsyncTestClient[Any]
) -> None:
    h = Harness(settings, redis_client)
    alert = await one_alert(h, store)
    tracer = await key_for(settings, redis_client, "tracer")
    analyst = await key_for(settings, redis_client, "analyst")
    assert (await tracing.get("/v1/alerts/queue")).status_code == 401
    assert (await tracing.get("/v1/alerts/queue", headers=tracer)).status_code == 403
    for params in ({"level": "province"}, {"state": "open"}, {"limit": "0"}):
        r = await tracing.get("/v1/alerts/queue", params=params, headers=analyst)
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", params
    r = await tracing.get("/v1/alerts/queue", params={"level": "province"}, headers=analyst)
    assert "community, street, district, city" in r.json()["detail"]
    path = f"/v1/alerts/{alert.alert_id}/resolve"
    bodies: list[Any] = [
        {},
        {"outcome": ""},
        {"outcome": "  "},
        {"outcome": "sorted"},
        {"outcome": "handled", "note": "x" * 501},
        {"outcome": "handled", "extra": 1},
        {"outcome": 3},
    ]
    for body in bodies:
        r = await tracing.post(path, json=body, headers=analyst)
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", body
    assert (await tracing.post(path, json={"outcome": "handled"}, headers=tracer)).status_code == 403
    assert (
        await tracing.post("/v1/alerts/XYZ/resolve", json={"outcome": "handled"}, headers=analyst)
    ).status_code == 400
    assert current(store, alert.alert_id)["resolved"] == 0


async def test_escalations_and_acks_are_events_of_their_name_on_the_live_feed(
    settings: Settings, redis_client: Any, store: Store, tracing: AsyncTestClient[Any]
) -> None:
    h = Harness(settings, redis_client)
    alert = await one_alert(h, store)
    hub = AlertHub(h.ctx)
    gen = feed(h.ctx, hub, FeedFilter(key_scope=DISTRICT_A), "0-0", heartbeat_s=0.05)
    try:
        [(event, _, data)] = await collect_events(gen, 1)
        assert event == "alert" and al.from_fields({b"a": data.encode()}).level == "community"
        await Escalator(h.ctx, store, Clock(BASE_MS + S * 1000)).step()
        assert (
            await tracing.post(f"/v1/alerts/{alert.alert_id}/ack", headers=admin_headers())
        ).status_code == 200
        got = await collect_events(gen, 2)
        states = [(e, al.from_fields({b"a": d.encode()})) for e, _, d in got]
        assert [(e, a.alert_id, a.level, a.acked) for e, a in states] == [
            ("escalated", alert.alert_id, "street", False),
            ("acked", alert.alert_id, "street", True),
        ]
    finally:
        await gen.aclose()
        await hub.close()
    # another district's feed sees none of it
    other = feed(h.ctx, AlertHub(h.ctx), FeedFilter(key_scope=DISTRICT_B), "0-0", heartbeat_s=0.05)
    assert await other.__anext__() == b"retry: 2000\n\n"
    with pytest.raises(TimeoutError):
        await collect_events(other, 1, timeout=0.3)
    await other.aclose()
