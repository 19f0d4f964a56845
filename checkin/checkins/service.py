"""Check-ins: the hot path. One Redis call per check-in (``checkin.lua``).

The venue code is verified in process (HMAC, :mod:`venues.codes`); the script then
checks the code version and venue state, dedupes, reads the hot state of every person,
decides the verdict (docs/ARCHITECTURE.md "Verdict at the door"), XADDs one check-in entry per
person to the venue's stream shard, counts the day's entries and keeps a check-in record
for the check-out and for repeat scans. A batch (offline queue, sentinel upload) runs in one
script call on a single node, and in one call per shard, pipelined, in cluster mode.

Check-in ids are 23 hex characters: the shard (3) and 80 random bits, so a check-out
finds the record's shard from the id alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any

import msgspec
from redis.exceptions import NoScriptError, RedisError

from checkin.checkins.admission import LATENCY
from checkin.platform.context import Context
from checkin.platform.errors import (
    BadInput,
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)
from checkin.platform.hot_redis import hot_of
from checkin.platform.instants import format_ms, local_day, to_ms
from checkin.platform.openapi_doc import VENUE_CODE_FORMAT
from checkin.protection import REJECTIONS, WINDOW_MS, window_now
from venues import codes, registry

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
MAX_BATCH = 500
CHECKIN_ID_RE = re.compile(r"^[0-9a-f]{23}$")

ACCEPTED = "checkin_accepted_total"
SCANS = "checkin_scan_entries_total"
DEDUPES = "checkin_dedupes_total"
CHECKOUTS = "checkin_checkouts_total"

ClientId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}\Z", examples=["door-2-tablet"])]
PersonId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
Instant = Annotated[dt.datetime, msgspec.Meta(tz=True)]


class Location(msgspec.Struct, forbid_unknown_fields=True):
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    accuracy_m: Annotated[float, msgspec.Meta(ge=0, le=100_000)] | None = None


class CheckinIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[
        str,
        msgspec.Meta(
            max_length=64,
            examples=["AAAEAAABAT9rcFucpeb3cm_DZw"],
            description="A venue code this service signed (base64url, 26 or 31 characters)",
            extra_json_schema={"format": VENUE_CODE_FORMAT},
        ),
    ]
    companions: Annotated[
        list[PersonId],
        msgspec.Meta(max_length=50, examples=[[100231]], extra_json_schema={"uniqueItems": True}),
    ] = []
    scanned_at: Annotated[Instant | None, msgspec.Meta(examples=["2026-03-15T09:12:40+08:00"])] = None
    client_id: ClientId | None = None
    location: Location | None = None
    code_proof: (
        Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[0-9]{1,3}\.[0-9]{1,15}\.[A-Za-z0-9_-]{16}\Z")]
        | None
    ) = None
    """The phone page's proof that this screen code was current when it opened it: an expired screen
    code is then taken for ``CHECKIN_ROTATING_REGISTER_S`` and the scan recorded at that instant."""

    def __post_init__(self) -> None:
        # the schema's uniqueItems, checked while decoding: a batch refuses the item's duplicate whole
        if len(self.companions) > 1 and len(set(self.companions)) != len(self.companions):
            raise ValueError("companions: a person is listed twice")


class BatchIn(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[CheckinIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class VenueOut(msgspec.Struct):
    venue_id: Annotated[int, msgspec.Meta(examples=[1024])]
    name: Annotated[str, msgspec.Meta(examples=["Wangfujing Bookstore"])]


class PersonOut(msgspec.Struct, omit_defaults=True):
    person_id: Annotated[int, msgspec.Meta(examples=[100230])]
    name_masked: Annotated[str, msgspec.Meta(examples=["张*丰"])]
    status: Annotated[str, msgspec.Meta(examples=["green"])]
    last_negative_test_at: Annotated[str | None, msgspec.Meta(examples=["2026-03-14T08:30:00.000Z"])]
    verdict: Annotated[str, msgspec.Meta(examples=["pass"])]
    reason: Annotated[str | None, msgspec.Meta(examples=["yellow_code"])] = None
    stay_at: Annotated[str | None, msgspec.Meta(examples=["2026-03-15T09:12:44.218Z"])] = None
    """When this person's stay began (a person added by a repeat scan starts at that scan)."""
    stay_ends_at: Annotated[str | None, msgspec.Meta(examples=["2026-03-15T10:12:44.218Z"])] = None
    """When this person's stay ends, as known now: its own end, or the start of their next stay."""
    ended_by: Annotated[str | None, msgspec.Meta(examples=["next_stay"])] = None
    """``checkout`` or ``next_stay`` when one of them set the end (absent: the venue's dwell)."""


