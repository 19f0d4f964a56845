"""The door screen of a venue that shows a rotating code (``code_mode: rotating``).

A tablet at the entrance opens ``/display/{venue_id}?key=<the venue's device key>`` once: the key
is checked, kept in an HttpOnly cookie scoped to this venue's display path, and the browser is sent
on to ``/display/{venue_id}`` so the key leaves the address bar and history. The page then asks
``/display/{venue_id}/code`` for the current step's code and QR (rendered on the server, no external
assets) and asks again when the step ends, so the screen always shows a code the check-in accepts
(docs/ARCHITECTURE.md, "Integrity of the record").
"""

from __future__ import annotations

import base64
import html
from string import Template
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State

from checkin.pages.phone import error_page
from checkin.platform import auth
from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import Conflict, DomainError, Forbidden, Gone, Unauthenticated
from checkin.platform.instants import now_ms
from checkin.platform.service import Part
from checkin.platform.static_assets import Asset, read_text
from venues import qr, registry
from venues.model import Venue

COOKIE = "checkin_display"
COOKIE_MAX_AGE_S = 400 * 86400
"""A tablet keeps its key for as long as browsers keep a cookie; revoking the key ends it."""
QR_MODULE_PX = 8
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


@get("/display/{venue_id:int}", summary="Full-screen rotating code for a tablet at the door", tags=["pages"])
async def display_page(
    venue_id: int, request: Request[Any, Any, State], ctx: Context, key: str | None = None
) -> Response[bytes]:
    try:
        _, venue = await _screen_of(ctx, venue_id, key or _key_of(request))
    except DomainError as error:
        return _refused_page(error)
    if key:  # keep the key in a cookie and take it out of the address bar
        cookie = (
            f"{COOKIE}={key}; Path={_cookie_path(venue_id)}; Max-Age={COOKIE_MAX_AGE_S}; "
            "HttpOnly; SameSite=Strict"
        )
        if request.url.scheme == "https":
            cookie += "; Secure"
        return Response(
            content=b"",
            status_code=303,
            headers={**_HEADERS, "Location": _cookie_path(venue_id), "Set-Cookie": cookie},
        )
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


@get("/static/display.js", include_in_schema=False)
async def display_js(v: str | None = None) -> Response[bytes]:
    return _JS.response(v)


@get("/static/display.css", include_in_schema=False)
async def display_css(v: str | None = None) -> Response[bytes]:
    return _CSS.response(v)


PART = Part("display-page", routes=[display_page, display_code, display_js, display_css])
