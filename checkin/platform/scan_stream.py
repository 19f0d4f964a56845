"""The scan stream entry: what ingest XADDs and the sink and rules read.

Each entry in ``checkin:scans:{n}`` has ONE field, ``scan``, whose value is a line of
tab-separated values in the fixed order of :data:`LAYOUT`, the one table of the field
positions: the check-in and check-out Lua scripts write in this order (a test pins both to
it) and everything that reads a line decodes by it. One field instead of one per value
makes every entry cheap to write, to serve (XREADGROUP replies carry 3 strings per entry,
not 45) and to land: the names in :data:`LAYOUT` that are ``scans`` columns are the
table's own column names, so the sink hands the lines to ClickHouse as they are
(TabSeparatedWithNames; the other names are skipped).

Kinds (``version``, the stay row's version):

* ``0``: one person's check-in (a check-in with companions writes one entry per person,
  same ``checkin_id`` and ``at``). Its ``end_at`` is already the stay's end as far as the
  person's other stays are known (a scan uploaded late ends where the person's next stay starts).
* ``1`` to ``255``: a new end of that stay: the values of the person's check-in entry with
  ``end_at`` set to the stay's end now and ``ended_by`` saying what ended it (``checkout``: the
  resident checked out; ``next_stay``: the person's next stay started). Each end change of a stay
  carries a higher version (255 at most), so ClickHouse keeps the newest whatever order the rows
  land in, and queries see one stay per check-in and person (docs/ARCHITECTURE.md, "Stays and
  contacts").

Values (ASCII; no tab, newline or backslash): checkin_id, person_id, venue_id, at and
end_at (stay start and end, unix ms), dwell_s (venue dwell seconds), district / street /
community codes, status (health colour), verdict, reason (may be empty), source
(phone|batch|sentinel), owner_id (the phone owner; equals person_id unless a companion),
watchlisted (1 when on the watchlist at scan time), lat / lon / accuracy_m (phone
location, empty when not sent), venue_lat / venue_lon, received_at (receipt, unix ms),
ended_by (empty = the natural end, ``checkout`` or ``next_stay``). Lines of the earlier layout,
without ``ended_by``, are still read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

Status = Literal["green", "yellow", "red"]
Verdict = Literal["pass", "restricted", "deny"]
Source = Literal["phone", "batch", "sentinel"]
EndedBy = Literal["", "checkout", "next_stay"]

FIELD = "scan"
"""The one field of a scan entry."""
FIELD_BYTES = FIELD.encode()
LAYOUT = (
    "version",
    "checkin_id",
    "person_id",
    "venue_id",
    "at",
    "end_at",
    "dwell_s",
    "district",
    "street",
    "community",
    "status",
    "verdict",
    "reason",
    "source",
    "owner_id",
    "watchlisted",
    "lat",
    "lon",
    "accuracy_m",
    "venue_lat",
    "venue_lon",
    "received_at",
    "ended_by",
)
WIDTH = len(LAYOUT)
EARLIER_WIDTH = WIDTH - 1
"""Lines written before ``ended_by`` existed."""
MAX_VERSION = 255
ENDED_BY = ("", "checkout", "next_stay")
SEPARATOR = b"\t"


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
    version: int = 0
    """The stay row's version (0 = the check-in; see the module docstring)."""
    ended_by: EndedBy = ""


def _opt_float(value: str) -> float | None:
    return float(value) if value else None


