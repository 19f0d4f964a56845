"""API keys: ``POST /v1/keys`` (admin), list and revoke."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import delete, get, post

from checkin.platform import auth
from checkin.platform.auth import ApiKeyRecord, Principal
from checkin.platform.context import Context
from checkin.platform.errors import BadInput
from checkin.platform.service import Part

ScopeCode = Annotated[
    str, msgspec.Meta(pattern=r"^(\d{6}|\d{9}|\d{12})?$", description="district, street or community code")
]


class KeyRequest(msgspec.Struct, forbid_unknown_fields=True):
    role: auth.Role
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    scope: ScopeCode = ""
    venue_id: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] | None = None


class KeyCreated(msgspec.Struct):
    key: str
    record: ApiKeyRecord


@post("/v1/keys", summary="Create an API key (admin)", tags=["access"])
async def create_key(data: KeyRequest, ctx: Context, principal: Principal) -> KeyCreated:
    principal.require("admin")
    if data.role == "device" and data.venue_id is None:
        raise BadInput("a device key must be bound to a venue_id")
    key, record = await auth.create_api_key(
        ctx, data.role, data.name, data.scope, data.venue_id, principal.key_id
    )
    return KeyCreated(key=key, record=record)


@get("/v1/keys", summary="List API keys (admin; secrets are never shown)", tags=["access"])
async def list_keys(ctx: Context, principal: Principal) -> list[ApiKeyRecord]:
    principal.require("admin")
    return await auth.list_api_keys(ctx)


@delete("/v1/keys/{key_id:str}", summary="Revoke an API key (admin)", tags=["access"])
async def revoke_key(key_id: str, ctx: Context, principal: Principal) -> None:
    principal.require("admin")
    await auth.revoke_api_key(ctx, key_id)


PART = Part("api-keys", routes=[create_key, list_keys, revoke_key])
