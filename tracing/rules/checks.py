"""The rules as pure functions: a scan event (plus the state the engine looked up) in, candidate alerts out.

Nothing here touches Redis or reads the wall clock; ``tracing.rules`` looks the state up, calls these
functions with the instant it considers "now", and deduplicates and publishes what they return. Kinds,
fields and dedupe are fixed by the contract (docs/ARCHITECTURE.md, "Alerts"):

* ``red_code_entry`` / ``yellow_code_entry``: the health colour at the door was red / yellow.
* ``test_expired_entry``: the verdict's reason was ``test_expired`` (required negative test missing or old).
* ``watchlist_entry``: the person was on the watchlist at scan time (the check-in script sets the flag
  from the watchlist entry and its ``until``, so an expired entry does not raise it).
* ``exposure_site_visit``: the venue is flagged for a period ``[since, until)`` containing the scan instant.
* ``capacity_exceeded``: stays covering "now" at the venue (check-outs end a stay early) exceed the
  venue's capacity; capacity 0 means no rule. Exactly reaching the capacity is not an alert.
* ``impossible_travel``: this check-in and the person's previous one (venue locations) are more than
  ``impossible_travel_min_km`` apart and need more than ``impossible_travel_kmh``.
* ``remote_scan``: the phone sent its location and, even allowing for the accuracy it reported, it is
  more than ``remote_scan_km`` from the venue (a photographed poster scanned elsewhere).

Only check-in events (not check-outs) raise alerts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import msgspec

from checkin.platform.instants import local_day
from checkin.platform.scan_stream import ScanEvent
from checkin.platform.settings import Settings
from tracing.rules.kinds import ALERT_KINDS, enabled_kinds

Severity = Literal["info", "warning", "critical"]
Clock = Callable[[], float]
"""Seconds since the epoch (``time.time`` in production; tests pass a fixed or stepping clock)."""

SEVERITY: dict[str, Severity] = {
    "red_code_entry": "critical",
    "yellow_code_entry": "warning",
    "test_expired_entry": "warning",
    "watchlist_entry": "critical",
    "exposure_site_visit": "critical",
    "capacity_exceeded": "warning",
    "impossible_travel": "warning",
    "remote_scan": "warning",
    "bulk_read": "critical",
}
KIND_INDEX = {kind: i for i, kind in enumerate(ALERT_KINDS)}
EARTH_RADIUS_KM = 6371.0088


class Candidate(msgspec.Struct, frozen=True):
    """An alert a rule wants to raise, before dedupe."""

    kind: str
    event: ScanEvent
    details: dict[str, Any]
    person_id: int | None
    dedupe_day: str = ""
    """Local day (YYYYMMDD) for the per (kind, person, venue, day) dedupe; empty for capacity."""
    dedupe_hour: int = 0
    """Hour number (unix ms // 3 600 000) for the per venue and hour capacity dedupe."""

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]


class RuleConfig(msgspec.Struct, frozen=True):
    enabled: frozenset[str]
    tz: str = "Asia/Shanghai"
    impossible_travel_kmh: float = 150.0
    impossible_travel_min_km: float = 2.0
    remote_scan_km: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RuleConfig:
        return cls(
            enabled=enabled_kinds(settings),
            tz=settings.tz,
            impossible_travel_kmh=settings.impossible_travel_kmh,
            impossible_travel_min_km=settings.impossible_travel_min_km,
            remote_scan_km=settings.remote_scan_km,
        )

    def on(self, kind: str) -> bool:
        return kind in self.enabled


class ExposureSite(msgspec.Struct, frozen=True, kw_only=True):
    site_id: str
    venue_id: int
    since_ms: int
    until_ms: int
    reason: str = ""

    def covers(self, at_ms: int) -> bool:
        return self.since_ms <= at_ms < self.until_ms


class PreviousCheckin(msgspec.Struct, frozen=True):
    """The person's check-in before this one, as remembered by the engine."""

    at_ms: int
    lat: float
    lon: float
    venue_id: int


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _person_candidate(kind: str, event: ScanEvent, cfg: RuleConfig, details: dict[str, Any]) -> Candidate:
    return Candidate(
        kind=kind,
        event=event,
        details=details,
        person_id=event.person_id or None,
        dedupe_day=local_day(event.at_ms, cfg.tz),
    )


