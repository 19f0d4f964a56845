"""The resident's side over HTTP against the real apps, Redis and ClickHouse: a door screen that never
shows a stale verdict, exposure notices in seconds (with their text messages in the real outbox), and
a resident's own visits relayed from the tracing service."""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from checkin.platform.context import Context
from checkin.platform.settings import Settings
from tests.support.access_world import iso
from tests.support.exposure import flag, new_venue, sink_until
from tests.support.ingest import bearer, make_key, outbox, register
from tests.support.values import admin_headers
from tracing.notices.worker import NoticeWorker
from tracing.storage.store import Store

HOUR = dt.timedelta(hours=1)


async def colour(ingest: AsyncTestClient[Any], health: dict[str, str], pid: int, status: str) -> None:
    r = await ingest.put(f"/v1/health/{pid}", json={"status": status, "reason": "test"}, headers=health)
    assert r.status_code == 200, r.text


# --- the door screen ------------------------------------------------------------------------------------


async def test_a_repeat_scan_and_a_resumed_page_show_the_verdict_of_now(ingest: AsyncTestClient[Any]) -> None:
    health = await make_key(ingest, "health")
    pid, token = await register(ingest, 1)
    _, code = await new_venue(ingest, "Noodles")
    first = await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(token))
    assert first.status_code == 201 and first.json()["people"][0]["verdict"] == "pass"
    cid = first.json()["checkin_id"]
    await colour(ingest, health, pid, "red")
    again = await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(token))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["checkin_id"] == cid
    person = again.json()["people"][0]
    assert (person["status"], person["verdict"], person["reason"]) == ("red", "deny", "red_code")
    assert again.json()["evaluated_at"]

    resumed = await ingest.get(f"/v1/checkins/{cid}", headers=bearer(token))
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["people"][0]["verdict"] == "deny" and resumed.json()["evaluated_at"]
    await colour(ingest, health, pid, "green")
    resumed = await ingest.get(f"/v1/checkins/{cid}", headers=bearer(token))
    assert resumed.json()["people"][0]["verdict"] == "pass"
    out = await ingest.post(f"/v1/checkins/{cid}/checkout", headers=bearer(token))
    assert out.status_code == 200
    resumed = await ingest.get(f"/v1/checkins/{cid}", headers=bearer(token))
    assert resumed.json()["checked_out_at"] == out.json()["ended_at"]


async def test_a_check_in_is_seen_only_by_its_owner(ingest: AsyncTestClient[Any]) -> None:
    _, token = await register(ingest, 2)
    _, other = await register(ingest, 3)
    _, code = await new_venue(ingest, "Bakery")
    cid = (await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(token))).json()["checkin_id"]
    theirs = await ingest.get(f"/v1/checkins/{cid}", headers=bearer(other))
    unknown_id = cid[:-1] + ("0" if cid[-1] != "0" else "1")
    unknown = await ingest.get(f"/v1/checkins/{unknown_id}", headers=bearer(token))
    assert theirs.status_code == 404 and unknown.status_code == 404
    # the same answer whether the check-in is someone else's or does not exist: no oracle
    assert theirs.json()["detail"].replace(cid, "X") == unknown.json()["detail"].replace(unknown_id, "X")
    for bad in ("x", "../../etc", "0" * 200):
        assert (await ingest.get(f"/v1/checkins/{bad}", headers=bearer(token))).status_code == 404
    assert (await ingest.get(f"/v1/checkins/{cid}", headers=admin_headers())).status_code == 403


async def test_each_person_of_a_family_gets_their_own_verdict(ingest: AsyncTestClient[Any]) -> None:
    health = await make_key(ingest, "health")
    pid, token = await register(ingest, 4)
    kids = []
    for seq in (5, 6):
        from tests.support.ingest import child_id_number

        r = await ingest.post(
            "/v1/residents/me/companions",
            json={"name": f"家人{seq}", "id_number": child_id_number(seq)},
            headers=bearer(token),
        )
        kids.append(r.json()["person_id"])
    sampled = iso(dt.datetime.now(dt.UTC) - HOUR)
    r = await ingest.post(
        "/v1/health/tests",
        json=[{"person_id": pid, "sampled_at": sampled, "result": "negative"}],
        headers=health,
    )
    assert r.status_code == 200, r.text
    _, code = await new_venue(ingest, "Clinic", requires_negative_test_hours=72)
    r = await ingest.post("/v1/checkins", json={"code": code, "companions": kids}, headers=bearer(token))
    verdicts = [(p["person_id"], p["verdict"], p.get("reason")) for p in r.json()["people"]]
    assert verdicts == [
        (pid, "pass", None),
        (kids[0], "deny", "test_expired"),
        (kids[1], "deny", "test_expired"),
    ]


