"""The chaos run's reckoning: what the phones were told against what the system kept.

* every check-in answered 201 (or 200, the same check-in again) is in ClickHouse exactly once: one
  stay per (check-in, person) as the queries read it (``FINAL``), none missing;
* no check-in was stored that no phone was told about (a retry stored a second time);
* stays of one person never overlap (each ends at the latest where the next one starts);
* no alert was raised twice: one alert id per (kind, person, venue, local day), one row per id;
* every visitor of a site flagged during the run can read its notice on the phone API, and its text
  was handed to the SMS gateway once (one outbox line per idempotency key).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import redis.asyncio as aioredis

from checkin.platform.redis_keys import RedisKeys
from loadtest.system import PREFIX, SHARDS, scan_backlog
from tracing.storage.store import Store


@dataclass
class Site:
    site_id: str
    venue_id: int
    since: str
    until: str


@dataclass
class Reckoning:
    answered: int = 0
    stored: int = 0
    missing: list[str] = field(default_factory=list)
    duplicated: int = 0
    """(check-in, person) pairs with more than one stay as the queries read them."""
    unanswered_stored: int = 0
    """Check-ins in ClickHouse that no phone was told about."""
    overlapping: int = 0
    """Stays that start after the same person's previous stay started and before it ended (one
    place at a time; the contract orders stays by their start, so two starting in the same
    millisecond, which no phone of the run sends, would not count)."""
    alerts: int = 0
    alerts_twice: int = 0
    """(kind, person, venue, day) with more than one alert, plus alert ids with more than one row."""
    notices_expected: int = 0
    notices_readable: int = 0
    texts_sent: int = 0
    texts_twice: int = 0
    texts_missing: int = 0

    @property
    def kept(self) -> bool:
        return not (
            self.missing
            or self.duplicated
            or self.unanswered_stored
            or self.overlapping
            or self.alerts_twice
            or self.notices_readable < self.notices_expected
            or self.texts_twice
            or self.texts_missing
        )


def backlog(redis_url: str) -> dict[str, int]:
    """What the tracing workers still have to do: scans not yet written by the sink, exposure sites
    queued or being screened, notice texts not yet handed to the gateway."""
    keys = RedisKeys(PREFIX, SHARDS)
    return {"scans unwritten": scan_backlog(redis_url), **asyncio.run(_notice_backlog(redis_url, keys))}


async def _notice_backlog(redis_url: str, keys: RedisKeys) -> dict[str, int]:
    client = aioredis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        texts = keys.notice_texts()
        return {
            "sites queued": int(await client.llen(keys.notify_queue())),
            "sites screening": int(await client.llen(keys.notify_working())),
            "texts unsent": int(await client.xlen(texts)) if await client.exists(texts) else 0,
        }
    finally:
        await client.aclose()


def wait_for(check: Callable[[], bool], timeout_s: float, every_s: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every_s)
    return check()


class _Exposure(msgspec.Struct):
    person_id: int
    venue_ids: list[int]


class _Exposures(msgspec.Struct):
    exposures: list[_Exposure]


class _Notice(msgspec.Struct):
    notice_id: str


class _Notices(msgspec.Struct):
    notices: list[_Notice]


def exposed(tracing: str, tracer_key: str, sites: list[Site]) -> dict[str, set[int]]:
    """site id -> persons with a stay overlapping its window, as the exposure screening finds them."""
    body = {
        "sites": [{"venue_id": s.venue_id, "since": s.since, "until": s.until} for s in sites],
        "reason": "chaos run: who must have been told",
    }
    resp = httpx.post(
        f"{tracing}/v1/trace/exposures",
        json=body,
        headers={"Authorization": f"Bearer {tracer_key}"},
        timeout=120,
    )
    resp.raise_for_status()
    found = msgspec.json.decode(resp.content, type=_Exposures).exposures
    return {s.site_id: {e.person_id for e in found if s.venue_id in e.venue_ids} for s in sites}


def readable_notices(
    ingest: str, tokens: dict[int, str], expected: dict[str, set[int]]
) -> dict[str, set[int]]:
    """site id -> the expected persons whose own notice list holds that site's notice."""
    out: dict[str, set[int]] = {site: set() for site in expected}
    persons = sorted(set().union(*expected.values()))
    with httpx.Client(timeout=30) as http:
        for person in persons:
            resp = http.get(
                f"{ingest}/v1/residents/me/notices", headers={"Authorization": f"Bearer {tokens[person]}"}
            )
            resp.raise_for_status()
            held = {n.notice_id for n in msgspec.json.decode(resp.content, type=_Notices).notices}
            for site, visitors in expected.items():
                if person in visitors and site in held:
                    out[site].add(person)
    return out


