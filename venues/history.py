"""Every change of a venue, kept: who, when, what it was before and after (docs/ARCHITECTURE.md,
"Integrity of the record"). Tracing depends on a venue's place (district, street, community) and its
dwell time; a change of either must be answerable afterwards.

One list per venue (``venue-history:{n}:<id>``, newest first, the last :data:`KEPT` changes), written
in the same pipeline as the change. A creation is kept as ``action: "create"`` without its fields:
the record as created is the record now with each later change's ``before`` put back, which
:func:`read` does, so an import of a city's venues adds a few dozen bytes a venue, not a copy.
"""

from __future__ import annotations

from typing import Any

import msgspec

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import Forbidden
from checkin.platform.instants import now_rfc3339
from checkin.platform.redis_keys import RedisKeys
from venues.model import Venue

KEPT = 1000


class Change(msgspec.Struct, omit_defaults=True):
    at: str
    actor: str
    """The key id of the caller (``admin`` for the admin key)."""
    role: str
    action: str
    """``create``, ``update``, ``import``, ``rotate_code``."""
    before: dict[str, str] = {}
    after: dict[str, str] = {}


class History(msgspec.Struct):
    venue_id: int
    changes: list[Change]
    """Newest first."""


_decode = msgspec.json.Decoder(Change)


def entry(
    principal: Principal | tuple[str, str], action: str, before: dict[str, str], after: dict[str, str]
) -> bytes:
    actor, role = (principal.key_id, principal.role) if isinstance(principal, Principal) else principal
    return msgspec.json.encode(Change(now_rfc3339(), actor, role, action, before, after))


def commands(keys: RedisKeys, venue_id: int, change: bytes) -> list[tuple[Any, ...]]:
    key = keys.venue_history(venue_id)
    return [("LPUSH", key, change), ("LTRIM", key, 0, KEPT - 1)]


def diff(old: dict[str, str], new: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(before, after) of the fields that differ, ``updated_at`` left out."""
    changed = [k for k in new if old.get(k) != new[k] and k != "updated_at"]
    return {k: old.get(k, "") for k in changed}, {k: new[k] for k in changed}


def check_access(principal: Principal, venue: Venue) -> None:
    """Admins, and analysts whose jurisdiction holds the venue (the role is the route's guard)."""
    if not principal.in_scope(venue.community):
        raise Forbidden(f"venue {venue.venue_id} is outside this key's jurisdiction ({principal.scope})")


async def read(ctx: Context, principal: Principal, venue: Venue) -> History:
    check_access(principal, venue)
    raw: list[bytes] = await ctx.redis.lrange(ctx.keys.venue_history(venue.venue_id), 0, -1)
    changes = [_decode.decode(r) for r in raw]
    state = {k: v for k, v in venue.to_hash().items() if k != "updated_at"}
    for change in changes:  # newest first: walk back to the record as created
        if change.action == "create" and not change.after:
            change.after = dict(state)
        state.update(change.before)
    return History(venue_id=venue.venue_id, changes=changes)
