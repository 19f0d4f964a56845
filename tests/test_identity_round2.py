"""Identity, round 2: no one claims a stranger, the companions route is no registry oracle, a phone
has one spelling, a door pass is read once.

Each test plays the attacker of the report over HTTP against the real ingest app and Redis, step by
step as the report words it, and fails if the attack still works. Codes are read from the SMS
outbox, as a phone would receive them.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import redis
from litestar.testing import AsyncTestClient
from redis.asyncio.client import Pipeline, Redis

from checkin.app import create_app
from checkin.platform import persons
from checkin.platform.context import Context
from checkin.platform.keyring import Keyring
from checkin.platform.settings import Settings
from checkin.protection import window_now
from tests.support.ingest import (
    a_minute_passes,
    bearer,
    born_years_ago,
    child_id_number,
    id_number_born_on,
    keys_of,
    make_key,
    outbox,
    put_venue,
    register,
    request_code,
    stream_events,
    with_check_digit,
)
from tests.support.values import admin_headers
from tests.support.waiting import fresh_window_async


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings(rate_register_per_min=1000)
    return settings


def local_today(settings: Settings) -> dt.date:
    return dt.datetime.now(ZoneInfo(settings.tz)).date()


def years_before(day: dt.date, years: int) -> dt.date:
    return (
        day.replace(year=day.year - years)
        if (day.month, day.day) != (2, 29)
        else dt.date(day.year - years, 3, 1)
    )


async def register_as(
    client: AsyncTestClient[Any], settings: Settings, name: str, phone: str, id_number: str
) -> Any:
    """Registration as the phone page does it: a code to the phone, then the form."""
    challenge, code = await request_code(client, settings, phone)
    return await client.post(
        "/v1/residents",
        json={"name": name, "phone": phone, "id_number": id_number, "challenge_id": challenge, "otp": code},
    )


async def with_code(client: AsyncTestClient[Any], settings: Settings, phone: str) -> dict[str, str]:
    challenge, code = await request_code(client, settings, phone)
    return {"phone": phone, "challenge_id": challenge, "otp": code}


async def phone_on_record(settings: Settings, redis_client: Any, person_id: int) -> str:
    found = await persons.contact_details(Context.build(settings, redis_client, "test"), person_id)
    assert found is not None
    return found.phone


async def device_key(client: AsyncTestClient[Any], venue_id: int) -> dict[str, str]:
    r = await client.post("/v1/keys", json={"role": "device", "venue_id": venue_id}, headers=admin_headers())
    assert r.status_code == 201, r.text
    return bearer(r.json()["key"])


# --- 1. claiming a stranger ------------------------------------------------------------------------


async def test_an_attacker_cannot_claim_a_stranger_and_the_real_person_takes_their_record_over(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis, redis_client: Any
) -> None:
    code = put_venue(sync_redis, settings, 101)
    attacker, attacker_token = await register(ingest, 201, name="坏人")
    h = bearer(attacker_token)
    stranger_idn = born_years_ago(30, 202)  # 30 years old, not registered: known name and id number
    body = {"name": "李娜", "id_number": stranger_idn}

    # the report's attack: the name and id number alone, no code -> refused, nothing written
    r = await ingest.post("/v1/residents/me/companions", json=body, headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "consent_required", r.text
    idh = persons.id_hash(Keyring.parse(settings.keyring), stranger_idn)
    assert sync_redis.get(keys_of(settings).person_by_id_hash(idh)) is None
    assert (await ingest.get("/v1/residents/me/companions", headers=h)).json() == []

    # with the code of a phone the attacker holds, that phone goes on the record (their consent is
    # the phone's): the attacker checks the "dependant" in once
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={**body, **await with_code(ingest, settings, "13700000201")},
        headers=h,
    )
    assert r.status_code == 201, r.text
    stranger = r.json()["person_id"]
    r = await ingest.post("/v1/checkins", json={"code": code, "companions": [stranger]}, headers=h)
    assert r.status_code == 201, r.text

    # the real person registers with their own phone: 201 (not 409), the same person and stays
    r = await register_as(ingest, settings, "李娜", "13900000202", stranger_idn)
    assert r.status_code == 201, r.text
    assert r.json()["person_id"] == stranger and r.json()["took_over"] is True
    assert await phone_on_record(settings, redis_client, stranger) == "13900000202"
    mine = bearer(r.json()["token"])
    guardians = (await ingest.get("/v1/residents/me/guardians", headers=mine)).json()
    assert guardians == [{"person_id": attacker, "name_masked": "坏*", "pending": True}]

    # while the link waits, the attacker cannot check them in (nor see their colour)
    elsewhere = put_venue(sync_redis, settings, 102)
    r = await ingest.post("/v1/checkins", json={"code": elsewhere, "companions": [stranger]}, headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "foreign_companion", r.text
    assert (await ingest.get("/v1/residents/me/companions", headers=h)).json() == []

    # they refuse: the link ends, the attacker's check-in with them stays refused
    r = await ingest.delete(f"/v1/residents/me/guardians/{attacker}", headers=mine)
    assert r.status_code == 204
    assert (await ingest.get("/v1/residents/me/guardians", headers=mine)).json() == []
    r = await ingest.post("/v1/checkins", json={"code": elsewhere, "companions": [stranger]}, headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "foreign_companion", r.text

    # the attacker cannot win them back: no code, or the attacker's own phone's code, is no consent,
    # and the attacker's phone no longer registers them
    r = await ingest.post("/v1/residents/me/companions", json=body, headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "consent_required"
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={**body, **await with_code(ingest, settings, "13700000201")},
        headers=h,
    )
    assert r.status_code == 403 and r.json()["reason"] == "consent_required"
    r = await register_as(ingest, settings, "李娜", "13700000201", stranger_idn)
    assert r.status_code == 409 and r.json()["reason"] == "phone_mismatch"

    # nothing accepted is lost: the stay the attacker made for them is still recorded, and theirs
    r = await ingest.post("/v1/checkins", json={"code": elsewhere}, headers=mine)
    assert r.status_code == 201, r.text
    stays = [(e.venue_id, e.kind) for e in stream_events(sync_redis, settings) if e.person_id == stranger]
    assert (101, "in") in stays and (102, "in") in stays


async def test_a_child_or_an_elder_becomes_a_dependant_without_a_code_by_the_birth_date_today(
    ingest: AsyncTestClient[Any], settings: Settings
) -> None:
    _owner, token = await register(ingest, 210)
    h = bearer(token)
    today = local_today(settings)
    sixteen_today = id_number_born_on(years_before(today, 16), 211)
    sixteen_tomorrow = id_number_born_on(years_before(today, 16) + dt.timedelta(days=1), 212)
    seventy_today = id_number_born_on(years_before(today, 70), 213)
    seventy_tomorrow = id_number_born_on(years_before(today, 70) + dt.timedelta(days=1), 214)
    unborn = id_number_born_on(today + dt.timedelta(days=3), 215)
    not_a_date = with_check_digit("110105" + "20181399" + "216")  # month 13
    expected = {
        sixteen_tomorrow: 201,  # still 15 today
        sixteen_today: 403,  # 16 today: needs a code
        seventy_today: 201,  # 70 today
        seventy_tomorrow: 403,  # still 69
        unborn: 403,
        not_a_date: 403,
    }
    for idn, status in expected.items():
        r = await ingest.post(
            "/v1/residents/me/companions", json={"name": "家人", "id_number": idn}, headers=h
        )
        assert r.status_code == status, (idn, r.text)
        if status == 201:
            assert r.json()["dependant"] is True
        else:
            assert r.json()["reason"] == "consent_required"


async def test_a_dependant_who_registers_confirms_each_guardian_before_they_check_them_in(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    code = put_venue(sync_redis, settings, 111)
    son, son_token = await register(ingest, 220, name="王强")
    daughter, daughter_token = await register(ingest, 221, name="王丽")
    elder_idn = born_years_ago(80, 222)
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "王老汉", "id_number": elder_idn},
        headers=bearer(son_token),
    )
    assert r.status_code == 201 and r.json()["dependant"] is True, r.text
    elder = r.json()["person_id"]
    # a registered person is added by a second family member only with their consent: none yet (no
    # phone on record), so the daughter cannot
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "王老汉", "id_number": elder_idn},
        headers=bearer(daughter_token),
    )
    assert r.status_code == 403
    r = await ingest.post(
        "/v1/checkins", json={"code": code, "companions": [elder]}, headers=bearer(son_token)
    )
    assert r.status_code == 201, r.text

    # the elder gets a phone and registers: the son's link waits
    r = await register_as(ingest, settings, "王老汉", "13900000222", elder_idn)
    assert r.status_code == 201 and r.json()["took_over"] is True and r.json()["person_id"] == elder, r.text
    mine = bearer(r.json()["token"])
    other = put_venue(sync_redis, settings, 112)
    r = await ingest.post(
        "/v1/checkins", json={"code": other, "companions": [elder]}, headers=bearer(son_token)
    )
    assert r.status_code == 403 and r.json()["reason"] == "foreign_companion"
    # re-adding without a code does not bypass the wait
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "王老汉", "id_number": elder_idn},
        headers=bearer(son_token),
    )
    assert r.status_code == 403 and r.json()["reason"] == "consent_required"
    # confirming someone who is no guardian is 404
    r = await ingest.post(f"/v1/residents/me/guardians/{daughter}/confirm", headers=mine)
    assert r.status_code == 404
    r = await ingest.post(f"/v1/residents/me/guardians/{son}/confirm", headers=mine)
    assert r.status_code == 200, r.text
    assert r.json() == {"person_id": son, "name_masked": "王*", "pending": False}
    guardians = (await ingest.get("/v1/residents/me/guardians", headers=mine)).json()
    assert guardians == [{"person_id": son, "name_masked": "王*", "pending": False}]
    r = await ingest.post(
        "/v1/checkins", json={"code": other, "companions": [elder]}, headers=bearer(son_token)
    )
    assert r.status_code == 201, r.text
    # a second registration is an ordinary one now: the phone on record answers, another is refused
    r = await register_as(ingest, settings, "王老汉", "13900000222", elder_idn)
    assert r.status_code == 200 and r.json()["took_over"] is False
    r = await register_as(ingest, settings, "王老汉", "13700000222", elder_idn)
    assert r.status_code == 409 and r.json()["reason"] == "phone_mismatch"
    # and the daughter is added with the code of the elder's phone (their consent)
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "王老汉", "id_number": elder_idn, **await with_code(ingest, settings, "13900000222")},
        headers=bearer(daughter_token),
    )
    assert r.status_code == 201 and r.json()["person_id"] == elder, r.text


async def test_a_phone_rebind_by_the_health_authority_ends_every_guardian_link(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    code = put_venue(sync_redis, settings, 121)
    _attacker, attacker_token = await register(ingest, 230, name="坏人")
    h = bearer(attacker_token)
    stranger_idn = born_years_ago(40, 231)
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "周敏", "id_number": stranger_idn, **await with_code(ingest, settings, "13700000230")},
        headers=h,
    )
    assert r.status_code == 201, r.text
    stranger = r.json()["person_id"]
    r = await ingest.post("/v1/checkins", json={"code": code, "companions": [stranger]}, headers=h)
    assert r.status_code == 201
    # the real person goes to the health authority, who re-binds their phone
    health = await make_key(ingest, "health")
    r = await ingest.put(
        f"/v1/residents/{stranger}/phone",
        json={"phone": "+86 139-0000-0231", "reason": "id checked"},
        headers=health,
    )
    assert r.status_code == 200 and r.json()["guardians_ended"] == 1, r.text
    # the attacker's link is gone, not merely waiting
    other = put_venue(sync_redis, settings, 122)
    r = await ingest.post("/v1/checkins", json={"code": other, "companions": [stranger]}, headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "foreign_companion"
    assert (await ingest.get("/v1/residents/me/companions", headers=h)).json() == []
    # the person registers with the re-bound phone: an ordinary registration (200), no guardian left
    r = await register_as(ingest, settings, "周敏", "13900000231", stranger_idn)
    assert r.status_code == 200 and r.json()["person_id"] == stranger, r.text
    assert (await ingest.get("/v1/residents/me/guardians", headers=bearer(r.json()["token"]))).json() == []
    # and the stay recorded before is still there
    assert any(e.person_id == stranger and e.venue_id == 121 for e in stream_events(sync_redis, settings))
    # a pending link ends on a re-bind too
    _g, g_token = await register(ingest, 232)
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={"name": "孩子", "id_number": child_id_number(233)},
        headers=bearer(g_token),
    )
    child = r.json()["person_id"]
    r = await register_as(ingest, settings, "孩子", "13900000233", child_id_number(233))
    assert r.status_code == 201 and r.json()["took_over"] is True
    r = await ingest.put(
        f"/v1/residents/{child}/phone", json={"phone": "13900000234", "reason": "x"}, headers=health
    )
    assert r.json()["guardians_ended"] == 1
    keys = keys_of(settings)
    assert not sync_redis.exists(keys.guardians(child), keys.pending_guardians(child))


# --- 6. registry oracle -------------------------------------------------------------------------------


class RedisCalls:
    """Command names the app sends to Redis (keys and values left out), in order."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def take(self) -> list[str]:
        out, self.names = self.names, []
        return out


