"""The venue registry in Redis: create, read, patch, list, codes, rotation.

Services here know nothing of HTTP: they take the :class:`Context`, the calling
:class:`Principal` where access matters, and raise domain errors. Every change
also updates the id index, the per-community sets and the ClickHouse mirror
queue (see :mod:`tracing.venue_mirror`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Conflict, Forbidden, Gone, NotFound, Unprocessable
from checkin.platform.instants import (
    HOUR_MS,
    format_ms,
    local_day,
    now_ms,
    now_rfc3339,
    now_us,
    parse_instant,
)
from checkin.platform.openapi_doc import OPERATOR_TEXT_FORMAT
from checkin.platform.redis_keys import RedisKeys
from venues import codes, history, poster, text
from venues.model import (
    DATA_FIELDS,
    MAX_DWELL_MINUTES,
    MIN_DWELL_MINUTES,
    OPERATOR_ALERT_KINDS,
    PLACE_FIELDS,
    CodeMode,
    Community,
    District,
    Street,
    Venue,
    VenueAlert,
    VenueId,
    VenueType,
)

MAX_CODE_VERSION = 2**16 - 1
CODE_CHECKS = "checkin_venue_code_checks_total"
MAX_LIST_LIMIT = 200
COMMUNITY_PREFIX = r"[0-9]{0,12}"
"""``community`` of a venue list: a district, street or community code prefix (or nothing)."""
LIST_SCAN_BUDGET = 5000
"""Registry records a name search reads per request before it returns a cursor."""

_TEXT = {"format": OPERATOR_TEXT_FORMAT}
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=text.MAX_CHARS, extra_json_schema=_TEXT)]
"""Printable text, no web address, no 【】 (:mod:`venues.text`)."""
Address = Annotated[str, msgspec.Meta(max_length=text.MAX_CHARS, extra_json_schema=_TEXT)]
Lat = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Lon = Annotated[float, msgspec.Meta(ge=-180, le=180)]
Capacity = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
Dwell = Annotated[int, msgspec.Meta(ge=MIN_DWELL_MINUTES, le=MAX_DWELL_MINUTES)]
TestHours = Annotated[int, msgspec.Meta(ge=1, le=8760)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=text.MAX_CHARS, extra_json_schema=_TEXT)]

OLD_POSTER_MESSAGE = (
    "This venue has a new code and this poster is no longer valid: please ask the venue staff "
    "for the new poster. 该场所已更换场所码，此码已失效，请向场所工作人员索取新的场所码海报。"
)
INACTIVE_MESSAGE = "该场所已停用 / this venue has closed"
"""What a scan of a closed venue's code answers (410), followed by the date it closed when known."""
STATIC_CODE_MESSAGE = (
    "This venue shows its code on a screen at the entrance: scan the code on the screen. "
    "请重新扫描屏幕上的场所码。"
)


# KEYS[1] venue hash; ARGV field/value pairs. Refuses to overwrite an existing venue.
CREATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

# KEYS[1] venue hash; ARGV = data field/value pairs, then updated_at.
# Returns {2, ''} created, {1, old community, field, old value, ...} updated (the fields that changed,
# for the venue's history), {0, ''} unchanged.
UPSERT_LUA = """
local key = KEYS[1]
local n = #ARGV - 1
if redis.call('EXISTS', key) == 0 then
  redis.call('HSET', key, unpack(ARGV, 1, n))
  redis.call('HSET', key, 'active', '1', 'code_version', '1', 'updated_at', ARGV[#ARGV])
  return {2, ''}
end
local fields = {}
for i = 1, n, 2 do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'community'
local cur = redis.call('HMGET', key, unpack(fields))
local changed = false
for j = 1, #fields - 1 do
  if cur[j] ~= ARGV[2 * j] then changed = true break end
end
if not changed then return {0, ''} end
local out = {1, cur[#fields] or ''}
for j = 1, #fields - 1 do
  if cur[j] ~= ARGV[2 * j] then
    out[#out + 1] = fields[j]
    out[#out + 1] = cur[j] or ''
  end
end
redis.call('HSET', key, unpack(ARGV, 1, n))
redis.call('HSET', key, 'updated_at', ARGV[#ARGV])
return out
"""

