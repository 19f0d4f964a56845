"""The venue registry in Redis: create, read, patch, list, codes, rotation.

Services here know nothing of HTTP: they take the :class:`Context`, the calling
:class:`Principal` where access matters, and raise domain errors. Every change
also updates the id index, the per-community sets and the ClickHouse mirror
queue (see :mod:`tracing.sink.venue_mirror`). Beside it: what an operator sends
(:mod:`venues.inputs`), the Redis scripts (:mod:`venues.scripts`), the venue's
day (:mod:`venues.day`) and the check of a scanned code (:mod:`venues.scanned_code`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import msgspec

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Conflict, Forbidden, NotFound, Unprocessable
from checkin.platform.instants import format_ms, now_rfc3339, now_us
from checkin.platform.redis_keys import RedisKeys
from venues import codes, history, poster, text
from venues.inputs import VenueIn, VenuePatch
from venues.model import DATA_FIELDS, PLACE_FIELDS, CodeMode, Venue
from venues.scanned_code import closed_on
from venues.scripts import CREATE_LUA, NEXT_ID_LUA, PATCH_LUA, ROTATE_LUA

MAX_CODE_VERSION = 2**16 - 1
MAX_LIST_LIMIT = 200
COMMUNITY_PREFIX = r"[0-9]{0,12}"
"""``community`` of a venue list: a district, street or community code prefix (or nothing)."""
LIST_SCAN_BUDGET = 5000
"""Registry records a name search reads per request before it returns a cursor."""


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
