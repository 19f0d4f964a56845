"""Stream entries -> ``scans`` columns -> one ClickHouse Native block.

The sink turns a read of raw entries (``[entry_id, [field, value, ...]]`` as the Redis
reply gives them) into column lists, then encodes them as a Native block whose column
types are the table's own (DateTime64 as milliseconds, enums as their codes), so the
engine does no text parsing at all.

Two ways to the same columns:

* the column path (:func:`columns_fast`): when every entry of a read has the same field
  layout and every value is in the plain form the check-in script writes (ASCII, digits,
  known enum words), the reply is transposed and converted column by column with
  C-level builtins. It accepts only what :func:`checkin.events.decode_scan` accepts and
  gives the same values; anything else returns ``None``;
* the entry path (:func:`columns_from_events`): :func:`decode_scan` per entry, used for
  reads the column path declines. It isolates poison entries (returned with their
  reason) and checks the few limits decode_scan leaves to the store (owner id range,
  timestamps inside DateTime64, finite locations), so a batch never fails in the engine
  because of one entry.
"""

from __future__ import annotations

import hashlib
import math
import operator
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from checkin.events import PoisonEntry, ScanEvent, decode_scan
from tracing.schema import STAY_COLUMNS

COLUMN_NAMES = [name for name, _ in STAY_COLUMNS]
_TYPES = dict(STAY_COLUMNS)

STATUS_CODE = {b"green": 1, b"yellow": 2, b"red": 3, b"": 1}
VERDICT_CODE = {b"pass": 1, b"restricted": 2, b"deny": 3, b"": 1}
SOURCE_CODE = {b"phone": 1, b"batch": 2, b"sentinel": 3, b"": 1}
KIND_VERSION = {b"in": 0, b"out": 1}

MAX_MS = 9_000_000_000_000
"""Latest instant accepted (year 2255, inside DateTime64(3)'s range)."""
MAX_U64 = 2**64
MAX_U32 = 2**32
MAX_ABS_COORD = 1000.0

_EVEN = operator.itemgetter(slice(0, None, 2))
_ODD = operator.itemgetter(slice(1, None, 2))
_LEN1 = [bytes([i]) for i in range(128)]
_FLOAT_CHARS = b"0123456789.-"

assert array("I").itemsize == 4 and array("Q").itemsize == 8 and array("q").itemsize == 8


@dataclass
class Columns:
    """Rows of ``scans`` as parallel lists (strings as bytes), plus each row's shard."""

    checkin_id: list[bytes] = field(default_factory=list)
    person_id: list[int] = field(default_factory=list)
    venue_id: list[int] = field(default_factory=list)
    at: list[int] = field(default_factory=list)
    end_at: list[int] = field(default_factory=list)
    version: list[int] = field(default_factory=list)
    district: list[bytes] = field(default_factory=list)
    street: list[bytes] = field(default_factory=list)
    community: list[bytes] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    verdict: list[int] = field(default_factory=list)
    reason: list[bytes] = field(default_factory=list)
    source: list[int] = field(default_factory=list)
    owner_id: list[int] = field(default_factory=list)
    lat: list[float] = field(default_factory=list)
    lon: list[float] = field(default_factory=list)
    stream_id: list[bytes] = field(default_factory=list)
    received_at: list[int] = field(default_factory=list)
    shard: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.stream_id)

    def lists(self) -> list[list[Any]]:
        return [getattr(self, name) for name in COLUMN_NAMES]

    def extend(self, other: Columns) -> None:
        for name in (*COLUMN_NAMES, "shard"):
            getattr(self, name).extend(getattr(other, name))

    def slice(self, start: int, stop: int) -> Columns:
        return Columns(**{name: getattr(self, name)[start:stop] for name in (*COLUMN_NAMES, "shard")})

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


# --- the column path --------------------------------------------------------------------


def _digits(col: Sequence[bytes]) -> bool:
    """Every value non-empty and only ASCII digits."""
    return all(col) and b"".join(col).isdigit()


def _digits_or_empty(col: Sequence[bytes]) -> bool:
    joined = b"".join(col)
    return not joined or joined.isdigit()


