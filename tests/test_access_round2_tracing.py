"""Issue 25, items 4 and 8 (tracing side): no bulk reads of contact details, own visits limited on the
tracing service too, and reads of statistics, venue history and exposure-site lists audited.

Each test plays the attacker over HTTP through the real apps (Redis, ClickHouse) and fails if the
attack works:

* item 4: a tracer key calls ``GET /v1/trace/persons/{id}/visits`` for id 1, 2, 3, ... and then
  ``contact-details`` for each (the visits call used to bind the person); then, with persons bound by
  a real exposure answer, it reads contact details beyond the hourly budget;
* item 8: a resident token calls the tracing service's ``GET /v1/residents/me/visits`` 100 times in a
  row; an analyst reads statistics, an exposure-site list and a venue's history, and the audit log must
  show each read.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import redis
from litestar.testing import AsyncTestClient

from checkin.platform import audit_trail
from checkin.platform.settings import Settings
from tests.support.access_world import iso, venue_body
from tests.support.ingest import bearer, id_number, keys_of, make_key, register
from tests.support.rules import Harness, write_history
from tests.support.sink import make_consumer, run_until
from tests.support.values import admin_headers
from tracing.rules.alerts import from_fields
from tracing.storage.store import Store

BUDGET = 3
VISITS_PER_MIN = 5
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """A small contact-details budget and visits limit, so the attack reaches them in a test."""
    built: Settings = make_settings(contact_details_per_hour=BUDGET, rate_visits_per_min=VISITS_PER_MIN)
    return built


async def town(
    ingest: AsyncTestClient[Any], settings: Settings, store: Store, people: int
) -> tuple[int, list[tuple[int, str]]]:
    """A venue and ``people`` residents who each checked in there (landed in ClickHouse)."""
    adm = admin_headers()
    r = await ingest.post("/v1/venues", json=venue_body("幸福路菜市场", "110101"), headers=adm)
    assert r.status_code == 201, r.text
    vid = int(r.json()["venue_id"])
    code = (await ingest.get(f"/v1/venues/{vid}/code", headers=adm)).json()["token"]
    residents = [await register(ingest, 60 + i) for i in range(people)]
    at = dt.datetime.now(dt.UTC) - HOUR
    for _pid, token in residents:
        r = await ingest.post(
            "/v1/checkins", json={"code": code, "scanned_at": iso(at)}, headers=bearer(token)
        )
        assert r.status_code == 201, r.text
    consumer, ctx = await make_consumer(settings, store)
    try:
        await run_until(
            consumer, lambda: int(store.scalar(f"SELECT count() FROM {store.table('scans')}")) >= people
        )
    finally:
        await ctx.redis.aclose()
    return vid, residents


def details(tracing: AsyncTestClient[Any], pid: int, headers: dict[str, str]) -> Any:
    return tracing.get(
        f"/v1/trace/persons/{pid}/contact-details", params={"reason": "case 25"}, headers=headers
    )


async def test_a_visits_timeline_binds_no_one(
    ingest: AsyncTestClient[Any], tracing: AsyncTestClient[Any], settings: Settings, store: Store
) -> None:
    """The attacker's loop: visits of id 1, 2, 3, ... then contact-details of each. Nothing comes out."""
    _vid, residents = await town(ingest, settings, store, 10)
    tracer = await make_key(ingest, "tracer")
    top = max(pid for pid, _ in residents) + 2
    window = {"since": iso(dt.datetime.now(dt.UTC) - 3 * HOUR), "until": iso(dt.datetime.now(dt.UTC))}
    seen = 0
    for pid in range(1, top + 1):
        r = await tracing.get(
            f"/v1/trace/persons/{pid}/visits", params={**window, "reason": "sweep"}, headers=tracer
        )
        seen += r.status_code == 200
        got = await details(tracing, pid, tracer)
        assert got.status_code == 403 and got.json()["reason"] == "not_traced", (pid, got.text)
        assert "139" not in got.text
    assert seen == len(residents)  # the timelines were there: they just bind no one
    # nor does a lookup by id number: it would turn an id number into the phone on record
    r = await tracing.post(
        "/v1/trace/persons/lookup", json={"id_number": id_number(60), "reason": "sweep"}, headers=tracer
    )
    assert r.status_code == 200 and r.json()["count"] == 1
    got = await details(tracing, r.json()["matches"][0]["person_id"], tracer)
    assert got.status_code == 403 and "139" not in got.text
    # the index person of a contacts query, and the persons its answer names, are bound
    index = residents[0][0]
    r = await tracing.post(
        "/v1/trace/contacts",
        json={"person_id": index, **window, "min_overlap_minutes": 1, "reason": "case 25"},
        headers=tracer,
    )
    assert r.status_code == 200 and len(r.json()["contacts"]) == 9, r.text
    assert (await details(tracing, index, tracer)).status_code == 200
    assert (await details(tracing, residents[1][0], tracer)).status_code == 200
    audit = await tracing.get("/v1/audit", params={"action": "contact_details"}, headers=admin_headers())
    outcomes = [e["params"].get("outcome", "ok") for e in audit.json()["entries"]]
    assert outcomes.count("not_traced") == top + 1 and outcomes.count("ok") == 2


