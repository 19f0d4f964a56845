"""The phone check-in page: what a resident's camera opens from a venue QR code.

``GET /v/{token}`` verifies the venue code on the server (:func:`venues.registry.check_code`: HMAC,
a screen code's time step, then the venue record in Redis) and renders either the check-in page
with the venue name or a zh-CN error page with the matching status (tampered 400, unknown 404;
410 for an inactive venue, a superseded poster, an expired screen code, or the poster of a venue
that shows its code on a screen). The page itself is static HTML; registration,
check-in and check-out run in ``/static/phone.js`` against the JSON API. Values
the script needs (code, venue, time zone) travel in escaped ``data-`` attributes,
so the Content-Security-Policy allows no inline script or style at all.
"""

from __future__ import annotations

import html
import logging
from importlib import resources
from string import Template

from litestar import Response, get
from redis.exceptions import RedisError

from checkin.platform.context import Context
from checkin.platform.errors import Gone, NotFound
from checkin.platform.metrics import Metrics
from checkin.platform.service import Part
from checkin.platform.static_assets import Asset
from venues import codes, registry
from venues.model import Venue

log = logging.getLogger("checkin.pages.phone")

PAGE_VIEWS = "checkin_phone_page_views_total"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "geolocation=(self), camera=(), microphone=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MAX_TOKEN_CHARS = 256
"""Longer path segments are refused before any decoding."""


def _read_static(name: str) -> str:
    return (resources.files("checkin.pages") / "static" / name).read_text(encoding="utf-8")


_JS = Asset("checkin.pages", "phone.js")
_CSS = Asset("checkin.pages", "phone.css")
_PAGE = Template(_read_static("phone.html"))
_ERROR_PAGE = Template(
    """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>${title}</title>
<link rel="stylesheet" href="/static/phone.css?v=${css_version}">
</head>
<body>
<main class="shell" id="error-page" data-status="${status}">
  <header class="topbar"><span class="brand">场所码登记</span></header>
  <section class="card error-card">
    <div class="error-icon" aria-hidden="true">!</div>
    <h1 id="error-title">${title}</h1>
    <p id="error-message">${message}</p>
    <p class="muted">${hint}</p>
  </section>
</main>
</body>
</html>
"""
)


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**_SECURITY_HEADERS, "Cache-Control": "no-store", **(extra or {})}


def _html(body: str, status: int, extra_headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=body.encode("utf-8"),
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers=_headers(extra_headers),
    )


def error_page(
    status: int, title: str, message: str, hint: str, headers: dict[str, str] | None = None
) -> Response[bytes]:
    body = _ERROR_PAGE.substitute(
        title=html.escape(title),
        message=html.escape(message),
        hint=html.escape(hint),
        status=str(status),
        css_version=_CSS.version,
    )
    return _html(body, status, headers)


def render_checkin_page(venue: Venue, token: str, tz: str) -> str:
    """The check-in page for one verified venue code; every value is HTML-escaped."""
    esc = html.escape
    return _PAGE.substitute(
        venue_name=esc(venue.name),
        venue_address=esc(venue.address),
        venue_id=str(venue.venue_id),
        test_hours=str(venue.requires_negative_test_hours or ""),
        dwell_minutes=str(venue.dwell_minutes),
        code=esc(token),
        tz=esc(tz),
        js_version=_JS.version,
        css_version=_CSS.version,
    )


_SCAN_AGAIN = "请重新扫描场所张贴的场所码；如仍无法登记，请联系场所工作人员。"
SCAN_SCREEN_AGAIN = "请重新扫描屏幕上的场所码"


def _gone_page(reason: str, venue_name: str) -> Response[bytes]:
    """The 410 page of a refused code, by the registry's reason."""
    at = f"场所“{venue_name}”" if venue_name else "该场所"
    if reason == "code_expired":
        return error_page(410, "场所码已过期", "您扫描的是屏幕上已过期的场所码。", SCAN_SCREEN_AGAIN + "。")
    if reason == "static_code":
        return error_page(
            410, "请扫描屏幕上的场所码", f"{at}使用入口屏幕上的动态场所码登记。", SCAN_SCREEN_AGAIN + "。"
        )
    if reason == "old_version":
        return error_page(410, "场所码已更换", f"{at}已更换场所码，此码已失效。", "请向场所索取新的场所码。")
    return error_page(410, "场所码已停用", f"{at}的场所码已停用。", "请向场所索取新的场所码。")


def setup_metrics(metrics: Metrics) -> None:
    metrics.counter(
        PAGE_VIEWS, "Phone check-in page loads by result (ok, tampered, unknown, gone, unavailable)"
    )


@get("/v/{token:str}", summary="Phone check-in page for a venue code", tags=["pages"])
async def checkin_page(token: str, ctx: Context) -> Response[bytes]:
    if len(token) > MAX_TOKEN_CHARS:
        ctx.metrics.inc(PAGE_VIEWS, result="tampered")
        return error_page(400, "场所码无效", "这不是有效的场所码。", _SCAN_AGAIN)
    try:
        venue = await registry.check_code(ctx, token)
    except codes.InvalidCode:
        ctx.metrics.inc(PAGE_VIEWS, result="tampered")
        return error_page(400, "场所码无效", "该场所码无法通过校验，可能已被篡改或损坏。", _SCAN_AGAIN)
    except NotFound:
        ctx.metrics.inc(PAGE_VIEWS, result="unknown")
        return error_page(404, "场所不存在", "未找到该场所码对应的场所。", _SCAN_AGAIN)
    except Gone as gone:
        ctx.metrics.inc(PAGE_VIEWS, result="gone")
        return _gone_page(str(gone.extra.get("reason", "")), str(gone.extra.get("venue_name", "")))
    except (RedisError, OSError) as exc:
        log.warning("venue lookup for the phone page failed: %s", exc)
        ctx.metrics.inc(PAGE_VIEWS, result="unavailable")
        return error_page(
            503,
            "服务繁忙",
            "登记服务暂时不可用。",
            "请稍后刷新本页重试。",
            headers={"Retry-After": "5"},
        )
    ctx.metrics.inc(PAGE_VIEWS, result="ok")
    return _html(render_checkin_page(venue, token, ctx.settings.tz), 200)


@get("/static/phone.js", summary="Script of the phone check-in page", tags=["pages"], include_in_schema=False)
async def phone_js(v: str | None = None) -> Response[bytes]:
    return _JS.response(v)


@get(
    "/static/phone.css",
    summary="Style sheet of the phone check-in page",
    tags=["pages"],
    include_in_schema=False,
)
async def phone_css(v: str | None = None) -> Response[bytes]:
    return _CSS.response(v)


PART = Part("phone-page", routes=[checkin_page, phone_js, phone_css], metrics=setup_metrics)
