"""From a request's scans to script calls: the items, the budgets they are counted against, the
calls' keys and ARGV (named slots, built here only), the check-in ids, and the script's reply per
item. Which items share a call is :func:`call_group`'s answer."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec
from msgspec.structs import astuple

from checkin.checkins.wire import Location
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, NotFound, Unprocessable
from checkin.platform.instants import local_day, to_ms
from checkin.protection import WINDOW_MS

RECORD_TTL_S = 13 * 3600
"""Check-in records live past the longest stay, so a check-out and a repeat scan find them."""
MAX_STAY_MS = 12 * 3600 * 1000
REPEAT_WINDOW_MS = 60_000
"""A scan by the same owner at the same venue within this window of any of their recent scans there
is that check-in."""
REMEMBERED_SCANS = 32
"""Recent scans kept per owner and venue for the repeat rule (a day's visits to one venue)."""
DAY_ENTRIES_TTL_S = 9 * 86_400
"""A day's entries per venue and hour are kept nine days: the operator page sets today beside the same
weekday last week."""
CHECKIN_ID_RE = re.compile(r"^[0-9a-f]{23}$")


def scan_instant(
    ctx: Context, scanned_at: dt.datetime | None, now: int, past_hours: int | None = None
) -> int:
    """The scan instant: now, or an offline scan time inside the accepted window (else 422). Phones
    may send scans ``CHECKIN_CHECKIN_WINDOW_PAST_HOURS`` old; door devices ``past_hours``
    (``CHECKIN_DEVICE_BACKLOG_HOURS``)."""
    if scanned_at is None:
        return now
    at = to_ms(scanned_at)
    s = ctx.settings
    hours = s.checkin_window_past_hours if past_hours is None else past_hours
    if at < now - hours * 3_600_000:
        raise Unprocessable(
            f"scanned_at is more than {hours} h in the past; the scan is too old", reason="too_old"
        )
    if at > now + s.checkin_window_future_s * 1000:
        raise Unprocessable(
            f"scanned_at is more than {s.checkin_window_future_s} s in the future", reason="in_future"
        )
    return at


class _RandomPool:
    """Random bytes drawn from the OS 4 KiB at a time (one system call per ~400 check-in ids);
    emptied in a forked child so two workers never hand out the same bytes."""

    def __init__(self) -> None:
        self.pool = b""
        self.pos = 0
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.pool, self.pos = b"", 0

    def hex(self, n: int) -> str:
        if self.pos + n > len(self.pool):
            self.pool, self.pos = os.urandom(4096), 0
        start = self.pos
        self.pos += n
        return self.pool[start : self.pos].hex()


_random = _RandomPool()


def new_checkin_id(shard: int) -> str:
    return f"{shard:03x}{_random.hex(10)}"


def shard_of_checkin(ctx: Context, checkin_id: str) -> int:
    if not CHECKIN_ID_RE.match(checkin_id):
        raise NotFound(f"no check-in {checkin_id[:40]!r}")
    shard = int(checkin_id[:3], 16)
    if shard >= ctx.settings.stream_shards:
        raise NotFound(f"no check-in {checkin_id}")
    return shard


@dataclass
class Item:
    """One check-in to run: owner first in ``persons``."""

    index: int
    venue_id: int
    code_version: str
    at_ms: int
    persons: list[int]
    source: str
    client_id: str | None = None
    lat: str = ""
    lon: str = ""
    acc: str = ""
    token_version: str = ""
    """The owner's credential's token version; "" = not checked (an id card at a door)."""
    code_kind: str = ""
    """'s' a printed poster's code, 'r' a screen's rotating code, '' none (a door device)."""


@dataclass(frozen=True)
class Budget:
    """Who a call's scans are counted against: the caller (a resident or a door device) and, for
    phones, their client address; limits are scans a minute."""

    kind: str
    """``resident`` or ``device``."""
    who: str
    limit: int
    address: str = ""
    address_limit: int = 0


@dataclass
class Call:
    group: int
    """:func:`call_group` of its items' venues."""
    keys: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)


def call_group(ctx: Context, venue_id: int) -> int:
    """Items of one request with the same group run in one script call: on a single node every item
    (one call, so a person's kept stays are read and written once and a queue sent newest first
    needs no end rows), in cluster mode the items of one stream shard (a call's keys share a slot)."""
    return ctx.keys.pstate_tag(ctx.keys.shard_of(venue_id))


class CallSlots(msgspec.Struct, array_like=True, frozen=True):
    """The script's ARGV before the items, in this order (checkin.lua's header says what each is).
    Built by name, sent as the tuple of its fields (``msgspec.structs.astuple``: a dict of the names
    and a lookup per slot cost a check-in about 25,000 more instructions)."""

    now: int
    caller_limit: int
    address_limit: int
    window_ms: int
    unknown_status: str
    flags: str
    record_ttl_s: int
    item_count: int
    repeat_window_ms: int
    day_entries_ttl_s: int
    pstate_prefix: str
    remembered_scans: int
    stays_kept_ms: int
    stays_prefix: str


