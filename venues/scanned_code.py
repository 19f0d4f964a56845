"""The check of a scanned venue code: its signature and time step (:func:`venues.codes.verify_scanned`,
which the check-in calls too), then the venue's state in the registry, and what a refused scan is told.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from checkin.platform.context import Context
from checkin.platform.errors import BadInput, Gone, NotFound
from checkin.platform.instants import parse_instant
from venues import codes
from venues.model import Venue

CODE_CHECKS = "checkin_venue_code_checks_total"
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


async def check_code(ctx: Context, token: str) -> Venue:
    """The venue of a scanned code, or the reason it is refused (what the phone page shows).

    Tampered or foreign token: 400 (``codes.InvalidCode``); unknown venue: 404; deactivated venue:
    410 ``inactive``; superseded code version (an old poster): 410 ``old_version``; a screen's code
    older than the step before: 410 ``code_expired``; the poster code of a venue with a screen: 410
    ``static_code``. The check-in script judges the same fields again when the scan is written.
    """
    try:
        claims = codes.verify_scanned(ctx.keyring, token, ctx.settings.rotating_step_s)
    except codes.InvalidCode:
        ctx.metrics.inc(CODE_CHECKS, result="tampered")
        raise
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