# --- notices ---------------------------------------------------------------------------------------------


async def test_the_exposed_are_told_and_texted_and_no_one_else(
    ingest: AsyncTestClient[Any],
    tracing: AsyncTestClient[Any],
    settings: Settings,
    store: Store,
    notice_worker: NoticeWorker,
) -> None:
    site_vid, site_code = await new_venue(ingest, "幸福路菜市场")
    _, other_code = await new_venue(ingest, "Library")
    exposed = [await register(ingest, seq) for seq in (10, 11)]
    elsewhere = await register(ingest, 12)
    for _, token in exposed:
        assert (
            await ingest.post("/v1/checkins", json={"code": site_code}, headers=bearer(token))
        ).status_code == 201
    await ingest.post("/v1/checkins", json={"code": other_code}, headers=bearer(elsewhere[1]))
    await sink_until(settings, store, 3)
    tracer = await make_key(ingest, "tracer")
    r = await flag(tracing, tracer, site_vid, level="test", message="请到幸福路社区卫生站检测")
    assert r.status_code == 201, r.text
    assert r.json()["level"] == "test"
    assert await notice_worker.flagged_step() is True

    for pid, token in exposed:
        mine = (await ingest.get("/v1/residents/me/notices", headers=bearer(token))).json()
        assert mine["unread"] == 1, mine
        notice = mine["notices"][0]
        assert notice["notice_id"] == r.json()["site_id"] and notice["venue_name"] == "幸福路菜市场"
        assert notice["level"] == "test" and notice["message"] == "请到幸福路社区卫生站检测"
    theirs = (await ingest.get("/v1/residents/me/notices", headers=bearer(elsewhere[1]))).json()
    assert theirs == {"notices": [], "unread": 0}
    texts = [m for m in outbox(settings) if m["kind"] == "notice"]
    assert sorted(m["phone"] for m in texts) == ["13900000010", "13900000011"]
    assert all("幸福路菜市场" in m["text"] and "核酸" in m["text"] for m in texts)

    # told once: a second screening (and the later re-screen) sends nothing new
    await tracing_requeue(notice_worker, r.json()["site_id"])
    assert len([m for m in outbox(settings) if m["kind"] == "notice"]) == 2

    token = exposed[0][1]
    nid = r.json()["site_id"]
    acked = await ingest.post(f"/v1/residents/me/notices/{nid}/ack", headers=bearer(token))
    assert acked.status_code == 200 and acked.json()["acked_at"]
    assert (await ingest.get("/v1/residents/me/notices", headers=bearer(token))).json()["unread"] == 0
    other = await ingest.post(f"/v1/residents/me/notices/{nid}/ack", headers=bearer(elsewhere[1]))
    assert other.status_code == 404
    bad = await ingest.post("/v1/residents/me/notices/not-an-id/ack", headers=bearer(token))
    assert bad.status_code == 400
    audit = await tracing.get("/v1/audit", params={"action": "exposure_notices"}, headers=admin_headers())
    assert audit.json()["entries"][-1]["rows"] == 2


async def tracing_requeue(worker: NoticeWorker, site_id: str) -> None:
    await worker.ctx.redis.rpush(worker.ctx.keys.notify_queue(), site_id)
    assert await worker.flagged_step() is True


async def test_a_later_visit_during_the_window_is_told_too(
    ingest: AsyncTestClient[Any],
    tracing: AsyncTestClient[Any],
    settings: Settings,
    store: Store,
    notice_worker: NoticeWorker,
) -> None:
    from tests.support.rules import Harness

    vid, code = await new_venue(ingest, "Gym")
    tracer = await make_key(ingest, "tracer")
    site = (await flag(tracing, tracer, vid, level="inform")).json()
    assert await notice_worker.flagged_step() is True  # no one there yet
    _pid, token = await register(ingest, 20)
    assert (await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(token))).status_code == 201
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        harness = Harness(settings, client)
        harness.clock.ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        alerts = await harness.run()
    finally:
        await client.aclose()
    assert [a.kind for a in alerts] == ["exposure_site_visit"]
    await notice_worker.visits_step(100)
    mine = (await ingest.get("/v1/residents/me/notices", headers=bearer(token))).json()
    assert [n["notice_id"] for n in mine["notices"]] == [site["site_id"]]
    assert [m["phone"] for m in outbox(settings) if m["kind"] == "notice"] == ["13900000020"]