@pytest.fixture
def redis_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisCalls]:
    calls = RedisCalls()
    single: Any = Redis.execute_command
    batch: Any = Pipeline.execute

    def named(args: Any) -> str | None:
        # the metrics flush runs on its own schedule: not part of a request's work
        return None if any("metrics:" in str(a) for a in args[1:2]) else str(args[0]).upper()

    async def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        if not isinstance(self, Pipeline) and (name := named(args)) is not None:
            calls.names.append(name)
        return await single(self, *args, **options)

    async def execute(self: Any, raise_on_error: bool = True) -> Any:
        names = [n for a, _ in self.command_stack if (n := named(a)) is not None]
        if names:
            calls.names.append("PIPELINE(" + ",".join(names) + ")")
        return await batch(self, raise_on_error)

    monkeypatch.setattr(Redis, "execute_command", execute_command)
    monkeypatch.setattr(Pipeline, "execute", execute)
    yield calls


async def test_the_companions_route_answers_registered_and_unknown_id_numbers_alike(
    make_settings: Any, redis_calls: RedisCalls
) -> None:
    settings = make_settings(rate_register_per_min=100_000)
    async with AsyncTestClient(app=create_app(settings)) as ingest:
        registered_idn = born_years_ago(35, 240)
        r = await register_as(ingest, settings, "钱七", "13900000240", registered_idn)
        assert r.status_code == 201
        unknown_idn = born_years_ago(35, 241)
        _owner, token = await register(ingest, 242)
        h = bearer(token)

        async def probe(
            idn: str, extra: dict[str, str] | None = None
        ) -> tuple[int, dict[str, Any], list[str], float]:
            await fresh_window_async()
            redis_calls.take()
            start = time.perf_counter()
            r = await ingest.post(
                "/v1/residents/me/companions",
                json={"name": "钱七", "id_number": idn, **(extra or {})},
                headers=h,
            )
            took = time.perf_counter() - start
            return r.status_code, r.json(), redis_calls.take(), took

        # the report: 403 for a registered number, 400 otp_missing for an unknown one
        a = await probe(registered_idn)
        b = await probe(unknown_idn)
        assert a[0] == b[0] == 403 and a[1] == b[1] and a[1]["reason"] == "consent_required", (a[1], b[1])
        assert a[2] == b[2] and "PIPELINE(GET,SMEMBERS)" in a[2], ("the same Redis work for both", a[2], b[2])
        # a phone without its code: the same answer for both, before anything is looked up
        a = await probe(registered_idn, {"phone": "13900000240"})
        b = await probe(unknown_idn, {"phone": "13900000240"})
        assert a[0] == b[0] == 400 and a[1] == b[1] and a[1]["reason"] == "otp_missing"
        assert a[2] == b[2]
        # and the same time, measured interleaved over many probes (the per-caller limit is reset
        # between them as a minute passing would)
        times: dict[str, list[float]] = {"registered": [], "unknown": []}
        keys = keys_of(settings)
        for i in range(60):
            for label, idn in (("registered", registered_idn), ("unknown", unknown_idn)):
                window = window_now(int(time.time() * 1000))[0]
                with redis.Redis.from_url(settings.redis_url) as sync:
                    sync.delete(keys.rate_tagged(0, "companions", str(_owner), window))
                status, _, _, took = await probe(idn)
                assert status == 403, (i, label)
                times[label].append(took)
        reg, unk = statistics.median(times["registered"]), statistics.median(times["unknown"])
        assert abs(reg - unk) <= 0.25 * max(reg, unk) + 0.002, (reg, unk)


