"""Stream entries -> rows of ``scans``, as the text lines ingest wrote.

A scan entry's one value is a tab-separated line whose names (:data:`checkin.platform.scan_stream.LAYOUT`)
are the table's column names, so a batch reaches ClickHouse as TabSeparatedWithNames: the
stream id in front of each line, one header line, nothing converted in Python (the engine
skips the names that are not columns). What the sink must still do is make sure every
line it passes is one :func:`checkin.platform.scan_stream.decode_line` accepts, with the values the
engine will read: a batch is rejected whole when one row cannot be parsed.

Two ways to the same rows:

* the line path (:func:`rows_fast`): when every entry of a read is a plain ``scan``
  line (:data:`PLAIN_LINE`: printable ASCII, the right number of values, digits where
  numbers go, known enum words, ids and instants inside their column types), one
  compiled pattern per line and no Python object per value. It accepts only lines
  decode_line accepts, and only spellings the engine reads as decode_line does; anything
  else returns ``None``;
* the entry path (:func:`rows_from_events`): :func:`checkin.platform.scan_stream.decode_scan` per entry,
  used for reads the line path declines (it also reads entries of the earlier
  field-per-value format, still in a stream after an upgrade). It isolates poison entries
  (returned with their reason), checks the few limits decode_line leaves to the store
  (owner id range, instants inside DateTime64, finite locations) and writes each good
  event back as a normalised line.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import starmap
from typing import Any

from checkin.platform.scan_stream import (
    FIELD,
    FIELD_BYTES,
    LAYOUT,
    SEPARATOR,
    PoisonEntry,
    ScanEvent,
    decode_scan,
    encode_scan,
)
from tracing.storage.schema import STAY_COLUMNS

COLUMN_NAMES = [name for name, _ in STAY_COLUMNS]
INSERT_COLUMNS = ["stream_id", *(name for name in LAYOUT if name in COLUMN_NAMES)]
"""The ``scans`` columns a batch fills (the others take their defaults)."""
HEADER = SEPARATOR.join(name.encode() for name in ("stream_id", *LAYOUT)) + b"\n"
INSERT_FORMAT = "TabSeparatedWithNames"
INSERT_SETTINGS: dict[str, Any] = {
    "input_format_with_names_use_header": 1,
    "input_format_skip_unknown_fields": 1,
    "input_format_tsv_empty_as_default": 1,
    # Rows of one stay are collapsed by FINAL and background merges; collapsing them at insert costs 3x.
    "optimize_on_insert": 0,
}

MAX_MS = 9_000_000_000_000
"""Latest instant accepted (year 2255, inside DateTime64(3)'s range)."""
MAX_U64 = 2**64
MAX_ABS_COORD = 1000.0


@dataclass
class Rows:
    """Rows of ``scans`` as scan lines, with each row's stream entry id and shard."""

    stream_id: list[bytes] = field(default_factory=list)
    shard: list[int] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.stream_id)

    def extend(self, other: Rows) -> None:
        self.stream_id.extend(other.stream_id)
        self.shard.extend(other.shard)
        self.lines.extend(other.lines)

    def slice(self, start: int, stop: int) -> Rows:
        return Rows(self.stream_id[start:stop], self.shard[start:stop], self.lines[start:stop])

    def ids_by_shard(self) -> dict[int, list[bytes]]:
        out: dict[int, list[bytes]] = {}
        for shard, sid in zip(self.shard, self.stream_id, strict=True):
            out.setdefault(shard, []).append(sid)
        return out

    def dedup_token(self) -> str:
        """Same rows (same shards and entry ids, same order) -> same token."""
        digest = hashlib.blake2b(digest_size=16)
        digest.update(array("H", self.shard).tobytes())
        digest.update(b",".join(self.stream_id))
        return "sink-" + digest.hexdigest()

    def body(self) -> bytes:
        """The batch as TabSeparatedWithNames: header, then ``stream_id<TAB>line`` per row."""
        rows = b"\n".join(map(SEPARATOR.join, zip(self.stream_id, self.lines, strict=True)))
        return HEADER + rows + b"\n" if rows else HEADER


# --- the line path ---------------------------------------------------------------------------

