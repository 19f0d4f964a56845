"""Ingest-side helpers: Redis keys of a test's settings, resident ids, venues written straight into
Redis, registration, API keys and the scan-stream entries the check-in path wrote."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
import redis
from litestar.testing import AsyncTestClient

from checkin.platform.keyring import Keyring
from checkin.platform.persons import normalise_phone, phone_hash
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.scan_stream import ScanEvent, decode_scan
from checkin.platform.settings import Settings
from tests.support.values import REDIS_URL, admin_headers
from venues import codes
from venues.model import Venue


def keys_of(settings: Settings) -> RedisKeys:
    return RedisKeys(settings.key_prefix, settings.stream_shards, settings.is_redis_cluster)


def with_check_digit(body: str) -> str:
    """The 17 characters and their GB 11643 check digit."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(c) * w for c, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def id_number(seq: int) -> str:
    """A well-formed 18-character resident id with a valid GB 11643 check digit (born in January
    1970: an adult, who becomes a companion only with the code of a phone they hold)."""
    return with_check_digit(f"110105{19700101 + seq % 28:08d}{seq % 1000:03d}")


def id_number_born_on(day: dt.date, seq: int) -> str:
    """A well-formed id number whose birth date (characters 7 to 14) is ``day``."""
    return with_check_digit(f"110105{day:%Y%m%d}{seq % 1000:03d}")


def born_years_ago(years: int, seq: int) -> str:
    """A well-formed id number of someone ``years`` old, give or take the birthday (born that many
    years before this year, January to June): pick ages a year or more from 16 and 70."""
    year = dt.date.today().year - years
    return id_number_born_on(dt.date(year, 1 + seq // 28 % 6, 1 + seq % 28), seq)


def child_id_number(seq: int) -> str:
    """An id number of an 8-year-old: a child, who becomes a dependant without a code."""
    return born_years_ago(8, seq)


Place = tuple[str, str, str, float, float]
"""(district, street, community, lat, lon) of a venue."""
BEIJING: Place = ("110105", "110105001", "110105001001", 39.9, 116.4)


def write_venue(
    sync_redis: redis.Redis, keys: RedisKeys, venue_id: int, place: Place, **fields: Any
) -> Venue:
    """Write a venue hash directly (the registry's layout) at ``place``; ``fields`` as :class:`Venue`'s."""
    district, street, community, lat, lon = place
    venue = Venue(
        venue_id=venue_id, district=district, street=street, community=community, lat=lat, lon=lon, **fields
    )
    sync_redis.hset(keys.venue(venue_id), mapping=venue.to_hash())  # type: ignore[arg-type]
    return venue


def put_venue(sync_redis: redis.Redis, settings: Settings, venue_id: int, **fields: Any) -> str:
    """Write a venue hash directly (the registry's layout) and return a signed code for it."""
    fields.setdefault("name", f"Venue {venue_id}")
    venue = write_venue(sync_redis, keys_of(settings), venue_id, BEIJING, **fields)
    return codes.sign(Keyring.parse(settings.keyring), venue_id, venue.code_version)


async def register(client: AsyncTestClient[Any], seq: int, name: str = "张三丰") -> tuple[int, str]:
    """A resident (phone ``139`` + seq) and a token for them, through the registry's bulk import
    (the admin path that needs no one-time code; tests of registration itself use the OTP flow)."""
    line = msgspec.json.encode({"name": name, "phone": f"139{seq:08d}", "id_number": id_number(seq)})
    r = await client.post("/v1/residents/import", content=line, headers=admin_headers())
    assert r.status_code == 200, r.text
    body = msgspec.json.decode(r.content.splitlines()[0])
    assert "error" not in body, body
    return int(body["person_id"]), str(body["token"])


def outbox(settings: Settings) -> list[dict[str, Any]]:
    """Every text the outbox gateway wrote for this test's data dir."""
    path = settings.data_path / "sms-outbox.ndjson"
    if not path.exists():
        return []
    return [msgspec.json.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


def a_minute_passes(settings: Settings, phone: str) -> None:
    """Forget that a code went to ``phone`` in the last minute (tests send several in a row)."""
    keyring = Keyring.parse(settings.keyring)
    ph = phone_hash(keyring, normalise_phone(phone))
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.delete(keys_of(settings).otp_phone_minute(ph))
    finally:
        client.close()


async def request_code(client: AsyncTestClient[Any], settings: Settings, phone: str) -> tuple[str, str]:
    """(challenge id, code) of a one-time code sent to ``phone``, read from the outbox (a minute
    after any earlier code to it)."""
    a_minute_passes(settings, phone)
    r = await client.post("/v1/residents/otp", json={"phone": phone})
    assert r.status_code == 202, r.text
    sent = [m for m in outbox(settings) if m["phone"] == normalise_phone(phone) and m["kind"] == "otp"]
    assert sent, "no code in the outbox"
    return str(r.json()["challenge_id"]), str(sent[-1]["otp"])


async def register_with_otp(
    client: AsyncTestClient[Any], settings: Settings, seq: int, name: str = "张三丰", phone: str | None = None
) -> Any:
    """The whole registration of resident ``seq`` as the phone page does it; returns the response."""
    phone = phone or f"139{seq:08d}"
    challenge, code = await request_code(client, settings, phone)
    return await client.post(
        "/v1/residents",
        json={
            "name": name,
            "phone": phone,
            "id_number": id_number(seq),
            "challenge_id": challenge,
            "otp": code,
        },
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_key(client: AsyncTestClient[Any], role: str, **extra: Any) -> dict[str, str]:
    r = await client.post(
        "/v1/keys", json={"role": role, "name": f"test {role}", **extra}, headers=admin_headers()
    )
    assert r.status_code == 201, r.text
    return bearer(r.json()["key"])


def stream_events(sync_redis: redis.Redis, settings: Settings) -> list[ScanEvent]:
    out: list[ScanEvent] = []
    for stream in keys_of(settings).streams():
        for entry_id, fields in sync_redis.xrange(stream):  # type: ignore[union-attr]
            out.append(decode_scan(entry_id, fields))
    return out


def raw_entries(sync_redis: redis.Redis, settings: Settings) -> list[dict[bytes, bytes]]:
    out: list[dict[bytes, bytes]] = []
    for stream in keys_of(settings).streams():
        out.extend(fields for _id, fields in sync_redis.xrange(stream))  # type: ignore[union-attr]
    return out
