"""Notices for families and the texts outbox, against the real apps, Redis, ClickHouse, the real SMS
outbox file and a real local HTTP endpoint (no mocks):

* a dependant's notice reaches each guardian (page and text) naming the dependant, and the guardian
  acknowledges it for them;
* every notice's text is delivered once at the gateway although the worker dies between sending it
  and acknowledging it: once by a failure injected after the send (the outbox file gateway), once by
  SIGKILL of a real tracing process while the HTTP gateway holds the request."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from checkin.platform.context import Context
from checkin.platform.instants import format_ms
from checkin.platform.redis_keys import TEXTS_GROUP
from checkin.platform.settings import Settings
from tests.support.exposure import flag, new_venue, sink_until
from tests.support.ingest import bearer, born_years_ago, make_key, outbox, register
from tests.support.servers import tracing_process
from tests.support.values import admin_headers, free_port
from tracing.api.exposure_sites import StoredSite
from tracing.notices.deliver import SiteFacts, tell
from tracing.notices.worker import NoticeWorker
from tracing.rules.alerts import Alert, to_fields
from tracing.storage.store import Store


async def test_a_dependants_notice_reaches_each_guardian_who_acknowledges_it_for_them(
    ingest: AsyncTestClient[Any],
    tracing: AsyncTestClient[Any],
    settings: Settings,
    store: Store,
    notice_worker: NoticeWorker,
) -> None:
    site_vid, site_code = await new_venue(ingest, "幸福路菜市场")
    son, son_token = await register(ingest, 401, name="吴强")
    daughter, daughter_token = await register(ingest, 402, name="吴丽")
    stranger, stranger_token = await register(ingest, 403, name="郑一")
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "吴奶奶", "id_number": born_years_ago(82, 404)},
        headers=bearer(son_token),
    )
    assert r.status_code == 201, r.text
    grandma = int(r.json()["person_id"])
    # the daughter may check grandma in too (a confirmed link, as the son's)
    await ingest_link(settings, daughter, grandma)
    # grandma goes to the market with her son; the stranger is there too, no family of theirs
    r = await ingest.post(
        "/v1/checkins", json={"code": site_code, "companions": [grandma]}, headers=bearer(son_token)
    )
    assert r.status_code == 201, r.text
    assert (
        await ingest.post("/v1/checkins", json={"code": site_code}, headers=bearer(stranger_token))
    ).status_code == 201
    await sink_until(settings, store, 3)
    tracer = await make_key(ingest, "tracer")
    r = await flag(tracing, tracer, site_vid, level="test")
    assert r.status_code == 201, r.text
    site = r.json()["site_id"]
    assert await notice_worker.flagged_step() is True

    theirs = (await ingest.get("/v1/residents/me/notices", headers=bearer(son_token))).json()
    assert theirs["unread"] == 2
    by_id = {n["notice_id"]: n for n in theirs["notices"]}
    assert set(by_id) == {site, f"{site}-{grandma}"}
    copy = by_id[f"{site}-{grandma}"]
    assert copy["for_person_id"] == grandma and copy["for_name_masked"] == "吴*奶"
    assert "for_person_id" not in by_id[site]
    # the daughter was not there but is grandma's guardian: told about grandma only
    hers = (await ingest.get("/v1/residents/me/notices", headers=bearer(daughter_token))).json()
    assert [n["notice_id"] for n in hers["notices"]] == [f"{site}-{grandma}"]
    stranger_sees = (await ingest.get("/v1/residents/me/notices", headers=bearer(stranger_token))).json()
    assert [n["notice_id"] for n in stranger_sees["notices"]] == [site]

    texts = [m for m in outbox(settings) if m["kind"] == "notice"]
    by_phone: dict[str, list[str]] = {}
    for m in texts:
        by_phone.setdefault(m["phone"], []).append(m["text"])
    assert sorted(len(v) for v in by_phone.values()) == [1, 1, 2]  # grandma has no phone of her own
    son_texts = sorted(by_phone["13900000401"], key=lambda t: "家人" in t)
    assert "您到访的“幸福路菜市场”" in son_texts[0]
    assert "您的家人吴*奶到访的“幸福路菜市场”" in son_texts[1]
    assert f"/me#notice-{site}-{grandma}" in son_texts[1]
    assert by_phone["13900000402"] == [son_texts[1]]  # the same words, to the other guardian
    pid_of = {"13900000401": son, "13900000402": daughter, "13900000403": stranger}
    assert all(m["idempotency_key"] == f"{m['notice_id']}:{pid_of[m['phone']]}" for m in texts)

    # the son acknowledges it for grandma: her own notice is read, by him; the daughter's copy stays
    r = await ingest.post(f"/v1/residents/me/notices/{site}-{grandma}/ack", headers=bearer(son_token))
    assert r.status_code == 200 and r.json()["acked_at"], r.text
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        ctx = Context.build(settings, client, "test")
        raw = await client.hget(ctx.keys.notices(grandma), site)
    finally:
        await client.aclose()
    assert raw is not None
    own = json.loads(raw)
    assert own["acked_by"] == son and own["acked_at"] == r.json()["acked_at"]
    hers = (await ingest.get("/v1/residents/me/notices", headers=bearer(daughter_token))).json()
    assert hers["unread"] == 1
    # nobody acknowledges someone else's copy
    r = await ingest.post(f"/v1/residents/me/notices/{site}-{grandma}/ack", headers=bearer(stranger_token))
    assert r.status_code == 404
    # the audit row counts the guardians told
    audit = await tracing.get("/v1/audit", params={"action": "exposure_notices"}, headers=admin_headers())
    row = audit.json()["entries"][-1]
    assert row["rows"] == 5 and row["params"]["family"] == 2 and row["params"]["texted"] == 4


async def ingest_link(settings: Settings, owner: int, person: int) -> None:
    """A confirmed guardian link owner -> person, as the companions route leaves it (the daughter
    would add grandma with the code of grandma's phone; grandma has none)."""
    from checkin.residents.guardianship import write_companion_copies

    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        ctx = Context.build(settings, client, "test")
        await client.sadd(ctx.keys.companions(owner), person)
        await client.sadd(ctx.keys.guardians(person), owner)
        await write_companion_copies(ctx, [owner])
    finally:
        await client.aclose()


# --- at least once, once at the gateway -------------------------------------------------------------------


@asynccontextmanager
async def two_workers(
    settings: Settings, store: Store
) -> AsyncIterator[tuple[aioredis.Redis, NoticeWorker, NoticeWorker]]:
    """A Redis client and two notices workers on it: the first to die, the second to take over."""
    client = aioredis.Redis.from_url(settings.redis_url)
    first = NoticeWorker(Context.build(settings, client, "tracing"), store)
    second = NoticeWorker(Context.build(settings, client, "tracing"), store)
    try:
        yield client, first, second
    finally:
        await first.close()
        await second.close()
        await client.aclose()


class Died(Exception):
    """A worker dying at a chosen step."""


async def die(*_: Any, **__: Any) -> None:
    raise Died


def site_facts(venue_id: int) -> SiteFacts:
    now = int(time.time() * 1000)
    return SiteFacts("c" * 18, venue_id, "滨河路图书馆", now - 7_200_000, now - 3_600_000, "inform", "")


async def test_a_worker_that_dies_after_sending_leaves_each_text_delivered_once_in_the_outbox(
    ingest: AsyncTestClient[Any], settings: Settings, make_settings: Any, store: Store
) -> None:
    settings = make_settings(sink_claim_idle_ms=300, keyring=settings.keyring)
    people = [(await register(ingest, seq))[0] for seq in (411, 412, 413)]
    async with two_workers(settings, store) as (client, first, second):
        await first.ensure()
        now = int(time.time() * 1000)
        told = await tell(first.ctx, site_facts(9001), [(p, now - 5_000_000) for p in people], now, "flag")
        assert told.notified == 3

        # the worker dies after the gateway took the texts, before it acknowledges them
        first.texts.reader.ack = die  # type: ignore[method-assign]
        with pytest.raises(Died):
            await first.send_texts()
        lines = [m for m in outbox(settings) if m["kind"] == "notice"]
        assert len(lines) == 3
        pending = await client.xpending(first.ctx.keys.notice_texts(), TEXTS_GROUP)
        assert pending["pending"] == 3  # sent, never acknowledged

        time.sleep(0.4)  # longer than the pending timeout: another worker takes them over
        await second.ensure()
        await second.send_texts()
        lines = [m for m in outbox(settings) if m["kind"] == "notice"]
        assert sorted(m["phone"] for m in lines) == ["13900000411", "13900000412", "13900000413"]
        assert len({m["idempotency_key"] for m in lines}) == 3
        pending = await client.xpending(first.ctx.keys.notice_texts(), TEXTS_GROUP)
        assert pending["pending"] == 0
        assert await client.xlen(first.ctx.keys.notice_texts()) == 0
        # telling the same persons again writes no notice and no text
        told = await tell(second.ctx, site_facts(9001), [(p, now) for p in people], now, "visit")
        assert told.notified == 0
        await second.send_texts()
        assert len([m for m in outbox(settings) if m["kind"] == "notice"]) == 3


class Provider:
    """A real HTTP endpoint standing for an SMS provider: delivers one text per Idempotency-Key;
    while ``hold`` is set, the requests it receives are recorded and then held unanswered (the worker
    that sent them waits for the answer)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str]] = []
        self.delivered: dict[str, tuple[str, str]] = {}
        self.hold = threading.Event()
        self.release = threading.Event()
        self.lock = threading.Lock()
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key", "")
                with provider.lock:
                    provider.received.append((key, body["phone"], body["text"]))
                    duplicate = key in provider.delivered
                    if not duplicate:
                        provider.delivered[key] = (body["phone"], body["text"])
                if provider.hold.is_set():
                    provider.release.wait(60)
                answer = json.dumps({"duplicate": duplicate}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()


def wait_for(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def test_a_worker_killed_between_sending_and_acknowledging_leaves_each_text_delivered_once(
    ingest: AsyncTestClient[Any], settings: Settings, make_settings: Any, tmp_path: Path, provider: Provider
) -> None:
    settings = make_settings(
        keyring=settings.keyring,
        clickhouse_dsn=f"chdb://{tmp_path / 'ch'}",
        tracing_port=free_port(),
        sms_gateway=provider.url,
        sink_claim_idle_ms=1000,
    )
    people = [(await register(ingest, seq))[0] for seq in (421, 422, 423, 424)]
    expected = {f"{'d' * 18}:{p}" for p in people}
    provider.hold.set()
    with tracing_process(settings, "notices", tmp_path / "tracing-1.log") as proc:
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            ctx = Context.build(settings, client, "test")
            now = int(time.time() * 1000)
            facts = SiteFacts("d" * 18, 9002, "滨河路图书馆", now - 7_200_000, now - 3_600_000, "test", "")
            told = await tell(ctx, facts, [(p, now - 5_000_000) for p in people], now, "flag")
            assert told.notified == 4
            # the worker sends the texts: the provider holds them, the worker waits for its answer
            wait_for(lambda: len(provider.received) == 4, 30, "the texts at the provider")
            pending = await client.xpending(ctx.keys.notice_texts(), TEXTS_GROUP)
            assert pending["pending"] == 4
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            await client.aclose()
    provider.hold.clear()
    provider.release.set()
    assert set(provider.delivered) == expected
    with tracing_process(settings, "notices", tmp_path / "tracing-2.log"):
        client = aioredis.Redis.from_url(settings.redis_url)
        try:
            ctx = Context.build(settings, client, "test")

            async def drained() -> bool:
                pending = await client.xpending(ctx.keys.notice_texts(), TEXTS_GROUP)
                return bool(pending["pending"] == 0 and await client.xlen(ctx.keys.notice_texts()) == 0)

            deadline = time.monotonic() + 30
            while not await drained():
                assert time.monotonic() < deadline, "the texts left pending were not sent again"
                time.sleep(0.1)
        finally:
            await client.aclose()
    # sent again with the same keys after the kill; each delivered once
    keys = [key for key, _, _ in provider.received]
    assert len(keys) == 8 and set(keys) == expected and all(keys.count(k) == 2 for k in expected)
    assert set(provider.delivered) == expected and len(provider.delivered) == 4
    phones = sorted(phone for phone, _ in provider.delivered.values())
    assert phones == [f"139{seq:08d}" for seq in (421, 422, 423, 424)]
    assert all(
        "滨河路图书馆" in text and "/me#notice-" + "d" * 18 in text for _, text in provider.delivered.values()
    )


async def test_an_alert_entry_the_worker_cannot_decode_goes_to_its_dead_letter_stream(
    settings: Settings, notice_worker: NoticeWorker
) -> None:
    keys, redis = notice_worker.ctx.keys, notice_worker.ctx.redis
    bad = (await redis.xadd(keys.alerts_stream(), {"kind": "exposure_site_visit", "id": "x"})).decode()
    await notice_worker.visits_step(0)
    [(_, fields)] = await redis.xrange(keys.notices_dead_letters())
    assert fields[b"id"].decode() == bad
    assert fields[b"reason"].startswith(b"undecodable entry")
    info = await redis.xpending(keys.alerts_stream(), "notices")
    assert int(info["pending"]) == 0  # acknowledged with the dead letter: the group keeps moving


async def test_a_visit_alert_read_by_a_worker_that_died_is_told_by_the_next_one(
    ingest: AsyncTestClient[Any], settings: Settings, make_settings: Any, store: Store
) -> None:
    settings = make_settings(sink_claim_idle_ms=300, keyring=settings.keyring)
    person, _token = await register(ingest, 431)
    async with two_workers(settings, store) as (client, first, second):
        keys = first.ctx.keys
        now = int(time.time() * 1000)
        site = StoredSite(
            site_id="e" * 18, venue_id=9002, since_ms=now - 3_600_000, until_ms=now + 3_600_000,
            reason="case 12", created_ms=now - 600_000,
        )  # fmt: skip
        await client.hset(keys.exposure_sites(), site.site_id, msgspec.json.encode(site))
        await first.ensure()
        alert = Alert(
            alert_id="0" * 22, kind="exposure_site_visit", severity="warning", at=format_ms(now - 60_000),
            person_id=person, venue_id=9002, district="110101", street="110101001",
            community="110101001001", details={"site_ids": [site.site_id]},
        )  # fmt: skip
        await client.xadd(keys.alerts_stream(), to_fields(alert))  # type: ignore[arg-type]
        # the first worker reads the alert and dies before telling anyone (Redis went away, kill -9)
        assert [len(entries) for _, entries in await first.reader.read(500)] == [1]

        await second.ensure()

        async def told() -> bool:
            await second.visits_step(0)
            return bool(await client.hexists(keys.notices(person), site.site_id))

        deadline = time.monotonic() + 10
        while not await told():
            assert time.monotonic() < deadline, "the alert a dead worker read was never told"
            await asyncio.sleep(0.1)
        texts = [m for m in outbox(settings) if m["kind"] == "notice"]
        assert [m["idempotency_key"] for m in texts] == [f"{site.site_id}:{person}"]
        assert int((await client.xpending(keys.alerts_stream(), "notices"))["pending"]) == 0


@pytest.mark.parametrize("dies_at", ["xdel", "xack"])
async def test_a_worker_that_dies_while_it_clears_its_sent_texts_leaves_none_behind(
    ingest: AsyncTestClient[Any], settings: Settings, make_settings: Any, store: Store, dies_at: str
) -> None:
    settings = make_settings(sink_claim_idle_ms=300, keyring=settings.keyring)
    people = [(await register(ingest, seq))[0] for seq in (441, 442)]
    async with two_workers(settings, store) as (client, first, second):
        keys = first.ctx.keys
        await first.ensure()
        now = int(time.time() * 1000)
        told = await tell(first.ctx, site_facts(9003), [(p, now - 5_000_000) for p in people], now, "flag")
        assert told.notified == 2

        # the worker dies after the gateway took the texts, in the middle of clearing them
        target: Any = client if dies_at == "xdel" else first.texts.reader
        name = "xdel" if dies_at == "xdel" else "ack"
        setattr(target, name, die)
        try:
            with pytest.raises(Died):
                await first.send_texts()
        finally:
            delattr(target, name)
        assert len([m for m in outbox(settings) if m["kind"] == "notice"]) == 2

        async def cleared() -> bool:
            await second.send_texts()
            pending = int((await client.xpending(keys.notice_texts(), TEXTS_GROUP))["pending"])
            return pending == 0 and await client.xlen(keys.notice_texts()) == 0

        await second.ensure()
        deadline = time.monotonic() + 10
        while not await cleared():
            assert time.monotonic() < deadline, "sent texts were left in the stream for good"
            await asyncio.sleep(0.1)
        keys_sent = sorted(m["idempotency_key"] for m in outbox(settings) if m["kind"] == "notice")
        assert keys_sent == sorted(f"{'c' * 18}:{p}" for p in people)
