"""kill -9 of a `checkin sink` process in the middle of its work, then a restart: every scan once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

from checkin.platform.keyring import Keyring
from checkin.platform.redis_keys import SINK_GROUP, RedisKeys
from checkin.platform.scan_stream import encode_scan
from tests.support.processes import kill_9, reaped, start_cli, stop, wait_for
from tests.support.sink import checkout, scan
from tests.support.values import ADMIN_KEY, REDIS_URL

COUNT_SCRIPT = """
import json, sys
from tracing.storage.store import Store
store = Store(sys.argv[1], "checkin")
t = store.table("scans")
print(json.dumps({
    "final": store.scalar(f"SELECT count() FROM {t} FINAL"),
    "checkouts": store.scalar(f"SELECT countIf(version = 1) FROM {t} FINAL"),
    "distinct": store.scalar(f"SELECT uniqExact(checkin_id) FROM {t}"),
    "by_person": store.scalar(f"SELECT count() FROM {store.table('scans_by_person')} FINAL"),
}))
"""


def _group(client: redis.Redis, keys: RedisKeys) -> tuple[int, int, int]:
    """(entries read, pending, lag) of group sink over every shard."""
    read = pending = lag = 0
    for stream in keys.streams():
        for g in client.xinfo_groups(stream):
            if g["name"] in (SINK_GROUP, SINK_GROUP.encode()):
                read += int(g.get("entries-read") or 0)
                pending += int(g["pending"])
                lag += int(g.get("lag") or 0)
    return read, pending, lag


def test_kill_9_mid_batch_then_restart_lands_every_scan_once(
    tmp_path: Path, prefix: str, sync_redis: redis.Redis
) -> None:
    keys = RedisKeys(prefix, 4)
    checkins = [scan(i, venue=i % 997) for i in range(12_000)]
    outs = [checkout(ev, ev.at_ms + 900_000) for ev in checkins[::10]]
    pipe = sync_redis.pipeline(transaction=False)
    for ev in checkins + outs:
        pipe.xadd(keys.stream(keys.shard_of(ev.venue_id)), encode_scan(ev))  # type: ignore[arg-type]
    pipe.execute()
    total = len(checkins) + len(outs)

    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    env: dict[str, Any] = {
        **os.environ,
        "CHECKIN_DATA_DIR": str(tmp_path / "var"),
        "CHECKIN_REDIS_URL": REDIS_URL,
        "CHECKIN_KEY_PREFIX": prefix,
        "CHECKIN_CLICKHOUSE_DSN": dsn,
        "CHECKIN_ADMIN_KEY": ADMIN_KEY,
        "CHECKIN_KEYRING": Keyring.generate(1),
        "CHECKIN_SINK_BATCH_ROWS": "300",
        "CHECKIN_SINK_BATCH_MS": "60000",
        "CHECKIN_SINK_CLAIM_IDLE_MS": "1500",
    }
    log = tmp_path / "sink.log"

    def some_batches_acked() -> bool:
        read, pending, _ = _group(sync_redis, keys) if sync_redis.exists(keys.stream(0)) else (0, 0, 0)
        return read - pending >= 1500  # some batches landed and were acked

    with reaped(start_cli("sink", env=env, log=log)) as first:
        wait_for(first, log, some_batches_acked, timeout=60, interval=0.005)
        kill_9(first)
    read, pending, _ = _group(sync_redis, keys)
    acked = read - pending
    assert acked < total, "the sink finished before it was killed"
    assert pending > 0, "killed between batches, not inside one"

    with reaped(start_cli("sink", env=env, log=log)) as second:
        wait_for(second, log, lambda: _group(sync_redis, keys)[1:] == (0, 0), timeout=90, interval=0.1)
        stop(second, log)

    out = subprocess.run(
        [sys.executable, "-c", COUNT_SCRIPT, dsn], capture_output=True, text=True, check=True, timeout=120
    )
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert counts == {
        "final": len(checkins),
        "checkouts": len(outs),
        "distinct": len(checkins),
        "by_person": len(checkins),
    }
    assert "reclaimed" in log.read_text()
