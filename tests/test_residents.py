"""Residents: registration, protection of personal data, bulk import (API and CLI), lookups."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import AsyncTestClient

from checkin.platform import persons
from checkin.platform.context import Context
from checkin.platform.keyring import Keyring
from checkin.platform.redis_conn import connect
from checkin.platform.settings import Settings
from tests.support.ingest import bearer, id_number, keys_of, register_with_otp, request_code
from tests.support.values import admin_headers


async def test_register_protects_personal_data_and_is_idempotent(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    challenge, code = await request_code(ingest, settings, "13912345678")
    body = {
        "name": "张三丰",
        "phone": "139 1234-5678",
        "id_number": id_number(1).lower(),
        "challenge_id": challenge,
        "otp": code,
    }
    r = await ingest.post("/v1/residents", json=body)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["created"] is True and first["name_masked"] == "张*丰" and first["token"].startswith("r2.")
    keys = keys_of(settings)
    stored = sync_redis.hgetall(keys.person(first["person_id"]))
    flat = b" ".join(list(stored.keys()) + list(stored.values()))
    assert id_number(1).encode() not in flat and b"13912345678" not in flat
    assert stored[b"name"] == "张三丰".encode()
    # the same id number is the same person, with the phone on record; the name is not compared
    again = await register_with_otp(ingest, settings, 1, name="另一个", phone="13912345678")
    assert again.status_code == 200 and again.json()["person_id"] == first["person_id"]
    assert again.json()["created"] is False and again.json()["name_masked"] == "张*丰"
    # another phone: refused, and the phone on record stays
    r = await register_with_otp(ingest, settings, 1, phone="13800000000")
    assert r.status_code == 409 and r.json()["reason"] == "phone_mismatch"

    async def details() -> Any:
        client = await connect(settings)
        try:
            ctx = Context.build(settings, client, "t")
            found = await persons.contact_details(ctx, first["person_id"])
            pid = await persons.lookup_by_id_number(ctx, " " + id_number(1))
            missing = await persons.contact_details(ctx, 999_999)
            none = await persons.lookup_by_id_number(ctx, id_number(2))
            return found, pid, missing, none
        finally:
            await client.aclose()

    found, pid, missing, none = await details()
    assert found == persons.ContactDetails(first["person_id"], "张三丰", "13912345678")
    assert pid == first["person_id"] and missing is None and none is None


def test_phone_ciphertext_is_bound_to_the_person_and_survives_key_rotation() -> None:
    ring = Keyring.parse(Keyring.generate(1))
    cipher = persons.PhoneCipher(ring)
    blob = cipher.encrypt("13900000000", "aa")
    assert blob != cipher.encrypt("13900000000", "aa")  # fresh nonce each time
    with pytest.raises(ValueError):
        cipher.decrypt(blob, "bb")
    rotated = ring.rotated()
    assert persons.PhoneCipher(rotated).decrypt(blob, "aa") == "13900000000"
    assert persons.id_hash(rotated, "X") == persons.id_hash(ring, "X")  # id hashes stay stable


OTP = {"challenge_id": "c", "otp": "123456"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**OTP, "name": "", "phone": "13900000000", "id_number": id_number(3)}, "name"),
        ({**OTP, "name": "a", "phone": "12345", "id_number": id_number(3)}, "phone"),
        ({**OTP, "name": "a", "phone": "13900000000", "id_number": "12345"}, "id_number"),
        ({**OTP, "name": "a", "phone": "13900000000"}, "id_number"),
        ({**OTP, "name": "a", "phone": "13900000000", "id_number": id_number(3), "x": 1}, "x"),
        ({**OTP, "name": "a\x07b", "phone": "13900000000", "id_number": id_number(3)}, "name"),
        ({"name": "a", "phone": "13900000000", "id_number": id_number(3)}, "challenge_id"),
    ],
)
async def test_bad_registrations_name_the_field(
    ingest: AsyncTestClient[Any], body: dict[str, Any], field: str
) -> None:
    r = await ingest.post("/v1/residents", json=body)
    assert r.status_code == 400, r.text
    assert field in r.json()["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_registration_is_rate_limited_per_address(make_settings: Any) -> None:
    from checkin.app import create_app

    app = create_app(make_settings(rate_register_per_min=3))
    async with AsyncTestClient(app=app) as client:
        codes = []
        for i in range(5):
            body = {**OTP, "name": "王五", "phone": "13900000000", "id_number": id_number(10 + i)}
            r = await client.post("/v1/residents", json=body)
            codes.append(r.status_code)
        assert codes == [410, 410, 410, 429, 429]  # the address is limited before any code is checked
        assert 1 <= int(r.headers["retry-after"]) <= 60
        metrics = (await client.get("/metrics")).text
        assert 'checkin_rejections_total{reason="rate_limited"} 2' in metrics


async def test_import_streams_per_line_results(
    ingest: AsyncTestClient[Any], sync_redis: redis.Redis, settings: Settings
) -> None:
    lines = [
        json.dumps({"name": "甲", "phone": "13900000001", "id_number": id_number(21)}),
        "",
        "{broken",
        json.dumps({"name": "乙", "phone": "bad", "id_number": id_number(22)}),
        json.dumps({"name": "丙", "phone": "13900000003", "id_number": id_number(23)}),
        json.dumps({"name": "甲", "phone": "13900000009", "id_number": id_number(21)}),
    ]
    body = ("\n".join(lines)).encode()  # no final newline: the last line still counts
    r = await ingest.post(
        "/v1/residents/import",
        content=body,
        headers={**admin_headers(), "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    results = [json.loads(x) for x in r.text.splitlines()]
    assert [x["line"] for x in results] == [1, 3, 4, 5, 6]
    assert "error" in results[1] and "error" in results[2] and "phone" in results[2]["error"]
    assert results[0]["created"] is True and results[4]["created"] is False
    assert results[0]["person_id"] == results[4]["person_id"] != results[3]["person_id"]
    assert r.headers["x-import-created"] == "2" and r.headers["x-import-rejected"] == "2"
    # the tokens work
    me = await ingest.get("/v1/residents/me/companions", headers=bearer(results[3]["token"]))
    assert me.status_code == 200 and me.json() == []
    # admin only
    r = await ingest.post("/v1/residents/import", content=body)
    assert r.status_code == 401
    r = await ingest.post("/v1/residents/import", content=b"", headers=admin_headers())
    assert r.status_code == 400


async def test_import_refuses_an_oversized_body(make_settings: Any) -> None:
    from checkin.app import create_app

    app = create_app(make_settings(max_import_bytes=1000))
    async with AsyncTestClient(app=app) as client:
        line = json.dumps({"name": "甲", "phone": "13900000001", "id_number": id_number(31)}) + "\n"
        r = await client.post("/v1/residents/import", content=(line * 40).encode(), headers=admin_headers())
        assert r.status_code == 413


def test_cli_import_reports_bad_lines_and_progress(
    tmp_path: Path, settings: Settings, sync_redis: redis.Redis
) -> None:
    path = tmp_path / "people.ndjson"
    rows = [
        json.dumps({"name": f"居民{i}", "phone": f"139{i:08d}", "id_number": id_number(100 + i)})
        for i in range(25)
    ]
    rows.insert(7, '{"name": "x", "phone": "13900000000"}')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    env = {k: v for k, v in settings.to_env().items()}
    import os

    proc = subprocess.run(
        [sys.executable, "-m", "checkin.cli", "residents", "import", str(path), "--chunk", "10"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "line 8:" in proc.stderr and "residents import: 26 lines" in proc.stderr
    assert "imported 25 residents; 1 lines refused" in proc.stdout
    keys = keys_of(settings)
    assert int(sync_redis.get(keys.person_seq()) or 0) >= 25
    missing = subprocess.run(
        [sys.executable, "-m", "checkin.cli", "residents", "import", str(tmp_path / "nope.ndjson")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_masking() -> None:
    assert persons.mask_name("张") == "*"
    assert persons.mask_name("张三") == "张*"
    assert persons.mask_name("欧阳娜娜") == "欧**娜"
    assert persons.mask_name("John Smith") == "J********h"
