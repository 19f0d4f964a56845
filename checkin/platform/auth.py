"""Who is calling: the admin key, API keys (stored hashed) and resident tokens.

A route states the roles it admits with a guard, ``guards=[requires_role("health")]``; the handler
takes the ``principal`` dependency when it needs the caller (the guard and the dependency share one
authentication per request). API-key lookups are cached in process for a few seconds (revocation latency).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler

from checkin.platform import resident_tokens
from checkin.platform.context import Context
from checkin.platform.errors import Forbidden, NotFound, Unauthenticated
from checkin.platform.instants import now_rfc3339

Role = Literal["admin", "operator", "device", "health", "tracer", "analyst"]
ROLES: tuple[str, ...] = ("admin", "operator", "device", "health", "tracer", "analyst")
KEY_PREFIX = "ck_"
_CACHE_TTL_S = 5.0


class Principal(msgspec.Struct, frozen=True):
    role: str
    """An API-key role, or ``resident``."""
    key_id: str = ""
    """Audit name of the caller: key id, ``admin``, or ``resident:<id>``."""
    scope: str = ""
    """Jurisdiction prefix (district/street/community code); empty = whole city."""
    venue_id: int | None = None
    """Devices and operators may be bound to one venue."""
    person_id: int | None = None
    token_version: int = 0
    """A resident token's version (every token older than the person's current one is refused)."""

    def require(self, *roles: str) -> Principal:
        """Allow these roles; the admin passes every non-resident check."""
        if self.role in roles or (self.role == "admin" and roles != ("resident",)):
            return self
        raise Forbidden(f"this route needs role {' or '.join(roles)}; the key has role {self.role}")

    def in_scope(self, community: str) -> bool:
        return not self.scope or community.startswith(self.scope)


class ApiKeyRecord(msgspec.Struct):
    key_id: str
    role: str
    name: str = ""
    scope: str = ""
    venue_id: int | None = None
    created_at: str = ""
    created_by: str = ""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


_cache: dict[str, tuple[float, Principal | None]] = {}


async def create_api_key(
    ctx: Context, role: str, name: str, scope: str, venue_id: int | None, created_by: str
) -> tuple[str, ApiKeyRecord]:
    key = new_key()
    digest = hash_key(key)
    record = ApiKeyRecord(
        key_id=digest[:12],
        role=role,
        name=name,
        scope=scope,
        venue_id=venue_id,
        created_at=now_rfc3339(),
        created_by=created_by,
    )
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.set(ctx.keys.api_key(digest), msgspec.json.encode(record))
    pipe.hset(ctx.keys.api_key_index(), record.key_id, digest)
    if venue_id is not None:
        pipe.sadd(ctx.keys.api_keys_of_venue(venue_id), record.key_id)
    await pipe.execute()
    return key, record


async def get_api_key(ctx: Context, key_id: str) -> ApiKeyRecord | None:
    digest = await ctx.redis.hget(ctx.keys.api_key_index(), key_id)
    raw = await ctx.redis.get(ctx.keys.api_key(digest.decode())) if digest is not None else None
    return msgspec.json.decode(raw, type=ApiKeyRecord) if raw else None


async def list_venue_api_keys(ctx: Context, venue_id: int) -> list[ApiKeyRecord]:
    """The keys bound to one venue (its door devices and screens, operator keys), oldest first."""
    ids = sorted(x.decode() for x in await ctx.redis.smembers(ctx.keys.api_keys_of_venue(venue_id)))
    if not ids:
        return []
    digests = await ctx.redis.hmget(ctx.keys.api_key_index(), ids)
    pipe = ctx.redis.pipeline(transaction=False)
    for digest in digests:
        if digest is not None:
            pipe.get(ctx.keys.api_key(digest.decode()))
    raws = await pipe.execute() if any(digests) else []
    out = [msgspec.json.decode(raw, type=ApiKeyRecord) for raw in raws if raw]
    return sorted((r for r in out if r.venue_id == venue_id), key=lambda r: r.created_at)


async def list_api_keys(ctx: Context) -> list[ApiKeyRecord]:
    index: dict[bytes, bytes] = await ctx.redis.hgetall(ctx.keys.api_key_index())
    out = []
    for digest in index.values():
        raw = await ctx.redis.get(ctx.keys.api_key(digest.decode()))
        if raw:
            out.append(msgspec.json.decode(raw, type=ApiKeyRecord))
    return sorted(out, key=lambda r: r.created_at)


async def revoke_api_key(ctx: Context, key_id: str) -> None:
    digest = await ctx.redis.hget(ctx.keys.api_key_index(), key_id)
    if digest is None:
        raise NotFound(f"no API key {key_id}")
    record = await get_api_key(ctx, key_id)
    await ctx.redis.delete(ctx.keys.api_key(digest.decode()))
    await ctx.redis.hdel(ctx.keys.api_key_index(), key_id)
    if record is not None and record.venue_id is not None:
        await ctx.redis.srem(ctx.keys.api_keys_of_venue(record.venue_id), key_id)
    _cache.clear()


def verified_tokens(ctx: Context) -> resident_tokens.VerifiedTokens:
    return ctx.shared("verified_tokens", lambda: resident_tokens.VerifiedTokens(ctx.keyring))


TOKEN_VERSION_FIELD = "tv"  # noqa: S105 - a hash field name, not a secret
"""Field of the person's hot state that holds their current token version."""


