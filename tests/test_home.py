"""The phone's home over HTTP (``GET /v1/residents/me``): the resident's health code and their
family's, from the same Redis the check-in path writes; and the page's language remembered for texts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import redis
import redis.asyncio as aioredis
from litestar.testing import AsyncTestClient

from checkin.platform import notices
from checkin.platform.context import Context
from checkin.platform.settings import Settings
from tests.support.access_world import iso
from tests.support.ingest import (
    bearer,
    child_id_number,
    keys_of,
    make_key,
    put_venue,
    register,
    request_code,
)
from tests.support.values import REDIS_URL


async def test_home_is_the_health_code_of_the_resident_and_their_family(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    market = put_venue(sync_redis, settings, 7301, name="幸福路华联超市", dwell_minutes=45)
    pid, token = await register(ingest, 301, name="刘德华")
    me = bearer(token)
    health = await make_key(ingest, "health")

    # nothing set yet: the default colour, no reason, no test, no stay, no family
    r = await ingest.get("/v1/residents/me", headers=me)
    assert r.status_code == 200, r.text
    home = r.json()
    assert home["person_id"] == pid and home["name_masked"] == "刘*华"
    assert (home["status"], home["reason"], home["since"]) == ("green", "", None)
    assert home["last_negative_test_at"] is None and home["open_stay"] is None
    assert home["unread_notices"] == 0 and home["dependants"] == [] and home["pending_guardians"] == 0

    kids = []
    for seq, name in ((302, "刘小宝"), (303, "刘小贝")):
        r = await ingest.post(
            "/v1/residents/me/companions", json={"name": name, "id_number": child_id_number(seq)}, headers=me
        )
        assert r.status_code == 201, r.text
        kids.append(int(r.json()["person_id"]))
    before = dt.datetime.now(dt.UTC)
    r = await ingest.put(f"/v1/health/{pid}", json={"status": "yellow", "reason": "密接"}, headers=health)
    assert r.status_code == 200, r.text
    sampled = (before - dt.timedelta(hours=20)).replace(microsecond=0)
    r = await ingest.post(
        "/v1/health/tests",
        json=[
            {"person_id": pid, "sampled_at": iso(sampled), "result": "negative"},
            {"person_id": kids[0], "sampled_at": iso(sampled), "result": "negative"},
            {"person_id": kids[0], "sampled_at": iso(sampled + dt.timedelta(hours=2)), "result": "positive"},
        ],
        headers=health,
    )
    assert r.status_code == 200, r.text
    r = await ingest.put(f"/v1/health/{kids[0]}", json={"status": "red", "reason": "阳性"}, headers=health)
    assert r.status_code == 200
    checked = await ingest.post("/v1/checkins", json={"code": market, "companions": [kids[1]]}, headers=me)
    assert checked.status_code == 201, checked.text
    # two notices, written the way the tracing service writes them
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        actx = Context.build(settings, client, "test")
        notice = notices.Notice(
            notice_id="a" * 18,
            venue_id=7301,
            venue_name="幸福路华联超市",
            since=iso(before - dt.timedelta(hours=1)),
            until=iso(before),
            level="test",
            visited_at=iso(before - dt.timedelta(minutes=30)),
            at=iso(before),
        )
        await notices.write_many(
            actx, [(pid, notice), (pid, msgspec.structs.replace(notice, notice_id="b" * 18))]
        )
    finally:
        await client.aclose()

    home = (await ingest.get("/v1/residents/me", headers=me)).json()
    # the one-call script (single node) and the pipelines (a cluster's way) read the same
    await same_both_ways(settings, pid)
    assert (home["status"], home["reason"]) == ("yellow", "密接")
    since = dt.datetime.fromisoformat(home["since"].replace("Z", "+00:00"))
    assert abs((since - before).total_seconds()) < 5
    assert dt.datetime.fromisoformat(home["last_negative_test_at"].replace("Z", "+00:00")) == sampled
    stay = home["open_stay"]
    assert stay["checkin_id"] == checked.json()["checkin_id"] and stay["venue_id"] == 7301
    assert stay["venue_name"] == "幸福路华联超市" and stay["at"] == checked.json()["at"]
    assert stay["ends_at"] == checked.json()["ends_at"]
    assert home["unread_notices"] == 2
    deps = {d["person_id"]: d for d in home["dependants"]}
    assert sorted(deps) == sorted(kids)
    sick, well = deps[kids[0]], deps[kids[1]]
    assert (sick["name_masked"], sick["status"], sick["reason"]) == ("刘*宝", "red", "阳性")
    assert sick["last_negative_test_at"] is None  # a positive test came after the negative one
    assert sick["open_stay"] is None
    assert well["status"] == "green" and well["open_stay"]["checkin_id"] == stay["checkin_id"]

    # acknowledged notices are not counted; a check-out closes the stay
    r = await ingest.post(f"/v1/residents/me/notices/{'a' * 18}/ack", headers=me)
    assert r.status_code == 200
    r = await ingest.post(f"/v1/checkins/{stay['checkin_id']}/checkout", headers=me)
    assert r.status_code == 200, r.text
    home = (await ingest.get("/v1/residents/me", headers=me)).json()
    assert home["unread_notices"] == 1 and home["open_stay"] is None
    assert all(d["open_stay"] is None for d in home["dependants"])

    # the page's language is remembered on the record (texts use it)
    r = await ingest.put("/v1/residents/me/language", json={"lang": "en"}, headers=me)
    assert r.status_code == 200 and r.json() == {"lang": "en"}
    assert sync_redis.hget(keys_of(settings).person(pid), "lang") == b"en"
    r = await ingest.put("/v1/residents/me/language", json={"lang": "zh-CN"}, headers=me)
    assert sync_redis.hget(keys_of(settings).person(pid), "lang") == b"zh"
    assert (await ingest.put("/v1/residents/me/language", json={"lang": "fr"}, headers=me)).status_code == 400

    # a revoked token reads nothing
    assert (await ingest.post("/v1/residents/me/revoke", headers=me)).status_code == 200
    r = await ingest.get("/v1/residents/me", headers=me)
    assert r.status_code == 401 and r.json()["reason"] == "token_revoked"
    assert (await ingest.get("/v1/residents/me")).status_code == 401


async def same_both_ways(settings: Settings, pid: int) -> None:
    from checkin.platform.auth import Principal
    from checkin.platform.hot_redis import hot_of
    from checkin.residents.home import home

    client = aioredis.Redis.from_url(REDIS_URL)
    ctx = Context.build(settings, client, "test")
    try:
        principal = Principal(role="resident", person_id=pid)
        assert hot_of(ctx) is not None
        by_script = msgspec.structs.replace(await home(ctx, principal), evaluated_at="")
        by_pipelines = msgspec.structs.replace(await home(ctx, principal, one_call=False), evaluated_at="")
        assert by_script == by_pipelines
        assert by_script.open_stay is not None and len(by_script.dependants) == 2
    finally:
        hot = hot_of(ctx)
        if hot is not None:
            hot.close()
        await client.aclose()


async def test_a_dependant_who_took_over_sees_the_guardian_links_that_wait_for_them(
    ingest: AsyncTestClient[Any], settings: Settings
) -> None:
    _mother, mother_token = await register(ingest, 311, name="陈美")
    idn = child_id_number(312)
    r = await ingest.post(
        "/v1/residents/me/companions", json={"name": "陈小明", "id_number": idn}, headers=bearer(mother_token)
    )
    assert r.status_code == 201, r.text
    child = int(r.json()["person_id"])
    home = (await ingest.get("/v1/residents/me", headers=bearer(mother_token))).json()
    assert [d["person_id"] for d in home["dependants"]] == [child]

    challenge, code = await request_code(ingest, settings, "13900000312")
    r = await ingest.post(
        "/v1/residents",
        json={
            "name": "陈小明",
            "phone": "13900000312",
            "id_number": idn,
            "challenge_id": challenge,
            "otp": code,
        },
    )
    assert r.status_code == 201 and r.json()["took_over"] is True, r.text
    theirs = bearer(r.json()["token"])
    assert (await ingest.get("/v1/residents/me", headers=theirs)).json()["pending_guardians"] == 1
    # until confirmed, the mother's home leaves the child out (she cannot check them in)
    assert (await ingest.get("/v1/residents/me", headers=bearer(mother_token))).json()["dependants"] == []
    guardians = (await ingest.get("/v1/residents/me/guardians", headers=theirs)).json()
    assert [g["pending"] for g in guardians] == [True]
    r = await ingest.post(f"/v1/residents/me/guardians/{guardians[0]['person_id']}/confirm", headers=theirs)
    assert r.status_code == 200
    assert (await ingest.get("/v1/residents/me", headers=theirs)).json()["pending_guardians"] == 0
    home = (await ingest.get("/v1/residents/me", headers=bearer(mother_token))).json()
    assert [d["person_id"] for d in home["dependants"]] == [child]


async def test_the_open_stay_is_the_newest_kept_stay_that_has_begun_and_not_ended(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    """The check-in script keeps a person's recent stays in one string (checkin/checkins/stays.lua);
    the home reads the open stay from it, by the script and by pipelines alike."""
    import time

    from checkin.platform.auth import Principal
    from checkin.platform.hot_redis import hot_of
    from checkin.residents.home import home

    put_venue(sync_redis, settings, 7311, name="老王牛肉面馆")
    put_venue(sync_redis, settings, 7312, name="幸福路书店")
    keys = keys_of(settings)
    a, _ = await register(ingest, 321)
    b, _ = await register(ingest, 322)
    now = int(time.time() * 1000)
    tail = "3600\t110105\t110105001\t110105001001\tgreen\tpass"

    def kept(*stays: tuple[str, int, int, int]) -> str:
        return ";".join(f"{start}|{end}||0|{end}|{cid}|{vid}|{tail}" for cid, vid, start, end in stays)

    def kept_rows(*stays: tuple[str, int, int, int]) -> str:
        """The layout where an entry ends with the stay's whole scan line."""
        return ";".join(
            f"{start}|{end}||0|{end}|0\t{cid}\t{a}\t{vid}\t{start}\t{end}\t{tail}"
            for cid, vid, start, end in stays
        )

    # a: an earlier stay (ended by the next one), the open one, and one a few minutes ahead
    sync_redis.set(
        keys.stays(a),
        kept(
            ("c1", 7312, now - 7_200_000, now - 600_000),
            ("c2", 7311, now - 600_000, now + 3_000_000),
            ("c3", 7312, now + 120_000, now + 3_720_000),
        ),
    )
    # b: the newest stay that has begun has ended: nothing is open
    ended = kept(("d1", 7311, now - 7_200_000, now - 5_000_000), ("d2", 7312, now - 600_000, now - 60_000))
    sync_redis.set(keys.stays(b), ended)
    client = aioredis.Redis.from_url(REDIS_URL)
    ctx = Context.build(settings, client, "test")
    try:
        for one_call in (True, False):
            mine = await home(ctx, Principal(role="resident", person_id=a), one_call=one_call)
            assert mine.open_stay is not None
            assert (mine.open_stay.checkin_id, mine.open_stay.venue_name) == ("c2", "老王牛肉面馆")
            theirs = await home(ctx, Principal(role="resident", person_id=b), one_call=one_call)
            assert theirs.open_stay is None
        # entries that end with the stay's whole scan line
        sync_redis.set(
            keys.stays(a),
            kept_rows(
                ("e1", 7312, now - 7_200_000, now - 600_000), ("e2", 7311, now - 600_000, now + 60_000)
            ),
        )
        for one_call in (True, False):
            mine = await home(ctx, Principal(role="resident", person_id=a), one_call=one_call)
            assert mine.open_stay is not None
            assert (mine.open_stay.checkin_id, mine.open_stay.venue_id) == ("e2", 7311)
    finally:
        hot = hot_of(ctx)
        if hot is not None:
            hot.close()
        await client.aclose()
