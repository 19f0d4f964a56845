"""Check-in routes (resident token): single, offline batch, check-out.

The handlers stay thin: admit the request (:mod:`checkin.checkins.admission`), verify the venue
code in process, run :mod:`checkin.checkins.service`, answer with msgspec-encoded bytes. The two hot
routes are declared with :func:`~checkin.checkins.hot_route.hot_post`.
"""

from __future__ import annotations

import msgspec
from litestar import Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import Scope

from checkin import protection
from checkin.checkins import admission, scripts, wire
from checkin.checkins import service as checkins
from checkin.checkins.admission import admitted, folder_of
from checkin.checkins.hot_route import HotResponse, authorization, context_of, hot_post
from checkin.platform import auth
from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.instants import from_ms, now_ms
from checkin.platform.metrics import Metrics
from checkin.platform.openapi_doc import SECURITY
from checkin.platform.service import Part
from checkin.protection import REJECTIONS, guard_of
from venues import codes

TAGS = ["check-ins"]
RESIDENT = [requires_role("resident")]
_encoder = msgspec.json.Encoder()


def setup_metrics(metrics: Metrics) -> None:
    checkins.setup_metrics(metrics)
    admission.setup_metrics(metrics)
    protection.setup_metrics(metrics)


async def on_startup(ctx: Context) -> None:
    await scripts.load_scripts(ctx)
    guard_of(ctx).start()
    folder_of(ctx).start()


async def on_shutdown(ctx: Context) -> None:
    await guard_of(ctx).stop()
    scripts.scripts(ctx).close()
    await folder_of(ctx).stop()


def verify_code(ctx: Context, token: str, counted: bool = True, seen: bool = False) -> codes.CodeClaims:
    """The claims of a venue code (:func:`venues.codes.verify_scanned`, signatures remembered per
    worker); ``counted``: a refusal counts in the rejection metric (a batch counts its items'
    refusals itself)."""
    verified: dict[str, codes.CodeClaims] = ctx.shared("verified_codes", dict)
    try:
        return codes.verify_scanned(
            ctx.keyring, token, ctx.settings.rotating_step_s, seen=seen, verified=verified
        )
    except codes.CodeExpired:
        if counted:
            ctx.metrics.inc(REJECTIONS, reason="code_expired")
        raise
    except codes.InvalidCode:
        if counted:
            ctx.metrics.inc(REJECTIONS, reason="bad_code")
        raise


def as_seen(ctx: Context, data: wire.CheckinIn) -> tuple[wire.CheckinIn, bool]:
    """A scan with a valid seen proof of its code (``codes.verify_seen``: the page saw the screen
    code current at most ``CHECKIN_ROTATING_REGISTER_S`` ago) is recorded at the instant it was seen."""
    if data.code_proof is None:
        return data, False
    at = codes.verify_seen(
        ctx.keyring, data.code, data.code_proof, now_ms(), ctx.settings.rotating_register_s
    )
    if at is None:
        return data, False
    return msgspec.structs.replace(data, scanned_at=from_ms(at)), True


async def resident_of(ctx: Context, scope: Scope) -> Principal:
    """The resident of the request; their token version is checked by the check-in script."""
    principal = await auth.authenticate(ctx, authorization(scope), check_version=False)
    return principal.require("resident")


@hot_post(
    "/v1/checkins",
    status_code=201,
    summary="Check in at a venue by its code (resident); 200 for a repeat of the same check-in",
    tags=TAGS,
    security=SECURITY,
    problems=(404, 410, 422, 429),
    responses={
        201: ResponseSpec(data_container=wire.CheckinOut, description="Checked in", generate_examples=False),
        200: ResponseSpec(
            data_container=wire.CheckinOut,
            description="A repeat of the same check-in",
            generate_examples=False,
        ),
    },
)
async def post_checkin(data: wire.CheckinIn, scope: Scope) -> Response[bytes]:
    ctx = context_of(scope)
    owner = await resident_of(ctx, scope)
    data, seen = as_seen(ctx, data)
    with admitted(ctx, "checkin") as lite:
        claims = verify_code(ctx, data.code, seen=seen)
        out = await checkins.check_in(
            ctx,
            owner.person_id or 0,
            owner.token_version,
            data,
            claims,
            protection.client_ip(ctx, scope),
            now_ms(),
            lite,
        )
    return HotResponse(_encoder.encode(out), 200 if out.duplicate else 201)


@hot_post(
    "/v1/checkins/batch",
    status_code=200,
    summary="Upload an offline queue of check-ins (resident); per-item results",
    tags=TAGS,
    security=SECURITY,
    responses={
        200: ResponseSpec(
            data_container=wire.BatchOut, description="Per-item results", generate_examples=False
        )
    },
)
async def post_batch(data: wire.BatchIn, scope: Scope) -> Response[bytes]:
    ctx = context_of(scope)
    owner = await resident_of(ctx, scope)
    items = [as_seen(ctx, item) for item in data.items]
    seen = {item.code for item, proven in items if proven}
    if seen:
        data = wire.BatchIn(items=[item for item, _ in items])
    with admitted(ctx, "batch") as lite:
        out, retry_after = await checkins.check_in_batch(
            ctx,
            owner.person_id or 0,
            owner.token_version,
            data,
            lambda t: verify_code(ctx, t, counted=False, seen=t in seen),
            protection.client_ip(ctx, scope),
            now_ms(),
            lite,
        )
    headers = None if retry_after is None else [(b"retry-after", str(retry_after).encode())]
    return HotResponse(_encoder.encode(out), 200, headers)


@post(
    "/v1/checkins/{checkin_id:str}/checkout",
    status_code=200,
    summary="End the stay of one of your check-ins (within 12 h of its start)",
    tags=TAGS,
    problems=(409, 410),
    guards=RESIDENT,
)
async def post_checkout(checkin_id: str, ctx: Context, principal: Principal) -> wire.CheckoutOut:
    return await checkins.check_out(ctx, principal.person_id or 0, checkin_id, now_ms())


@get(
    "/v1/checkins/{checkin_id:str}",
    summary="One of your check-ins (last 13 h), every person judged again now",
    description=(
        "What a resumed phone page shows: the colour, latest test and verdict of each person as they "
        "are at this instant (evaluated_at), not as they were at the scan. 404 for an unknown id or "
        "someone else's check-in."
    ),
    tags=TAGS,
    guards=RESIDENT,
)
async def get_checkin(checkin_id: str, ctx: Context, principal: Principal) -> wire.CheckinOut:
    return await checkins.current(ctx, principal.person_id or 0, checkin_id, now_ms())


PART = Part(
    "checkins",
    routes=[post_checkin, post_batch, get_checkin, post_checkout],
    metrics=setup_metrics,
    on_startup=on_startup,
    on_shutdown=on_shutdown,
)
