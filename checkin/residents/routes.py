"""Resident routes: one-time codes and registration (rate-limited per address), NDJSON bulk import
(admin), companions and guardians of the calling resident, revocation, the door pass, and the
health authority's phone re-binding and revocation."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import IO, Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream

from checkin import protection
from checkin.platform.auth import Principal, requires_role
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, PayloadTooLarge
from checkin.platform.instants import now_ms
from checkin.platform.metrics import Metrics
from checkin.platform.service import Part
from checkin.platform.sms import SmsGateway, gateway_for
from checkin.residents import companions, credentials, otp
from checkin.residents import service as residents

TAGS = ["residents"]
ADMIN = [requires_role("admin")]
RESIDENT = [requires_role("resident")]
HEALTH = [requires_role("health")]
REGISTRATIONS = "checkin_registrations_total"
IMPORT_LINES = "checkin_resident_import_lines_total"
OTP_SENT = "checkin_otp_sent_total"
IMPORT_CHUNK_LINES = 5_000
MAX_LINE_BYTES = 4_096
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
_encoder = msgspec.json.Encoder()


def setup_metrics(metrics: Metrics) -> None:
    metrics.counter(REGISTRATIONS, "Resident registrations, by outcome (created, existing, took_over)")
    metrics.counter(IMPORT_LINES, "Resident import lines, by outcome (created, updated, rejected)")
    metrics.counter(OTP_SENT, "One-time codes sent by SMS")
    metrics.counter(
        otp.REFUSALS,
        "Identity requests refused, by reason (otp_wrong, otp_expired, otp_locked, otp_too_soon, "
        "otp_daily_limit, phone_mismatch, consent_required, companion_limit, id_check_digit, "
        "rate_limited, ...)",
    )


def gateway_of(ctx: Context) -> SmsGateway:
    return ctx.shared("sms_gateway", lambda: gateway_for(ctx.settings))


async def on_shutdown(ctx: Context) -> None:
    await gateway_of(ctx).close()


async def limit_address(ctx: Context, request: Request[Any, Any, Any]) -> None:
    await protection.hit(
        ctx,
        [("registration", protection.client_ip(ctx, request.scope), ctx.settings.rate_register_per_min)],
        now_ms(),
    )


@post(
    "/v1/residents/otp",
    status_code=202,
    summary="Send a one-time code to a phone (anyone; limited per phone and per address)",
    tags=TAGS,
    problems=(429,),
)
async def request_code(data: otp.OtpRequest, ctx: Context, request: Request[Any, Any, Any]) -> otp.Challenge:
    await limit_address(ctx, request)
    challenge = await otp.send_code(ctx, gateway_of(ctx), data.phone)
    ctx.metrics.inc(OTP_SENT)
    return challenge


@post(
    "/v1/residents",
    status_code=201,
    summary="Register with the one-time code of your phone; an id number registered before answers "
    "200 only with the phone on its record (409 phone_mismatch otherwise), and a dependant takes "
    "their record over (201, took_over)",
    tags=TAGS,
    problems=(409, 410, 422, 429),
    responses={
        201: ResponseSpec(
            data_container=residents.Registered,
            description="Registered, or a dependant took their record over (took_over: every guardian "
            "link waits for their confirmation)",
            generate_examples=False,
        ),
        200: ResponseSpec(
            data_container=residents.Registered, description="Already registered", generate_examples=False
        ),
    },
)
async def register(
    data: residents.RegisterIn, ctx: Context, request: Request[Any, Any, Any]
) -> Response[bytes]:
    await limit_address(ctx, request)
    out = await residents.register(ctx, data)
    outcome = "created" if out.created else "took_over" if out.took_over else "existing"
    ctx.metrics.inc(REGISTRATIONS, outcome=outcome)
    return Response(
        content=_encoder.encode(out),
        status_code=201 if out.created or out.took_over else 200,
        media_type="application/json",
    )


async def _lines(request: Request[Any, Any, Any], limit: int) -> AsyncIterator[tuple[int, bytes]]:
    """(line number, bytes) of an NDJSON body read as a stream; an over-long line is yielded cut short
    (it then fails to decode and is reported) and the rest of it is skipped."""
    size = 0
    number = 0
    rest = b""
    skipping = False
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the import is larger than the limit of {limit} bytes")
        if skipping:
            pos = chunk.find(b"\n")
            if pos < 0:
                continue
            chunk = chunk[pos + 1 :]
            skipping = False
        data = rest + chunk if rest else chunk
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            number += 1
            yield number, data[start:end]
            start = end + 1
        rest = data[start:]
        if len(rest) > MAX_LINE_BYTES:
            number += 1
            yield number, rest[:MAX_LINE_BYTES]
            rest = b""
            skipping = True
    if rest.strip() and not skipping:
        yield number + 1, rest


def _spool_reader(spool: IO[bytes]) -> Any:
    def chunks() -> Any:
        try:
            spool.seek(0)
            while block := spool.read(256 * 1024):
                yield block
        finally:
            spool.close()

    return chunks()


@post(
    "/v1/residents/import",
    status_code=200,
    summary="Bulk registration from NDJSON (admin, streamed); one result line per input line",
    description=(
        'Body: one {"name", "phone", "id_number"} object a line. Good lines are imported (an id number '
        "seen before updates that person), bad lines are reported by line number. The answer is NDJSON: "
        '{"line", "person_id", "created", "token"} or {"line", "error"} per non-blank input line. '
        "?tokens=false leaves out the resident tokens."
    ),
    tags=TAGS,
    request_max_body_size=None,
    media_type="application/x-ndjson",
    raw_body=("application/x-ndjson", 'one {"name", "phone", "id_number"} object a line'),
    guards=ADMIN,
)
async def import_residents(request: Request[Any, Any, Any], ctx: Context, tokens: bool = True) -> Stream:
    limit = ctx.settings.max_import_bytes
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise PayloadTooLarge(f"the import is larger than the limit of {limit} bytes")
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
    counts = {"created": 0, "updated": 0, "rejected": 0}
    seen = 0
    try:
        batch: list[tuple[int, bytes]] = []

        async def flush() -> None:
            results = await residents.import_chunk(ctx, batch, with_tokens=tokens)
            for r in results:
                if r.error is not None:
                    counts["rejected"] += 1
                else:
                    counts["created" if r.created else "updated"] += 1
                spool.write(_encoder.encode(r))
                spool.write(b"\n")
            batch.clear()

        async for number, raw in _lines(request, limit):
            seen = number
            batch.append((number, raw))
            if len(batch) >= IMPORT_CHUNK_LINES:
                await flush()
        if batch:
            await flush()
    except BaseException:
        spool.close()
        raise
    for outcome, n in counts.items():
        if n:
            ctx.metrics.inc(IMPORT_LINES, n, outcome=outcome)
    if seen == 0:
        spool.close()
        raise BadInput("the request body is empty; send the NDJSON file as the body")
    return Stream(
        _spool_reader(spool),
        media_type="application/x-ndjson",
        headers={
            "X-Import-Created": str(counts["created"]),
            "X-Import-Updated": str(counts["updated"]),
            "X-Import-Rejected": str(counts["rejected"]),
        },
    )


@post(
    "/v1/residents/me/companions",
    status_code=201,
    summary="Add a family member (resident): without a code only a child under 16 or an elder of 70 "
    "or over not yet registered becomes your dependant; anyone else needs the code sent to a phone "
    "they hold (403 consent_required); limited per resident and per address",
    tags=TAGS,
    problems=(404, 409, 410, 422, 429),
    guards=RESIDENT,
)
async def add_companion(
    data: companions.CompanionIn, ctx: Context, principal: Principal, request: Request[Any, Any, Any]
) -> companions.Companion:
    return await companions.add_companion(
        ctx, principal.person_id or 0, data, protection.client_ip(ctx, request.scope)
    )


@get("/v1/residents/me/companions", summary="Your companions (resident)", tags=TAGS, guards=RESIDENT)
async def list_companions(ctx: Context, principal: Principal) -> list[companions.Companion]:
    return await companions.list_companions(ctx, principal.person_id or 0)


@delete(
    "/v1/residents/me/companions/{person_id:int}",
    summary="Remove a companion (resident)",
    tags=TAGS,
    guards=RESIDENT,
)
async def remove_companion(person_id: int, ctx: Context, principal: Principal) -> None:
    await companions.remove_companion(ctx, principal.person_id or 0, person_id)


@get(
    "/v1/residents/me/guardians",
    summary="Who may check you in (resident); pending: waits for your confirmation",
    tags=TAGS,
    guards=RESIDENT,
)
async def list_guardians(ctx: Context, principal: Principal) -> list[companions.Guardian]:
    return await companions.list_guardians(ctx, principal.person_id or 0)


@post(
    "/v1/residents/me/guardians/{person_id:int}/confirm",
    status_code=200,
    summary="Let a pending guardian check you in (resident)",
    tags=TAGS,
    guards=RESIDENT,
)
async def confirm_guardian(person_id: int, ctx: Context, principal: Principal) -> companions.Guardian:
    return await companions.confirm_guardian(ctx, principal.person_id or 0, person_id)


@delete(
    "/v1/residents/me/guardians/{person_id:int}",
    summary="Stop a person from checking you in, or refuse a pending guardian (resident)",
    tags=TAGS,
    guards=RESIDENT,
)
async def end_guardian(person_id: int, ctx: Context, principal: Principal) -> None:
    await companions.end_guardian(ctx, principal.person_id or 0, person_id)


@post(
    "/v1/residents/me/revoke",
    status_code=200,
    summary="Revoke every token of yours, this one included (resident)",
    tags=TAGS,
    guards=RESIDENT,
)
async def revoke_mine(ctx: Context, principal: Principal) -> credentials.Revoked:
    return await credentials.revoke(ctx, principal.person_id or 0)


@get(
    "/v1/residents/me/pass",
    summary="A door pass valid 120 s, for a door scanner (resident); single-use",
    description="With current= the pass the phone shows: the same pass while no door has read it and "
    "it has more than 20 s left, else a fresh one (the phone polls to replace a pass once read).",
    tags=TAGS,
    guards=RESIDENT,
)
async def door_pass(
    ctx: Context,
    principal: Principal,
    current: Annotated[str | None, Parameter(max_length=128)] = None,
) -> credentials.DoorPass:
    return await credentials.door_pass(ctx, principal, current)


@put(
    "/v1/residents/{person_id:int}/phone",
    summary="Re-bind a person's phone on record (health, admin; audited); every token of theirs ends",
    tags=TAGS,
    guards=HEALTH,
)
async def rebind_phone(
    person_id: int,
    data: credentials.RebindIn,
    ctx: Context,
    principal: Principal,
    request: Request[Any, Any, Any],
) -> credentials.Rebound:
    return await credentials.rebind_phone(
        ctx, principal, person_id, data, protection.client_ip(ctx, request.scope)
    )


@post(
    "/v1/residents/{person_id:int}/revoke",
    status_code=200,
    summary="Revoke every token of a person (health, admin; audited)",
    tags=TAGS,
    guards=HEALTH,
)
async def revoke_person(
    person_id: int, ctx: Context, principal: Principal, request: Request[Any, Any, Any]
) -> credentials.Revoked:
    return await credentials.revoke_and_record(
        ctx, principal, person_id, protection.client_ip(ctx, request.scope)
    )


PART = Part(
    "residents",
    routes=[
        request_code,
        register,
        import_residents,
        add_companion,
        list_companions,
        remove_companion,
        list_guardians,
        confirm_guardian,
        end_guardian,
        revoke_mine,
        door_pass,
        rebind_phone,
        revoke_person,
    ],
    metrics=setup_metrics,
    on_shutdown=on_shutdown,
)
