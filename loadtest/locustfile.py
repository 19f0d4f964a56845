"""Locust users of venue-checkin, one class per real user.

Reads the seed file written by ``checkin loadtest seed`` (``LOADTEST_SEED_FILE``,
default ``var/loadtest/seed.json``): the ingest and tracing URLs, API keys,
venues with code tokens and popularity weights, residents with tokens.
``LOADTEST_SHAPE`` picks a load shape (steady, morning-peak, spike; unset = the
plain ``--users/--spawn-rate/--run-time``).

Run it with ``checkin loadtest run`` (headless) or directly::

    LOADTEST_SEED_FILE=var/loadtest/seed.json locust -f loadtest/locustfile.py --headless \\
        -u 50 -r 10 -t 5m --host http://127.0.0.1:8000
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import itertools
import math
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

from loadtest.seed import SeedFile, SeedResident, SeedVenue, read_seed
from loadtest.shapes import shape_class

SEED_FILE = os.environ.get("LOADTEST_SEED_FILE", "var/loadtest/seed.json")
REASON = "load test: routine trace"

_seed: SeedFile | None = None
_cum: list[float] = []
_lock = threading.Lock()
# Recent check-ins (resident token, checkin id) that a check-out may end; shared by all residents.
_open_stays: collections.deque[tuple[str, str]] = collections.deque(maxlen=5000)
# Persons with an acknowledged check-in (monotonic time, person id): what tracers look up.
_checked_in: collections.deque[tuple[float, int]] = collections.deque(maxlen=5000)
SINK_LAG_S = float(os.environ.get("LOADTEST_SINK_LAG_S", "15"))
"""A check-in answered this long ago must be visible to tracers (the sink flushes every second)."""
_client_ids = itertools.count()


def seed() -> SeedFile:
    global _seed, _cum
    with _lock:
        if _seed is None:
            path = Path(SEED_FILE)
            if not path.exists():
                raise RuntimeError(
                    f"seed file {path} not found: run `checkin loadtest seed --city DIR --out {path}` first "
                    "or set LOADTEST_SEED_FILE"
                )
            data = read_seed(path)
            if not data.venues or not data.residents:
                raise RuntimeError(f"seed file {path} has no venues or no residents")
            _cum = list(itertools.accumulate(v.weight for v in data.venues))
            _seed = data
        return _seed


def now_iso(offset_s: float = 0.0) -> str:
    t = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def popular_venue() -> SeedVenue:
    data = seed()
    return data.venues[min(bisect.bisect_right(_cum, random.random() * _cum[-1]), len(data.venues) - 1)]


def any_resident() -> SeedResident:
    return random.choice(seed().residents)


def traced_person() -> tuple[int, bool]:
    """(person id, whether stays must exist): a person seen checking in at least SINK_LAG_S ago,
    else (no resident users in this process yet) any seeded resident, who may have no stays."""
    cutoff = time.monotonic() - SINK_LAG_S
    settled = [pid for at, pid in list(_checked_in) if at <= cutoff]
    if settled:
        return random.choice(settled), True
    return any_resident().person_id, False


def near(venue: SeedVenue, metres: float) -> dict[str, float]:
    """A phone location within ``metres`` of the venue."""
    angle = random.random() * 2 * math.pi
    dist = random.random() * metres
    dlat = dist * math.cos(angle) / 111_320
    dlon = dist * math.sin(angle) / (111_320 * math.cos(math.radians(venue.lat)))
    return {"lat": round(venue.lat + dlat, 6), "lon": round(venue.lon + dlon, 6), "accuracy_m": 20.0}


def client_id() -> str:
    return f"lt-{uuid.uuid4().hex[:16]}-{next(_client_ids)}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class ResidentUser(FastHttpUser):
    """A stream of residents scanning venue codes: by popularity, some with companions,
    some uploading an offline queue, some checking out when they leave."""

    weight = 40
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        seed()

    @task(12)
    def scan(self) -> None:
        resident = any_resident()
        venue = popular_venue()
        body: dict[str, Any] = {"code": venue.token, "client_id": client_id()}
        if resident.companions and random.random() < 0.5:
            body["companions"] = resident.companions
        if random.random() < 0.3:
            body["location"] = near(venue, 150)
        with self.client.post(
            "/v1/checkins",
            json=body,
            headers=bearer(resident.token),
            name="/v1/checkins",
            catch_response=True,
        ) as resp:
            if resp.status_code not in (200, 201):
                resp.failure(f"check-in answered {resp.status_code}: {(resp.text or '')[:200]}")
                return
            data = resp.json()
            if not data.get("checkin_id") or not data.get("people"):
                resp.failure("check-in response without checkin_id or people")
                return
            if random.random() < 0.5:
                _open_stays.append((resident.token, str(data["checkin_id"])))
            now = time.monotonic()
            _checked_in.extend((now, int(p["person_id"])) for p in data["people"])

    @task(3)
    def check_out(self) -> None:
        try:
            token, checkin_id = _open_stays.popleft()
        except IndexError:
            self.scan()
            return
        with self.client.post(
            f"/v1/checkins/{checkin_id}/checkout",
            json={},
            headers=bearer(token),
            name="/v1/checkins/[id]/checkout",
            catch_response=True,
        ) as resp:
            # 409: already ended (a repeat scan within 60 s is the same check-in, so it can be queued twice)
            if resp.status_code == 409:
                resp.success()

    @task(1)
    def offline_batch(self) -> None:
        resident = any_resident()
        items = []
        for k in range(random.randint(2, 8)):
            venue = popular_venue()
            items.append(
                {
                    "code": venue.token,
                    "scanned_at": now_iso(-3600 * random.uniform(0.5, 24) - k),
                    "client_id": client_id(),
                }
            )
        with self.client.post(
            "/v1/checkins/batch",
            json={"items": items},
            headers=bearer(resident.token),
            name="/v1/checkins/batch",
            catch_response=True,
        ) as resp:
            if resp.status_code not in (200, 201, 207):
                resp.failure(f"batch answered {resp.status_code}: {(resp.text or '')[:200]}")
                return
            bad = [r for r in _batch_results(resp.json()) if int(r.get("status", 201)) >= 400]
            if bad:
                resp.failure(f"{len(bad)} of {len(items)} offline items refused: {bad[0]}")


def _batch_results(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, list):
        return [r for r in body if isinstance(r, dict)]
    if isinstance(body, dict):
        for key in ("results", "items"):
            if isinstance(body.get(key), list):
                return [r for r in body[key] if isinstance(r, dict)]
    return []


class SentinelUser(FastHttpUser):
    """A door device at a busy venue uploading the residents' codes it scanned."""

    weight = 3
    wait_time = between(1, 3)

    def on_start(self) -> None:
        data = seed()
        if not data.devices:
            raise RuntimeError("the seed file has no sentinel devices")
        self.device = random.choice(data.devices)

    def door_pass(self, resident: SeedResident) -> str | None:
        """The pass the resident's phone shows (fetched as the phone page does)."""
        with self.client.get(
            "/v1/residents/me/pass",
            headers=bearer(resident.token),
            name="/v1/residents/me/pass",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"door pass answered {resp.status_code}: {(resp.text or '')[:200]}")
                return None
            return str(resp.json()["pass"])

    @task
    def upload(self) -> None:
        scans = []
        for k in range(random.randint(1, 10)):
            resident = any_resident()
            door = self.door_pass(resident) if random.random() < 0.8 else None
            if door is not None:
                scans.append({"pass": door, "scanned_at": now_iso(-k)})
            else:
                scans.append({"id_number": resident.id_number, "scanned_at": now_iso(-k)})
        with self.client.post(
            "/v1/sentinel/scans",
            json={"scans": scans},
            headers=bearer(self.device.key),
            name="/v1/sentinel/scans",
            catch_response=True,
        ) as resp:
            if resp.status_code not in (200, 201, 207):
                resp.failure(f"sentinel upload answered {resp.status_code}: {(resp.text or '')[:200]}")
                return
            bad = [r for r in _batch_results(resp.json()) if int(r.get("status", 201)) >= 400]
            if bad:
                resp.failure(f"{len(bad)} of {len(scans)} sentinel scans refused: {bad[0]}")