# KEYS[1] venue hash; ARGV[1] updated_at. Returns the new version, 0 if the venue is unknown,
# -1 if the version space is exhausted.
ROTATE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local v = tonumber(redis.call('HGET', KEYS[1], 'code_version') or '1')
if v >= tonumber(ARGV[2]) then return -1 end
redis.call('HSET', KEYS[1], 'code_version', tostring(v + 1), 'updated_at', ARGV[1])
return v + 1
"""

# KEYS[1] id sequence, KEYS[2] id index (sorted set, score = id); ARGV[1] largest id. The next id
# the registry assigns: one past the sequence, or past the ids taken from there on (an import may hold
# any id; the sequence skips the ones taken and never jumps to the top of the range). -1 when none
# is left. The first free id at or after `lo` is found by halving on ZCOUNT, a few dozen calls.
NEXT_ID_LUA = """
local lo = redis.call('INCR', KEYS[1])
local top = tonumber(ARGV[1])
if lo > top then return -1 end
if redis.call('ZCOUNT', KEYS[2], lo, lo) == 0 then return lo end
local hi = top
if redis.call('ZCOUNT', KEYS[2], lo, hi) >= hi - lo + 1 then return -1 end
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  if redis.call('ZCOUNT', KEYS[2], lo, mid) < mid - lo + 1 then hi = mid else lo = mid + 1 end
end
redis.call('SET', KEYS[1], lo)
return lo
"""

# KEYS[1] patched venue hash; ARGV field/value pairs. Only if the venue still exists.
PATCH_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


class VenueIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new venue (``venue_id`` is allocated when omitted)."""

    venue_id: VenueId | None = None
    name: Name
    address: Address = ""
    type: VenueType = "other"
    district: District
    street: Street
    community: Community
    lat: Lat
    lon: Lon
    capacity: Capacity = 0
    dwell_minutes: Dwell = 60
    requires_negative_test_hours: TestHours | None = None


class VenuePatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; omitted fields stay. ``requires_negative_test_hours: null`` clears the policy."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    address: Address | msgspec.UnsetType = msgspec.UNSET
    type: VenueType | msgspec.UnsetType = msgspec.UNSET
    district: District | msgspec.UnsetType = msgspec.UNSET
    street: Street | msgspec.UnsetType = msgspec.UNSET
    community: Community | msgspec.UnsetType = msgspec.UNSET
    lat: Lat | msgspec.UnsetType = msgspec.UNSET
    lon: Lon | msgspec.UnsetType = msgspec.UNSET
    capacity: Capacity | msgspec.UnsetType = msgspec.UNSET
    dwell_minutes: Dwell | msgspec.UnsetType = msgspec.UNSET
    requires_negative_test_hours: TestHours | msgspec.UnsetType | None = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET
    """``false`` closes the venue (needs ``reason``): its codes are then refused with 410 and the date;
    its history and stays are kept. ``true`` opens it again."""
    code_mode: CodeMode | msgspec.UnsetType = msgspec.UNSET
    reason: Reason | msgspec.UnsetType = msgspec.UNSET
    """Why the venue closes; required with ``active: false`` and only there (kept in the venue's
    ``closed_reason`` and its history)."""

    # reason goes with {"active": false} and only there (400 reason_required, reason_unexpected)
    __json_schema_extra__ = {
        "if": {"properties": {"active": {"const": False}}, "required": ["active"]},
        "then": {"required": ["reason"]},
        "else": {"not": {"required": ["reason"]}},
    }


