"""The world of the access-matrix tests: two venues in two districts, a key for every kind of caller,
two residents, a check-in that reached ClickHouse and an exposure site (built through the APIs)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from litestar.testing import AsyncTestClient

from checkin.platform import resident_tokens
from checkin.platform.keyring import Keyring
from checkin.platform.settings import Settings
from tests.support.ingest import bearer, child_id_number, register
from tests.support.instants import iso
from tests.support.sink import make_consumer, run_until
from tests.support.values import admin_headers
from tracing.storage.store import Store


def venue_body(name: str, district: str) -> dict[str, Any]:
    """The body of ``POST /v1/venues`` for a venue in ``district``."""
    return {
        "name": name,
        "address": "1 Test Road",
        "district": district,
        "street": district + "001",
        "community": district + "001001",
        "lat": 39.9,
        "lon": 116.4,
    }


@dataclass
class World:
    """What ``build_world`` made: a header per kind of caller and the ids they act on."""

    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    venue_a: int = 0
    venue_b: int = 0
    code_a: str = ""
    p: int = 0
    q: int = 0
    checkin_id: str = ""
    companion: int = 0
    rebound: int = 0
    """A resident whose phone the health authority re-binds (which ends every guardian link of theirs,
    so it is not P's companion)."""
    spare: dict[str, dict[str, str]] = field(default_factory=dict)
    """Tokens of two more residents, for routes that end the caller's own tokens."""
    spare_keys: list[str] = field(default_factory=list)
    site_id: str = ""


async def build_world(
    settings: Settings, ingest: AsyncTestClient[Any], tracing: AsyncTestClient[Any], store: Store
) -> World:
    """Venues A (district 110101) and B (120101), a key of every role, residents P and Q, P's companion
    and check-in at A (landed in ClickHouse), an exposure site at A."""
    w = World()
    adm = admin_headers()
    a = await ingest.post("/v1/venues", json=venue_body("Venue A", "110101"), headers=adm)
    b = await ingest.post("/v1/venues", json=venue_body("Venue B", "120101"), headers=adm)
    assert a.status_code == 201 and b.status_code == 201, a.text + b.text
    w.venue_a, w.venue_b = a.json()["venue_id"], b.json()["venue_id"]
    w.code_a = (await ingest.get(f"/v1/venues/{w.venue_a}/code", headers=adm)).json()["token"]

    async def key(role: str, **extra: Any) -> dict[str, str]:
        r = await ingest.post("/v1/keys", json={"role": role, "name": role, **extra}, headers=adm)
        assert r.status_code == 201, r.text
        return bearer(r.json()["key"])

    h = w.headers
    h["anonymous"] = {}
    h["forged"] = bearer("ck_" + "A" * 32)
    h["admin"] = adm
    for role in ("operator", "tracer", "analyst"):
        h[role] = await key(role)
        h[role + "_in"] = await key(role, scope="110101")
        h[role + "_out"] = await key(role, scope="120101")
    h["operator_other"] = await key("operator", venue_id=w.venue_b)
    h["operator_street"] = await key("operator", scope="110101001")
    h["operator_bound"] = await key("operator", venue_id=w.venue_a)
    h["tracer_community"] = await key("tracer", scope="110101001001")
    h["tracer_community_out"] = await key("tracer", scope="110101001002")
    h["analyst_street_out"] = await key("analyst", scope="110101002")
    h["device"] = await key("device", venue_id=w.venue_a)
    h["device_other"] = await key("device", venue_id=w.venue_b)
    h["health"] = await key("health")
    w.p, token = await register(ingest, 1, "resident")
    h["resident"] = bearer(token)
    w.q, token = await register(ingest, 2, "resident_other")
    h["resident_other"] = bearer(token)
    w.rebound = (await register(ingest, 4, "rebound"))[0]
    for seq, who in ((5, "resident"), (6, "resident_other")):
        w.spare[who] = bearer((await register(ingest, seq, who))[1])
    keyring = Keyring.parse(settings.keyring)
    h["expired"] = bearer(resident_tokens.issue(keyring, w.p, ttl_s=-5)[0])
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "child", "id_number": child_id_number(3)},
        headers=h["resident"],
    )
    assert r.status_code == 201, r.text
    w.companion = r.json()["person_id"]
    r = await ingest.post("/v1/checkins", json={"code": w.code_a}, headers=h["resident"])
    assert r.status_code == 201, r.text
    w.checkin_id = r.json()["checkin_id"]
    consumer, ctx = await make_consumer(settings, store)
    try:
        await run_until(
            consumer,
            lambda: int(store.scalar(f"SELECT count() FROM {store.table('scans')}")) >= 1,
        )
    finally:
        await ctx.redis.aclose()
    now = dt.datetime.now(dt.UTC)
    r = await tracing.post(
        "/v1/exposure-sites",
        json={
            "venue_id": w.venue_a,
            "since": iso(now - dt.timedelta(hours=2)),
            "until": iso(now + dt.timedelta(hours=1)),
            "reason": "matrix",
        },
        headers=adm,
    )
    assert r.status_code in (200, 201), r.text
    w.site_id = r.json()["site_id"]
    return w