async def test_contact_details_have_an_hourly_budget_and_a_key_that_reaches_it_alerts_the_city(
    ingest: AsyncTestClient[Any],
    tracing: AsyncTestClient[Any],
    settings: Settings,
    store: Store,
    redis_client: Any,
) -> None:
    vid, residents = await town(ingest, settings, store, 6)
    tracer = await make_key(ingest, "tracer")
    now = dt.datetime.now(dt.UTC)
    r = await tracing.post(
        "/v1/trace/exposures",
        json={
            "sites": [{"venue_id": vid, "since": iso(now - 3 * HOUR), "until": iso(now)}],
            "reason": "site",
        },
        headers=tracer,
    )
    assert r.status_code == 200 and r.json()["count"] == 6, r.text
    statuses = [(await details(tracing, pid, tracer)).status_code for pid, _ in residents]
    assert statuses == [200] * BUDGET + [429] * (6 - BUDGET), statuses
    over = await details(tracing, residents[-1][0], tracer)
    assert over.json()["reason"] == "over_budget" and 1 <= int(over.headers["retry-after"]) <= 3600
    assert "139" not in over.text
    # another key has its own budget
    other = await make_key(ingest, "tracer")
    await tracing.post(
        "/v1/trace/exposures",
        json={
            "sites": [{"venue_id": vid, "since": iso(now - 3 * HOUR), "until": iso(now)}],
            "reason": "site",
        },
        headers=other,
    )
    assert (await details(tracing, residents[0][0], other)).status_code == 200

    # the key that reached its budget raised one bulk_read alert, for the city level
    harness = Harness(settings, redis_client)
    stream = [from_fields(f) for _id, f in await redis_client.xrange(harness.ctx.keys.alerts_stream())]
    bulk = [a for a in stream if a.kind == "bulk_read"]
    assert len(bulk) == 1, stream
    alert = bulk[0]
    assert alert.level == "city" and alert.severity == "critical" and alert.person_id is None
    assert alert.details["limit"] == BUDGET and alert.details["key_id"] not in ("", "admin")
    await write_history(harness, store, 1)
    city = await make_key(ingest, "analyst")
    district = await make_key(ingest, "analyst", scope="110101")
    listed = await tracing.get("/v1/alerts", params={"kind": "bulk_read"}, headers=city)
    assert listed.status_code == 200 and [a["alert_id"] for a in listed.json()["alerts"]] == [alert.alert_id]
    queue = await tracing.get("/v1/alerts/queue", headers=city)
    assert queue.json()["level"] == "city"
    assert [i["alert"]["kind"] for i in queue.json()["alerts"]] == ["bulk_read"]
    assert (await tracing.get("/v1/alerts/queue", params={"level": "city"}, headers=district)).json()[
        "count"
    ] == 0
    audit = await tracing.get("/v1/audit", params={"action": "contact_details"}, headers=admin_headers())
    outcomes = [e["params"].get("outcome", "ok") for e in audit.json()["entries"]]
    assert outcomes.count("over_budget") == 4 and outcomes.count("ok") == BUDGET + 1


async def test_own_visits_are_rate_limited_on_the_tracing_service_too(
    ingest: AsyncTestClient[Any], tracing: AsyncTestClient[Any], settings: Settings, store: Store
) -> None:
    _vid, residents = await town(ingest, settings, store, 1)
    token = residents[0][1]
    statuses = [
        (await tracing.get("/v1/residents/me/visits", headers=bearer(token))).status_code for _ in range(100)
    ]
    assert statuses[:VISITS_PER_MIN] == [200] * VISITS_PER_MIN
    assert statuses[VISITS_PER_MIN:] == [429] * (100 - VISITS_PER_MIN), statuses
    r = await tracing.get("/v1/residents/me/visits", headers=bearer(token))
    assert r.json()["reason"] == "rate_limited" and 1 <= int(r.headers["retry-after"]) <= 60
    # one resident's pace leaves another's alone
    other = await register(ingest, 99)
    assert (await tracing.get("/v1/residents/me/visits", headers=bearer(other[1]))).status_code == 200


async def test_reads_of_statistics_venue_history_and_exposure_sites_are_audited(
    ingest: AsyncTestClient[Any],
    tracing: AsyncTestClient[Any],
    settings: Settings,
    store: Store,
    sync_redis: redis.Redis,
) -> None:
    vid, _residents = await town(ingest, settings, store, 1)
    analyst = await make_key(ingest, "analyst")
    tracer = await make_key(ingest, "tracer")
    for path in ("/v1/stats/scans-per-hour", "/v1/stats/districts", "/v1/stats/venues"):
        r = await tracing.get(path, headers=analyst)
        assert r.status_code == 200, r.text
    assert (await tracing.get("/v1/exposure-sites", headers=tracer)).status_code == 200
    assert (
        await tracing.get("/v1/exposure-sites", params={"active": True}, headers=analyst)
    ).status_code == 200
    entries = (await tracing.get("/v1/audit", headers=admin_headers())).json()["entries"]
    stats = [e for e in entries if e["action"] == "stats"]
    assert sorted(e["params"]["view"] for e in stats) == ["districts", "scans-per-hour", "venues"]
    assert len({e["actor"] for e in stats}) == 1 and all(e["role"] == "analyst" for e in stats)
    assert all(e["params"]["since"] and e["params"]["until"] for e in stats)
    lists = [e for e in entries if e["action"] == "exposure_sites"]
    assert sorted(e["role"] for e in lists) == ["analyst", "tracer"]

    # venue history on the ingest API: an audit row on the audit stream before the answer
    r = await ingest.get(f"/v1/venues/{vid}/history", headers=analyst)
    assert r.status_code == 200, r.text
    stream: Any = sync_redis.xrange(keys_of(settings).audit_stream())
    rows = [audit_trail.decode(fields) for _id, fields in stream]
    read = [row for row in rows if row.action == "venue_history"]
    assert len(read) == 1 and read[0].role == "analyst" and read[0].params == {"venue_id": vid}
    assert read[0].rows == len(r.json()["changes"]) and read[0].client_ip
