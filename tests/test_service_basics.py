from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from tests.support.values import admin_headers


async def test_ingest_healthz_metrics_schema(ingest: AsyncTestClient[Any]) -> None:
    r = await ingest.get("/healthz")
    assert r.status_code == 200 and r.json()["checks"]["redis"] == "ok"
    r = await ingest.get("/schema/openapi.json")
    assert r.status_code == 200 and "/v1/keys" in r.json()["paths"]
    r = await ingest.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")


async def test_tracing_healthz_checks_clickhouse(tracing: AsyncTestClient[Any]) -> None:
    r = await tracing.get("/healthz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"redis": "ok", "clickhouse": "ok"}


async def test_errors_are_problem_json(ingest: AsyncTestClient[Any]) -> None:
    r = await ingest.post("/v1/keys", json={"role": "tracer"})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"].startswith("missing Authorization")
    r = await ingest.post("/v1/keys", json={"role": "pilot"}, headers=admin_headers())
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"
    r = await ingest.post("/v1/keys", content=b"{not json", headers=admin_headers())
    assert r.status_code == 400
    r = await ingest.get("/no/such/route")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


async def test_api_keys_are_created_hashed_used_and_revoked(
    ingest: AsyncTestClient[Any], sync_redis: Any, settings: Any
) -> None:
    r = await ingest.post(
        "/v1/keys", json={"role": "tracer", "name": "t1", "scope": "620102"}, headers=admin_headers()
    )
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    key_id = r.json()["record"]["key_id"]
    stored = b"".join(
        v for k in sync_redis.scan_iter(match=settings.key_prefix + "*") for v in [sync_redis.dump(k) or b""]
    )
    assert key.encode() not in stored
    r = await ingest.get("/v1/keys", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403
    r = await ingest.delete(f"/v1/keys/{key_id}", headers=admin_headers())
    assert r.status_code == 204
    r = await ingest.get("/v1/keys", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401
