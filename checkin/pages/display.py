"""The door screen of a venue that shows a rotating code (``code_mode: rotating``).

A tablet at the entrance is set up once, with a one-time set-up link the operator page shows as a QR
code (``/display/{venue_id}/setup?code=...``, made with the venue's device key through
``POST /display/{venue_id}/setup-codes``, valid :data:`SETUP_TTL_S` and spent by the first tablet that
confirms it), or with ``/display/{venue_id}?key=<the venue's device key>``: either way the key is
checked, kept in an HttpOnly cookie scoped to this venue's display path, and the browser is sent on to
``/display/{venue_id}`` so nothing secret stays in the address bar and history. The set-up code is
stored only as its hash, beside the device key sealed with the code itself (docs/ARCHITECTURE.md, "The
venue operator"). The page then asks
``/display/{venue_id}/code`` for the current step's code and QR (rendered on the server, no external
assets) and asks again when the step ends, so the screen always shows a code the check-in accepts
(docs/ARCHITECTURE.md, "Integrity of the record").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
from string import Template
from typing import Annotated, Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, Parameter

from checkin.pages.phone import error_page
from checkin.platform import auth
from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import Conflict, DomainError, Forbidden, Gone, Unauthenticated
from checkin.platform.instants import format_ms, now_ms
from checkin.platform.openapi_doc import SECURITY
from checkin.platform.service import Part
from checkin.platform.static_assets import Asset, read_text
from venues import qr, registry
from venues.model import Venue

COOKIE = "checkin_display"
COOKIE_MAX_AGE_S = 400 * 86400
"""A tablet keeps its key for as long as browsers keep a cookie; revoking the key ends it."""
QR_MODULE_PX = 8
SETUP_TTL_S = 15 * 60
"""How long a set-up link works (it is spent by the first tablet that confirms it)."""
SETUP_PAGE_CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_JS = Asset("checkin.pages", "display.js")
_CSS = Asset("checkin.pages", "display.css")
_PAGE = Template(read_text("checkin.pages", "display.html"))


class DisplayCode(msgspec.Struct):
    venue_id: int
    venue_name: str
    url: str
    """What the QR code encodes: the check-in page of this step's code."""
    expires_at: str
    """When this code stops being the current one (scans of it are accepted one step longer)."""
    expires_in_ms: int
    step_s: int
    qr_svg: str
    """The QR code as a ``data:image/svg+xml`` URL."""


def _cookie_path(venue_id: int) -> str:
    return f"/display/{venue_id}"


async def _screen_of(ctx: Context, venue_id: int, key: str | None) -> tuple[Principal, Venue]:
    """The caller (the venue's device, or an admin) and the venue; raises a DomainError."""
    if not key:
        raise Unauthenticated(
            f"open this screen with the venue's device key: /display/{venue_id}?key=<device key>"
        )
    principal = await auth.authenticate(ctx, f"Bearer {key}")
    if principal.role != "admin":
        principal.require("device")
        if principal.venue_id != venue_id:
            raise Forbidden(f"this device key is not the key of venue {venue_id}")
    venue = await registry.load(ctx, venue_id)
    if not venue.active:
        raise Gone(f"venue {venue_id} is deactivated", reason="inactive")
    if venue.code_mode != "rotating":
        raise Conflict(
            f"venue {venue_id} uses a printed poster; switch it to a screen code first "
            '(PATCH /v1/venues/{id} {"code_mode": "rotating"})',
            reason="not_rotating",
        )
    return principal, venue


def _key_of(request: Request[Any, Any, State]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.cookies.get(COOKIE) or None


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=body.encode("utf-8"),
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={**_HEADERS, **(headers or {})},
    )


def _refused_page(error: DomainError) -> Response[bytes]:
    titles = {
        401: "需要设备密钥",
        403: "设备密钥不匹配",
        404: "场所不存在",
        409: "该场所未启用屏幕码",
        410: "场所已停用",
    }
    return error_page(
        error.status,
        titles.get(error.status, "无法显示场所码"),
        error.detail,
        "请联系场所管理员获取本场所的设备密钥。",
    )


@get(
    "/display/{venue_id:int}",
    summary="Full-screen rotating code for a tablet at the door",
    tags=["pages"],
    media_type=MediaType.HTML,
    security=SECURITY,
    problems=(409, 410),
    responses={303: ResponseSpec(None, description="?key= kept in the display's cookie; on to the page")},
)
async def display_page(
    venue_id: int, request: Request[Any, Any, State], ctx: Context, key: str | None = None
) -> Response[bytes]:
    try:
        _, venue = await _screen_of(ctx, venue_id, key or _key_of(request))
    except DomainError as error:
        return _refused_page(error)
    if key:  # keep the key in a cookie and take it out of the address bar
        return _keep_key(request, venue_id, key)
    esc = html.escape
    body = _PAGE.substitute(
        venue_id=str(venue.venue_id),
        venue_name=esc(venue.name),
        venue_address=esc(venue.address),
        step_s=str(ctx.settings.rotating_step_s),
        js_version=_JS.version,
        css_version=_CSS.version,
    )
    return _html(body)