def entry_line(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> bytes | None:
    """The ``scan`` value of an entry's field map (bytes or str keys), None when absent."""
    value = fields.get(FIELD_BYTES, fields.get(FIELD))  # type: ignore[call-overload]
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode()


def line_values(line: bytes) -> dict[str, str]:
    """The named values of a scan line, unchecked (tools and tests read entries with it)."""
    return dict(zip(LAYOUT, line.decode("utf-8", "replace").split("\t"), strict=False))


def decode_line(entry_id: str, line: bytes) -> ScanEvent:
    """Decode one ``scan`` line by :data:`LAYOUT`; raises PoisonEntry when it cannot be used."""
    try:
        if b"\\" in line or b"\n" in line or b"\r" in line:
            raise ValueError("escape or line break in a value")
        values = line.decode("ascii").split("\t")
        if len(values) == EARLIER_WIDTH:
            values.append("")
        if len(values) != WIDTH:
            raise ValueError(f"{len(values)} values, expected {WIDTH}")
        v = dict(zip(LAYOUT, values, strict=True))
        version = v["version"]
        if not (version.isdigit() and len(version) <= 3 and int(version) <= MAX_VERSION):
            raise ValueError(f"unknown kind {version!r}")
        ended_by = v["ended_by"]
        if ended_by not in ENDED_BY:
            raise ValueError(f"unknown end {ended_by!r}")
        if version != "0" and not ended_by:
            ended_by = "checkout"  # the earlier layout's only end row
        cid = v["checkin_id"]
        if not cid:
            raise ValueError("missing checkin id")
        at_ms = int(v["at"])
        if at_ms <= 0:
            raise ValueError("non-positive timestamp")
        status = v["status"] or "green"
        verdict = v["verdict"] or "pass"
        source = v["source"] or "phone"
        if status not in ("green", "yellow", "red"):
            raise ValueError(f"unknown status {status!r}")
        if verdict not in ("pass", "restricted", "deny"):
            raise ValueError(f"unknown verdict {verdict!r}")
        if source not in ("phone", "batch", "sentinel"):
            raise ValueError(f"unknown source {source!r}")
        dwell_s = int(v["dwell_s"] or 3600)
        end_ms = int(v["end_at"] or at_ms + dwell_s * 1000)
        if end_ms <= at_ms:
            raise ValueError("stay ends before it starts")
        pid = int(v["person_id"] or 0)
        vid = int(v["venue_id"])
        if not (0 <= vid < 2**32) or not (0 <= pid < 2**64):
            raise ValueError("id out of range")
        return ScanEvent(
            entry_id=entry_id,
            kind="in" if version == "0" else "out",
            checkin_id=cid,
            person_id=pid,
            venue_id=vid,
            at_ms=at_ms,
            end_ms=end_ms,
            dwell_s=dwell_s,
            district=v["district"],
            street=v["street"],
            community=v["community"],
            status=status,
            verdict=verdict,
            reason=v["reason"],
            source=source,
            owner_id=int(v["owner_id"] or 0) or pid,
            watchlisted=v["watchlisted"] == "1",
            lat=_opt_float(v["lat"]),
            lon=_opt_float(v["lon"]),
            accuracy_m=_opt_float(v["accuracy_m"]),
            venue_lat=_opt_float(v["venue_lat"]),
            venue_lon=_opt_float(v["venue_lon"]),
            received_ms=int(v["received_at"] or 0),
            version=int(version),
            ended_by=ended_by,  # type: ignore[arg-type]
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonEntry(entry_id, str(exc) or type(exc).__name__) from None


LEGACY_NAMES = {
    "t": "version",
    "cid": "checkin_id",
    "pid": "person_id",
    "vid": "venue_id",
    "at": "at",
    "end": "end_at",
    "dw": "dwell_s",
    "d": "district",
    "s": "street",
    "c": "community",
    "st": "status",
    "vd": "verdict",
    "rs": "reason",
    "src": "source",
    "own": "owner_id",
    "wl": "watchlisted",
    "lat": "lat",
    "lon": "lon",
    "acc": "accuracy_m",
    "vlat": "venue_lat",
    "vlon": "venue_lon",
    "rcv": "received_at",
}
"""Field names of the earlier entry format (one field per value, ``t`` = in|out)."""


def legacy_line(fields: Mapping[bytes, bytes] | Mapping[str, str]) -> bytes | None:
    """The scan line of an entry in the earlier field-per-value format (written before an upgrade and
    still in the stream), or None when the entry is not one."""
    named = {
        (k.decode("utf-8", "replace") if isinstance(k, bytes) else k): (
            v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        )
        for k, v in fields.items()
    }
    if "t" not in named or "cid" not in named:
        return None
    values = {LEGACY_NAMES[k]: v for k, v in named.items() if k in LEGACY_NAMES}
    values["version"] = {"in": "0", "out": "1"}.get(values["version"], values["version"])
    return pack(values)[FIELD].encode("utf-8", "replace")


def decode_scan(entry_id: bytes | str, fields: Mapping[bytes, bytes] | Mapping[str, str]) -> ScanEvent:
    """Decode one stream entry (its field map); raises PoisonEntry when it cannot be used."""
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    line = entry_line(fields)
    if line is None:
        line = legacy_line(fields)
    if line is None:
        raise PoisonEntry(eid, f"no {FIELD!r} field")
    return decode_line(eid, line)


def scan_values(event: ScanEvent) -> dict[str, str]:
    """The named values of an event, in :data:`LAYOUT` order."""

    def f(value: float | None) -> str:
        return "" if value is None else repr(value)

    return {
        "version": str(event.version or (1 if event.kind == "out" else 0)),
        "checkin_id": event.checkin_id,
        "person_id": str(event.person_id),
        "venue_id": str(event.venue_id),
        "at": str(event.at_ms),
        "end_at": str(event.end_ms or event.at_ms + event.dwell_s * 1000),
        "dwell_s": str(event.dwell_s),
        "district": event.district,
        "street": event.street,
        "community": event.community,
        "status": event.status,
        "verdict": event.verdict,
        "reason": event.reason,
        "source": event.source,
        "owner_id": str(event.owner_id or event.person_id),
        "watchlisted": "1" if event.watchlisted else "0",
        "lat": f(event.lat),
        "lon": f(event.lon),
        "accuracy_m": f(event.accuracy_m),
        "venue_lat": f(event.venue_lat),
        "venue_lon": f(event.venue_lon),
        "received_at": str(event.received_ms),
        "ended_by": event.ended_by or ("checkout" if event.kind == "out" else ""),
    }


def pack(values: Mapping[str, str]) -> dict[str, str]:
    """Field map for XADD from named values (missing names are empty); no validation, so tests
    can build bad entries too."""
    return {FIELD: "\t".join(values.get(name, "") for name in LAYOUT)}


def encode_scan(event: ScanEvent) -> dict[str, str]:
    """Field map for XADD (tests, backfill and tools; ingest writes the same from Lua)."""
    return pack(scan_values(event))
