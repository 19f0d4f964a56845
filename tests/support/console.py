"""The tracing console served for browser tests: ClickHouse seeded in a short-lived process (the
embedded engine's data path is opened by one process at a time), then the tracing app served on it
with a tracer key and an analyst key; signing in from a page; what a date picker holds."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis

from checkin.platform.auth import ApiKeyRecord, hash_key, new_key
from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import RedisKeys
from tests.support.processes import ROOT
from tests.support.servers import served
from tests.support.values import ADMIN_KEY, REDIS_URL, free_port

SEED_SCRIPT = """
import json, sys
from tests.support.trace_world import build_world, load
from tracing.storage.store import Store
spec = json.load(sys.stdin)
store = Store(spec["dsn"], "checkin")
store.apply_schema(28)
venues = {int(k): tuple(v) for k, v in spec["venues"].items()}
world = build_world(spec["base"], venues, [tuple(c) for c in spec["checkins"]])
load(store, world)
if spec.get("venue_names"):
    import datetime as dt
    now = dt.datetime.now(dt.UTC)
    rows = [[int(v), name, venues[int(v)][1], now] for v, name in spec["venue_names"].items()]
    store.insert("venues", ["venue_id", "name", "community", "updated_at"], rows, column_oriented=False)
if spec.get("alerts"):
    import msgspec
    from tracing.rules import alerts as al
    al.insert_alerts(store, [msgspec.convert(a, al.Alert) for a in spec["alerts"]])
store.close()
"""


@dataclass
class Server:
    base: str
    base_ms: int
    tracer_key: str
    analyst_key: str
    keys: RedisKeys


def _key(client: redis.Redis, keys: RedisKeys, role: str, scope: str = "") -> str:
    key = new_key()
    digest = hash_key(key)
    record = ApiKeyRecord(key_id=digest[:12], role=role, name=f"console {role}", scope=scope)
    client.set(
        keys.api_key(digest),
        json.dumps({"key_id": record.key_id, "role": role, "name": record.name, "scope": scope}),
    )
    client.hset(keys.api_key_index(), record.key_id, digest)
    return key


def add_key(server: Server, role: str, scope: str = "") -> str:
    """Another API key of ``role`` (and ``scope``) for a served console."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return _key(client, server.keys, role, scope)
    finally:
        client.close()


@contextmanager
def console_server(
    tmp_path: Path,
    prefix: str,
    spec: dict[str, Any],
    tz: str = "UTC",
    scoped_analyst: str = "",
    keyring: str = "",
) -> Iterator[Server]:
    """Seed ClickHouse with ``spec`` (base, venues, checkins, venue_names?, alerts?) in a short-lived
    process, then serve the tracing app on it (the embedded engine is opened by one process at a time)."""
    port = free_port()
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    seed = subprocess.run(
        [sys.executable, "-c", SEED_SCRIPT],
        input=json.dumps({"dsn": dsn, **spec}),
        text=True,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert seed.returncode == 0, seed.stderr
    env = {
        **os.environ,
        "CHECKIN_DATA_DIR": str(tmp_path / "var"),
        "CHECKIN_REDIS_URL": REDIS_URL,
        "CHECKIN_CLICKHOUSE_DSN": dsn,
        "CHECKIN_TRACING_PORT": str(port),
        "CHECKIN_KEY_PREFIX": prefix,
        "CHECKIN_ADMIN_KEY": ADMIN_KEY,
        "CHECKIN_KEYRING": keyring or Keyring.generate(1),
        "CHECKIN_TZ": tz,
    }
    client = redis.Redis.from_url(REDIS_URL)
    keys = RedisKeys(prefix)
    tracer, analyst = _key(client, keys, "tracer"), _key(client, keys, "analyst", scoped_analyst)
    client.close()
    log = tmp_path / "tracing.log"
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "checkin.cli", "serve-tracing"]
    with served("tracing", command, env, url, log, start_s=60, stop_s=20):
        yield Server(url, spec["base"], tracer, analyst, keys)


def picker(ms: int, tz: str = "UTC") -> str:
    """What a datetime-local picker holds for the instant ``ms`` in zone ``tz``."""
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")


def sign_in(page: Any, server: Server, key: str) -> None:
    page.goto(server.base + "/console")
    page.fill("#api-key", key)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#who[data-role]")  # the page names the key once its views are ready