async def test_the_companions_route_is_limited_per_caller_and_per_address(make_settings: Any) -> None:
    settings = make_settings(rate_register_per_min=15)
    async with AsyncTestClient(app=create_app(settings)) as ingest:
        _a, token_a = await register(ingest, 250)
        _b, token_b = await register(ingest, 251)
        await fresh_window_async()
        # the report's probe: 200 numbers as fast as possible from one resident
        statuses = []
        for k in range(20):
            r = await ingest.post(
                "/v1/residents/me/companions",
                json={"name": "某人", "id_number": born_years_ago(30, 300 + k)},
                headers=bearer(token_a),
            )
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert r.json()["reason"] == "rate_limited" and 1 <= int(r.headers["retry-after"]) <= 60
                assert "resident" in r.json()["detail"]
        assert statuses == [403] * 10 + [429] * 10
        # a second resident from the same address: the address's budget (shared with codes and
        # registrations, 15 a minute here) runs out too
        statuses = []
        for k in range(3):
            r = await ingest.post(
                "/v1/residents/me/companions",
                json={"name": "某人", "id_number": born_years_ago(30, 400 + k)},
                headers=bearer(token_b),
            )
            statuses.append(r.status_code)
        assert statuses == [429, 429, 429], statuses
        assert "address" in r.json()["detail"]


