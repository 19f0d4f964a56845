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