@get(
    "/display/{venue_id:int}/code",
    summary="The screen's current code and QR (the venue's device key, header or display cookie)",
    tags=["pages"],
    security=SECURITY,
    problems=(409, 410),
)
async def display_code(venue_id: int, request: Request[Any, Any, State], ctx: Context) -> Response[bytes]:
    _, venue = await _screen_of(ctx, venue_id, _key_of(request))
    now = now_ms()
    code = registry.code_for(ctx, venue, now / 1000)
    svg = qr.svg(qr.encode(code.url), module=QR_MODULE_PX)
    step_ms = ctx.settings.rotating_step_s * 1000
    expires_ms = (now // step_ms + 1) * step_ms
    out = DisplayCode(
        venue_id=venue.venue_id,
        venue_name=venue.name,
        url=code.url,
        expires_at=code.expires_at or "",
        expires_in_ms=expires_ms - now,
        step_s=ctx.settings.rotating_step_s,
        qr_svg="data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode(),
    )
    return Response(content=msgspec.json.encode(out), media_type="application/json", headers=_HEADERS)


class SetupCode(msgspec.Struct):
    venue_id: int
    url: str
    """The one-time set-up link: open it on the tablet (the QR code carries it)."""
    expires_at: str
    expires_in_s: int
    qr_svg: str
    """The link as a QR code, a ``data:image/svg+xml`` URL."""


class SetupForm(msgspec.Struct):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _pad(code: str, n: int) -> bytes:
    out = b""
    block = 0
    while len(out) < n:
        out += hmac.new(code.encode(), b"display-setup:%d" % block, hashlib.sha256).digest()
        block += 1
    return out[:n]


def seal(code: str, key: str) -> str:
    """The device key sealed with the set-up code (a pad derived from the code, used once): what Redis
    holds is useless without the code, and only the code's hash names it."""
    raw = key.encode()
    return base64.urlsafe_b64encode(
        bytes(a ^ b for a, b in zip(raw, _pad(code, len(raw)), strict=True))
    ).decode()


def unseal(code: str, sealed: str) -> str:
    raw = base64.urlsafe_b64decode(sealed.encode())
    return bytes(a ^ b for a, b in zip(raw, _pad(code, len(raw)), strict=True)).decode()


class _Sealed(msgspec.Struct):
    venue_id: int
    key: str


def _bearer(request: Request[Any, Any, State]) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@post(
    "/display/{venue_id:int}/setup-codes",
    status_code=201,
    summary="A one-time set-up link that puts the door screen on a tablet (the venue's device key)",
    description=(
        "Authenticated with the venue's device key (Authorization: Bearer). The link opens a page on the "
        "tablet that, once confirmed, keeps that key in the display's cookie; it works once, within "
        f"{SETUP_TTL_S // 60} minutes. The venue must show its code on a screen (code_mode rotating)."
    ),
    tags=["pages"],
    security=[{"bearer": []}],
    problems={409: "the venue uses a printed poster", 410: "the venue has closed"},
)
async def create_setup_code(venue_id: int, request: Request[Any, Any, State], ctx: Context) -> SetupCode:
    key = _bearer(request)
    if key is None:
        raise Unauthenticated("ask with the venue's device key: Authorization: Bearer <device key>")
    if (await auth.authenticate(ctx, f"Bearer {key}")).role != "device":
        raise Forbidden("a set-up link carries the venue's device key: ask for it with that key")
    _, venue = await _screen_of(ctx, venue_id, key)
    code = secrets.token_urlsafe(18)
    sealed = msgspec.json.encode(_Sealed(venue_id=venue.venue_id, key=seal(code, key)))
    await ctx.redis.set(ctx.keys.display_setup(_code_hash(code)), sealed, ex=SETUP_TTL_S)
    url = f"{ctx.settings.public_base_url.rstrip('/')}/display/{venue_id}/setup?code={code}"
    svg = qr.svg(qr.encode(url), module=QR_MODULE_PX)
    return SetupCode(
        venue_id=venue_id,
        url=url,
        expires_at=format_ms(now_ms() + SETUP_TTL_S * 1000),
        expires_in_s=SETUP_TTL_S,
        qr_svg="data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode(),
    )


_SETUP_PAGE = Template(
    """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>设置门口屏幕 · Set up the door screen</title>
<link rel="stylesheet" href="/static/display.css?v=${css_version}">
</head>
<body>
<main id="setup" class="setup">
  <h1>把这台设备设为门口屏幕？</h1>
  <p class="lead">Use this device as the door screen of</p>
  <p id="setup-venue" class="venue">${venue_name}</p>
  <p class="muted">${venue_address}</p>
  <form method="post" action="/display/${venue_id}/setup">
    <input type="hidden" name="code" value="${code}">
    <button id="setup-confirm" type="submit">设为门口屏幕 · Use as door screen</button>
  </form>
  <p class="muted">设置码只能使用一次。This set-up link works once.</p>
</main>
</body>
</html>
"""
)


def _setup_refused(error: DomainError) -> Response[bytes]:
    if error.status == 410 and error.extra.get("reason") == "setup_spent":
        return error_page(
            410,
            "设置码已使用或已过期",
            error.detail,
            "请在场所码管理页重新生成设置码。Make a new set-up link on the operator page.",
        )
    return _refused_page(error)


def _spent(venue_id: int) -> Gone:
    return Gone(
        f"this set-up link of venue {venue_id} was used already or has expired (设置码已使用或已过期)",
        reason="setup_spent",
    )


async def _sealed(ctx: Context, venue_id: int, code: str, spend: bool) -> str:
    """The device key of a set-up code of this venue (spent when ``spend``); 410 when there is none."""
    name = ctx.keys.display_setup(_code_hash(code))
    raw = await (ctx.redis.getdel(name) if spend else ctx.redis.get(name))
    if not raw:
        raise _spent(venue_id)
    found = msgspec.json.decode(raw, type=_Sealed)
    if found.venue_id != venue_id:
        if spend:  # a link of another venue: not spent by this mistake
            await ctx.redis.set(name, raw, keepttl=True)
        raise _spent(venue_id)
    try:
        return unseal(code, found.key)
    except (ValueError, UnicodeDecodeError):
        raise _spent(venue_id) from None


@get(
    "/display/{venue_id:int}/setup",
    summary="The page a set-up link opens on the tablet: confirm to make it this venue's door screen",
    tags=["pages"],
    media_type=MediaType.HTML,
    problems={409: "the venue uses a printed poster", 410: "the link was used or has expired"},
)
async def setup_page(
    venue_id: int,
    ctx: Context,
    code: Annotated[str, Parameter(min_length=1, max_length=64, description="the one-time set-up code")],
) -> Response[bytes]:
    try:
        key = await _sealed(ctx, venue_id, code, spend=False)
        _, venue = await _screen_of(ctx, venue_id, key)
    except DomainError as error:
        return _setup_refused(error)
    esc = html.escape
    body = _SETUP_PAGE.substitute(
        venue_id=str(venue.venue_id),
        venue_name=esc(venue.name),
        venue_address=esc(venue.address),
        code=esc(code),
        css_version=_CSS.version,
    )
    return _html(body, headers={"Content-Security-Policy": SETUP_PAGE_CSP})


@post(
    "/display/{venue_id:int}/setup",
    status_code=303,
    summary="Confirm a set-up link: the tablet keeps the venue's device key and shows the door screen",
    tags=["pages"],
    media_type=MediaType.HTML,
    problems={409: "the venue uses a printed poster", 410: "the link was used or has expired"},
)
async def redeem_setup(
    venue_id: int,
    request: Request[Any, Any, State],
    ctx: Context,
    data: Annotated[SetupForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[bytes]:
    try:
        key = await _sealed(ctx, venue_id, data.code, spend=True)
        await _screen_of(ctx, venue_id, key)
    except DomainError as error:
        return _setup_refused(error)
    return _keep_key(request, venue_id, key)


def _keep_key(request: Request[Any, Any, State], venue_id: int, key: str) -> Response[bytes]:
    """Keep the key in the display's cookie and send the browser on to the screen."""
    cookie = f"{COOKIE}={key}; Path={_cookie_path(venue_id)}; Max-Age={COOKIE_MAX_AGE_S}; "
    cookie += "HttpOnly; SameSite=Strict"
    if request.url.scheme == "https":
        cookie += "; Secure"
    return Response(
        content=b"",
        status_code=303,
        headers={**_HEADERS, "Location": _cookie_path(venue_id), "Set-Cookie": cookie},
    )


@get("/static/display.js", include_in_schema=False)
async def display_js(v: str | None = None) -> Response[bytes]:
    return _JS.response(v)


@get("/static/display.css", include_in_schema=False)
async def display_css(v: str | None = None) -> Response[bytes]:
    return _CSS.response(v)


PART = Part(
    "display-page",
    routes=[display_page, display_code, create_setup_code, setup_page, redeem_setup, display_js, display_css],
)