class ItemSlots(msgspec.Struct, array_like=True, frozen=True):
    """Each item's ARGV, in this order, followed by its person ids (owner first)."""

    venue_id: int
    code_version: str
    code_kind: str
    at_ms: int
    checkin_id: str
    client_id: str
    source: str
    lat: str
    lon: str
    accuracy: str
    token_version: str
    person_count: int


CALL_SLOTS = CallSlots.__struct_fields__
ITEM_SLOTS = ItemSlots.__struct_fields__
ITEM_COUNT_SLOT = CALL_SLOTS.index("item_count")


def start_call(ctx: Context, shard: int, now: int, flags: str, budget: Budget | None = None) -> Call:
    """A script call for the items of ``call_group`` ``shard``'s group (``shard``: the shard of one of
    them); its scans are counted against ``budget`` (None: not counted)."""
    keys = ctx.keys
    s = ctx.settings
    window = now // WINDOW_MS
    ckey = akey = keys.stream(shard)
    climit = alimit = 0
    if budget is not None:
        ckey, climit = keys.rate_tagged(shard, budget.kind, budget.who, window), budget.limit
        if budget.address_limit:
            akey, alimit = keys.rate_tagged(shard, "address", budget.address, window), budget.address_limit
    call = Call(keys.pstate_tag(shard))
    call.keys = [keys.stream(shard), ckey, akey]
    slots = CallSlots(
        now=now,
        caller_limit=climit,
        address_limit=alimit,
        window_ms=WINDOW_MS + 1000,
        unknown_status=s.unknown_status,
        flags=flags,
        record_ttl_s=RECORD_TTL_S,
        item_count=0,
        repeat_window_ms=REPEAT_WINDOW_MS,
        day_entries_ttl_s=DAY_ENTRIES_TTL_S,
        pstate_prefix=keys.pstate_prefix(shard),
        remembered_scans=REMEMBERED_SCANS,
        stays_kept_ms=stays_kept_ms(ctx),
        stays_prefix=keys.stays_prefix(shard),
    )
    call.args = list(astuple(slots))
    return call


def stays_kept_ms(ctx: Context) -> int:
    """How long a person's stays are kept for the one-place-at-a-time rule: a scan may arrive this
    late (the longer of the phones' and the door devices' backdating windows) and still find the
    stay before it, which started at most the longest stay earlier."""
    s = ctx.settings
    backdating_h = max(s.checkin_window_past_hours, s.device_backlog_hours)
    return backdating_h * 3_600_000 + MAX_STAY_MS + s.checkin_window_future_s * 1000


def add_item(ctx: Context, call: Call, item: Item) -> None:
    keys = ctx.keys
    shard = keys.shard_of(item.venue_id)
    owner = item.persons[0]
    cid = new_checkin_id(shard)
    record = keys.checkin_record(shard, cid)
    call.keys += [
        keys.venue(item.venue_id),
        keys.venue_entries(shard, local_day(item.at_ms, ctx.settings.tz)),
        record,
        keys.dedupe(shard, owner),
        keys.stream(shard),
    ]
    call.keys += [keys.pstate(pid, shard) for pid in item.persons]
    slots = ItemSlots(
        venue_id=item.venue_id,
        code_version=item.code_version,
        code_kind=item.code_kind,
        at_ms=item.at_ms,
        checkin_id=cid,
        client_id=item.client_id or "",
        source=item.source,
        lat=item.lat,
        lon=item.lon,
        accuracy=item.acc,
        token_version=item.token_version,
        person_count=len(item.persons),
    )
    call.args += astuple(slots)
    call.args += item.persons
    call.args[ITEM_COUNT_SLOT] += 1
    call.items.append(item)


class ItemReply(NamedTuple):
    """The script's answer to one item: ``code`` (``ok``, ``dup`` or a refusal) and its payload."""

    code: str
    payload: bytes


def parse_reply(reply: list[Any]) -> list[ItemReply]:
    """The check-in script's reply, ``{'items', code, payload, ...}``, per item."""
    return [ItemReply(reply[i].decode(), reply[i + 1]) for i in range(1, len(reply), 2)]


def location_args(loc: Location | None) -> tuple[str, str, str]:
    if loc is None:
        return "", "", ""
    return repr(loc.lat), repr(loc.lon), "" if loc.accuracy_m is None else repr(loc.accuracy_m)


def persons_of(owner: int, companions: Sequence[int]) -> list[int]:
    if not companions:
        return [owner]
    if owner in companions:
        raise Unprocessable(
            "companions: the resident is checked in already; list only family members",
            reason="self_companion",
        )
    if len(set(companions)) != len(companions):
        raise BadInput("companions: a person is listed twice")
    return [owner, *companions]