async def test_isolate_turns_the_exposed_yellow_when_the_city_says_so(make_settings: Any) -> None:
    from checkin.app import create_app as ingest_app
    from tracing.app import create_app as tracing_app

    settings = make_settings(exposure_isolate_yellow="true")
    store_here = Store(settings.effective_clickhouse_dsn, settings.clickhouse_database)
    store_here.apply_schema(settings.retention_days)
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        async with (
            AsyncTestClient(app=ingest_app(settings)) as ingest,
            AsyncTestClient(app=tracing_app(settings, store=store_here, workers=())) as tracing,
        ):
            vid, code = await new_venue(ingest, "Karaoke")
            health = await make_key(ingest, "health")
            green, token_g = await register(ingest, 30)
            red, token_r = await register(ingest, 31)
            await colour(ingest, health, red, "red")
            for token in (token_g, token_r):
                await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(token))
            await sink_until(settings, store_here, 2)
            tracer = await make_key(ingest, "tracer")
            assert (await flag(tracing, tracer, vid, level="isolate")).status_code == 201
            worker = NoticeWorker(Context.build(settings, client, "tracing"), store_here)
            await worker.reader.ensure()
            assert await worker.flagged_step() is True
            await worker.close()
            states = {p: (await ingest.get(f"/v1/health/{p}", headers=health)).json() for p in (green, red)}
            assert states[green]["status"] == "yellow" and states[green]["reason"] == "exposure"
            assert states[red]["status"] == "red"
            audit = await tracing.get(
                "/v1/audit", params={"action": "exposure_notices"}, headers=admin_headers()
            )
            assert audit.json()["entries"][0]["params"]["turned_yellow"] == 1
    finally:
        await client.aclose()
        store_here.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        store_here.close()


async def test_bad_exposure_flags_are_refused_clearly(
    ingest: AsyncTestClient[Any], tracing: AsyncTestClient[Any]
) -> None:
    vid, _ = await new_venue(ingest, "Hall")
    tracer = await make_key(ingest, "tracer")
    now = dt.datetime.now(dt.UTC)
    cases = [
        ({"level": "panic"}, 400),
        # the period's rules hold between two members, which no schema states: 422
        ({"since": iso(now), "until": iso(now - HOUR)}, 422),
        ({"since": iso(now - dt.timedelta(days=100)), "until": iso(now)}, 422),
        ({"message": "x" * 501}, 400),
    ]
    for extra, status in cases:
        r = await flag(tracing, tracer, vid, **extra)
        assert r.status_code == status, (extra, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


# --- own visits --------------------------------------------------------------------------------------------


async def test_own_visits_are_relayed_from_the_tracing_service(make_settings: Any, tmp_path: Any) -> None:
    import asyncio

    from checkin.app import create_app as ingest_app
    from tests.support.servers import tracing_server
    from tests.support.values import free_port

    settings = make_settings(clickhouse_dsn=f"chdb://{tmp_path / 'ch'}", tracing_port=free_port())
    with tracing_server(settings, "sink,mirror", tmp_path / "tracing.log"):
        async with AsyncTestClient(app=ingest_app(settings)) as ingest:
            _, cafe = await new_venue(ingest, "Cafe")
            _, park = await new_venue(ingest, "Park")
            _, token = await register(ingest, 40)
            _, other = await register(ingest, 41)
            for code in (cafe, park):
                assert (
                    await ingest.post("/v1/checkins", json={"code": code}, headers=bearer(token))
                ).status_code == 201
                await asyncio.sleep(0.01)
            for _ in range(100):  # the sink writes within a second or so
                mine = await ingest.get("/v1/residents/me/visits", headers=bearer(token))
                assert mine.status_code == 200, mine.text
                if mine.json()["count"] == 2 and all(v["venue_name"] for v in mine.json()["visits"]):
                    break
                await asyncio.sleep(0.2)
            assert [v["venue_name"] for v in mine.json()["visits"]] == ["Park", "Cafe"]  # newest first
            assert mine.json()["days"] == 14
            theirs = await ingest.get("/v1/residents/me/visits", headers=bearer(other))
            assert theirs.json()["count"] == 0
            too_far = await ingest.get("/v1/residents/me/visits", params={"days": 100}, headers=bearer(token))
            # beyond what the store keeps (CHECKIN_RETENTION_DAYS): a setting, not the schema's bound
            assert too_far.status_code == 422 and "28" in too_far.json()["detail"]
            assert (
                await ingest.get("/v1/residents/me/visits", params={"days": 0}, headers=bearer(token))
            ).status_code == 400
            assert (await ingest.get("/v1/residents/me/visits", headers=admin_headers())).status_code == 403
            await ingest.post("/v1/residents/me/revoke", headers=bearer(other))
            revoked = await ingest.get("/v1/residents/me/visits", headers=bearer(other))
            assert revoked.status_code == 401 and revoked.json()["reason"] == "token_revoked", revoked.text
    async with AsyncTestClient(app=ingest_app(settings)) as ingest:  # the tracing service is gone
        down = await ingest.get("/v1/residents/me/visits", headers=bearer(token))
        assert down.status_code == 503 and down.headers["retry-after"]
