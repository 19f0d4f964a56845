"""``checkin migrate-keys``: keys of the earlier layout get the names the code reads now."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import redis

from checkin.platform.key_migration import migrate
from checkin.platform.redis_keys import RENAMED, RedisKeys
from checkin.platform.settings import Settings


def test_every_earlier_key_is_renamed_once_with_its_value_and_ttl(
    settings: Settings, sync_redis: Any
) -> None:
    p = settings.key_prefix
    keys = RedisKeys(p, settings.stream_shards)
    sync_redis.hset(p + "pstate:{0}:42", mapping={"st": "red", "nm": "张*"})
    sync_redis.set(p + "ci:{1}:0012345", b'{"cid":"x"}', ex=3600)
    sync_redis.set(p + "person:idn:abc", 42)
    sync_redis.set(p + "apikey:deadbeef", b"{}")
    sync_redis.hset(p + "apikeys", "k1", "deadbeef")
    sync_redis.set(p + "rules:dd:red_code_entry:42:7:20261201", "1-0", ex=600)
    sync_redis.set(p + "venues:seq", 17)
    sync_redis.hset(p + "rules:exposure_sites", "s1", "{}")
    sync_redis.set(p + "rules:exposure_sites:gen", 3)
    sync_redis.xadd(p + "scans:dead", {"id": "1-0"})

    report = migrate(sync_redis, p)

    assert report.conflicts == []
    assert sync_redis.hgetall(keys.pstate(42)) == {b"st": b"red", b"nm": "张*".encode()}
    assert sync_redis.get(keys.checkin_record(1, "0012345")) == b'{"cid":"x"}'
    assert 3500 < sync_redis.ttl(keys.checkin_record(1, "0012345")) <= 3600
    assert sync_redis.get(keys.person_by_id_hash("abc")) == b"42"
    assert sync_redis.get(keys.api_key("deadbeef")) == b"{}"
    assert sync_redis.hget(keys.api_key_index(), "k1") == b"deadbeef"
    assert sync_redis.get(keys.rule_dedupe("red_code_entry", 42, 7, "20261201")) == b"1-0"
    assert sync_redis.get(keys.venue_seq()) == b"17"
    assert sync_redis.hget(keys.exposure_sites(), "s1") == b"{}"
    assert sync_redis.get(keys.exposure_sites_gen()) == b"3"
    assert sync_redis.xlen(keys.dead_letters()) == 1
    old_left = [
        k
        for k in sync_redis.scan_iter(match=p + "*")
        if any(
            k.decode()[len(p) :].startswith(old) and not k.decode()[len(p) :].startswith(new)
            for old, new, _ in RENAMED
        )
    ]
    assert old_left == []
    assert migrate(sync_redis, p).total == 0  # nothing left to do the second time


def test_a_taken_new_name_is_reported_not_overwritten(settings: Settings, sync_redis: Any) -> None:
    p = settings.key_prefix
    keys = RedisKeys(p, settings.stream_shards)
    sync_redis.set(p + "person:idn:abc", 1)
    sync_redis.set(keys.person_by_id_hash("abc"), 2)
    report = migrate(sync_redis, p)
    assert report.conflicts == [p + "person:idn:abc"]
    assert sync_redis.get(keys.person_by_id_hash("abc")) == b"2"
    assert sync_redis.get(p + "person:idn:abc") == b"1"


def test_the_command_reports_what_it_renamed(settings: Settings, sync_redis: redis.Redis) -> None:
    p = settings.key_prefix
    sync_redis.set(p + "persons:seq", 5)
    env = {**settings.to_env(), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "checkin.cli", "migrate-keys"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "1 keys renamed" in done.stdout
    assert sync_redis.get(p + "persons:sequence") == b"5"