class CheckinOut(msgspec.Struct, omit_defaults=True):
    checkin_id: Annotated[str, msgspec.Meta(examples=["0023fa91c04be7d5512ae0f"])]
    at: Annotated[str, msgspec.Meta(examples=["2026-03-15T09:12:44.218Z"])]
    ends_at: Annotated[str, msgspec.Meta(examples=["2026-03-15T11:12:44.218Z"])]
    venue: VenueOut
    people: list[PersonOut]
    duplicate: bool
    degraded: bool = False
    checked_out_at: str | None = None
    evaluated_at: str | None = None
    """Set when the people's colours and verdicts were judged again at this instant (a repeat scan, or
    ``GET /v1/checkins/{checkin_id}``), not at the scan."""


class ItemResult(msgspec.Struct, omit_defaults=True):
    index: int
    status: int
    checkin_id: str | None = None
    at: str | None = None
    duplicate: bool | None = None
    error: str | None = None
    error_reason: str | None = None
    """Why the item was refused, as the problem's ``reason`` of a single check-in (``rate_limited``…)."""


class BatchOut(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: int
    results: list[ItemResult]


class CheckoutOut(msgspec.Struct):
    checkin_id: str
    at: str
    ended_at: str
    people: list[int]


class Record(msgspec.Struct):
    """The check-in record the script keeps (JSON); only what responses need is decoded."""

    cid: str
    vid: str
    at: str
    end: str
    vn: str
    own: str
    p: list[list[str]]
    out: str = ""


record_decoder = msgspec.json.Decoder(Record)


def setup_metrics(metrics: Any) -> None:
    metrics.counter(ACCEPTED, "Check-ins accepted (new), by source (phone, batch, sentinel)")
    metrics.counter(SCANS, "Stream entries written for accepted check-ins (one per person), by source")
    metrics.counter(DEDUPES, "Repeat scans answered with the earlier check-in, by source")
    metrics.counter(CHECKOUTS, "Check-outs, by outcome")
    metrics.histogram(LATENCY, "Time to answer a check-in request, by route")


# --- scripts ----------------------------------------------------------------


def _lua(name: str) -> str:
    return (resources.files("checkin.checkins") / name).read_text(encoding="utf-8")


VERDICT_LUA = _lua("verdict.lua")
STAYS_LUA = _lua("stays.lua")
CHECKIN_LUA = VERDICT_LUA + STAYS_LUA + _lua("checkin.lua")
REEVALUATE_LUA = VERDICT_LUA + STAYS_LUA + _lua("reevaluate.lua")
CHECKOUT_LUA = STAYS_LUA + _lua("checkout.lua")


class Scripts:
    """The check-in and check-out scripts and how to run them: over :class:`HotRedis` on a single
    node, over the redis-py cluster client (slot routing) in cluster mode."""

    def __init__(self, ctx: Context) -> None:
        self.sources = {
            name: src.encode()
            for name, src in (
                ("checkin", CHECKIN_LUA),
                ("checkout", CHECKOUT_LUA),
                ("reevaluate", REEVALUATE_LUA),
            )
        }
        self.shas = {name: hashlib.sha1(src).hexdigest().encode() for name, src in self.sources.items()}  # noqa: S324
        self.hot = hot_of(ctx)
        self.redis = ctx.redis
        self.cluster_scripts = {name: ctx.redis.register_script(src) for name, src in self.sources.items()}

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            if self.hot is not None:
                return await self.hot.evalsha(self.sources[name], self.shas[name], keys, args)
            return await self.cluster_scripts[name](keys=keys, args=args)
        except (ConnectionError, OSError, TimeoutError, RedisError) as exc:
            raise Unavailable(
                f"the check-in store is unavailable ({type(exc).__name__}); retry shortly", retry_after=2
            ) from exc

    async def run_many(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        if self.hot is not None or len(calls) == 1:
            return list(await asyncio.gather(*(self.run(name, k, a) for k, a in calls)))
        try:
            # redis-py refuses Script objects in a cluster pipeline; a raw EVALSHA is routed by its
            # keys (one slot per call), and a node that lost its script cache (a promoted replica)
            # gets the script loaded on every primary before the calls are sent again.
            replies = await self._cluster_evalsha(name, calls)
            if any(isinstance(r, NoScriptError) for r in replies):
                await self.redis.script_load(self.sources[name])
                replies = await self._cluster_evalsha(name, calls)
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies
        except (ConnectionError, OSError, TimeoutError, RedisError) as exc:
            raise Unavailable(
                f"the check-in store is unavailable ({type(exc).__name__}); retry shortly", retry_after=2
            ) from exc

    async def _cluster_evalsha(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for keys, args in calls:
            pipe.execute_command("EVALSHA", self.shas[name], len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    def close(self) -> None:
        if self.hot is not None:
            self.hot.close()


def scripts(ctx: Context) -> Scripts:
    return ctx.shared("checkin_scripts", lambda: Scripts(ctx))


async def load_scripts(ctx: Context) -> None:
    """Load the scripts at start, so the first check-in is not a NOSCRIPT round."""
    s = scripts(ctx)
    for src in s.sources.values():
        await ctx.redis.script_load(src)


# --- time ----------------------------------------------------------------


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


# --- building one script call ----------------------------------------------------------------


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


ITEM_COUNT_SLOT = 7
"""ARGV index (0-based) of the script's item count, bumped by :func:`add_item`."""


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
    call.args = [
        now,
        climit,
        alimit,
        WINDOW_MS + 1000,
        s.unknown_status,
        flags,
        RECORD_TTL_S,
        0,
        REPEAT_WINDOW_MS,
        DAY_ENTRIES_TTL_S,
        keys.pstate_prefix(shard),
        REMEMBERED_SCANS,
        stays_kept_ms(ctx),
        keys.stays_prefix(shard),
    ]
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
    call.args += [
        item.venue_id,
        item.code_version,
        item.code_kind,
        item.at_ms,
        cid,
        item.client_id or "",
        item.source,
        item.lat,
        item.lon,
        item.acc,
        item.token_version,
        len(item.persons),
        *item.persons,
    ]
    call.args[ITEM_COUNT_SLOT] += 1
    call.items.append(item)


def parse_reply(reply: list[Any]) -> list[tuple[str, bytes]]:
    """Per item (code, payload)."""
    return [(reply[i].decode(), reply[i + 1]) for i in range(1, len(reply), 2)]


_ERRORS: dict[str, tuple[type[DomainError], str, str]] = {
    "unknown": (NotFound, "unknown_venue", "this venue code is not registered"),
    "inactive": (
        Gone,
        "inactive",
        "该场所已停用 / this venue has closed{on}: {name} no longer accepts check-ins",
    ),
    "old_code": (
        Gone,
        "old_code",
        "this poster of {name} has been replaced; ask the venue for the new poster",
    ),
    "static_code": (
        Gone,
        "static_code",
        "the venue {name} shows its code on a screen: scan the code on the screen at the entrance "
        "(请重新扫描屏幕上的场所码)",
    ),
    "foreign": (Forbidden, "foreign_companion", "person {name} is not one of your companions"),
    "revoked": (
        Unauthenticated,
        "token_revoked",
        "this credential was revoked; register again on the phone (a code is sent to your number)",
    ),
}


def item_error(ctx: Context, code: str, payload: bytes, closed_on: str = "") -> DomainError:
    """The refusal of one item; ``closed_on`` (YYYY-MM-DD) is the date a closed venue closed."""
    cls, reason, text = _ERRORS.get(code, (Unprocessable, "refused", f"check-in refused ({code})"))
    ctx.metrics.inc(REJECTIONS, reason=reason)
    name = payload.decode() if payload else ""
    detail = text.format(
        name=f"“{name}”" if code != "foreign" else name, on=f" ({closed_on})" if closed_on else ""
    )
    if code == "inactive":
        return cls(detail, reason=reason, closed_on=closed_on)
    return cls(detail, reason=reason)


async def refused_item(ctx: Context, code: str, payload: bytes, venue_id: int) -> DomainError:
    """:func:`item_error`, with the date for a closed venue (read only then)."""
    on = await registry.closed_date(ctx, venue_id) if code == "inactive" else ""
    return item_error(ctx, code, payload, on)


def rate_error(ctx: Context, budget: Budget, which: bytes, now: int) -> TooManyRequests:
    """The refusal of an item a budget had no room for (``which``: the script's ``caller`` or
    ``address``)."""
    ctx.metrics.inc(REJECTIONS, reason="rate_limited")
    if which == b"address":
        who, limit = "address", budget.address_limit
    else:
        who, limit = budget.kind, budget.limit
    return TooManyRequests(
        f"too many scans from this {who}; at most {limit} a minute (a companion counts as a scan)",
        retry_after=window_now(now)[1],
        reason="rate_limited",
    )


def refusal(ctx: Context, budget: Budget, code: str, payload: bytes, now: int) -> DomainError:
    """The error of an item the script refused (a budget's, or another reason's)."""
    return rate_error(ctx, budget, payload, now) if code == "rate" else item_error(ctx, code, payload)


def _stay_of(p: list[str]) -> tuple[str | None, str | None, str | None]:
    """A record person's stay start, end and cause (records made before stays were kept: none)."""
    if len(p) < 10:
        return None, None, None
    return format_ms(int(p[7])), format_ms(int(p[8])), p[9] or None


def response_of(
    record: Record, duplicate: bool, degraded: bool, evaluated_at: int | None = None
) -> CheckinOut:
    people = []
    for p in record.p:
        stay_at, stay_ends_at, ended_by = _stay_of(p)
        people.append(
            PersonOut(
                person_id=int(p[0]),
                name_masked=p[5],
                status=p[1],
                last_negative_test_at=format_ms(int(p[6])) if p[6] else None,
                verdict=p[2],
                reason=p[3] or None,
                stay_at=stay_at,
                stay_ends_at=stay_ends_at,
                ended_by=ended_by,
            )
        )
    owner_end = people[0].stay_ends_at if people and people[0].stay_ends_at else None
    return CheckinOut(
        checkin_id=record.cid,
        at=format_ms(int(record.at)),
        ends_at=owner_end or format_ms(int(record.out or record.end)),
        venue=VenueOut(venue_id=int(record.vid), name=record.vn),
        people=people,
        duplicate=duplicate,
        degraded=degraded,
        checked_out_at=format_ms(int(record.out)) if record.out else None,
        evaluated_at=format_ms(evaluated_at) if evaluated_at is not None else None,
    )


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


# --- the three ways in ----------------------------------------------------------------


async def check_in(
    ctx: Context,
    owner: int,
    token_version: int,
    data: CheckinIn,
    claims: Any,
    ip: str,
    now: int,
    lite: bool,
) -> CheckinOut:
    """One phone check-in (``claims`` = the verified venue code; the owner's token version and the
    resident's and address's scan budgets are checked by the script)."""
    persons = persons_of(owner, data.companions)
    at = scan_instant(ctx, data.scanned_at, now)
    codes.check_scanned_at(claims, ctx.settings.rotating_step_s, at)
    shard = ctx.keys.shard_of(claims.venue_id)
    budget = resident_budget(ctx, owner, ip)
    call = start_call(ctx, shard, now, "l" if lite else "", budget)
    lat, lon, acc = location_args(data.location)
    add_item(
        ctx,
        call,
        Item(
            0,
            claims.venue_id,
            str(claims.code_version),
            at,
            persons,
            "phone",
            data.client_id,
            lat,
            lon,
            acc,
            str(token_version),
            claims.kind,
        ),
    )
    code, payload = parse_reply(await scripts(ctx).run("checkin", call.keys, call.args))[0]
    if code == "ok":
        record = record_decoder.decode(payload)
        ctx.metrics.inc(ACCEPTED, source="phone")
        ctx.metrics.inc(SCANS, len(record.p), source="phone")
        return response_of(record, False, lite)
    if code == "dup":
        ctx.metrics.inc(DEDUPES, source="phone")
        return response_of(record_decoder.decode(payload), True, lite, now)
    if code == "rate":
        raise rate_error(ctx, budget, payload, now)
    raise await refused_item(ctx, code, payload, claims.venue_id)


def resident_budget(ctx: Context, owner: int, ip: str) -> Budget:
    s = ctx.settings
    return Budget("resident", str(owner), s.rate_resident_per_min, ip, s.rate_ip_per_min)


async def run_calls(ctx: Context, calls: list[Call]) -> list[list[tuple[str, bytes]]]:
    replies = await scripts(ctx).run_many("checkin", [(c.keys, c.args) for c in calls])
    return [parse_reply(r) for r in replies]


async def check_in_batch(
    ctx: Context,
    owner: int,
    token_version: int,
    data: BatchIn,
    keyring_verify: Any,
    ip: str,
    now: int,
    lite: bool,
) -> tuple[BatchOut, int | None]:
    """An offline queue of one resident: each item verified and answered on its own, each counted
    against the scan budgets like a single check-in. Returns the answer and, when items were
    refused for the budget, the seconds until it has room again (Retry-After)."""
    results: list[ItemResult | None] = [None] * len(data.items)
    calls: dict[int, Call] = {}
    flags = "b" + ("l" if lite else "")
    budget = resident_budget(ctx, owner, ip)
    for index, entry in enumerate(data.items):
        try:
            claims = keyring_verify(entry.code)
            persons = persons_of(owner, entry.companions)
            at = scan_instant(ctx, entry.scanned_at, now)
            codes.check_scanned_at(claims, ctx.settings.rotating_step_s, at)
        except DomainError as exc:
            reason = _reason_of(exc)
            ctx.metrics.inc(REJECTIONS, reason=reason)
            results[index] = ItemResult(index=index, status=exc.status, error=exc.detail, error_reason=reason)
            continue
        group = call_group(ctx, claims.venue_id)
        call = calls.get(group)
        if call is None:
            call = calls[group] = start_call(ctx, ctx.keys.shard_of(claims.venue_id), now, flags, budget)
        lat, lon, acc = location_args(entry.location)
        add_item(
            ctx,
            call,
            Item(
                index,
                claims.venue_id,
                str(claims.code_version),
                at,
                persons,
                "batch",
                entry.client_id,
                lat,
                lon,
                acc,
                str(token_version),
                claims.kind,
            ),
        )
    ordered = list(calls.values())
    replies = await run_calls(ctx, ordered) if ordered else []
    for parsed in replies:
        if any(code == "revoked" for code, _ in parsed):
            # one owner, one version: every item was refused before anything was written
            raise item_error(ctx, "revoked", b"")
    accepted = duplicates = entries = 0
    retry_after: int | None = None
    for call, parsed in zip(ordered, replies, strict=True):
        for item, (code, payload) in zip(call.items, parsed, strict=True):
            if code == "ok":
                accepted += 1
                entries += len(item.persons)
                results[item.index] = ItemResult(
                    item.index, 201, payload.decode(), format_ms(item.at_ms), False
                )
            elif code == "dup":
                duplicates += 1
                results[item.index] = ItemResult(item.index, 200, payload.decode(), None, True)
            else:
                err = (
                    rate_error(ctx, budget, payload, now)
                    if code == "rate"
                    else await refused_item(ctx, code, payload, item.venue_id)
                )
                if code == "rate":
                    retry_after = err.retry_after
                results[item.index] = ItemResult(
                    item.index, err.status, error=err.detail, error_reason=err.extra.get("reason")
                )
    if accepted:
        ctx.metrics.inc(ACCEPTED, accepted, source="batch")
        ctx.metrics.inc(SCANS, entries, source="batch")
    if duplicates:
        ctx.metrics.inc(DEDUPES, duplicates, source="batch")
    final = [r for r in results if r is not None]
    out = BatchOut(
        accepted=accepted, duplicates=duplicates, rejected=len(final) - accepted - duplicates, results=final
    )
    return out, retry_after


def _reason_of(exc: DomainError) -> str:
    from venues.codes import InvalidCode

    if exc.extra.get("reason"):
        return str(exc.extra["reason"])
    if isinstance(exc, InvalidCode):
        return "bad_code"
    if isinstance(exc, Unprocessable):
        return "bad_time"
    return "bad_input"


async def current(ctx: Context, owner: int, checkin_id: str, now: int) -> CheckinOut:
    """One of the owner's check-ins (of the last 13 h) with every person judged again now: what a
    resumed page shows, never a verdict remembered on the phone. Anyone else's, or an unknown id: 404."""
    shard = shard_of_checkin(ctx, checkin_id)
    keys = ctx.keys
    reply = await scripts(ctx).run(
        "reevaluate",
        [keys.checkin_record(shard, checkin_id)],
        [
            owner,
            now,
            ctx.settings.unknown_status,
            keys.venue_prefix(shard),
            keys.pstate_prefix(shard),
            keys.stays_prefix(shard),
        ],
    )
    if reply[0] != b"ok":
        raise NotFound(f"no check-in {checkin_id} of yours in the last 13 h")
    return response_of(record_decoder.decode(reply[1]), False, False, now)


async def check_out(ctx: Context, owner: int, checkin_id: str, now: int) -> CheckoutOut:
    shard = shard_of_checkin(ctx, checkin_id)
    reply = await scripts(ctx).run(
        "checkout",
        [ctx.keys.stream(shard), ctx.keys.checkin_record(shard, checkin_id)],
        [now, owner, MAX_STAY_MS, ctx.keys.stays_prefix(shard)],
    )
    code = reply[0].decode()
    ctx.metrics.inc(CHECKOUTS, outcome=code)
    if code == "missing":
        raise NotFound(
            f"no open check-in {checkin_id} of yours (unknown, someone else's, or older than 13 h)"
        )
    if code == "done":
        raise Conflict(f"check-in {checkin_id} was already checked out at {format_ms(int(reply[1]))}")
    if code == "early":
        raise Conflict(
            f"check-in {checkin_id} starts at {format_ms(int(reply[1]))}; it cannot end before that"
        )
    if code == "late":
        raise Gone(
            f"check-in {checkin_id} started at {format_ms(int(reply[1]))}, more than 12 h ago; "
            "the stay has already ended"
        )
    record = record_decoder.decode(reply[2])
    return CheckoutOut(
        checkin_id=checkin_id,
        at=format_ms(int(record.at)),
        ended_at=format_ms(int(reply[1])),
        people=[int(p[0]) for p in record.p],
    )


# --- sentinel devices ----------------------------------------------------------------


class SentinelResult(msgspec.Struct, omit_defaults=True):
    """What the door needs of one scan, and nothing more: who (masked), their colour, the verdict
    and its reason. Never a person id or anything else that would make a device key a lookup of
    the population (docs/ARCHITECTURE.md, "Integrity of the record")."""

    index: int
    status: int
    at: str | None = None
    duplicate: bool | None = None
    name_masked: str | None = None
    health_status: str | None = None
    verdict: str | None = None
    reason: str | None = None
    """The verdict's reason (``red_code``…)."""
    error: str | None = None
    error_reason: str | None = None
    """Why the scan was refused (``rate_limited``, ``too_old``…)."""


class SentinelOut(msgspec.Struct):
    venue_id: int
    accepted: int
    duplicates: int
    rejected: int
    results: list[SentinelResult]


async def check_in_sentinel(
    ctx: Context,
    venue_id: int,
    device: str,
    scans: Sequence[tuple[int, int, str] | DomainError],
    now: int,
    lite: bool,
) -> tuple[SentinelOut, int | None]:
    """Scans at one door: per scan (person id, scan instant, the pass's token version or "" for an
    id card) or the error found while resolving it; counted against the device's scan budget.
    Returns the answer and the Retry-After of scans refused for the budget (else None)."""
    shard = ctx.keys.shard_of(venue_id)
    budget = Budget("device", device, ctx.settings.rate_device_per_min)
    call = start_call(ctx, shard, now, "l" if lite else "", budget)
    results: list[SentinelResult | None] = [None] * len(scans)
    retry_after: int | None = None
    for index, scan in enumerate(scans):
        if isinstance(scan, DomainError):
            retry_after = scan.retry_after or retry_after
            results[index] = SentinelResult(
                index=index, status=scan.status, error=scan.detail, error_reason=scan.extra.get("reason")
            )
            continue
        pid, at, version = scan
        add_item(ctx, call, Item(index, venue_id, "", at, [pid], "sentinel", token_version=version))
    accepted = duplicates = 0
    if call.items:
        parsed = (await run_calls(ctx, [call]))[0]
        for item, (code, payload) in zip(call.items, parsed, strict=True):
            if code not in ("ok", "dup"):
                exc = (
                    rate_error(ctx, budget, payload, now)
                    if code == "rate"
                    else await refused_item(ctx, code, payload, item.venue_id)
                )
                if code == "rate":
                    retry_after = exc.retry_after
                results[item.index] = SentinelResult(
                    index=item.index,
                    status=exc.status,
                    error=exc.detail,
                    error_reason=exc.extra.get("reason"),
                )
                continue
            record = record_decoder.decode(payload)
            p = record.p[0]
            dup = code == "dup"
            accepted += not dup
            duplicates += dup
            results[item.index] = SentinelResult(
                index=item.index,
                status=200 if dup else 201,
                at=format_ms(int(record.at)),
                duplicate=dup,
                name_masked=p[5],
                health_status=p[1],
                verdict=p[2],
                reason=p[3] or None,
            )
    if accepted:
        ctx.metrics.inc(ACCEPTED, accepted, source="sentinel")
        ctx.metrics.inc(SCANS, accepted, source="sentinel")
    if duplicates:
        ctx.metrics.inc(DEDUPES, duplicates, source="sentinel")
    final = [r for r in results if r is not None]
    out = SentinelOut(
        venue_id=venue_id,
        accepted=accepted,
        duplicates=duplicates,
        rejected=len(final) - accepted - duplicates,
        results=final,
    )
    return out, retry_after
