"""A resident's own stays, for the phone page (relayed by the ingest API): ``GET
/v1/residents/me/visits?days=N`` with the resident's bearer token, newest first with venue names.

The token is verified here (keyring and token version, as on the ingest side), so this route answers
only the caller's own stays; it is not a trace and writes no audit row. It is rate-limited here as on
the ingest API (``CHECKIN_RATE_VISITS_PER_MIN`` per resident): a resident's token sent straight to this
service is held to the same pace. Concurrent reads share one
engine query (:mod:`tracing.queries.visit_batcher`).
"""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import Parameter

from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.errors import TooManyRequests, Unprocessable
from checkin.platform.instants import DAY_MS, now_ms
from checkin.platform.own_visits import OwnVisit, OwnVisits
from checkin.platform.service import Part
from tracing.answers.calls import awaited
from tracing.answers.visits import visit_as
from tracing.queries.visit_batcher import VisitBatcher
from tracing.storage.store import Store

WINDOW_MS = 60_000


async def limit(ctx: Context, person_id: int, now: int) -> None:
    """``CHECKIN_RATE_VISITS_PER_MIN`` reads a minute per resident on this service too (its own
    counter: a call relayed by the ingest API counts once there and once here); 429 beyond."""
    window = now // WINDOW_MS
    key = ctx.keys.rate("visits-tracing", str(person_id), window)
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.incr(key)
    pipe.pexpire(key, WINDOW_MS + 1000)
    used, _ = await pipe.execute()
    allowed = ctx.settings.rate_visits_per_min
    if int(used) > allowed:
        raise TooManyRequests(
            f"too many reads of your visits; at most {allowed} a minute",
            retry_after=max(1, -(-((window + 1) * WINDOW_MS - now) // 1000)),
            reason="rate_limited",
        )


def batcher_of(ctx: Context, store: Store) -> VisitBatcher:
    return ctx.shared("visit_batcher", lambda: VisitBatcher(store))


async def on_shutdown(ctx: Context) -> None:
    batcher = ctx.extras.get("visit_batcher")
    if isinstance(batcher, VisitBatcher):
        await batcher.close()


@get(
    "/v1/residents/me/visits",
    summary="Your own stays, newest first (resident; the ingest API relays this)",
    tags=["residents"],
    guards=[requires_role("resident")],
)
async def own_visits(
    ctx: Context,
    store: Store,
    principal: Principal,
    days: Annotated[int, Parameter(ge=1, le=366)] = 14,
) -> OwnVisits:
    if days > ctx.settings.retention_days:
        raise Unprocessable(
            f"days: at most {ctx.settings.retention_days} (stays are kept that long)",
            reason="beyond_retention",
        )
    pid = principal.person_id or 0
    until = now_ms() + 1
    await limit(ctx, pid, until)
    stays = await awaited("stay", batcher_of(ctx, store).visits(pid, until - days * DAY_MS, until))
    visits = [visit_as(OwnVisit, v) for v in reversed(stays)]
    return OwnVisits(person_id=pid, days=days, count=len(visits), visits=visits)


PART = Part("own-visits", routes=[own_visits], on_shutdown=on_shutdown)