async def current_token_version(ctx: Context, person_id: int) -> int:
    raw = await ctx.redis.hget(ctx.keys.pstate_copies(person_id)[0], TOKEN_VERSION_FIELD)
    return int(raw or 0)


async def check_token_version(ctx: Context, principal: Principal) -> None:
    """401 for a resident token older than the person's current version (revoked)."""
    if principal.role != "resident" or principal.person_id is None:
        return
    if principal.token_version < await current_token_version(ctx, principal.person_id):
        raise revoked()


def revoked() -> Unauthenticated:
    return Unauthenticated(
        "this token was revoked; register again on this phone (a code is sent to your number)",
        reason="token_revoked",
    )


async def authenticate(ctx: Context, authorization: str | None, *, check_version: bool = True) -> Principal:
    """The caller of a request. A resident token's version is checked against Redis unless the
    caller checks it itself (the check-in script does, in the call it makes anyway)."""
    if not authorization:
        raise Unauthenticated("missing Authorization: Bearer <token>")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("expected Authorization: Bearer <token>")
    if token.startswith((resident_tokens.PREFIX, resident_tokens.LEGACY_PREFIX)):
        claims = verified_tokens(ctx).verify(token)
        resident = Principal(
            role="resident",
            key_id=f"resident:{claims.person_id}",
            person_id=claims.person_id,
            token_version=claims.version,
        )
        if check_version:
            await check_token_version(ctx, resident)
        return resident
    if hmac.compare_digest(token.encode(), ctx.settings.admin_key.encode()):
        return Principal(role="admin", key_id="admin")
    digest = hash_key(token)
    now = time.monotonic()
    cached = _cache.get(digest)
    if cached is not None and cached[0] > now:
        principal = cached[1]
    else:
        raw = await ctx.redis.get(ctx.keys.api_key(digest))
        principal = None
        if raw:
            rec = msgspec.json.decode(raw, type=ApiKeyRecord)
            principal = Principal(role=rec.role, key_id=rec.key_id, scope=rec.scope, venue_id=rec.venue_id)
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[digest] = (now + _CACHE_TTL_S, principal)
    if principal is None:
        raise Unauthenticated("unknown or revoked API key")
    return principal


_PRINCIPAL = "checkin.principal"
"""Where a request keeps its authenticated caller (the connection's state)."""
_PRINCIPAL_UNCHECKED = "checkin.principal.unchecked"
"""The same, for a resident token whose version the route checks itself."""


async def request_principal(
    connection: ASGIConnection[Any, Any, Any, Any], *, check_version: bool = True
) -> Principal:
    """The authenticated caller of this request, authenticated once and kept for the request.
    ``check_version=False`` as in :func:`authenticate`, for a route that checks it itself."""
    state = connection.state
    for key in (_PRINCIPAL,) if check_version else (_PRINCIPAL, _PRINCIPAL_UNCHECKED):
        cached = state.get(key)
        if isinstance(cached, Principal):
            return cached
    ctx: Context = connection.app.state["ctx"]
    principal = await authenticate(ctx, connection.headers.get("authorization"), check_version=check_version)
    state[_PRINCIPAL if check_version else _PRINCIPAL_UNCHECKED] = principal
    return principal


async def provide_principal(request: Request[Any, Any, State]) -> Principal:
    """Litestar dependency: the authenticated caller of this request."""
    return await request_principal(request)


@dataclass(frozen=True)
class RoleGuard:
    """A route guard admitting some roles; see :func:`requires_role`."""

    roles: tuple[str, ...]
    check_version: bool = True

    async def __call__(self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        (await request_principal(connection, check_version=self.check_version)).require(*self.roles)


def requires_role(*roles: str, check_version: bool = True) -> RoleGuard:
    """A route guard admitting these roles (the admin passes every non-resident guard).

    Refuses as ``Principal.require`` does: 401 for a missing, unknown or revoked credential, 403
    (problem+json ``forbidden``) for a caller of another role. It runs before the body is read.
    ``check_version=False`` leaves a resident token's version to the route (see :func:`authenticate`);
    the route then reads its caller with ``request_principal(request, check_version=False)``.
    A guarded route is documented as needing the bearer scheme (:mod:`checkin.platform.openapi_doc`).
    """
    if not roles:
        raise ValueError("requires_role needs at least one role")
    return RoleGuard(roles, check_version)