class _OutboxLine(msgspec.Struct):
    kind: str
    idempotency_key: str = ""


def texts_by_key(outbox: Path) -> Counter[str]:
    """Lines of the SMS outbox per notice idempotency key (``<notice id>:<recipient>``)."""
    counts: Counter[str] = Counter()
    if not outbox.exists():
        return counts
    decoder = msgspec.json.Decoder(_OutboxLine)
    for line in outbox.read_bytes().splitlines():
        if line.strip():
            entry = decoder.decode(line)
            if entry.kind == "notice":
                counts[entry.idempotency_key] += 1
    return counts


def check_notices(
    result: Reckoning, expected: dict[str, set[int]], readable: dict[str, set[int]], texts: Counter[str]
) -> None:
    result.notices_expected = sum(len(v) for v in expected.values())
    result.notices_readable = sum(len(readable[s] & v) for s, v in expected.items())
    wanted = {f"{site}:{person}" for site, persons in expected.items() for person in persons}
    result.texts_sent = sum(1 for key in wanted if texts[key] >= 1)
    result.texts_missing = len(wanted) - result.texts_sent
    result.texts_twice = sum(1 for key, n in texts.items() if n > 1)


def check_store(result: Reckoning, store: Store, owners: dict[str, int], tz: str) -> None:
    """Check-ins and alerts as ClickHouse holds them (the system stopped: the embedded engine's files
    belong to one process at a time)."""
    scans = store.table("scans")
    rows = store.rows(
        f"SELECT checkin_id, person_id, count() FROM {scans} FINAL GROUP BY checkin_id, person_id"
    )
    stays: Counter[tuple[str, int]] = Counter()
    for checkin_id, person_id, n in rows:
        stays[(str(checkin_id), int(person_id))] += int(n)
    result.answered = len(owners)
    result.stored = sum(1 for cid, person in owners.items() if (cid, person) in stays)
    result.missing = sorted(cid for cid, person in owners.items() if (cid, person) not in stays)
    result.duplicated = sum(1 for n in stays.values() if n > 1)
    result.unanswered_stored = sum(1 for (cid, _person) in stays if cid not in owners)
    result.overlapping = int(
        store.scalar(
            "SELECT countIf(n > 1 AND prev_at < at AND prev_end > at) FROM (SELECT at, "
            "lagInFrame(at) OVER w AS prev_at, lagInFrame(end_at) OVER w AS prev_end, "
            "row_number() OVER w AS n "
            f"FROM {scans} FINAL WINDOW w AS (PARTITION BY person_id ORDER BY at, checkin_id "
            "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW))"
        )
    )
    alerts = store.table("alerts")
    result.alerts = int(store.scalar(f"SELECT uniqExact(alert_id) FROM {alerts}"))
    per_day = int(
        store.scalar(
            f"SELECT count() FROM (SELECT kind, person_id, venue_id, toDate(at, '{tz}') AS day, "
            f"uniqExact(alert_id) AS n FROM {alerts} FINAL WHERE kind != 'capacity_exceeded' "
            "GROUP BY kind, person_id, venue_id, day HAVING n > 1)"
        )
    )
    per_id = int(
        store.scalar(
            f"SELECT count() FROM (SELECT alert_id FROM {alerts} FINAL GROUP BY alert_id HAVING count() > 1)"
        )
    )
    result.alerts_twice = per_day + per_id
