"""Phones for the chaos run: check-ins at a steady rate from many clients, each retried as the phone
page retries it (the same body and ``client_id`` after a dropped connection, a timeout, a 429 or a
5xx, backing off) until the API accepts it. What every check-in was answered is kept for the audit."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
import msgspec

from loadtest.seed import SeedResident

RETRY_FIRST_S = 0.25
RETRY_MAX_S = 4.0
REQUEST_TIMEOUT_S = 10.0


@dataclass
class Tally:
    """What the phones were told."""

    accepted: dict[str, str] = field(default_factory=dict)
    """client_id -> the checkin_id of the answer that accepted it (201, or 200 for a repeat)."""
    owners: dict[str, int] = field(default_factory=dict)
    """checkin_id -> the person who checked in."""
    statuses: Counter[int] = field(default_factory=Counter)
    """Every HTTP answer by status, retries included; 0 = no answer (connection or timeout)."""
    refused: Counter[str] = field(default_factory=Counter)
    """Lasting refusals (a 4xx other than 429), by status and problem title: none is expected."""
    accepted_at: list[float] = field(default_factory=list)
    """time.monotonic() of every accepting answer."""
    retries: int = 0
    gave_up: int = 0
    """Check-ins still unanswered when the phones stopped retrying."""

    @property
    def created(self) -> int:
        return self.statuses[201]

    def longest_silence(self, start: float, end: float) -> tuple[float, float]:
        """(seconds, offset from ``start``) of the longest stretch of [start, end] in which no
        check-in was accepted."""
        marks = [start, *sorted(t for t in self.accepted_at if start <= t <= end), end]
        gap, at = max((b - a, a - start) for a, b in itertools.pairwise(marks))
        return gap, at


class _Answer(msgspec.Struct):
    checkin_id: str


class _Problem(msgspec.Struct):
    title: str = ""


async def run_phones(
    ingest: str,
    residents: list[SeedResident],
    codes: list[str],
    rate: float,
    seconds: float,
    clients: int,
    tally: Tally,
    retry_for_s: float = 120.0,
    seed: int = 1,
) -> None:
    """``clients`` phones share ``rate`` check-ins a second for ``seconds``; a check-in not yet
    accepted is retried until ``retry_for_s`` after the load ended. Each resident belongs to one
    client, as a person has one phone: a person's check-ins are sent one after the other."""
    clients = min(clients, len(residents))
    end = time.monotonic() + seconds
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(
            *(
                _phone(
                    session,
                    f"{ingest}/v1/checkins",
                    n,
                    residents[n::clients],
                    codes,
                    clients / rate,
                    end,
                    end + retry_for_s,
                    tally,
                    random.Random(seed * 1_000_003 + n),
                )
                for n in range(clients)
            )
        )


async def _phone(
    session: aiohttp.ClientSession,
    url: str,
    n: int,
    residents: list[SeedResident],
    codes: list[str],
    every_s: float,
    end: float,
    give_up: float,
    tally: Tally,
    rng: random.Random,
) -> None:
    next_at = time.monotonic() + rng.random() * every_s  # spread the phones' first sends
    sent = 0
    while True:
        now = time.monotonic()
        if next_at > now:
            await asyncio.sleep(next_at - now)
        if time.monotonic() >= end:
            return
        resident = rng.choice(residents)
        sent += 1
        client_id = f"chaos-{n}-{sent}"
        body = msgspec.json.encode({"code": rng.choice(codes), "client_id": client_id})
        headers = {"Authorization": f"Bearer {resident.token}", "Content-Type": "application/json"}
        await _until_answered(session, url, body, headers, client_id, resident.person_id, give_up, tally)
        next_at = max(next_at + every_s, time.monotonic() - every_s)


async def _until_answered(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    client_id: str,
    person_id: int,
    give_up: float,
    tally: Tally,
) -> None:
    wait = RETRY_FIRST_S
    while True:
        status, payload = await _post(session, url, body, headers)
        tally.statuses[status] += 1
        if status in (200, 201):
            checkin_id = msgspec.json.decode(payload, type=_Answer).checkin_id
            tally.accepted[client_id] = checkin_id
            tally.owners[checkin_id] = person_id
            tally.accepted_at.append(time.monotonic())
            return
        if 400 <= status < 500 and status != 429:
            title = msgspec.json.decode(payload, type=_Problem).title if payload[:1] == b"{" else ""
            tally.refused[f"{status} {title}".strip()] += 1
            return
        if time.monotonic() + wait > give_up:
            tally.gave_up += 1
            return
        tally.retries += 1
        await asyncio.sleep(wait * (0.5 + random.random()))
        wait = min(RETRY_MAX_S, wait * 2)


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    """(status, body); (0, b"") when no answer came (refused, reset, timed out)."""
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            return resp.status, await resp.read()
    except (TimeoutError, aiohttp.ClientError, OSError):
        return 0, b""
