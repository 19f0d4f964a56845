"""API keys: ``POST /v1/keys`` (admin), list and revoke.

A venue's operator manages the device keys of the venues it manages (its own venue, for a key bound to
one), and nothing else: that is how an operator puts a rotating code on a tablet at the door without an
admin (docs/ARCHITECTURE.md, "The venue operator"). Every such creation and revocation, and every one
refused, is an audit row.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from checkin.platform import audit_trail, auth
from checkin.platform.auth import ApiKeyRecord, Principal, requires_role
from checkin.platform.client_address import client_address
from checkin.platform.context import Context
from checkin.platform.errors import BadInput, DomainError, Forbidden, NotFound
from checkin.platform.service import Part
from venues import registry
from venues.model import Venue

ADMIN_OR_OPERATOR = [requires_role("admin", "operator")]
"""The key routes admit admins and operators; what an operator may do is checked in the route."""

ScopeCode = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^([0-9]{6}|[0-9]{9}|[0-9]{12})?\Z", description="district, street or community code"
    ),
]


class KeyRequest(msgspec.Struct, forbid_unknown_fields=True):
    role: auth.Role
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    scope: ScopeCode = ""
    venue_id: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] | None = None

    # a device key is bound to a venue (400 otherwise)
    __json_schema_extra__ = {
        "if": {"properties": {"role": {"const": "device"}}, "required": ["role"]},
        "then": {"required": ["venue_id"], "properties": {"venue_id": {"type": "integer"}}},
    }


class KeyCreated(msgspec.Struct):
    key: str
    record: ApiKeyRecord


def _ip(request: Request[Any, Any, State], ctx: Context) -> str:
    return client_address(request.scope, ctx.settings.trusted_proxies)


async def _managed_venue(ctx: Context, principal: Principal, venue_id: int) -> Venue:
    """The venue an operator manages (a key bound to a venue: that venue; else one in its scope);
    403 for any other, existing or not."""
    refused = Forbidden(
        f"venue {venue_id} is not a venue this key manages"
        + ("" if principal.venue_id is None else f" (it is bound to venue {principal.venue_id})"),
        reason="not_your_venue",
    )
    if principal.venue_id is not None and principal.venue_id != venue_id:
        raise refused
    try:
        return await registry.get_venue(ctx, principal, venue_id)
    except (NotFound, Forbidden):
        raise refused from None


async def _refuse(ctx: Context, principal: Principal, action: str, params: dict[str, Any], ip: str) -> None:
    await audit_trail.record(ctx, principal, action, "refused", params, 0, ip)


@post(
    "/v1/keys",
    summary="Create an API key (admin; an operator: a device key of a venue it manages)",
    tags=["access"],
    problems={403: "not an admin, or an operator asking for another venue or another role (audited)"},
    guards=ADMIN_OR_OPERATOR,
)
async def create_key(
    data: KeyRequest, request: Request[Any, Any, State], ctx: Context, principal: Principal
) -> KeyCreated:
    if principal.role == "operator":
        return await _operator_creates(data, ctx, principal, _ip(request, ctx))
    if data.role == "device" and data.venue_id is None:
        raise BadInput("a device key must be bound to a venue_id")
    key, record = await auth.create_api_key(
        ctx, data.role, data.name, data.scope, data.venue_id, principal.key_id
    )
    return KeyCreated(key=key, record=record)


async def _operator_creates(data: KeyRequest, ctx: Context, principal: Principal, ip: str) -> KeyCreated:
    params: dict[str, Any] = {"role": data.role, "venue_id": data.venue_id}
    try:
        if data.role != "device":
            raise Forbidden(
                f"an operator key creates only device keys of its venue, not {data.role} keys",
                reason="operator_role",
            )
        if data.venue_id is None:
            raise BadInput("a device key must be bound to a venue_id")
        venue = await _managed_venue(ctx, principal, data.venue_id)
        if data.scope and not venue.community.startswith(data.scope):
            raise Forbidden(
                f"scope {data.scope} does not hold venue {venue.venue_id}", reason="not_your_venue"
            )
    except Forbidden:
        await _refuse(ctx, principal, "device_key_create", params, ip)
        raise
    key, record = await auth.create_api_key(
        ctx, "device", data.name, venue.community, venue.venue_id, principal.key_id
    )
    await audit_trail.record(
        ctx, principal, "device_key_create", "", {**params, "key_id": record.key_id}, 1, ip
    )
    return KeyCreated(key=key, record=record)


@get(
    "/v1/keys",
    summary="List API keys, secrets never shown (admin; an operator: the device keys of a venue it manages)",
    tags=["access"],
    guards=ADMIN_OR_OPERATOR,
)
async def list_keys(
    ctx: Context,
    principal: Principal,
    venue_id: Annotated[
        int | None, Parameter(ge=1, le=2**32 - 1, description="only the keys bound to this venue")
    ] = None,
) -> list[ApiKeyRecord]:
    if principal.role == "operator":
        if venue_id is None:
            raise Forbidden("an operator lists the device keys of a venue it manages: ?venue_id=<venue>")
        await _managed_venue(ctx, principal, venue_id)
        return [r for r in await auth.list_venue_api_keys(ctx, venue_id) if r.role == "device"]
    records = await auth.list_api_keys(ctx)
    return records if venue_id is None else [r for r in records if r.venue_id == venue_id]


@delete(
    "/v1/keys/{key_id:str}",
    summary="Revoke an API key (admin; an operator: a device key of a venue it manages)",
    tags=["access"],
    guards=ADMIN_OR_OPERATOR,
)
async def revoke_key(
    key_id: str, request: Request[Any, Any, State], ctx: Context, principal: Principal
) -> None:
    if principal.role != "operator":
        await auth.revoke_api_key(ctx, key_id)
        return
    ip = _ip(request, ctx)
    record = await auth.get_api_key(ctx, key_id)
    params: dict[str, Any] = {"key_id": key_id, "venue_id": None if record is None else record.venue_id}
    try:
        if record is None or record.role != "device" or record.venue_id is None:
            raise Forbidden(
                f"key {key_id} is not a device key of a venue this key manages", reason="not_your_venue"
            )
        await _managed_venue(ctx, principal, record.venue_id)
    except DomainError:
        await _refuse(ctx, principal, "device_key_revoke", params, ip)
        raise
    await auth.revoke_api_key(ctx, key_id)
    await audit_trail.record(ctx, principal, "device_key_revoke", "", params, 1, ip)


PART = Part("api-keys", routes=[create_key, list_keys, revoke_key])