def door_rules(event: ScanEvent, cfg: RuleConfig) -> list[Candidate]:
    """Colour, test and watchlist rules: decided by the verdict and flags recorded at the door."""
    if event.kind != "in":
        return []
    out: list[Candidate] = []
    base = {"verdict": event.verdict, "status": event.status, "source": event.source}
    if event.status == "red" and cfg.on("red_code_entry"):
        out.append(_person_candidate("red_code_entry", event, cfg, base))
    if event.status == "yellow" and cfg.on("yellow_code_entry"):
        out.append(_person_candidate("yellow_code_entry", event, cfg, base))
    if event.reason == "test_expired" and cfg.on("test_expired_entry"):
        out.append(_person_candidate("test_expired_entry", event, cfg, {**base, "reason": event.reason}))
    if event.watchlisted and cfg.on("watchlist_entry"):
        out.append(_person_candidate("watchlist_entry", event, cfg, base))
    return out


def exposure_rule(event: ScanEvent, sites: Sequence[ExposureSite], cfg: RuleConfig) -> list[Candidate]:
    """One candidate when a flagged period at this venue contains the scan instant."""
    if event.kind != "in" or not cfg.on("exposure_site_visit"):
        return []
    hits = [s for s in sites if s.venue_id == event.venue_id and s.covers(event.at_ms)]
    if not hits:
        return []
    details = {
        "site_ids": sorted(s.site_id for s in hits),
        "reasons": sorted({s.reason for s in hits if s.reason}),
    }
    return [_person_candidate("exposure_site_visit", event, cfg, details)]


def stay_covers(event: ScanEvent, now_ms: int) -> bool:
    """True when this stay is open at ``now_ms`` (it counts toward the venue's occupancy)."""
    return event.at_ms <= now_ms < event.end_ms


def capacity_rule(
    event: ScanEvent, occupancy: int | None, capacity: int, now_ms: int, cfg: RuleConfig
) -> list[Candidate]:
    """``occupancy`` = stays covering ``now_ms`` including this one (None: not counted)."""
    if event.kind != "in" or not cfg.on("capacity_exceeded") or occupancy is None or capacity <= 0:
        return []
    if occupancy <= capacity:
        return []
    return [
        Candidate(
            kind="capacity_exceeded",
            event=event,
            details={"occupancy": occupancy, "capacity": capacity},
            person_id=None,
            dedupe_hour=now_ms // 3_600_000,
        )
    ]


def travel_rule(event: ScanEvent, previous: PreviousCheckin | None, cfg: RuleConfig) -> list[Candidate]:
    """Consecutive check-ins too far apart for the time between them."""
    if event.kind != "in" or not cfg.on("impossible_travel") or previous is None:
        return []
    if event.venue_lat is None or event.venue_lon is None or previous.venue_id == event.venue_id:
        return []
    distance = haversine_km(previous.lat, previous.lon, event.venue_lat, event.venue_lon)
    if distance <= cfg.impossible_travel_min_km:
        return []
    hours = abs(event.at_ms - previous.at_ms) / 3_600_000
    speed = math.inf if hours == 0 else distance / hours
    if speed <= cfg.impossible_travel_kmh:
        return []
    details = {
        "from_venue_id": previous.venue_id,
        "from_at_ms": previous.at_ms,
        "distance_km": round(distance, 3),
        "minutes": round(hours * 60, 2),
        "kmh": None if math.isinf(speed) else round(speed, 1),
    }
    return [_person_candidate("impossible_travel", event, cfg, details)]


def remote_rule(event: ScanEvent, cfg: RuleConfig) -> list[Candidate]:
    """The phone's reported position is farther than the threshold from the venue, beyond its accuracy."""
    if event.kind != "in" or not cfg.on("remote_scan"):
        return []
    if event.lat is None or event.lon is None or event.venue_lat is None or event.venue_lon is None:
        return []
    distance = haversine_km(event.lat, event.lon, event.venue_lat, event.venue_lon)
    slack = (event.accuracy_m or 0.0) / 1000
    if distance - slack <= cfg.remote_scan_km:
        return []
    details = {
        "distance_km": round(distance, 3),
        "accuracy_m": event.accuracy_m,
        "phone": [event.lat, event.lon],
    }
    return [_person_candidate("remote_scan", event, cfg, details)]