class VenueCode(msgspec.Struct, omit_defaults=True):
    venue_id: int
    token: str
    url: str
    version: int
    code_mode: CodeMode = "static"
    expires_at: str | None = None
    """A screen's code: when it stops being current (the one before is accepted one step longer)."""


class VenuePage(msgspec.Struct):
    items: list[Venue]
    next_after: int | None = None
    """Pass as ``after`` for the next page; null when there is none."""


class EntriesToday(msgspec.Struct):
    venue_id: int
    local_day: str
    """YYYYMMDD in the configured time zone."""
    entries: int


class HourEntries(msgspec.Struct):
    hour: int
    """The local hour (0..23) the hour starts at."""
    entries: int
    """Check-ins whose scan instant falls in this hour (each person of a group counts)."""


class DayEntries(msgspec.Struct):
    local_day: str
    """YYYYMMDD in the configured time zone."""
    entries: int
    """The day's check-ins (what ``/entries`` answers)."""
    hours: list[HourEntries]
    """Every hour of the local day in order (23 or 25 on a day the clocks change)."""


class VenueDay(msgspec.Struct):
    """The venue's day for its operator: entries per hour today and on the same weekday last week,
    occupancy now against the capacity, and today's alerts the operator may see (no persons)."""

    venue_id: int
    as_of: str
    """When this was read (RFC 3339 UTC); the operator page reads it again every minute."""
    tz: str
    """The time zone of the local days and hours (``CHECKIN_TZ``)."""
    today: DayEntries
    last_week: DayEntries
    """The same weekday a week before."""
    capacity: int
    """0 = no capacity rule."""
    occupancy: int | None
    """Stays open at the venue now, as the rule engine counts them; null when the venue has no
    capacity (the rule engine counts only venues with one)."""
    alerts: list[VenueAlert]
    """Today's alerts of the venue that its operator may see (capacity exceeded), newest first."""


# --- helpers ---------------------------------------------------------------------


def validate(venue: Venue | VenueIn, texts: Sequence[str] = text.TEXT_FIELDS) -> None:
    """Rules msgspec constraints cannot express; raises BadInput. ``texts`` names the operator's texts
    to check (:mod:`venues.text`): a patch checks those it writes."""
    if "name" in texts:
        text.check("name", venue.name)
    if "address" in texts:
        text.check("address", venue.address, required=False)
    if not venue.street.startswith(venue.district):
        raise Unprocessable(
            f"street {venue.street} is not in district {venue.district}", reason="place_hierarchy"
        )
    if not venue.community.startswith(venue.street):
        raise Unprocessable(
            f"community {venue.community} is not in street {venue.street}", reason="place_hierarchy"
        )
    if not (math.isfinite(venue.lat) and math.isfinite(venue.lon)):
        raise BadInput("lat and lon must be finite numbers")


def flat_fields(venue: Venue) -> list[str]:
    out: list[str] = []
    for field, value in venue.to_hash().items():
        out.append(field)
        out.append(value)
    return out


def data_args(venue: Venue) -> list[str]:
    """DATA_FIELDS field/value pairs of a venue, as the upsert script takes them."""
    h = venue.to_hash()
    out: list[str] = []
    for field in DATA_FIELDS:
        out.append(field)
        out.append(h[field])
    return out


def index_commands(
    keys: RedisKeys, venue_id: int, community: str, old_community: str | None, stamp_us: int
) -> list[tuple[Any, ...]]:
    """Index, scope sets and mirror queue updates after a change of one venue."""
    cmds: list[tuple[Any, ...]] = [
        ("ZADD", keys.venue_index(), venue_id, venue_id),
        ("SADD", keys.venue_scope_index(community), venue_id),
        ("ZADD", keys.venue_communities(), 0, community),
        ("ZADD", keys.venue_mirror_queue(), stamp_us, venue_id),
    ]
    if old_community and old_community != community:
        cmds.append(("SREM", keys.venue_scope_index(old_community), venue_id))
    return cmds