_TEXT = rb"[ -\[\]-~]"
"""Printable ASCII but the backslash (TSV's escape)."""
_ID = rb"\d{1,19}"
"""Below 10**19 < 2**64."""
_MS = rb"([1-8]\d{12})"
"""13 digits (2001 to 2255): inside DateTime64(3), and compared as text they compare as numbers."""
_LOCATION = rb"(?:-?(?:\d{1,3}(?:\.\d*)?|\.\d+|1000(?:\.0*)?))?"
_DECIMAL = rb"(?:-?(?:\d+(?:\.\d*)?|\.\d+))?"
_PLAIN: dict[str, bytes] = {
    "version": rb"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)",
    "checkin_id": _TEXT + b"+",
    "person_id": _ID,
    "venue_id": rb"\d{1,9}",
    "at": _MS,
    "end_at": _MS,
    "dwell_s": rb"\d*",
    "district": _TEXT + b"*",
    "street": _TEXT + b"*",
    "community": _TEXT + b"*",
    "status": rb"(?:green|yellow|red)",
    "verdict": rb"(?:pass|restricted|deny)",
    "reason": _TEXT + b"*",
    "source": rb"(?:phone|batch|sentinel)",
    "owner_id": rb"[1-9]\d{0,18}",
    "watchlisted": _TEXT + b"*",
    "lat": _LOCATION,
    "lon": _LOCATION,
    "accuracy_m": _DECIMAL,
    "venue_lat": _DECIMAL,
    "venue_lon": _DECIMAL,
    "received_at": rb"(?:[1-8]\d{12}|\d{1,12})",
    "ended_by": rb"(?:checkout|next_stay)?",
}
PLAIN_LINE = re.compile(SEPARATOR.join(_PLAIN[name] for name in LAYOUT))
"""A scan line in the plain form the check-in scripts write; groups 1 and 2 are at and end_at."""
_AT_END = operator.methodcaller("group", 1, 2)


def rows_fast(shard: int, entries: Sequence[Sequence[Any]]) -> Rows | None:
    """Rows for one shard's read, or None when the entry path must decide."""
    if not entries:
        return Rows()
    # (no zip(*entries): unpacking tens of thousands of arguments costs more than the checks)
    ids: list[bytes] = [e[0] for e in entries]
    flats = [e[1] for e in entries]
    if not all(f is not None and len(f) == 2 and f[0] == FIELD_BYTES for f in flats):
        return None
    lines: list[bytes] = [f[1] for f in flats]
    matches = list(map(PLAIN_LINE.fullmatch, lines))
    if not all(matches):
        return None
    if not all(starmap(operator.lt, map(_AT_END, matches))):  # type: ignore[arg-type]
        return None  # a stay that ends before it starts
    return Rows(ids, [shard] * len(ids), lines)


# --- the entry path ----------------------------------------------------------------------------


def check_limits(ev: ScanEvent) -> None:
    """Limits of the store that decode_line does not check; raises PoisonEntry."""
    if not 0 <= ev.owner_id < MAX_U64:
        raise PoisonEntry(ev.entry_id, "owner id out of range")
    if ev.end_ms >= MAX_MS or not 0 <= ev.received_ms < MAX_MS:
        raise PoisonEntry(ev.entry_id, "timestamp out of range")
    for value in (ev.lat, ev.lon):
        if value is not None and not (math.isfinite(value) and abs(value) <= MAX_ABS_COORD):
            raise PoisonEntry(ev.entry_id, "location out of range")
    for value in (ev.accuracy_m, ev.venue_lat, ev.venue_lon):
        if value is not None and not math.isfinite(value):
            raise PoisonEntry(ev.entry_id, "location out of range")


def decode_entry(entry_id: bytes, flat: Sequence[bytes] | None) -> ScanEvent:
    """One raw entry -> ScanEvent within the store's limits; raises PoisonEntry."""
    eid = entry_id.decode("ascii", "replace")
    if flat is None:
        raise PoisonEntry(eid, "entry deleted")
    if len(flat) % 2:
        raise PoisonEntry(eid, "odd field list")
    it = iter(flat)
    event = decode_scan(eid, dict(zip(it, it, strict=True)))
    check_limits(event)
    return event


def rows_from_events(shard: int, events: Iterable[ScanEvent]) -> Rows:
    """Rows of decoded events, each written back as a normalised scan line."""
    out = Rows()
    for ev in events:
        out.stream_id.append(ev.entry_id.encode())
        out.shard.append(shard)
        out.lines.append(encode_scan(ev)[FIELD].encode())
    return out


def rows_for_read(
    shard: int, entries: Sequence[Sequence[Any]]
) -> tuple[Rows, list[tuple[bytes, Sequence[bytes] | None, str]]]:
    """Rows of the decodable entries, and (entry id, fields, reason) of the poison ones."""
    fast = rows_fast(shard, entries)
    if fast is not None:
        return fast, []
    good: list[ScanEvent] = []
    poison: list[tuple[bytes, Sequence[bytes] | None, str]] = []
    for entry in entries:
        entry_id, flat = entry[0], entry[1]
        try:
            good.append(decode_entry(entry_id, flat))
        except PoisonEntry as exc:
            poison.append((entry_id, flat, exc.reason))
    return rows_from_events(shard, good), poison
