"""The served live feed: a real tracing app (granian subprocess, own data dir) running the rule worker.

Scans XADDed to the streams come out as SSE events; a scoped analyst sees only its district; a client
that reconnects with Last-Event-ID receives exactly the alerts it missed, once; history reaches ClickHouse.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from checkin.platform.settings import Settings
from tests.support.rules import DISTRICT_A, DISTRICT_B, Harness, key_for, scan, venue
from tests.support.servers import tracing_process, tracing_server
from tests.support.values import ADMIN_KEY, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def served(make_settings: Any, tmp_path: Path) -> Iterator[tuple[str, Settings]]:
    settings: Settings = make_settings(clickhouse_dsn=f"chdb://{tmp_path / 'ch'}", tracing_port=free_port())
    with tracing_server(settings, "rules", tmp_path / "tracing.log") as base:
        yield base, settings


class Feed:
    """Reads one SSE connection in the background; ``events`` holds (id, alert dict)."""

    def __init__(self, client: httpx.AsyncClient, url: str, **kw: Any) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.status = 0
        self._task = asyncio.create_task(self._run(client, url, kw))
        self.opened = asyncio.Event()

    async def _run(self, client: httpx.AsyncClient, url: str, kw: dict[str, Any]) -> None:
        import json

        async with client.stream("GET", url, timeout=None, **kw) as resp:
            self.status = resp.status_code
            self.opened.set()
            block: dict[str, str] = {}
            async for line in resp.aiter_lines():
                if line == "":
                    if block.get("event") == "alert":
                        self.events.append((block["id"], json.loads(block["data"])))
                    block = {}
                elif not line.startswith(":") and ": " in line:
                    name, value = line.split(": ", 1)
                    block[name] = value

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            assert time.monotonic() < deadline, f"got {len(self.events)} of {count} events"
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def alerts_in_stream(redis_client: Any, settings: Settings, count: int) -> None:
    """Wait until the rule engine has published ``count`` alerts (a presence, polled)."""
    deadline = time.monotonic() + 10
    while await redis_client.xlen(settings.key_prefix + "alerts") < count:
        assert time.monotonic() < deadline, "the rule engine did not publish the alerts"
        await asyncio.sleep(0.05)


async def test_served_feed_is_scoped_and_resumes_once(
    served: tuple[str, Settings], redis_client: Any
) -> None:
    base, settings = served
    h = Harness(settings, redis_client)
    a, b = venue(1001, DISTRICT_A), venue(2001, DISTRICT_B)
    scoped = await key_for(settings, redis_client, "analyst", DISTRICT_A)
    key = scoped["Authorization"].split(" ", 1)[1]

    async with httpx.AsyncClient(base_url=base) as client:
        feed = Feed(client, f"/v1/alerts/stream?key={key}")  # EventSource style: key in the URL
        await asyncio.wait_for(feed.opened.wait(), 10)
        assert feed.status == 200
        await asyncio.sleep(0.2)
        await h.xadd(scan(b, 1, status="red"), scan(a, 2, status="red"))
        await alerts_in_stream(redis_client, settings, 2)
        # a marker in scope after both: once the feed has sent it, it has read past district B's alert
        await h.xadd(scan(a, 90, status="yellow"))
        await feed.wait_for(2)
        assert [(e[1]["person_id"], e[1]["district"]) for e in feed.events] == [
            (2, DISTRICT_A),
            (90, DISTRICT_A),
        ]
        last_id = feed.events[-1][0]
        await feed.close()

        # missed while disconnected
        await h.xadd(scan(a, 3, status="red"), scan(b, 4, status="red"), scan(a, 5, status="yellow"))
        await alerts_in_stream(redis_client, settings, 6)
        resumed = Feed(client, "/v1/alerts/stream", headers={**scoped, "Last-Event-ID": last_id})
        await resumed.wait_for(2)
        await h.xadd(scan(a, 6, status="red"))
        # 6 comes after 4 in the stream: once 6 is here, 4 (district B) was read and left out
        await resumed.wait_for(3)
        got = [(e[1]["person_id"], e[1]["kind"]) for e in resumed.events]
        assert got == [(3, "red_code_entry"), (5, "yellow_code_entry"), (6, "red_code_entry")]
        assert len({e[0] for e in resumed.events}) == 3
        await resumed.close()

        # the admin (whole city) sees every district; history reaches ClickHouse
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        for _ in range(100):
            r = await client.get("/v1/alerts", headers=admin)
            if r.json()["count"] >= 7:
                break
            await asyncio.sleep(0.1)
        assert r.json()["count"] == 7
        r = await client.get("/v1/alerts", headers=scoped)
        assert sorted(x["person_id"] for x in r.json()["alerts"]) == [2, 3, 5, 6, 90]
        r = await client.get("/v1/alerts/stream", params={"key": "ck_not_a_key"})
        assert r.status_code == 401
        # opening the feed is audited like a trace query (the refused one is not a read)
        r = await client.get("/v1/audit", params={"action": "alerts_stream"}, headers=admin)
        opened = r.json()["entries"]
        assert len(opened) == 2 and {e["role"] for e in opened} == {"analyst"}
        assert opened[0]["params"]["resume"] == last_id and opened[1]["params"]["resume"] is None


async def test_an_open_feed_does_not_hold_a_stopping_service(make_settings: Any, tmp_path: Path) -> None:
    """SIGTERM with an analyst's feed open: the feed ends, the service runs its shutdown (the rule
    worker stops cleanly) and exits 0 at once instead of waiting for the browser to go away."""
    settings: Settings = make_settings(clickhouse_dsn=f"chdb://{tmp_path / 'ch'}", tracing_port=free_port())
    log = tmp_path / "tracing.log"
    with tracing_process(settings, "rules", log) as proc:
        base = f"http://127.0.0.1:{settings.tracing_port}"
        async with httpx.AsyncClient(base_url=base) as client:
            feed = Feed(client, "/v1/alerts/stream", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
            await asyncio.wait_for(feed.opened.wait(), 10)
            assert feed.status == 200
            await asyncio.sleep(0.3)
            stopped_at = time.monotonic()
            os.killpg(proc.pid, signal.SIGTERM)
            await asyncio.wait_for(feed._task, 10)  # the feed ended: the server closed it
            code = await asyncio.to_thread(proc.wait, 15)
        took = time.monotonic() - stopped_at
    assert code == 0, log.read_text()
    assert took < 8, f"stopping took {took:.1f} s\n{log.read_text()}"