def _parses_as_floats(col: Sequence[bytes]) -> bool:
    """Every non-empty value is a plain decimal that float() accepts (decode_scan reads them so)."""
    if b"".join(col).translate(None, _FLOAT_CHARS):
        return False
    try:
        for _ in map(float, filter(None, col)):
            pass
    except ValueError:
        return False
    return True


def _floats(col: Sequence[bytes], limit: float = math.inf) -> list[float] | None:
    """Plain decimals or empty (-> 0.0), as decode_scan reads them; None when another form appears."""
    joined = b"".join(col)
    if joined.translate(None, _FLOAT_CHARS):
        return None
    try:
        values = [float(v) if v else 0.0 for v in col]
    except ValueError:
        return None
    if values and max(map(abs, values)) > limit:
        return None
    return values


def columns_fast(shard: int, entries: Sequence[Sequence[Any]]) -> Columns | None:
    """Columns for one shard's read, or None when the entry path must decide."""
    if not entries:
        return Columns()
    ids, flats = zip(*entries, strict=True)
    if any(f is None for f in flats):
        return None
    layout = _EVEN(flats[0])
    if len(set(layout)) != len(layout) or not all(map(layout.__eq__, map(_EVEN, flats))):
        return None
    pos = {name: i for i, name in enumerate(layout)}
    if any(
        name not in pos
        for name in (b"t", b"cid", b"at", b"end", b"vid", b"pid", b"own", b"rcv", b"st", b"vd", b"src")
    ):
        return None
    cols = list(zip(*map(_ODD, flats), strict=True))
    n = len(ids)
    empty: tuple[bytes, ...] = (b"",) * n

    def col(name: bytes) -> Sequence[bytes]:
        at = pos.get(name)
        return empty if at is None else cols[at]

    try:
        version = list(map(KIND_VERSION.__getitem__, col(b"t")))
        status = list(map(STATUS_CODE.__getitem__, col(b"st")))
        verdict = list(map(VERDICT_CODE.__getitem__, col(b"vd")))
        source = list(map(SOURCE_CODE.__getitem__, col(b"src")))
    except KeyError:
        return None
    cid = col(b"cid")
    strings = [cid, col(b"d"), col(b"s"), col(b"c"), col(b"rs")]
    if not all(cid) or not all(b"".join(s).isascii() for s in strings):
        return None
    numeric = [col(b"at"), col(b"end"), col(b"vid"), col(b"pid"), col(b"own"), col(b"rcv")]
    if not all(map(_digits, numeric)) or not _digits_or_empty(col(b"dw")):
        return None
    at, end, vid, pid, own, rcv = (list(map(int, c)) for c in numeric)
    if min(at) <= 0 or max(end) >= MAX_MS or max(rcv) >= MAX_MS:
        return None
    if not all(map(operator.gt, end, at)):
        return None
    if max(vid) >= MAX_U32 or max(pid) >= MAX_U64 or max(own) >= MAX_U64:
        return None
    lat = _floats(col(b"lat"), MAX_ABS_COORD)
    lon = _floats(col(b"lon"), MAX_ABS_COORD)
    if (
        lat is None
        or lon is None
        or not all(_parses_as_floats(col(name)) for name in (b"acc", b"vlat", b"vlon"))
    ):
        return None
    return Columns(
        checkin_id=list(cid),
        person_id=pid,
        venue_id=vid,
        at=at,
        end_at=end,
        version=version,
        district=list(strings[1]),
        street=list(strings[2]),
        community=list(strings[3]),
        status=status,
        verdict=verdict,
        reason=list(strings[4]),
        source=source,
        owner_id=own,
        lat=lat,
        lon=lon,
        stream_id=list(ids),
        received_at=rcv,
        shard=[shard] * n,
    )


# --- the entry path -----------------------------------------------------------------------