class OperatorUser(FastHttpUser):
    """Venue operators printing posters, reading their code, venue record and today's entries."""

    weight = 2
    wait_time = between(2, 6)

    def on_start(self) -> None:
        self.key = bearer(seed().operator_key)

    @task(3)
    def poster(self) -> None:
        venue = popular_venue()
        with self.client.get(
            f"/v1/venues/{venue.venue_id}/poster.png",
            headers=self.key,
            name="/v1/venues/[id]/poster.png",
            catch_response=True,
        ) as resp:
            if resp.status_code == 200 and not (resp.content or b"").startswith(b"\x89PNG"):
                resp.failure("poster is not a PNG")

    @task(2)
    def code(self) -> None:
        venue = random.choice(seed().venues)
        self.client.get(f"/v1/venues/{venue.venue_id}/code", headers=self.key, name="/v1/venues/[id]/code")

    @task(2)
    def venue(self) -> None:
        venue = random.choice(seed().venues)
        self.client.get(f"/v1/venues/{venue.venue_id}", headers=self.key, name="/v1/venues/[id]")

    @task(3)
    def entries_today(self) -> None:
        venue = popular_venue()
        self.client.get(
            f"/v1/venues/{venue.venue_id}/entries", headers=self.key, name="/v1/venues/[id]/entries"
        )


