"""The private Redis that `checkin up` starts keeps every acknowledged write across a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.redis_proc import RedisProcess
from tests.support.values import free_port


@pytest.mark.parametrize("appendfsync", ["everysec", "always"])
def test_acknowledged_stream_entries_survive_kill_9(tmp_path: Path, appendfsync: str) -> None:
    proc = RedisProcess(free_port(), tmp_path / "redis", appendfsync=appendfsync).start()
    try:
        client = proc.client()
        acked = [client.xadd("checkin:scans:{0}", {"t": "in", "n": str(i)}) for i in range(2000)]
        client.close()
        proc.kill9()
        proc.start()
        survivors = [entry_id for entry_id, _ in proc.client().xrange("checkin:scans:{0}")]
        assert survivors == acked
    finally:
        proc.stop()