def check_limits(ev: ScanEvent) -> None:
    """Limits of the store that decode_scan does not check; raises PoisonEntry."""
    if not 0 <= ev.owner_id < MAX_U64:
        raise PoisonEntry(ev.entry_id, "owner id out of range")
    if ev.end_ms >= MAX_MS or not 0 <= ev.received_ms < MAX_MS:
        raise PoisonEntry(ev.entry_id, "timestamp out of range")
    for value in (ev.lat, ev.lon):
        if value is not None and not (math.isfinite(value) and abs(value) <= MAX_ABS_COORD):
            raise PoisonEntry(ev.entry_id, "location out of range")


def decode_entry(entry_id: bytes, flat: Sequence[bytes] | None) -> ScanEvent:
    """One raw entry -> ScanEvent within the store's limits; raises PoisonEntry."""
    eid = entry_id.decode("ascii", "replace")
    if flat is None:
        raise PoisonEntry(eid, "entry deleted")
    if len(flat) % 2:
        raise PoisonEntry(eid, "odd field list")
    it = iter(flat)
    event = decode_scan(entry_id, dict(zip(it, it, strict=True)))
    check_limits(event)
    return event


def columns_from_events(shard: int, events: Iterable[ScanEvent]) -> Columns:
    out = Columns()
    for ev in events:
        out.checkin_id.append(ev.checkin_id.encode())
        out.person_id.append(ev.person_id)
        out.venue_id.append(ev.venue_id)
        out.at.append(ev.at_ms)
        out.end_at.append(ev.end_ms)
        out.version.append(1 if ev.kind == "out" else 0)
        out.district.append(ev.district.encode())
        out.street.append(ev.street.encode())
        out.community.append(ev.community.encode())
        out.status.append(STATUS_CODE[ev.status.encode()])
        out.verdict.append(VERDICT_CODE[ev.verdict.encode()])
        out.reason.append(ev.reason.encode())
        out.source.append(SOURCE_CODE[ev.source.encode()])
        out.owner_id.append(ev.owner_id)
        out.lat.append(ev.lat or 0.0)
        out.lon.append(ev.lon or 0.0)
        out.stream_id.append(ev.entry_id.encode())
        out.received_at.append(ev.received_ms)
        out.shard.append(shard)
    return out


def columns_for_read(
    shard: int, entries: Sequence[Sequence[Any]]
) -> tuple[Columns, list[tuple[bytes, Sequence[bytes] | None, str]]]:
    """Columns of the decodable entries, and (entry id, fields, reason) of the poison ones."""
    fast = columns_fast(shard, entries)
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
    return columns_from_events(shard, good), poison


# --- Native encoding ---------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _strings(values: Sequence[bytes]) -> bytes:
    lengths = list(map(len, values))
    if not lengths or max(lengths) < 128:
        return b"".join(chain.from_iterable(zip(map(_LEN1.__getitem__, lengths), values, strict=True)))
    return b"".join(_varint(len(v)) + v for v in values)


def _payload(type_name: str, values: list[Any]) -> bytes:
    if type_name == "String" or type_name.startswith("LowCardinality(String"):
        return _strings(values)
    if type_name.startswith("DateTime64"):
        return array("q", values).tobytes()
    if type_name == "UInt64":
        return array("Q", values).tobytes()
    if type_name == "UInt32":
        return array("I", values).tobytes()
    if type_name in ("UInt8",) or type_name.startswith("Enum8"):
        return bytes(values)
    if type_name == "Float32":
        return array("f", values).tobytes()
    raise ValueError(f"no Native encoder for {type_name}")


def _wire_type(type_name: str) -> str:
    """LowCardinality columns travel as plain String (the engine converts on insert)."""
    return "String" if type_name.startswith("LowCardinality(String") else type_name


def native_block(columns: Columns) -> bytes:
    rows = len(columns)
    parts = [_varint(len(COLUMN_NAMES)), _varint(rows)]
    for name, values in zip(COLUMN_NAMES, columns.lists(), strict=True):
        type_name = _wire_type(_TYPES[name])
        parts += [_varint(len(name)), name.encode(), _varint(len(type_name)), type_name.encode()]
        parts.append(_payload(_TYPES[name], values))
    return b"".join(parts)
