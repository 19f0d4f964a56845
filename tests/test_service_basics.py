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


async def test_a_stuck_shutdown_hook_does_not_hold_the_service(settings: Any, monkeypatch: Any) -> None:
    """A hook that never returns (a Redis that stopped answering) is given up after its bound; the
    steps after it still run and the service stops."""
    import asyncio
    import logging
    import time

    from checkin.platform import service
    from checkin.platform.context import Context

    monkeypatch.setattr(service, "SHUTDOWN_STEP_S", 0.3)
    ran: list[str] = []
    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    service.log.addHandler(handler)
    monkeypatch.setattr(service.log, "disabled", False)

    async def stuck(ctx: Context) -> None:
        await asyncio.Event().wait()

    async def last(app: Any, ctx: Context) -> None:
        ran.append("after_shutdown")

    app = service.build_app(
        service="ingest",
        title="t",
        parts=[service.Part("stuck", on_shutdown=stuck)],
        settings=settings,
        after_shutdown=last,
    )
    started = time.monotonic()
    try:
        async with AsyncTestClient(app=app) as client:
            assert (await client.get("/healthz")).status_code == 200
    finally:
        service.log.removeHandler(handler)
    assert time.monotonic() - started < 5
    assert ran == ["after_shutdown"]
    assert any(w.startswith("shutdown hook of stuck did not finish") for w in warnings), warnings