# --- 8. one spelling of a phone, a door pass read once ---------------------------------------------------


async def test_a_phone_has_one_canonical_form_everywhere(
    ingest: AsyncTestClient[Any], settings: Settings, redis_client: Any
) -> None:
    # the report: +8613800000001 had its own code budget beside 13800000001
    a_minute_passes(settings, "13800000261")
    r = await ingest.post("/v1/residents/otp", json={"phone": "13800000261"})
    assert r.status_code == 202
    for spelling in ("+8613800000261", "0086 138 0000 0261", "+86-138-0000-0261", "8613800000261"):
        r = await ingest.post("/v1/residents/otp", json={"phone": spelling})
        assert r.status_code == 429 and r.json()["reason"] == "otp_too_soon", (spelling, r.text)
    assert {m["phone"] for m in outbox(settings)} == {"13800000261"}
    # a code asked for one spelling proves another
    challenge, code = await request_code(ingest, settings, "+86 138 0000 0262")
    r = await ingest.post(
        "/v1/residents",
        json={
            "name": "孙八",
            "phone": "0086-13800000262",
            "id_number": born_years_ago(30, 262),
            "challenge_id": challenge,
            "otp": code,
        },
    )
    assert r.status_code == 201, r.text
    pid = r.json()["person_id"]
    assert await phone_on_record(settings, redis_client, pid) == "13800000262"
    # the registry's import and the health authority's re-bind store the same form
    line = msgspec.json.encode(
        {"name": "周九", "phone": "+86 138 0000 0263", "id_number": born_years_ago(30, 263)}
    )
    r = await ingest.post("/v1/residents/import", content=line, headers=admin_headers())
    imported = int(r.json()["person_id"])
    assert await phone_on_record(settings, redis_client, imported) == "13800000263"
    r = await register_as(ingest, settings, "周九", "13800000263", born_years_ago(30, 263))
    assert r.status_code == 200 and r.json()["person_id"] == imported, r.text
    health = await make_key(ingest, "health")
    r = await ingest.put(
        f"/v1/residents/{pid}/phone", json={"phone": "+8613800000264", "reason": "x"}, headers=health
    )
    assert r.status_code == 200
    assert await phone_on_record(settings, redis_client, pid) == "13800000264"
    # and a companion's phone
    _o, token = await register(ingest, 265)
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={
            "name": "吴十",
            "id_number": born_years_ago(30, 266),
            **await with_code(ingest, settings, "+8613800000266"),
        },
        headers=bearer(token),
    )
    assert r.status_code == 201, r.text
    assert await phone_on_record(settings, redis_client, r.json()["person_id"]) == "13800000266"


