"""Exposure sites: a tracer flags a venue for a period; the rule engine raises ``exposure_site_visit``.

``POST /v1/exposure-sites`` (tracer) ``{venue_id, since, until, reason, level?, message?}`` flags
the venue for ``[since, until)``: every check-in there whose scan instant falls in the period and
that the rule engine processes from then on raises an alert (once per person, venue and local
day). ``level`` (inform, test, isolate) and ``message`` are what the exposed are told: the site is
queued for the ``notices`` worker (:mod:`tracing.notices.worker`), which notifies everyone already
exposed within seconds. Visitors
from before the flag was set are found with ``POST /v1/trace/exposures``. ``GET
/v1/exposure-sites`` lists the sites in the key's jurisdiction (``?active=true``: periods not yet
over; ``?venue_id=``), ``DELETE /v1/exposure-sites/{site_id}`` removes one. Changes and reads of the
list are audited.

Sites live in one Redis hash (site_id -> JSON); a generation counter tells rule engines to reload it.
Sites whose period ended more than ``retention_days`` ago are pruned when a site is added.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, delete, get, post
from litestar.params import Parameter

from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, NotFound, Unprocessable
from checkin.platform.instants import format_ms, parse_instant
from checkin.platform.service import Part
from tracing.api import audit
from tracing.storage import audit_log
from tracing.storage.store import Store
from venues.model import Venue

SITE_ID_RE = r"^[0-9a-f]{18}$"
MAX_PERIOD_DAYS = 90
TRACER = [requires_role("tracer")]

NoticeLevel = Literal["inform", "test", "isolate"]
"""What the exposed are asked to do: be aware, get a test, stay home."""


class ExposureSiteIn(msgspec.Struct, forbid_unknown_fields=True):
    venue_id: Annotated[int, msgspec.Meta(ge=1, le=2**32 - 1)]
    since: Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]
    until: Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    level: NoticeLevel = "inform"
    message: Annotated[str, msgspec.Meta(max_length=500)] = ""
    """Words for the exposed (what to do, whom to call); shown in their notice."""


class StoredSite(msgspec.Struct, kw_only=True):
    """The hash value; the rule engine decodes the subset it needs (``rule_checks.ExposureSite``)."""

    site_id: str
    venue_id: int
    since_ms: int
    until_ms: int
    reason: str
    district: str = ""
    street: str = ""
    community: str = ""
    created_by: str = ""
    created_ms: int = 0
    level: NoticeLevel = "inform"
    message: str = ""


class ExposureSiteOut(msgspec.Struct):
    site_id: str
    venue_id: int
    since: str
    until: str
    reason: str
    level: NoticeLevel
    message: str
    district: str
    street: str
    community: str
    created_by: str
    created_at: str
    active: bool

    @classmethod
    def of(cls, site: StoredSite, now_ms: int) -> ExposureSiteOut:
        return cls(
            site_id=site.site_id,
            venue_id=site.venue_id,
            since=format_ms(site.since_ms),
            until=format_ms(site.until_ms),
            reason=site.reason,
            level=site.level,
            message=site.message,
            district=site.district,
            street=site.street,
            community=site.community,
            created_by=site.created_by,
            created_at=format_ms(site.created_ms),
            active=site.until_ms > now_ms,
        )


class ExposureSiteList(msgspec.Struct):
    sites: list[ExposureSiteOut]
    count: int


def new_site_id(now_ms: int) -> str:
    """Time-sortable: 12 hex digits of ms then 6 random ones."""
    return f"{now_ms:012x}{secrets.token_hex(3)}"


async def load_sites(ctx: Context) -> list[StoredSite]:
    raw: dict[bytes, bytes] = await ctx.redis.hgetall(ctx.keys.exposure_sites())
    out = []
    for value in raw.values():
        try:
            out.append(msgspec.json.decode(value, type=StoredSite))
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
    return sorted(out, key=lambda s: s.site_id)


@post(
    "/v1/exposure-sites",
    summary="Flag a venue for a period (tracer)",
    tags=["alerts"],
    problems=(404, 422),
    guards=TRACER,
)
async def create_site(
    data: ExposureSiteIn, request: Request[Any, Any, Any], ctx: Context, store: Store, principal: Principal
) -> ExposureSiteOut:
    since_ms = parse_instant("since", data.since)
    until_ms = parse_instant("until", data.until)
    if since_ms >= until_ms:
        raise Unprocessable("since must be before until", reason="empty_window")
    if until_ms - since_ms > MAX_PERIOD_DAYS * 86_400_000:
        raise Unprocessable(f"the period may span at most {MAX_PERIOD_DAYS} days", reason="window_too_long")
    raw = await ctx.redis.hgetall(ctx.keys.venue(data.venue_id))
    if not raw:
        raise NotFound(f"no venue {data.venue_id}")
    venue = Venue.from_hash(data.venue_id, raw)
    if not principal.in_scope(venue.community):
        raise NotFound(f"no venue {data.venue_id}")
    now_ms = int(time.time() * 1000)
    site = StoredSite(
        site_id=new_site_id(now_ms),
        venue_id=data.venue_id,
        since_ms=since_ms,
        until_ms=until_ms,
        reason=data.reason,
        district=venue.district,
        street=venue.street,
        community=venue.community,
        created_by=principal.key_id,
        created_ms=now_ms,
        level=data.level,
        message=data.message.strip(),
    )
    await audit_log.record(
        ctx,
        store,
        principal,
        "exposure_site_create",
        data.reason,
        {
            "site_id": site.site_id,
            "venue_id": data.venue_id,
            "since": data.since,
            "until": data.until,
            "level": data.level,
        },
        1,
        audit.client_ip(request),
    )
    keys = ctx.keys
    horizon = now_ms - ctx.settings.retention_days * 86_400_000
    stale = [s.site_id for s in await load_sites(ctx) if s.until_ms < horizon]
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.hset(keys.exposure_sites(), site.site_id, msgspec.json.encode(site))
    if stale:
        pipe.hdel(keys.exposure_sites(), *stale)
    pipe.incr(keys.exposure_sites_gen())
    pipe.rpush(keys.notify_queue(), site.site_id)  # the notices worker tells those already exposed
    await pipe.execute()
    return ExposureSiteOut.of(site, now_ms)


@get(
    "/v1/exposure-sites",
    summary="Exposure sites in the key's jurisdiction (tracer, analyst)",
    tags=["alerts"],
    guards=[requires_role("tracer", "analyst")],
)
async def list_sites(
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
    active: bool | None = None,
    venue_id: int | None = None,
) -> ExposureSiteList:
    """Audited like a trace query: the list names the venues and windows of cases."""
    now_ms = int(time.time() * 1000)
    sites = [
        ExposureSiteOut.of(s, now_ms)
        for s in await load_sites(ctx)
        if principal.in_scope(s.community)
        and (venue_id is None or s.venue_id == venue_id)
        and (active is None or (s.until_ms > now_ms) == active)
    ]
    params: dict[str, Any] = {"active": active, "venue_id": venue_id}
    await audit_log.record(
        ctx, store, principal, "exposure_sites", "", params, len(sites), audit.client_ip(request)
    )
    return ExposureSiteList(sites=sites, count=len(sites))


@delete(
    "/v1/exposure-sites/{site_id:str}",
    summary="Remove an exposure site (tracer)",
    tags=["alerts"],
    guards=TRACER,
)
async def delete_site(
    site_id: Annotated[str, Parameter(schema_extra={"pattern": SITE_ID_RE})],
    request: Request[Any, Any, Any],
    ctx: Context,
    store: Store,
    principal: Principal,
) -> None:
    if not re.fullmatch(SITE_ID_RE, site_id):
        raise BadInput(f"site_id: expected 18 lowercase hex digits, got {site_id!r}")
    raw = await ctx.redis.hget(ctx.keys.exposure_sites(), site_id)
    site = msgspec.json.decode(raw, type=StoredSite) if raw else None
    if site is None or not principal.in_scope(site.community):
        raise NotFound(f"no exposure site {site_id}")
    await audit_log.record(
        ctx,
        store,
        principal,
        "exposure_site_delete",
        site.reason,
        {"site_id": site_id, "venue_id": site.venue_id},
        1,
        audit.client_ip(request),
    )
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.hdel(ctx.keys.exposure_sites(), site_id)
    pipe.incr(ctx.keys.exposure_sites_gen())
    await pipe.execute()


PART = Part("exposure-sites", routes=[create_site, list_sites, delete_site])
