"""Finding a person by id number or phone (keyed hash lookup, audited, scoped) and names in trace answers."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from checkin.platform.settings import Settings
from tests.support.ingest import id_number, register
from tests.support.rules import DISTRICT_A, key_for
from tracing.storage.store import Store


async def test_lookup_by_id_number_or_phone(
    settings: Settings,
    redis_client: Any,
    store: Store,
    ingest: AsyncTestClient[Any],
    tracing: AsyncTestClient[Any],
) -> None:
    pid, _ = await register(ingest, 1, "张三丰")
    tracer = await key_for(settings, redis_client, "tracer")
    path = "/v1/trace/persons/lookup"
    r = await tracing.post(path, json={"id_number": id_number(1).lower(), "reason": "case 7"}, headers=tracer)
    assert r.status_code == 200, r.text
    assert r.json() == {"by": "id_number", "count": 1, "matches": [{"person_id": pid, "name": "张*丰"}]}
    r = await tracing.post(path, json={"phone": "139 0000 0001", "reason": "case 7"}, headers=tracer)
    assert r.json()["matches"] == [{"person_id": pid, "name": "张*丰"}]
    r = await tracing.post(path, json={"phone": "13900000999", "reason": "case 7"}, headers=tracer)
    assert r.status_code == 200 and r.json()["matches"] == []
    # a lookup binds no one: an id number alone never yields the phone on record
    r = await tracing.get(
        f"/v1/trace/persons/{pid}/contact-details", params={"reason": "call"}, headers=tracer
    )
    assert r.status_code == 403 and r.json()["reason"] == "not_traced" and "139" not in r.text
    # audited without the number itself
    rows = store.dicts(f"SELECT action, reason, params, rows FROM {store.table('audit')} ORDER BY at")
    lookups = [row for row in rows if row["action"] == "person_lookup"]
    assert [(x["reason"], x["rows"]) for x in lookups] == [("case 7", 1), ("case 7", 1), ("case 7", 0)]
    assert all(id_number(1) not in x["params"] and "13900000001" not in x["params"] for x in lookups)


async def test_lookup_scoped_and_refusals(
    settings: Settings, redis_client: Any, ingest: AsyncTestClient[Any], tracing: AsyncTestClient[Any]
) -> None:
    await register(ingest, 2)
    scoped = await key_for(settings, redis_client, "tracer", DISTRICT_A)
    analyst = await key_for(settings, redis_client, "analyst")
    path = "/v1/trace/persons/lookup"
    # registered, but no stay in the key's district: the scoped key learns nothing
    r = await tracing.post(path, json={"id_number": id_number(2), "reason": "r"}, headers=scoped)
    assert r.status_code == 200 and r.json()["matches"] == []
    assert (await tracing.post(path, json={"id_number": id_number(2), "reason": "r"})).status_code == 401
    r = await tracing.post(path, json={"id_number": id_number(2), "reason": "r"}, headers=analyst)
    assert r.status_code == 403
    for body in (
        {"reason": "r"},
        {"id_number": id_number(2), "phone": "13900000002", "reason": "r"},
        {"id_number": "12345", "reason": "r"},
        {"phone": "call me", "reason": "r"},
        {"id_number": id_number(2)},
        {"id_number": id_number(2), "reason": "  "},
        {"id_number": id_number(2), "reason": "r", "name": "x"},
    ):
        r = await tracing.post(path, json=body, headers=scoped)
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", body