class TracerUser(FastHttpUser):
    """Contact tracers: a person's visits, their contacts, exposure screening of a site."""

    weight = 2
    wait_time = between(2, 6)

    def on_start(self) -> None:
        data = seed()
        self.base = data.tracing_url
        self.key = bearer(data.tracer_key)

    @task(3)
    def visits(self) -> None:
        person, must_exist = traced_person()
        with self.client.get(
            f"{self.base}/v1/trace/persons/{person}/visits?reason=load+test",
            headers=self.key,
            name="/v1/trace/persons/[id]/visits",
            catch_response=True,
        ) as resp:
            _no_stays_is_fine(resp, must_exist)
            if resp.status_code == 200 and must_exist and not resp.json().get("visits"):
                resp.failure(f"person {person} checked in {SINK_LAG_S:.0f} s ago but has no visits")

    @task(2)
    def contacts(self) -> None:
        person, must_exist = traced_person()
        body = {
            "person_id": person,
            "since": now_iso(-7 * 86400),
            "until": now_iso(60),
            "depth": random.choice((1, 1, 2)),
            "reason": REASON,
        }
        url = f"{self.base}/v1/trace/contacts"
        with self.client.post(
            url, json=body, headers=self.key, name="/v1/trace/contacts", catch_response=True
        ) as resp:
            _no_stays_is_fine(resp, must_exist)

    @task(1)
    def exposures(self) -> None:
        sites = [
            {"venue_id": popular_venue().venue_id, "since": now_iso(-4 * 3600), "until": now_iso(60)}
            for _ in range(random.randint(1, 3))
        ]
        self.client.post(
            f"{self.base}/v1/trace/exposures",
            json={"sites": sites, "reason": REASON},
            headers=self.key,
            name="/v1/trace/exposures",
        )


def _no_stays_is_fine(resp: Any, must_exist: bool) -> None:
    """A 404 "no stays recorded" is the right answer for a resident who never checked in."""
    if resp.status_code == 404 and not must_exist:
        resp.success()
    elif resp.status_code == 404:
        resp.failure(f"a person who checked in is unknown to the tracing service: {(resp.text or '')[:200]}")


class AnalystUser(FastHttpUser):
    """Command-centre analysts: the alert list and the statistics pages."""

    weight = 2
    wait_time = between(2, 6)

    def on_start(self) -> None:
        data = seed()
        self.base = data.tracing_url
        self.key = bearer(data.analyst_key)

    @task(3)
    def alerts(self) -> None:
        self.client.get(f"{self.base}/v1/alerts?limit=50", headers=self.key, name="/v1/alerts")

    @task(2)
    def scans_per_hour(self) -> None:
        self.client.get(
            f"{self.base}/v1/stats/scans-per-hour?since={now_iso(-86400)}",
            headers=self.key,
            name="/v1/stats/scans-per-hour",
        )

    @task(1)
    def busiest(self) -> None:
        self.client.get(f"{self.base}/v1/stats/venues?limit=20", headers=self.key, name="/v1/stats/venues")


def _select_shape() -> None:
    """Locust runs the LoadTestShape class found in the locustfile's namespace: put the chosen one there."""
    chosen = shape_class(os.environ.get("LOADTEST_SHAPE", ""))
    if chosen is not None:
        globals()[chosen.__name__] = chosen


_select_shape()


@events.test_start.add_listener
def _check_seed(environment: Any, **kwargs: Any) -> None:
    seed()
