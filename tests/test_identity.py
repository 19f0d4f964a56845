"""No one acts as someone else: one-time codes, revocable tokens, door passes, companions by consent.

Every test plays the attacker (or the careless user) over HTTP against the real ingest app and Redis;
codes are read from the SMS outbox (or a real local HTTP endpoint), as a phone would receive them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest
import redis
from litestar.testing import AsyncTestClient

from checkin.app import create_app
from checkin.platform import persons, resident_tokens
from checkin.platform.context import Context
from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.settings import Settings
from tests.support.ingest import (
    bearer,
    child_id_number,
    id_number,
    keys_of,
    outbox,
    put_venue,
    register,
    register_with_otp,
    request_code,
)
from tests.support.values import admin_headers, free_port


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings(rate_register_per_min=1000)
    return settings


def bad_check_digit(seq: int) -> str:
    good = id_number(seq)
    return good[:17] + ("0" if good[17] != "0" else "1")


async def phone_on_record(settings: Settings, redis_client: Any, person_id: int) -> str:
    ctx = Context.build(settings, redis_client, "test")
    found = await persons.contact_details(ctx, person_id)
    assert found is not None
    return found.phone


async def metric(client: AsyncTestClient[Any], name: str, **labels: str) -> float:
    text = (await client.get("/metrics")).text
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    series = f"{name}{{{inner}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


# --- registration and takeover ----------------------------------------------------------------------


async def test_knowing_a_name_and_id_number_is_not_enough_to_act_as_them(
    ingest: AsyncTestClient[Any], settings: Settings, redis_client: Any
) -> None:
    victim, _token = await register(ingest, 1, name="王芳")  # phone 13900000001 on record
    attacker_phone = "13700000099"
    challenge, code = await request_code(ingest, settings, attacker_phone)
    r = await ingest.post(
        "/v1/residents",
        json={
            "name": "王芳",
            "phone": attacker_phone,
            "id_number": id_number(1),
            "challenge_id": challenge,
            "otp": code,
        },
    )
    assert r.status_code == 409, r.text
    body = r.json()
    assert body["reason"] == "phone_mismatch" and "re-bind" in body["detail"]
    assert "token" not in r.text
    assert await phone_on_record(settings, redis_client, victim) == "13900000001"
    assert await metric(ingest, "checkin_identity_refusals_total", reason="phone_mismatch") >= 1


async def test_registration_needs_the_code_of_that_phone(
    ingest: AsyncTestClient[Any], settings: Settings
) -> None:
    challenge, code = await request_code(ingest, settings, "13800000001")
    base = {"name": "李雷", "id_number": id_number(2), "challenge_id": challenge}
    wrong_phone = await ingest.post("/v1/residents", json={**base, "phone": "13800000002", "otp": code})
    assert wrong_phone.status_code == 422 and wrong_phone.json()["reason"] == "otp_wrong"
    no_code = await ingest.post(
        "/v1/residents", json={"name": "李雷", "phone": "13800000001", "id_number": id_number(2)}
    )
    assert no_code.status_code == 400  # the challenge and code are required fields
    ok = await ingest.post("/v1/residents", json={**base, "phone": "13800000001", "otp": code})
    assert ok.status_code == 201, ok.text
    assert ok.json()["created"] is True and ok.json()["token"].startswith("r2.")
    reused = await ingest.post("/v1/residents", json={**base, "phone": "13800000001", "otp": code})
    assert reused.status_code == 410 and reused.json()["reason"] == "otp_expired"


async def test_an_existing_person_gets_a_token_with_the_phone_on_record_and_names_are_not_compared(
    ingest: AsyncTestClient[Any], settings: Settings
) -> None:
    pid, _ = await register(ingest, 3, name="张三")
    r = await register_with_otp(ingest, settings, 3, name="另一个名字")
    assert r.status_code == 200, r.text
    assert r.json()["person_id"] == pid and r.json()["created"] is False
    me = await ingest.get("/v1/residents/me/companions", headers=bearer(r.json()["token"]))
    assert me.status_code == 200


async def test_a_new_id_number_needs_its_check_digit(
    ingest: AsyncTestClient[Any], settings: Settings
) -> None:
    challenge, code = await request_code(ingest, settings, "13800000004")
    r = await ingest.post(
        "/v1/residents",
        json={
            "name": "赵四",
            "phone": "13800000004",
            "id_number": bad_check_digit(4),
            "challenge_id": challenge,
            "otp": code,
        },
    )
    assert r.status_code == 400 and r.json()["reason"] == "id_check_digit"
    # the code was not spent on a refused number: it still registers the right one
    r = await ingest.post(
        "/v1/residents",
        json={
            "name": "赵四",
            "phone": "13800000004",
            "id_number": id_number(4),
            "challenge_id": challenge,
            "otp": code,
        },
    )
    assert r.status_code == 201, r.text


async def test_five_wrong_codes_lock_the_challenge(ingest: AsyncTestClient[Any], settings: Settings) -> None:
    challenge, code = await request_code(ingest, settings, "13800000005")
    wrong = "000000" if code != "000000" else "111111"
    body = {"name": "钱五", "phone": "13800000005", "id_number": id_number(5), "challenge_id": challenge}
    lefts = []
    for _ in range(5):
        r = await ingest.post("/v1/residents", json={**body, "otp": wrong})
        assert r.status_code == 422 and r.json()["reason"] == "otp_wrong", r.text
        lefts.append(r.json()["attempts_left"])
    assert lefts == [4, 3, 2, 1, 0]
    r = await ingest.post("/v1/residents", json={**body, "otp": code})
    assert r.status_code == 429 and r.json()["reason"] == "otp_locked", r.text


async def test_codes_are_limited_per_phone(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    phone = "13800000006"
    first = await ingest.post("/v1/residents/otp", json={"phone": phone})
    assert first.status_code == 202
    again = await ingest.post("/v1/residents/otp", json={"phone": phone})
    assert again.status_code == 429 and again.json()["reason"] == "otp_too_soon"
    assert 1 <= int(again.headers["retry-after"]) <= 60
    keys = keys_of(settings)
    ph = persons.phone_hash(Keyring.parse(settings.keyring), phone)
    sent = 1
    for _ in range(15):  # a minute passes between each (the marker expires), the day fills up
        sync_redis.delete(keys.otp_phone_minute(ph))
        r = await ingest.post("/v1/residents/otp", json={"phone": phone})
        if r.status_code != 202:
            assert r.status_code == 429 and r.json()["reason"] == "otp_daily_limit", r.text
            break
        sent += 1
    assert sent == 10
    assert len([m for m in outbox(settings) if m["phone"] == phone]) == 10


async def test_codes_are_limited_per_address(make_settings: Any) -> None:
    settings = make_settings(rate_register_per_min=3)
    async with AsyncTestClient(app=create_app(settings)) as client:
        statuses = [
            (await client.post("/v1/residents/otp", json={"phone": f"1360000000{i}"})).status_code
            for i in range(5)
        ]
    assert statuses == [202, 202, 202, 429, 429]


async def test_bad_identity_input_is_a_clear_4xx(ingest: AsyncTestClient[Any], settings: Settings) -> None:
    r = await ingest.post("/v1/residents/otp", json={"phone": "12345"})
    assert r.status_code == 400 and "phone" in r.json()["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await ingest.post(
        "/v1/residents",
        json={
            "name": "N",
            "phone": "13800000007",
            "id_number": id_number(7),
            "challenge_id": "x" * 20,
            "otp": "123456",
        },
    )
    assert r.status_code == 410
    r = await ingest.post(
        "/v1/residents",
        json={
            "name": "N",
            "phone": "13800000007",
            "id_number": id_number(7),
            "challenge_id": "x",
            "otp": "12ab",
        },
    )
    assert r.status_code == 400 and r.json()["reason"] == "otp_malformed"
    assert await metric(ingest, "http_problems_total", reason="otp_expired", status="410") >= 1


# --- tokens ----------------------------------------------------------------------------------------


async def test_a_revoked_token_is_refused_everywhere(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    code = put_venue(sync_redis, settings, 11)
    pid, token = await register(ingest, 8)
    h = bearer(token)
    assert (await ingest.post("/v1/checkins", json={"code": code}, headers=h)).status_code == 201
    r = await ingest.post("/v1/residents/me/revoke", headers=h)
    assert r.status_code == 200 and r.json()["token_version"] == 1
    calls = [
        ("POST", "/v1/checkins", {"code": code, "client_id": "after-revoke"}),
        ("POST", "/v1/checkins/batch", {"items": [{"code": code, "client_id": "b1"}]}),
        ("POST", "/v1/residents/me/companions", {"name": "孩子", "id_number": id_number(90)}),
        ("GET", "/v1/residents/me/pass", None),
        ("GET", "/v1/residents/me/companions", None),
    ]
    for method, path, body in calls:
        r = await ingest.request(method, path, json=body, headers=h)
        assert r.status_code == 401, (path, r.text)
        assert r.json()["reason"] == "token_revoked", (path, r.text)
    entries = sum(int(sync_redis.xlen(s)) for s in keys_of(settings).streams())
    assert entries == 1  # the refused check-ins wrote nothing
    # a new registration on the phone gets a working token again
    again = await register_with_otp(ingest, settings, 8)
    assert again.status_code == 200 and again.json()["person_id"] == pid
    other = put_venue(sync_redis, settings, 12)  # another venue: at the first one this is a repeat scan
    r = await ingest.post("/v1/checkins", json={"code": other}, headers=bearer(again.json()["token"]))
    assert r.status_code == 201, r.text


async def test_the_health_authority_rebinds_a_phone_audited_and_old_tokens_end(
    ingest: AsyncTestClient[Any], settings: Settings, redis_client: Any, sync_redis: redis.Redis
) -> None:
    health = await ingest.post("/v1/keys", json={"role": "health", "name": "cdc"}, headers=admin_headers())
    hk = bearer(health.json()["key"])
    pid, token = await register(ingest, 9)
    r = await ingest.put(
        f"/v1/residents/{pid}/phone", json={"phone": "138-0000-0010", "reason": "lost phone"}, headers=hk
    )
    assert r.status_code == 200, r.text
    assert await phone_on_record(settings, redis_client, pid) == "13800000010"
    assert (await ingest.get("/v1/residents/me/pass", headers=bearer(token))).status_code == 401
    audit = sync_redis.xrange(keys_of(settings).audit_stream())
    rows = [json.loads(fields[b"row"]) for _id, fields in audit]
    assert [(row["action"], row["reason"], row["params"]["person_id"]) for row in rows] == [
        ("phone_rebind", "lost phone", pid)
    ]
    # the new phone registers; the old one is now the wrong phone
    assert (await register_with_otp(ingest, settings, 9, phone="13800000010")).status_code == 200
    assert (await register_with_otp(ingest, settings, 9, phone="13900000009")).status_code == 409
    # revoking by the health authority
    resident = await ingest.post("/v1/keys", json={"role": "operator", "name": "op"}, headers=admin_headers())
    r = await ingest.post(f"/v1/residents/{pid}/revoke", headers=bearer(resident.json()["key"]))
    assert r.status_code == 403
    r = await ingest.post(f"/v1/residents/{pid}/revoke", headers=hk)
    assert r.status_code == 200 and r.json()["token_version"] == 2


async def test_tokens_have_one_spelling(ingest: AsyncTestClient[Any], settings: Settings) -> None:
    _pid, token = await register(ingest, 12)
    assert (await ingest.get("/v1/residents/me/companions", headers=bearer(token))).status_code == 200
    body = token[3:]
    last = body[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # a last character with other low bits decodes to the same bytes in a lenient decoder
    twin = body[:-1] + alphabet[alphabet.index(last) ^ 1]
    for variant in (token + "!", token[:10] + "*" + token[10:], "r2." + twin, token + "=", " " + token + "x"):
        r = await ingest.get("/v1/residents/me/companions", headers=bearer(variant))
        assert r.status_code == 401, variant


# --- door passes ---------------------------------------------------------------------------------------


async def test_a_door_pass_checks_in_for_two_minutes_and_a_bearer_token_is_not_a_pass(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    put_venue(sync_redis, settings, 21)
    device = await ingest.post("/v1/keys", json={"role": "device", "venue_id": 21}, headers=admin_headers())
    dk = bearer(device.json()["key"])
    pid, token = await register(ingest, 13)
    got = await ingest.get("/v1/residents/me/pass", headers=bearer(token))
    assert got.status_code == 200, got.text
    door = got.json()
    assert door["pass"].startswith("p1.") and door["qr_svg"].startswith("data:image/svg+xml;base64,")
    r = await ingest.post("/v1/sentinel/scans", json={"scans": [{"pass": door["pass"]}]}, headers=dk)
    assert r.status_code == 200 and r.json()["results"][0]["status"] == 201, r.text
    keyring = Keyring.parse(settings.keyring)
    old, _ = resident_tokens.issue_pass(keyring, pid, 0, now=time.time() - 121)
    forged, _ = resident_tokens.issue_pass(Keyring.parse(Keyring.generate(1)), pid, 0)
    scans = [{"pass": old}, {"pass": token}, {"pass": forged}, {"pass": door["pass"][:-2]}]
    r = await ingest.post("/v1/sentinel/scans", json={"scans": scans}, headers=dk)
    results = r.json()["results"]
    assert [x["status"] for x in results] == [401, 401, 401, 401], results
    assert "expired" in results[0]["error"] and "not a door pass" in results[1]["error"]
    # revoking ends the passes already shown
    assert (await ingest.post("/v1/residents/me/revoke", headers=bearer(token))).status_code == 200
    r = await ingest.post("/v1/sentinel/scans", json={"scans": [{"pass": door["pass"]}]}, headers=dk)
    assert r.json()["results"][0]["status"] == 401


# --- companions ------------------------------------------------------------------------------------


async def test_a_registered_stranger_is_added_only_with_their_code(
    ingest: AsyncTestClient[Any], settings: Settings, sync_redis: redis.Redis
) -> None:
    code = put_venue(sync_redis, settings, 31)
    owner, owner_token = await register(ingest, 14)
    stranger, stranger_token = await register(ingest, 15, name="陌生人")  # phone 13900000015
    h = bearer(owner_token)
    body = {"name": "陌生人", "id_number": id_number(15)}
    r = await ingest.post("/v1/residents/me/companions", json=body, headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "consent_required"
    # a code from another phone is no consent
    challenge, otp = await request_code(ingest, settings, "13700000015")
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={**body, "phone": "13700000015", "challenge_id": challenge, "otp": otp},
        headers=h,
    )
    assert r.status_code == 403 and r.json()["reason"] == "consent_required"
    r = await ingest.post("/v1/checkins", json={"code": code, "companions": [stranger]}, headers=h)
    assert r.status_code == 403, r.text
    # with the code sent to the stranger's own phone
    challenge, otp = await request_code(ingest, settings, "13900000015")
    r = await ingest.post(
        "/v1/residents/me/companions",
        json={**body, "phone": "13900000015", "challenge_id": challenge, "otp": otp},
        headers=h,
    )
    assert r.status_code == 201 and r.json()["person_id"] == stranger, r.text
    guardians = await ingest.get("/v1/residents/me/guardians", headers=bearer(stranger_token))
    assert [g["person_id"] for g in guardians.json()] == [owner]
    r = await ingest.post("/v1/checkins", json={"code": code, "companions": [stranger]}, headers=h)
    assert r.status_code == 201 and len(r.json()["people"]) == 2
    # the companion ends it
    r = await ingest.delete(f"/v1/residents/me/guardians/{owner}", headers=bearer(stranger_token))
    assert r.status_code == 204
    assert (await ingest.get("/v1/residents/me/companions", headers=h)).json() == []
    elsewhere = put_venue(sync_redis, settings, 32)
    r = await ingest.post("/v1/checkins", json={"code": elsewhere, "companions": [stranger]}, headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "foreign_companion"


async def test_a_new_person_becomes_a_dependant_and_the_limit_comes_first(
    make_settings: Any, sync_redis: redis.Redis
) -> None:
    settings = make_settings(max_companions=1)
    async with AsyncTestClient(app=create_app(settings)) as ingest:
        _owner, token = await register(ingest, 16)
        h = bearer(token)
        r = await ingest.post(
            "/v1/residents/me/companions", json={"name": "小宝", "id_number": child_id_number(61)}, headers=h
        )
        assert r.status_code == 201 and r.json()["dependant"] is True, r.text
        r = await ingest.post(
            "/v1/residents/me/companions", json={"name": "小宝", "id_number": bad_check_digit(62)}, headers=h
        )
        assert r.status_code == 409 and r.json()["reason"] == "companion_limit"
        r = await ingest.post(
            "/v1/residents/me/companions", json={"name": "老人", "id_number": child_id_number(62)}, headers=h
        )
        assert r.status_code == 409 and r.json()["reason"] == "companion_limit"
    keyring = Keyring.parse(settings.keyring)
    keys = RedisKeys(settings.key_prefix, settings.stream_shards)
    idh = persons.id_hash(keyring, child_id_number(62))
    assert sync_redis.get(keys.person_by_id_hash(idh)) is None  # nothing was written for the refused one


# --- SMS gateways ------------------------------------------------------------------------------------


class _Sms(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        _Sms.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def sms_endpoint() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", free_port()), _Sms)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Sms.received = []
    yield f"http://127.0.0.1:{server.server_port}/sms"
    server.shutdown()


async def test_the_outbox_gateway_writes_one_line_a_text(
    ingest: AsyncTestClient[Any], settings: Settings
) -> None:
    await ingest.post("/v1/residents/otp", json={"phone": "+8613800000017"})
    lines = outbox(settings)
    assert len(lines) == 1
    line = lines[0]
    assert set(line) == {"at", "kind", "phone", "text", "otp"}
    assert line["kind"] == "otp" and line["phone"] == "13800000017"  # the one canonical form
    assert re.fullmatch(r"\d{6}", line["otp"]) and line["otp"] in line["text"]


async def test_the_http_gateway_posts_the_text_and_the_code_registers(
    make_settings: Any, sms_endpoint: str
) -> None:
    settings = make_settings(sms_gateway=sms_endpoint)
    async with AsyncTestClient(app=create_app(settings)) as client:
        r = await client.post("/v1/residents/otp", json={"phone": "13800000018"})
        assert r.status_code == 202, r.text
        assert len(_Sms.received) == 1 and set(_Sms.received[0]) == {"phone", "text"}
        assert _Sms.received[0]["phone"] == "13800000018"
        code = re.search(r"\d{6}", _Sms.received[0]["text"]).group(0)  # type: ignore[union-attr]
        r = await client.post(
            "/v1/residents",
            json={
                "name": "孙八",
                "phone": "13800000018",
                "id_number": id_number(18),
                "challenge_id": r.json()["challenge_id"],
                "otp": code,
            },
        )
        assert r.status_code == 201, r.text
    assert not (settings.data_path / "sms-outbox.ndjson").exists()


async def test_a_gateway_that_is_down_is_a_clear_503_and_the_phone_may_ask_again(make_settings: Any) -> None:
    settings = make_settings(sms_gateway=f"http://127.0.0.1:{free_port()}/sms")
    async with AsyncTestClient(app=create_app(settings)) as client:
        for _ in range(2):
            r = await client.post("/v1/residents/otp", json={"phone": "13800000019"})
            assert r.status_code == 503, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "SMS gateway" in r.json()["detail"] and r.headers.get("retry-after")
