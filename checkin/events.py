"""The scan stream entry: what ingest XADDs and the sink and rules read.

Each entry in ``checkin:scans:{n}`` is a flat field map (written by the
check-in Lua script, so the names are short and fixed here). Kinds:

* ``t=in``: one person's check-in (a check-in with companions writes one entry
  per person, same ``cid`` and ``at``).
* ``t=out``: a check-out: the same fields as the person's ``in`` entry, with
  ``end`` set to the check-out instant. The sink writes it as a newer version
  of the same stay row, so queries see one stay per check-in and person.

Fields (all ASCII): t, cid (checkin id), pid (person id), vid (venue id),
at (scan instant, unix ms), end (stay end, unix ms), dw (dwell seconds), d/s/c (district, street,
community codes), st (health colour), vd (verdict), rs (verdict reason, may be
empty), src (phone|batch|sentinel), own (person id of the phone owner; equals
pid unless a companion), wl (1 when on the watchlist at scan time), lat/lon/acc
(phone location, empty when not sent), vlat/vlon (venue location), rcv (receipt
instant, unix ms).
"""

from __future__ import annotations

from typing import Literal

import msgspec

Status = Literal["green", "yellow", "red"]
Verdict = Literal["pass", "restricted", "deny"]
Source = Literal["phone", "batch", "sentinel"]


class PoisonEntry(ValueError):
    """A stream entry that cannot be decoded; carries its id for the dead-letter stream."""

    def __init__(self, entry_id: str, reason: str) -> None:
        super().__init__(f"entry {entry_id}: {reason}")
        self.entry_id = entry_id
        self.reason = reason


class ScanEvent(msgspec.Struct, frozen=True):
    entry_id: str
    kind: Literal["in", "out"]
    checkin_id: str
    person_id: int
    venue_id: int
    at_ms: int
    end_ms: int = 0
    dwell_s: int = 3600
    district: str = ""
    street: str = ""
    community: str = ""
    status: str = "green"
    verdict: str = "pass"
    reason: str = ""
    source: str = "phone"
    owner_id: int = 0
    watchlisted: bool = False
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    venue_lat: float | None = None
    venue_lon: float | None = None
    received_ms: int = 0


def _text(fields: dict[bytes, bytes], name: bytes) -> str:
    value = fields.get(name)
    return value.decode() if value is not None else ""


def _opt_float(fields: dict[bytes, bytes], name: bytes) -> float | None:
    value = fields.get(name)
    if value is None or value == b"":
        return None
    return float(value)


def decode_scan(entry_id: bytes | str, fields: dict[bytes, bytes]) -> ScanEvent:
    """Decode one stream entry; raises PoisonEntry when it cannot be used."""
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    try:
        kind = _text(fields, b"t")
        if kind not in ("in", "out"):
            raise ValueError(f"unknown kind {kind!r}")
        cid = _text(fields, b"cid")
        if not cid:
            raise ValueError("missing checkin id")
        at_ms = int(fields[b"at"])
        if at_ms <= 0:
            raise ValueError("non-positive timestamp")
        status = _text(fields, b"st") or "green"
        verdict = _text(fields, b"vd") or "pass"
        source = _text(fields, b"src") or "phone"
        if status not in ("green", "yellow", "red"):
            raise ValueError(f"unknown status {status!r}")
        if verdict not in ("pass", "restricted", "deny"):
            raise ValueError(f"unknown verdict {verdict!r}")
        if source not in ("phone", "batch", "sentinel"):
            raise ValueError(f"unknown source {source!r}")
        dwell_s = int(fields.get(b"dw") or 3600)
        end_ms = int(fields.get(b"end") or at_ms + dwell_s * 1000)
        if end_ms <= at_ms:
            raise ValueError("stay ends before it starts")
        pid = int(fields.get(b"pid") or 0)
        vid = int(fields[b"vid"])
        if not (0 <= vid < 2**32) or not (0 <= pid < 2**64):
            raise ValueError("id out of range")
        return ScanEvent(
            entry_id=eid,
            kind="in" if kind == "in" else "out",
            checkin_id=cid,
            person_id=pid,
            venue_id=vid,
            at_ms=at_ms,
            end_ms=end_ms,
            dwell_s=dwell_s,
            district=_text(fields, b"d"),
            street=_text(fields, b"s"),
            community=_text(fields, b"c"),
            status=status,
            verdict=verdict,
            reason=_text(fields, b"rs"),
            source=source,
            owner_id=int(fields.get(b"own") or pid),
            watchlisted=fields.get(b"wl") == b"1",
            lat=_opt_float(fields, b"lat"),
            lon=_opt_float(fields, b"lon"),
            accuracy_m=_opt_float(fields, b"acc"),
            venue_lat=_opt_float(fields, b"vlat"),
            venue_lon=_opt_float(fields, b"vlon"),
            received_ms=int(fields.get(b"rcv") or 0),
        )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise PoisonEntry(eid, str(exc) or type(exc).__name__) from None


def encode_scan(event: ScanEvent) -> dict[str, str]:
    """Field map for XADD (used by tests, backfill and tools; ingest writes the same from Lua)."""

    def f(value: float | None) -> str:
        return "" if value is None else repr(value)

    return {
        "t": event.kind,
        "cid": event.checkin_id,
        "pid": str(event.person_id),
        "vid": str(event.venue_id),
        "at": str(event.at_ms),
        "end": str(event.end_ms or event.at_ms + event.dwell_s * 1000),
        "dw": str(event.dwell_s),
        "d": event.district,
        "s": event.street,
        "c": event.community,
        "st": event.status,
        "vd": event.verdict,
        "rs": event.reason,
        "src": event.source,
        "own": str(event.owner_id or event.person_id),
        "wl": "1" if event.watchlisted else "0",
        "lat": f(event.lat),
        "lon": f(event.lon),
        "acc": f(event.accuracy_m),
        "vlat": f(event.venue_lat),
        "vlon": f(event.venue_lon),
        "rcv": str(event.received_ms),
    }
