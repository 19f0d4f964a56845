"""Ingest-side helpers: Redis keys of a test's settings, resident ids, venues written straight into
Redis, registration, API keys and the scan-stream entries the check-in path wrote."""

from __future__ import annotations

from typing import Any

import redis
from litestar.testing import AsyncTestClient

from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from checkin.platform.scan_stream import ScanEvent, decode_scan
from checkin.platform.settings import Settings
from tests.support.values import admin_headers
from venues import codes
from venues.model import Venue


def keys_of(settings: Settings) -> RedisKeys:
    return RedisKeys(settings.key_prefix, settings.stream_shards, settings.is_redis_cluster)


def id_number(seq: int) -> str:
    """A well-formed 18-character resident id with a valid GB 11643 check digit."""
    body = f"110105{19700101 + seq % 28:08d}{seq % 1000:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(c) * w for c, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def put_venue(sync_redis: redis.Redis, settings: Settings, venue_id: int, **fields: Any) -> str:
    """Write a venue hash directly (the registry's layout) and return a signed code for it."""
    fields.setdefault("name", f"Venue {venue_id}")
    venue = Venue(
        venue_id=venue_id,
        district="110105",
        street="110105001",
        community="110105001001",
        lat=39.9,
        lon=116.4,
        **fields,
    )
    sync_redis.hset(keys_of(settings).venue(venue_id), mapping=venue.to_hash())  # type: ignore[arg-type]
    return codes.sign(Keyring.parse(settings.keyring), venue_id, venue.code_version)


async def register(client: AsyncTestClient[Any], seq: int, name: str = "张三丰") -> tuple[int, str]:
    r = await client.post(
        "/v1/residents", json={"name": name, "phone": f"139{seq:08d}", "id_number": id_number(seq)}
    )
    assert r.status_code in (200, 201), r.text
    body = r.json()
    return int(body["person_id"]), str(body["token"])


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