async def _run(ctx: Context, cmds: list[tuple[Any, ...]]) -> list[Any]:
    pipe = ctx.redis.pipeline(transaction=False)
    for cmd in cmds:
        pipe.execute_command(*cmd)
    result: list[Any] = await pipe.execute()
    return result


def check_access(principal: Principal, venue: Venue) -> None:
    """Operators see venues in their scope, or only their own venue when bound to one. The role is
    the route's guard (operators and admins)."""
    if not principal.in_scope(venue.community):
        raise Forbidden(f"venue {venue.venue_id} is outside this key's jurisdiction ({principal.scope})")
    if principal.role == "operator" and principal.venue_id is not None:
        if principal.venue_id != venue.venue_id:
            raise Forbidden(f"this key is bound to venue {principal.venue_id}")


# --- reads -------------------------------------------------------------------------


async def load(ctx: Context, venue_id: int) -> Venue:
    raw: dict[bytes, bytes] = await ctx.redis.hgetall(ctx.keys.venue(venue_id))
    if not raw:
        raise NotFound(f"no venue {venue_id}")
    return Venue.from_hash(venue_id, raw)


async def get_venue(ctx: Context, principal: Principal, venue_id: int) -> Venue:
    venue = await load(ctx, venue_id)
    check_access(principal, venue)
    return venue


async def _candidate_ids(ctx: Context, prefix: str, after: int, want: int) -> list[int]:
    """Venue ids > after, ascending, limited to communities starting with ``prefix``."""
    if not prefix:
        raw = await ctx.redis.zrangebyscore(ctx.keys.venue_index(), f"({after}", "+inf", start=0, num=want)
        return [int(x) for x in raw]
    communities = await ctx.redis.zrangebylex(
        ctx.keys.venue_communities(), b"[" + prefix.encode(), b"[" + prefix.encode() + b"\xff"
    )
    if not communities:
        return []
    pipe = ctx.redis.pipeline(transaction=False)
    for community in communities:
        pipe.smembers(ctx.keys.venue_scope_index(community.decode()))
    ids: set[int] = set()
    for members in await pipe.execute():
        ids.update(int(x) for x in members)
    return sorted(i for i in ids if i > after)[:want]


async def list_venues(
    ctx: Context,
    principal: Principal,
    *,
    community: str = "",
    q: str = "",
    after: int = 0,
    limit: int = 50,
) -> VenuePage:
    """Venues visible to the caller (an operator or the admin), by id; ``community`` is a code prefix,
    ``q`` an id or name part."""
    limit = max(1, min(limit, MAX_LIST_LIMIT))
    if not re.fullmatch(COMMUNITY_PREFIX, community):
        raise BadInput("community must be a district, street or community code prefix (digits)")
    if principal.role == "operator" and principal.venue_id is not None:
        try:
            own = await load(ctx, principal.venue_id)
        except NotFound:
            return VenuePage(items=[])
        visible = own.venue_id > after and own.community.startswith(community)
        return VenuePage(items=[own] if visible and _matches(own, q) else [])
    prefix = community
    scope = principal.scope
    if scope:
        if prefix.startswith(scope):
            pass
        elif scope.startswith(prefix):
            prefix = scope
        else:
            return VenuePage(items=[])
    q = q.strip()
    if q.isdigit():
        try:
            venue = await load(ctx, int(q))
        except (NotFound, ValueError):
            return VenuePage(items=[])
        ok = venue.venue_id > after and venue.community.startswith(prefix)
        return VenuePage(items=[venue] if ok else [])
    items: list[Venue] = []
    scanned = 0
    cursor = after
    exhausted = False
    while len(items) < limit and scanned < LIST_SCAN_BUDGET:
        chunk = min(500, LIST_SCAN_BUDGET - scanned) if q else limit - len(items)
        ids = await _candidate_ids(ctx, prefix, cursor, chunk)
        if not ids:
            exhausted = True
            break
        pipe = ctx.redis.pipeline(transaction=False)
        for vid in ids:
            pipe.hgetall(ctx.keys.venue(vid))
        raws = await pipe.execute()
        for vid, raw in zip(ids, raws, strict=True):
            scanned += 1
            cursor = vid
            if raw:
                venue = Venue.from_hash(vid, raw)
                if _matches(venue, q):
                    items.append(venue)
                    if len(items) >= limit:
                        break
        if len(ids) < chunk and cursor == ids[-1]:
            exhausted = True
            break
    next_after = None if exhausted else cursor
    if next_after is not None and not await _candidate_ids(ctx, prefix, next_after, 1):
        next_after = None
    return VenuePage(items=items, next_after=next_after)


