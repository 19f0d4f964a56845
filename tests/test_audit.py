"""Every trace call leaves an audit row; the log is readable by admins only; no audit row, no data."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from checkin.platform.settings import Settings
from tests.support.trace_world import COMMUNITIES, HOUR_MS, MIN_MS, base_ms, build_world, iso, load, make_key
from tests.support.values import admin_headers
from tracing.storage.store import Store


async def test_each_trace_call_is_audited_with_who_why_what_and_rows(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    base = base_ms()
    load(
        store,
        build_world(
            base,
            {7: (60, COMMUNITIES[0])},
            [(7, [1], base, None), (7, [2, 3], base + 10 * MIN_MS, None)],
        ),
    )
    tracer = await make_key(settings, "tracer")
    window = {"since": iso(base - HOUR_MS), "until": iso(base + 5 * HOUR_MS)}
    r = await tracing.post(
        "/v1/trace/contacts",
        json={"person_id": 1, **window, "depth": 2, "reason": "case 7: index"},
        headers=tracer,
    )
    assert r.status_code == 200 and len(r.json()["contacts"]) == 2
    r = await tracing.get(
        "/v1/trace/persons/1/visits", params={**window, "reason": "case 7: timeline"}, headers=tracer
    )
    assert r.status_code == 200
    r = await tracing.post(
        "/v1/trace/exposures",
        json={"sites": [{"venue_id": 7, **window}], "reason": "case 7: site"},
        headers=tracer,
        params={"format": "csv"},
    )
    assert r.status_code == 200
    r = await tracing.post(
        "/v1/trace/contacts", json={"person_id": 99, **window, "reason": "case 7: typo"}, headers=tracer
    )
    assert r.status_code == 404
    r = await tracing.post("/v1/trace/contacts", json={"person_id": 1, **window}, headers=tracer)
    assert r.status_code == 400  # no reason: refused before anything is read, nothing to audit

    r = await tracing.get("/v1/audit", headers=admin_headers())
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert [e["reason"] for e in entries] == [
        "case 7: typo",
        "case 7: site",
        "case 7: timeline",
        "case 7: index",
    ]
    key_id = entries[0]["actor"]
    assert key_id and all(e["actor"] == key_id and e["role"] == "tracer" for e in entries)
    typo, site, timeline, index = entries
    assert index["action"] == "contacts" and index["rows"] == 2
    assert index["params"] == {
        "person_id": 1,
        "since": window["since"],
        "until": window["until"],
        "depth": 2,
        "min_overlap_minutes": 15,
        "limit": 1000,
        "offset": 0,
    }
    assert timeline["action"] == "visits" and timeline["rows"] == 1
    assert site["action"] == "exposures" and site["rows"] == 3 and site["params"]["format"] == "csv"
    assert site["params"]["sites"] == [{"venue_id": 7, **window}]
    assert typo["rows"] == 0 and typo["params"]["outcome"] == "not_found"
    assert all(e["at"].endswith("Z") for e in entries)

    r = await tracing.get("/v1/audit", params={"action": "visits"}, headers=admin_headers())
    assert [e["reason"] for e in r.json()["entries"]] == ["case 7: timeline"]
    r = await tracing.get("/v1/audit", params={"actor": "someone-else"}, headers=admin_headers())
    assert r.json()["entries"] == []
    r = await tracing.get("/v1/audit", params={"limit": 0}, headers=admin_headers())
    assert r.status_code == 400
    r = await tracing.get("/v1/audit", headers=tracer)
    assert r.status_code == 403


async def test_no_audit_row_means_no_data(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings
) -> None:
    base = base_ms()
    load(store, build_world(base, {7: (60, COMMUNITIES[0])}, [(7, [1, 2], base, None)]))
    tracer = await make_key(settings, "tracer")
    body = {"person_id": 1, "since": iso(base), "until": iso(base + HOUR_MS), "reason": "case 8"}
    store.command(f"RENAME TABLE {store.table('audit')} TO {store.database}.audit_away")
    try:
        r = await tracing.post("/v1/trace/contacts", json=body, headers=tracer)
    finally:
        store.command(f"RENAME TABLE {store.database}.audit_away TO {store.table('audit')}")
    assert r.status_code == 503, r.text
    assert "audit" in r.json()["detail"] and "contacts" not in r.json()
    r = await tracing.post("/v1/trace/contacts", json=body, headers=tracer)
    assert r.status_code == 200 and [c["person_id"] for c in r.json()["contacts"]] == [2]


async def test_audit_rows_of_the_ingest_api_reach_the_audit_log_once(
    tracing: AsyncTestClient[Any], store: Store, settings: Settings, redis_client: Any
) -> None:
    """Phone re-binding and revocation (ingest, no ClickHouse) go through the audit stream; the
    tracing service's ``audit`` worker lands them, and a batch inserted twice lands once."""
    import asyncio

    from checkin.platform import audit_trail
    from checkin.platform.auth import Principal
    from checkin.platform.context import Context
    from tracing.sink.audit_trail import AUDIT_TABLE
    from tracing.streams.runner import Runner
    from tracing.streams.table_writer import TableWriter

    ctx = Context.build(settings, redis_client, "ingest")
    health = Principal(role="health", key_id="cdc-key")
    await audit_trail.record(ctx, health, "phone_rebind", "lost phone", {"person_id": 7}, 1, "10.0.0.9")
    await audit_trail.record(ctx, health, "tokens_revoke", "stolen", {"person_id": 8}, 1, "10.0.0.9")
    writer = TableWriter(ctx, store, AUDIT_TABLE, batch_ms=10)
    stop = asyncio.Event()
    task = asyncio.create_task(Runner(writer).run(stop))
    try:
        for _ in range(200):
            r = await tracing.get("/v1/audit", params={"actor": "cdc-key"}, headers=admin_headers())
            if r.json()["count"] >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
        await writer.close()
    entries = r.json()["entries"]
    assert sorted((e["action"], e["reason"], e["params"]["person_id"], e["client_ip"]) for e in entries) == [
        ("phone_rebind", "lost phone", 7, "10.0.0.9"),
        ("tokens_revoke", "stolen", 8, "10.0.0.9"),
    ]
    assert all(e["role"] == "health" for e in entries)
    # the same batch again (a writer that died before acking): the deduplication token drops it
    again = [audit_trail.decode(f) for _id, f in await redis_client.xrange(ctx.keys.audit_stream())]
    first_ids = [eid for eid, _ in await redis_client.xrange(ctx.keys.audit_stream())]
    token = f"audit_trail:{first_ids[0].decode()}:{first_ids[-1].decode()}:{len(first_ids)}"
    AUDIT_TABLE.insert(store, again, token)
    assert int(store.scalar(f"SELECT count() FROM {store.table('audit')} WHERE actor = 'cdc-key'")) == 2
