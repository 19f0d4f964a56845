"""Alert history in ClickHouse, the alerts API (scope, filters, ack), exposure sites, the SSE feed logic."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.testing import AsyncTestClient

from checkin.platform.instants import format_ms
from checkin.platform.settings import Settings
from tests.support.failing_store import FailingStore
from tests.support.rules import (
    BASE_MS,
    DISTRICT_A,
    DISTRICT_B,
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
from tracing.storage.store import Store


async def seed_two_districts(h: Harness) -> list[al.Alert]:
    a, b = venue(101, DISTRICT_A), venue(201, DISTRICT_B)
    return await h.run(
        scan(a, 1, status="red"),
        scan(a, 2, status="yellow"),
        scan(a, 3, watchlisted=True),
        scan(b, 4, status="red"),
        scan(b, 5, status="yellow"),
    )


async def test_history_writer_retries_and_writes_each_alert_once(
    settings: Settings, redis_client: Any, store: FailingStore
) -> None:
    h = Harness(settings, redis_client)
    published = await seed_two_districts(h)
    store.fail_next(3)
    await write_history(h, store, len(published))
    rows = store.rows(
        f"SELECT alert_id, kind, person_id FROM {store.table('alerts')} FINAL ORDER BY alert_id"
    )
    assert [r[0] for r in rows] == sorted(a.alert_id for a in published)
    assert store.scalar(f"SELECT count() FROM {store.table('alerts')}") == len(published)  # no duplicate row
    info = await redis_client.xinfo_groups(h.ctx.keys.alerts_stream())
    assert info[0]["pending"] == 0  # acked only after the insert


async def test_alerts_are_scoped_filtered_and_acked(
    settings: Settings, redis_client: Any, store: Store, tracing: AsyncTestClient[Any]
) -> None:
    h = Harness(settings, redis_client)
    published = await seed_two_districts(h)
    await write_history(h, store, len(published))
    scoped = await key_for(settings, redis_client, "analyst", DISTRICT_A)
    other = await key_for(settings, redis_client, "analyst", DISTRICT_B)
    since = {"since": format_ms(BASE_MS - 3_600_000)}

    r = await tracing.get("/v1/alerts", params=since, headers=admin_headers())
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 5
    r = await tracing.get("/v1/alerts", params=since, headers=scoped)
    got = r.json()["alerts"]
    assert sorted(a["person_id"] for a in got) == [1, 2, 3]
    assert all(a["district"] == DISTRICT_A for a in got)
    # a scope parameter outside the key's jurisdiction widens nothing
    r = await tracing.get("/v1/alerts", params={**since, "scope": DISTRICT_B}, headers=scoped)
    assert r.json()["alerts"] == []
    r = await tracing.get("/v1/alerts", params={**since, "kind": "red_code_entry"}, headers=admin_headers())
    assert sorted(a["person_id"] for a in r.json()["alerts"]) == [1, 4]
    r = await tracing.get("/v1/alerts", params={**since, "severity": "critical"}, headers=scoped)
    assert sorted(a["kind"] for a in r.json()["alerts"]) == ["red_code_entry", "watchlist_entry"]

    red_a = next(a for a in published if a.person_id == 1)
    r = await tracing.post(f"/v1/alerts/{red_a.alert_id}/ack", headers=other)
    assert r.status_code == 404  # another district's alert does not exist for this key
    r = await tracing.post(f"/v1/alerts/{red_a.alert_id}/ack", headers=scoped)
    assert r.status_code == 200, r.text
    acked = r.json()
    assert acked["acked"] is True and acked["acked_by"] and acked["acked_at"].endswith("Z")
    r = await tracing.post(f"/v1/alerts/{red_a.alert_id}/ack", headers=admin_headers())
    assert r.json()["acked_by"] == acked["acked_by"] and r.json()["acked_at"] == acked["acked_at"]
    r = await tracing.get("/v1/alerts", params={**since, "acked": "true"}, headers=scoped)
    assert [(a["alert_id"], a["acked_by"]) for a in r.json()["alerts"]] == [
        (red_a.alert_id, acked["acked_by"])
    ]
    r = await tracing.get("/v1/alerts", params={**since, "acked": "false"}, headers=scoped)
    assert len(r.json()["alerts"]) == 2


async def test_alerts_api_refuses_bad_input_and_wrong_roles(
    settings: Settings, redis_client: Any, tracing: AsyncTestClient[Any]
) -> None:
    tracer = await key_for(settings, redis_client, "tracer")
    assert (await tracing.get("/v1/alerts")).status_code == 401
    assert (await tracing.get("/v1/alerts", headers=tracer)).status_code == 403
    for params in ({"kind": "nope"}, {"severity": "loud"}, {"scope": "31x"}, {"since": "yesterday"}):
        r = await tracing.get("/v1/alerts", params=params, headers=admin_headers())
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", params
    r = await tracing.post("/v1/alerts/not-an-id/ack", headers=admin_headers())
    assert r.status_code == 400
    r = await tracing.post("/v1/alerts/" + "0" * 22 + "/ack", headers=admin_headers())
    assert r.status_code == 404
    r = await tracing.get("/v1/alerts/stream", headers={**admin_headers(), "Last-Event-ID": "abc"})
    assert r.status_code == 400
    r = await tracing.get("/v1/alerts/stream", params={"key": "ck_wrong"})
    assert r.status_code == 401


async def test_ack_of_an_alert_not_yet_in_clickhouse(
    settings: Settings, redis_client: Any, store: Store, tracing: AsyncTestClient[Any]
) -> None:
    h = Harness(settings, redis_client)
    [alert] = await h.run(scan(venue(301), 7, status="red"))
    r = await tracing.post(f"/v1/alerts/{alert.alert_id}/ack", headers=admin_headers())
    assert r.status_code == 200 and r.json()["acked_by"] == "admin"
    await write_history(h, store, 1)  # the original row arrives later with a lower version
    rows = store.dicts(f"SELECT alert_id, acked, acked_by FROM {store.table('alerts')} FINAL")
    assert rows == [{"alert_id": alert.alert_id, "acked": 1, "acked_by": "admin"}]


async def test_exposure_sites_api_feeds_the_rule(
    settings: Settings, redis_client: Any, store: Store, tracing: AsyncTestClient[Any]
) -> None:
    h = Harness(settings, redis_client)
    v, far = venue(401, DISTRICT_A), venue(402, DISTRICT_B)
    await h.add_venues(v, far)
    tracer = await key_for(settings, redis_client, "tracer", DISTRICT_A)
    analyst = await key_for(settings, redis_client, "analyst")
    since, until = BASE_MS - 1_600_000, BASE_MS + 5_600_000  # 20:00 to 22:00 UTC
    body = {"venue_id": 401, "since": format_ms(since), "until": format_ms(until), "reason": "case 17"}

    r = await tracing.post("/v1/exposure-sites", json=body, headers=tracer)
    assert r.status_code == 201, r.text
    site = r.json()
    assert site["community"] == v.community and site["since"] == format_ms(since)
    assert (await tracing.post("/v1/exposure-sites", json=body, headers=analyst)).status_code == 403
    assert (
        await tracing.post("/v1/exposure-sites", json={**body, "venue_id": 402}, headers=tracer)
    ).status_code == 404
    assert (
        await tracing.post("/v1/exposure-sites", json={**body, "venue_id": 999}, headers=tracer)
    ).status_code == 404
    bad = {**body, "until": format_ms(since - 1)}
    assert (await tracing.post("/v1/exposure-sites", json=bad, headers=tracer)).status_code == 422
    assert (
        await tracing.post("/v1/exposure-sites", json={**body, "since": "8pm"}, headers=tracer)
    ).status_code == 400
    assert (
        await tracing.post("/v1/exposure-sites", json={**body, "reason": ""}, headers=tracer)
    ).status_code == 400

    alerts = await h.run(scan(v, 1, BASE_MS), scan(v, 2, BASE_MS + 3 * 3_600_000))
    assert [(a.kind, a.person_id) for a in alerts] == [("exposure_site_visit", 1)]
    assert alerts[0].details["site_ids"] == [site["site_id"]] and alerts[0].details["reasons"] == ["case 17"]

    r = await tracing.get("/v1/exposure-sites", headers=analyst)
    assert [s["site_id"] for s in r.json()["sites"]] == [site["site_id"]] and r.json()["sites"][0][
        "active"
    ] is False
    other = await key_for(settings, redis_client, "tracer", DISTRICT_B)
    assert (await tracing.get("/v1/exposure-sites", headers=other)).json()["count"] == 0
    assert (await tracing.delete(f"/v1/exposure-sites/{site['site_id']}", headers=other)).status_code == 404
    assert (await tracing.delete(f"/v1/exposure-sites/{site['site_id']}", headers=tracer)).status_code == 204
    assert (await tracing.delete(f"/v1/exposure-sites/{site['site_id']}", headers=tracer)).status_code == 404
    assert await h.run(scan(v, 3, BASE_MS + 60_000)) == []
    actions = [a[0] for a in store.rows(f"SELECT action FROM {store.table('audit')} ORDER BY at")]
    assert [a for a in actions if a != "exposure_sites"] == ["exposure_site_create", "exposure_site_delete"]
    assert "exposure_sites" in actions  # reading the list is audited too


# --- the SSE feed logic (the served feed is tested in test_alerts_sse.py) --------------------------------


async def test_feed_resumes_after_last_event_id_once_and_filters_scope(
    settings: Settings, redis_client: Any
) -> None:
    h = Harness(settings, redis_client)
    hub = AlertHub(h.ctx)
    a, b = venue(501, DISTRICT_A), venue(601, DISTRICT_B)
    await h.run(scan(a, 1, status="red"), scan(b, 2, status="red"))
    first = await h.stream_alerts()
    seen_id = first[0][0]
    # while disconnected: two more in A, one in B
    await h.run(scan(a, 3, status="red"), scan(b, 4, status="red"), scan(a, 5, status="red"))
    gen = feed(h.ctx, hub, FeedFilter(key_scope=DISTRICT_A), seen_id, heartbeat_s=0.05)
    missed = await collect_events(gen, 2)
    assert [al.from_fields({b"a": d.encode()}).person_id for _, _, d in missed] == [3, 5]
    # live: new alerts arrive once, in scope only
    await h.run(scan(b, 6, status="red"), scan(a, 7, status="red"))
    live = await collect_events(gen, 1)
    assert al.from_fields({b"a": live[0][2].encode()}).person_id == 7
    ids = [i for _, i, _ in missed + live]
    assert len(set(ids)) == 3 and ids == sorted(ids, key=al.stream_id_key)
    await gen.aclose()
    assert hub.subscribers == set()
    # a fresh connection without Last-Event-ID starts with what comes next
    gen = feed(h.ctx, hub, FeedFilter(), None, heartbeat_s=0.05)
    await gen.__anext__()
    await asyncio.sleep(0.05)
    await h.run(scan(b, 8, status="red"))
    [(event, _, data)] = await collect_events(gen, 1)
    assert event == "alert" and al.from_fields({b"a": data.encode()}).person_id == 8
    await gen.aclose()
    await hub.close()


async def test_feed_says_reset_when_the_position_was_trimmed(make_settings: Any, redis_client: Any) -> None:
    h = Harness(make_settings(alerts_stream_maxlen=1), redis_client)
    hub = AlertHub(h.ctx)
    a = venue(701)
    await h.run(scan(a, 1, status="red"))
    old_id = (await h.stream_alerts())[0][0]
    await redis_client.xtrim(h.ctx.keys.alerts_stream(), maxlen=0)
    await h.run(scan(a, 2, status="red"))
    gen = feed(h.ctx, hub, FeedFilter(), old_id, heartbeat_s=0.05)
    try:
        events = await collect_events(gen, 2)
        assert events[0][0] == "reset" and events[1][0] == "alert"
        # a position still in the stream resumes without a reset
        current = (await h.stream_alerts())[0][0]
        await gen.aclose()
        await h.run(scan(a, 3, status="red"))
        gen = feed(h.ctx, hub, FeedFilter(), current, heartbeat_s=0.05)
        assert [e[0] for e in await collect_events(gen, 1)] == ["alert"]
    finally:
        await gen.aclose()
        await hub.close()