async def test_a_door_pass_is_read_once(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    put_venue(sync_redis, settings, 131)
    put_venue(sync_redis, settings, 132)  # another venue (the report's was 112 km away)
    door_a, door_b = await device_key(ingest, 131), await device_key(ingest, 132)
    second_door_a = await device_key(ingest, 131)
    _pid, token = await register(ingest, 270)
    shown = (await ingest.get("/v1/residents/me/pass", headers=bearer(token))).json()["pass"]
    # the phone polls with the pass it shows: the same pass until a door reads it
    again = await ingest.get("/v1/residents/me/pass", params={"current": shown}, headers=bearer(token))
    assert again.json()["pass"] == shown

    r = await ingest.post("/v1/sentinel/scans", json={"scans": [{"pass": shown}]}, headers=door_a)
    first = r.json()["results"][0]
    assert first["status"] == 201, r.text
    # the same device reads it again at once: that check-in again, not an error
    r = await ingest.post("/v1/sentinel/scans", json={"scans": [{"pass": shown}]}, headers=door_a)
    assert r.json()["results"][0]["status"] == 200 and r.json()["results"][0]["duplicate"] is True, r.text
    # the report: the same pass at another venue in the same second -> refused; so at another device
    r = await ingest.post("/v1/sentinel/scans", json={"scans": [{"pass": shown}]}, headers=door_b)
    result = r.json()["results"][0]
    assert result["status"] == 401 and result["error_reason"] == "pass_used", r.text
    r = await ingest.post("/v1/sentinel/scans", json={"scans": [{"pass": shown}]}, headers=second_door_a)
    assert r.json()["results"][0]["error_reason"] == "pass_used"
    assert [e.venue_id for e in stream_events(sync_redis, settings) if e.kind == "in"] == [131]
    # the phone's next poll gets a fresh pass, which works once
    fresh = (
        await ingest.get("/v1/residents/me/pass", params={"current": shown}, headers=bearer(token))
    ).json()
    assert fresh["pass"] != shown and fresh["pass"].startswith("p1.")
    r = await ingest.post("/v1/sentinel/scans", json={"scans": [{"pass": fresh["pass"]}]}, headers=door_b)
    assert r.json()["results"][0]["status"] == 201, r.text


async def test_a_second_read_by_the_same_door_after_the_repeat_window_is_refused(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    put_venue(sync_redis, settings, 141)
    door = await device_key(ingest, 141)
    _pid, token = await register(ingest, 280)
    shown = (await ingest.get("/v1/residents/me/pass", headers=bearer(token))).json()["pass"]
    now = dt.datetime.now(dt.UTC)
    early = (now - dt.timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    r = await ingest.post(
        "/v1/sentinel/scans", json={"scans": [{"pass": shown, "scanned_at": early}]}, headers=door
    )
    assert r.json()["results"][0]["status"] == 201, r.text
    r = await ingest.post("/v1/sentinel/scans", json={"scans": [{"pass": shown}]}, headers=door)
    assert r.json()["results"][0]["error_reason"] == "pass_used", r.text
    # one upload carrying the same pass twice: the first read and its repeat
    other = (
        await ingest.get("/v1/residents/me/pass", params={"current": shown}, headers=bearer(token))
    ).json()
    r = await ingest.post(
        "/v1/sentinel/scans", json={"scans": [{"pass": other["pass"]}, {"pass": other["pass"]}]}, headers=door
    )
    assert [x["status"] for x in r.json()["results"]] == [201, 200], r.text
