"""What a refused check-in item answers: the script's refusal codes as problems (404 unknown venue,
410 closed or replaced code, 403 a stranger as companion, 401 a revoked credential, 429 a budget),
and the reason a batch item was refused before it reached the script."""

from __future__ import annotations

from checkin.checkins.calls import Budget
from checkin.platform.context import Context
from checkin.platform.errors import (
    DomainError,
    Forbidden,
    Gone,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    Unprocessable,
)
from checkin.protection import REJECTIONS, window_now
from venues import scanned_code
from venues.codes import InvalidCode

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
    on = await scanned_code.closed_date(ctx, venue_id) if code == "inactive" else ""
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


async def refusal(
    ctx: Context, budget: Budget, code: str, payload: bytes, venue_id: int, now: int
) -> DomainError:
    """The error of an item the script refused: a budget's (``rate``), or another reason's."""
    if code == "rate":
        return rate_error(ctx, budget, payload, now)
    return await refused_item(ctx, code, payload, venue_id)


def reason_of(exc: DomainError) -> str:
    if exc.extra.get("reason"):
        return str(exc.extra["reason"])
    if isinstance(exc, InvalidCode):
        return "bad_code"
    if isinstance(exc, Unprocessable):
        return "bad_time"
    return "bad_input"