def _matches(venue: Venue, q: str) -> bool:
    q = q.strip().casefold()
    return not q or q in venue.name.casefold() or q in venue.address.casefold()


async def entries_today(ctx: Context, principal: Principal, venue_id: int) -> EntriesToday:
    await get_venue(ctx, principal, venue_id)
    day = local_day(now_ms(), ctx.settings.tz)
    shard = ctx.keys.shard_of(venue_id)
    raw = await ctx.redis.hget(ctx.keys.venue_entries(shard, day), str(venue_id))
    return EntriesToday(venue_id=venue_id, local_day=day, entries=int(raw or 0))


def day_hours(day: dt.date, tz: str) -> list[tuple[int, int]]:
    """(local hour, unix hour) of every hour of a local day: the check-in script counts a venue's
    entries per unix hour of the scan (``<venue id>:<unix hour>`` in the day's entries hash). In a zone
    whose offset is not whole hours the unix hour holding the local hour's start stands for it."""
    zone = ZoneInfo(tz)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    nxt = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    t, end = int(start.timestamp() * 1000), int(nxt.timestamp() * 1000)
    out: list[tuple[int, int]] = []
    while t < end:
        out.append((dt.datetime.fromtimestamp(t / 1000, zone).hour, t // HOUR_MS))
        t += HOUR_MS
    return out


async def venue_day(ctx: Context, principal: Principal, venue_id: int) -> VenueDay:
    """Entries per hour today and on the same weekday last week, occupancy now, today's alerts: all
    from Redis (the ingest API never opens ClickHouse), one round trip."""
    venue = await get_venue(ctx, principal, venue_id)
    tz = ctx.settings.tz
    now = now_ms()
    today = dt.datetime.fromtimestamp(now / 1000, ZoneInfo(tz)).date()
    days = (today, today - dt.timedelta(days=7))
    shard = ctx.keys.shard_of(venue_id)
    vid = str(venue_id)
    pipe = ctx.redis.pipeline(transaction=False)
    plans: list[list[tuple[int, int]]] = []
    for day in days:
        hours = day_hours(day, tz)
        plans.append(hours)
        fields = [vid, *(f"{vid}:{unix_hour}" for _, unix_hour in hours)]
        pipe.hmget(ctx.keys.venue_entries(shard, day.strftime("%Y%m%d")), fields)
    pipe.zcount(ctx.keys.occupancy(venue_id), f"({now}", "+inf")
    pipe.lrange(ctx.keys.venue_alerts(venue_id), 0, -1)
    *counts, occupancy, raw_alerts = await pipe.execute()
    out: list[DayEntries] = []
    for day, hours, values in zip(days, plans, counts, strict=True):
        out.append(
            DayEntries(
                local_day=day.strftime("%Y%m%d"),
                entries=int(values[0] or 0),
                hours=[
                    HourEntries(hour=hour, entries=int(v or 0))
                    for (hour, _), v in zip(hours, values[1:], strict=True)
                ],
            )
        )
    alerts: list[VenueAlert] = []
    today_text = out[0].local_day
    for raw in raw_alerts:
        try:
            alert = msgspec.json.decode(raw, type=VenueAlert)
        except msgspec.DecodeError:
            continue
        if alert.kind in OPERATOR_ALERT_KINDS and local_day(parse_instant("at", alert.at), tz) == today_text:
            alerts.append(alert)
    return VenueDay(
        venue_id=venue_id,
        as_of=format_ms(now),
        tz=tz,
        today=out[0],
        last_week=out[1],
        capacity=venue.capacity,
        occupancy=int(occupancy) if venue.capacity > 0 else None,
        alerts=alerts,
    )


def closed_on(venue: Venue, tz: str) -> str:
    """The local date (YYYY-MM-DD) a closed venue closed on; empty when unknown (closed before the
    date was kept) or open."""
    return "" if venue.active else date_of(venue.closed_at, tz)


def date_of(instant: str, tz: str) -> str:
    """The local date (YYYY-MM-DD) of an RFC 3339 instant; empty when there is none."""
    try:
        at = parse_instant("closed_at", instant) if instant else None
    except BadInput:
        at = None
    return "" if at is None else dt.datetime.fromtimestamp(at / 1000, ZoneInfo(tz)).strftime("%Y-%m-%d")


async def closed_date(ctx: Context, venue_id: int) -> str:
    """:func:`closed_on` of a venue the check-in script refused as closed (one read, on refusal only)."""
    raw = await ctx.redis.hget(ctx.keys.venue(venue_id), "closed_at")
    return date_of(raw.decode() if raw else "", ctx.settings.tz)


def closed_message(on: str) -> str:
    """The 410 detail of a scan of a closed venue's code."""
    return f"{INACTIVE_MESSAGE} ({on})" if on else INACTIVE_MESSAGE


def poster_data(ctx: Context, venue: Venue) -> poster.PosterData:
    """What the venue's poster shows now: the check-in poster with its printed code, the notice of a
    venue whose code is on a screen at the door, or the notice of a closed venue."""
    kind = poster.kind_of(venue.active, venue.code_mode)
    url = poster_code(ctx, venue).url if kind == "checkin" else ""
    return poster.PosterData(
        venue_id=venue.venue_id,
        name=venue.name,
        address=venue.address,
        url=url,
        kind=kind,
        closed_on=closed_on(venue, ctx.settings.tz),
        step_s=ctx.settings.rotating_step_s,
    )


# --- writes ---------------------------------------------------------------------------


async def allocate_id(ctx: Context) -> int:
    value = int(await ctx.redis.eval(NEXT_ID_LUA, 2, ctx.keys.venue_seq(), ctx.keys.venue_index(), 2**32 - 1))
    if value < 0:
        raise Conflict("venue ids are exhausted")
    return value


async def create_venue(ctx: Context, principal: Principal, data: VenueIn) -> Venue:
    """A new venue, by an operator not bound to a venue or the admin (the route's guard)."""
    if principal.role == "operator" and principal.venue_id is not None:
        raise Forbidden(f"this key is bound to venue {principal.venue_id} and cannot create venues")
    validate(data)
    if not principal.in_scope(data.community):
        raise Forbidden(f"community {data.community} is outside this key's jurisdiction ({principal.scope})")
    fields = msgspec.structs.asdict(data)
    fields.pop("venue_id")
    fields["name"] = data.name.strip()
    fields["address"] = data.address.strip()
    explicit = data.venue_id is not None
    for _attempt in range(20):
        venue_id = data.venue_id if data.venue_id is not None else await allocate_id(ctx)
        venue = Venue(venue_id=venue_id, updated_at=now_rfc3339(), **fields)
        created = await ctx.redis.eval(CREATE_LUA, 1, ctx.keys.venue(venue_id), *flat_fields(venue))
        if created:
            cmds = index_commands(ctx.keys, venue_id, venue.community, None, now_us())
            cmds += history.commands(ctx.keys, venue_id, history.entry(principal, "create", {}, {}))
            await _run(ctx, cmds)
            return venue
        if explicit:
            raise Conflict(f"venue {venue_id} already exists")
    raise Conflict("could not allocate a free venue id; try again")


async def patch_venue(ctx: Context, principal: Principal, venue_id: int, patch: VenuePatch) -> Venue:
    """Change a venue. Its place (district, street, community, lat, lon) is the admin's to change:
    tracing, the ``remote_scan`` and ``impossible_travel`` rules and jurisdictions depend on it. Every
    change is kept in the venue's history."""
    current = await get_venue(ctx, principal, venue_id)
    changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    for field in text.TEXT_FIELDS:
        if field in changes:
            changes[field] = changes[field].strip()
    reason = changes.pop("reason", None)
    if changes.get("active") is False:
        if reason is None:
            raise BadInput(
                'closing a venue needs a reason: {"active": false, "reason": "..."} (kept in its history)',
                reason="reason_required",
            )
        reason = text.check("reason", reason)
        if current.active:
            changes["closed_at"], changes["closed_reason"] = now_rfc3339(), reason
    elif reason is not None:
        raise BadInput('reason goes with {"active": false} (closing the venue)', reason="reason_unexpected")
    elif changes.get("active") is True and not current.active:
        changes["closed_at"], changes["closed_reason"] = "", ""
    moved = [f for f in PLACE_FIELDS if f in changes and changes[f] != getattr(current, f)]
    if moved and principal.role != "admin":
        raise Forbidden(
            f"{', '.join(moved)}: only an admin changes where a venue is "
            "(tracing, its rules and jurisdictions depend on it)",
            reason="place_change",
        )
    updated = msgspec.structs.replace(current, **changes)
    validate(updated, [f for f in text.TEXT_FIELDS if f in changes])
    if updated.community != current.community and not principal.in_scope(updated.community):
        raise Forbidden(
            f"community {updated.community} is outside this key's jurisdiction ({principal.scope})"
        )
    before, after = history.diff(current.to_hash(), updated.to_hash())
    if not after:
        return current
    stamp = now_rfc3339()
    args: list[str] = []
    for field, value in {**after, "updated_at": stamp}.items():
        args.extend((field, value))
    if not await ctx.redis.eval(PATCH_LUA, 1, ctx.keys.venue(venue_id), *args):
        raise NotFound(f"no venue {venue_id}")
    cmds = index_commands(ctx.keys, venue_id, updated.community, current.community, now_us())
    cmds += history.commands(ctx.keys, venue_id, history.entry(principal, "update", before, after))
    await _run(ctx, cmds)
    return msgspec.structs.replace(updated, updated_at=stamp)


def code_for(ctx: Context, venue: Venue, now_s: float | None = None) -> VenueCode:
    """The code to show now: the poster's, or for a venue with a screen the current step's."""
    if venue.code_mode == "rotating":
        step_s = ctx.settings.rotating_step_s
        step = codes.current_step(step_s, now_s)
        token = codes.sign_rotating(ctx.keyring, venue.venue_id, venue.code_version, step)
        expires: str | None = format_ms((step + 1) * step_s * 1000)
    else:
        token, expires = codes.sign(ctx.keyring, venue.venue_id, venue.code_version), None
    return VenueCode(
        venue_id=venue.venue_id,
        token=token,
        url=codes.checkin_url(ctx.settings.public_base_url, token),
        version=venue.code_version,
        code_mode=venue.code_mode,
        expires_at=expires,
    )


def poster_code(ctx: Context, venue: Venue) -> VenueCode:
    """The code a printed poster carries (for a venue with a screen it is refused at check-in)."""
    token = codes.sign(ctx.keyring, venue.venue_id, venue.code_version)
    return VenueCode(
        venue_id=venue.venue_id,
        token=token,
        url=codes.checkin_url(ctx.settings.public_base_url, token),
        version=venue.code_version,
    )


async def get_code(ctx: Context, principal: Principal, venue_id: int) -> VenueCode:
    """The venue's code now. A door device bound to the venue may read it too (its screen shows it)."""
    if principal.role == "device":
        if principal.venue_id != venue_id:
            raise Forbidden(
                "a device key reads only the code of the venue it is bound to"
                + ("" if principal.venue_id is None else f" ({principal.venue_id})")
            )
        return code_for(ctx, await load(ctx, venue_id))
    return code_for(ctx, await get_venue(ctx, principal, venue_id))


async def get_history(ctx: Context, principal: Principal, venue_id: int) -> history.History:
    return await history.read(ctx, principal, await load(ctx, venue_id))


async def rotate_code(ctx: Context, principal: Principal, venue_id: int) -> VenueCode:
    venue = await get_venue(ctx, principal, venue_id)
    version = int(
        await ctx.redis.eval(ROTATE_LUA, 1, ctx.keys.venue(venue_id), now_rfc3339(), MAX_CODE_VERSION)
    )
    if version == 0:
        raise NotFound(f"no venue {venue_id}")
    if version < 0:
        raise Conflict(f"venue {venue_id} has used every code version; register it under a new id")
    change = history.entry(
        principal, "rotate_code", {"code_version": str(venue.code_version)}, {"code_version": str(version)}
    )
    await _run(
        ctx,
        [
            ("ZADD", ctx.keys.venue_mirror_queue(), now_us(), venue_id),
            *history.commands(ctx.keys, venue_id, change),
        ],
    )
    return code_for(ctx, msgspec.structs.replace(venue, code_version=version))


# --- verification of a scanned code ----------------------------------------------------


async def check_code(ctx: Context, token: str) -> Venue:
    """The venue of a scanned code, or the reason it is refused (what the phone page shows).

    Tampered or foreign token: 400 (``codes.InvalidCode``); unknown venue: 404; deactivated venue:
    410 ``inactive``; superseded code version (an old poster): 410 ``old_version``; a screen's code
    older than the step before: 410 ``code_expired``; the poster code of a venue with a screen: 410
    ``static_code``. The check-in script judges the same fields again when the scan is written.
    """
    try:
        claims = codes.verify(ctx.keyring, token)
    except codes.InvalidCode:
        ctx.metrics.inc(CODE_CHECKS, result="tampered")
        raise
    try:
        codes.check_step(claims, ctx.settings.rotating_step_s)
    except codes.CodeExpired:
        ctx.metrics.inc(CODE_CHECKS, result="code_expired")
        raise
    raw: dict[bytes, bytes] = await ctx.redis.hgetall(ctx.keys.venue(claims.venue_id))
    if not raw:
        ctx.metrics.inc(CODE_CHECKS, result="unknown")
        raise NotFound(f"venue {claims.venue_id} is not registered. 未找到该场所。")
    venue = Venue.from_hash(claims.venue_id, raw)
    if not venue.active:
        ctx.metrics.inc(CODE_CHECKS, result="inactive")
        on = closed_on(venue, ctx.settings.tz)
        raise Gone(
            closed_message(on),
            reason="inactive",
            venue_id=venue.venue_id,
            venue_name=venue.name,
            closed_on=on,
        )
    if claims.code_version != venue.code_version:
        ctx.metrics.inc(CODE_CHECKS, result="old_version")
        raise Gone(OLD_POSTER_MESSAGE, reason="old_version", venue_id=venue.venue_id, venue_name=venue.name)
    if venue.code_mode == "rotating" and claims.kind == "s":
        ctx.metrics.inc(CODE_CHECKS, result="static_code")
        raise Gone(STATIC_CODE_MESSAGE, reason="static_code", venue_id=venue.venue_id, venue_name=venue.name)
    ctx.metrics.inc(CODE_CHECKS, result="ok")
    return venue
