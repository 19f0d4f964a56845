"""The phone check-in page: what a resident's camera opens from a venue QR code.

``GET /v/{token}`` verifies the venue code on the server (:func:`venues.scanned_code.check_code`: HMAC,
a screen code's time step, then the venue record in Redis) and renders either the check-in page
with the venue name or an error page with the matching status (tampered 400, unknown 404;
410 for an inactive venue, a superseded poster, an expired screen code, or the poster of a venue
that shows its code on a screen). The page itself is static HTML; registration, check-in, the door
screen, notices, own visits, open stays and the offline queue run in the page's ES modules
(``static/phone/*.js``, served as ``/static/phone/<version>/<name>``, entry ``main.js``) against the
JSON API. Values the script needs (code, venue, rules, time zone, language) travel in escaped
``data-`` attributes, so the Content-Security-Policy allows no inline script or style at all.

``GET /me`` is the same page without a venue code: the resident's home, their health code and their
family's (``GET /v1/residents/me``). ``GET /sw.js`` is the page's service worker: it caches that
shell on the first visit and answers a poster opened without network with it, so the scan is queued
on the phone (docs/ARCHITECTURE.md, "The phone page").

A screen's rotating code is rendered with a seen proof (:func:`venues.codes.sign_seen`, made only
while the code is current): a first-time visitor who registers before checking in sends it with the
scan, and the check-in takes the code for ``CHECKIN_ROTATING_REGISTER_S`` after it was seen.

Language: zh-CN by default, English on request. The page's remembered choice (a cookie the script
writes beside its localStorage entry) wins, else the first of zh/en in ``Accept-Language``; the
error pages are rendered in that language here, the check-in page is translated by its script.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
from importlib import resources
from string import Template
from typing import Annotated, Any, Literal

from litestar import MediaType, Request, Response, get
from litestar.params import Parameter
from redis.exceptions import RedisError

from checkin.platform.context import Context
from checkin.platform.errors import Gone, NotFound
from checkin.platform.instants import now_ms
from checkin.platform.metrics import Metrics
from checkin.platform.openapi_doc import VENUE_CODE_FORMAT
from checkin.platform.service import Part
from checkin.platform.static_assets import Asset, Modules
from venues import codes, scanned_code
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


_JS = Modules("checkin.pages", "phone", "/static/phone")
_CSS = Asset("checkin.pages", "phone.css")
_PRELOADS = "\n".join(
    f'<link rel="modulepreload" href="{url}">' for url in _JS.urls() if not url.endswith("/main.js")
)
"""Every module the entry imports, asked for at once (no waterfall of imports on a slow network)."""
_PAGE = Template(_read_static("phone.html"))
_SW = (
    _read_static("sw.js")
    .replace("__MODULES__", json.dumps(_JS.urls()))
    .replace("__CSS_VERSION__", _CSS.version)
    .replace(
        "__VERSION__",
        hashlib.sha256(f"{_JS.version}{_CSS.version}{_read_static('phone.html')}".encode()).hexdigest()[:12],
    )
    .encode("utf-8")
)
SW_CSP = "default-src 'self'"
_ERROR_PAGE = Template(
    """<!doctype html>
<html lang="${lang}">
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
  <header class="topbar"><span class="brand">${brand}</span></header>
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


Lang = Literal["zh-CN", "en"]
LANG_COOKIE = "venue-checkin.lang"
"""Written by the page's script when the resident picks a language (beside its localStorage entry)."""


def pick_lang(cookie: str | None, accept_language: str | None) -> Lang:
    """The page's language: the remembered choice, else the first of zh/en the browser prefers."""
    if cookie in ("zh-CN", "en"):
        return "en" if cookie == "en" else "zh-CN"
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "")[:512].split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in ("zh", "en") and q > 0:
            ranked.append((-q, index, primary))
    if not ranked:
        return "zh-CN"
    return "en" if min(ranked)[2] == "en" else "zh-CN"


def lang_of(request: Request[Any, Any, Any]) -> Lang:
    return pick_lang(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **_SECURITY_HEADERS,
        "Cache-Control": "no-store",
        "Vary": "Accept-Language, Cookie",
        **(extra or {}),
    }


def _html(body: str, status: int, extra_headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        content=body.encode("utf-8"),
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers=_headers(extra_headers),
    )


_TEXT: dict[Lang, dict[str, str]] = {
    "zh-CN": {
        "brand": "场所码登记",
        "scan_again": "请重新扫描场所张贴的场所码；如仍无法登记，请联系场所工作人员。",
        "scan_screen": "请重新扫描屏幕上的场所码。",
        "ask_new": "请向场所索取新的场所码。",
        "at_venue": "场所“{name}”",
        "this_venue": "该场所",
        "invalid.title": "场所码无效",
        "invalid.long": "这不是有效的场所码。",
        "invalid.mac": "该场所码无法通过校验，可能已被篡改或损坏。",
        "unknown.title": "场所不存在",
        "unknown.message": "未找到该场所码对应的场所。",
        "code_expired.title": "场所码已过期",
        "code_expired.message": "您扫描的是屏幕上已过期的场所码。",
        "static_code.title": "请扫描屏幕上的场所码",
        "static_code.message": "{at}使用入口屏幕上的动态场所码登记。",
        "old_version.title": "场所码已更换",
        "old_version.message": "{at}已更换场所码，此码已失效。",
        "inactive.title": "该场所已停用",
        "inactive.message": "{at}已停用{on}，不再登记。",
        "inactive.on": "（{date} 起）",
        "busy.title": "服务繁忙",
        "busy.message": "登记服务暂时不可用。",
        "busy.hint": "请稍后刷新本页重试。",
    },
    "en": {
        "brand": "Venue check-in",
        "scan_again": "Scan the venue's posted code again; if it still fails, ask the venue's staff.",
        "scan_screen": "Scan the code on the venue's screen again.",
        "ask_new": "Ask the venue for its new code.",
        "at_venue": "The venue “{name}”",
        "this_venue": "This venue",
        "invalid.title": "Invalid venue code",
        "invalid.long": "This is not a valid venue code.",
        "invalid.mac": "This venue code failed its check: it may have been altered or damaged.",
        "unknown.title": "Venue not found",
        "unknown.message": "No venue belongs to this code.",
        "code_expired.title": "Venue code expired",
        "code_expired.message": "The code you scanned on the screen has expired.",
        "static_code.title": "Scan the code on the screen",
        "static_code.message": "{at} checks visitors in with the changing code on its entrance screen.",
        "old_version.title": "Venue code replaced",
        "old_version.message": "{at} has a new code; this one is no longer valid.",
        "inactive.title": "This venue has closed",
        "inactive.message": "{at} has closed{on} and no longer checks visitors in.",
        "inactive.on": " (on {date})",
        "busy.title": "Service busy",
        "busy.message": "Check-in is unavailable for the moment.",
        "busy.hint": "Reload this page in a little while.",
    },
}


def error_page(
    status: int,
    title: str,
    message: str,
    hint: str,
    headers: dict[str, str] | None = None,
    lang: Lang = "zh-CN",
) -> Response[bytes]:
    body = _ERROR_PAGE.substitute(
        title=html.escape(title),
        message=html.escape(message),
        hint=html.escape(hint),
        status=str(status),
        css_version=_CSS.version,
        lang=lang,
        brand=html.escape(_TEXT[lang]["brand"]),
    )
    return _html(body, status, headers)


def render_checkin_page(venue: Venue, token: str, tz: str, lang: Lang = "zh-CN", code_proof: str = "") -> str:
    """The check-in page for one verified venue code; every value is HTML-escaped. ``code_proof``: the
    seen proof of a screen's code."""
    esc = html.escape
    return _PAGE.substitute(
        page="poster",
        venue_hidden="",
        code_proof=esc(code_proof),
        venue_name=esc(venue.name),
        venue_address=esc(venue.address),
        venue_id=str(venue.venue_id),
        test_hours=str(venue.requires_negative_test_hours or ""),
        dwell_minutes=str(venue.dwell_minutes),
        code=esc(token),
        tz=esc(tz),
        lang=lang,
        js_version=_JS.version,
        module_preloads=_PRELOADS,
        css_version=_CSS.version,
    )


def render_home_page(tz: str, lang: Lang = "zh-CN") -> str:
    """The page without a venue code: the resident's home (and the shell the service worker keeps)."""
    return _PAGE.substitute(
        page="home",
        venue_hidden="hidden",
        code_proof="",
        venue_name="",
        venue_address="",
        venue_id="",
        test_hours="",
        dwell_minutes="",
        code="",
        tz=html.escape(tz),
        lang=lang,
        js_version=_JS.version,
        module_preloads=_PRELOADS,
        css_version=_CSS.version,
    )


def _gone_page(reason: str, venue_name: str, lang: Lang, closed_on: str = "") -> Response[bytes]:
    """The 410 page of a refused code, by the registry's reason (a closed venue's with the date)."""
    t = _TEXT[lang]
    at = t["at_venue"].format(name=venue_name) if venue_name else t["this_venue"]
    kind = reason if reason in ("code_expired", "static_code", "old_version") else "inactive"
    hint = t["scan_screen"] if kind in ("code_expired", "static_code") else t["ask_new"]
    if kind == "inactive":
        hint = ""
    on = t["inactive.on"].format(date=closed_on) if closed_on else ""
    message = t[f"{kind}.message"].format(at=at, on=on)
    return error_page(410, t[f"{kind}.title"], message, hint, lang=lang)


def setup_metrics(metrics: Metrics) -> None:
    metrics.counter(
        PAGE_VIEWS,
        "Phone page loads by result (ok, tampered, unknown, gone, unavailable; home: without a code)",
    )


@get(
    "/v/{token:str}",
    summary="Phone check-in page for a venue code",
    tags=["pages"],
    media_type=MediaType.HTML,
    problems=(410,),
)
async def checkin_page(
    token: Annotated[
        str, Parameter(schema_extra={"pattern": codes.TOKEN_PATTERN, "format": VENUE_CODE_FORMAT})
    ],
    ctx: Context,
    request: Request[Any, Any, Any],
) -> Response[bytes]:
    lang = lang_of(request)
    t = _TEXT[lang]
    if len(token) > MAX_TOKEN_CHARS:
        ctx.metrics.inc(PAGE_VIEWS, result="tampered")
        return error_page(400, t["invalid.title"], t["invalid.long"], t["scan_again"], lang=lang)
    try:
        venue = await scanned_code.check_code(ctx, token)
    except codes.InvalidCode:
        ctx.metrics.inc(PAGE_VIEWS, result="tampered")
        return error_page(400, t["invalid.title"], t["invalid.mac"], t["scan_again"], lang=lang)
    except NotFound:
        ctx.metrics.inc(PAGE_VIEWS, result="unknown")
        return error_page(404, t["unknown.title"], t["unknown.message"], t["scan_again"], lang=lang)
    except Gone as gone:
        ctx.metrics.inc(PAGE_VIEWS, result="gone")
        reason, name = str(gone.extra.get("reason", "")), str(gone.extra.get("venue_name", ""))
        return _gone_page(reason, name, lang, str(gone.extra.get("closed_on", "")))
    except (RedisError, OSError) as exc:
        log.warning("venue lookup for the phone page failed: %s", exc)
        ctx.metrics.inc(PAGE_VIEWS, result="unavailable")
        return error_page(
            503, t["busy.title"], t["busy.message"], t["busy.hint"], headers={"Retry-After": "5"}, lang=lang
        )
    ctx.metrics.inc(PAGE_VIEWS, result="ok")
    proof = ""
    if len(token) == codes.ROTATING_TOKEN_CHARS:  # a screen's code, current now (check_code said so)
        proof = codes.sign_seen(ctx.keyring, token, now_ms())
    return _html(render_checkin_page(venue, token, ctx.settings.tz, lang, proof), 200)


@get(
    "/me",
    summary="The resident's home on the phone: their health code and their family's",
    tags=["pages"],
    media_type="text/html",
)
async def home_page(ctx: Context, request: Request[Any, Any, Any]) -> Response[bytes]:
    ctx.metrics.inc(PAGE_VIEWS, result="home")
    return _html(render_home_page(ctx.settings.tz, lang_of(request)), 200)


@get("/sw.js", summary="Service worker of the phone page", tags=["pages"], include_in_schema=False)
async def service_worker() -> Response[bytes]:
    return Response(
        content=_SW,
        media_type="text/javascript; charset=utf-8",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": SW_CSP,
            "X-Content-Type-Options": "nosniff",
        },
    )


@get(
    "/static/phone/{version:str}/{name:str}",
    summary="A script module of the phone check-in page",
    tags=["pages"],
    include_in_schema=False,
)
async def phone_js(version: str, name: str) -> Response[bytes]:
    return _JS.response(version, name)


@get(
    "/static/phone.css",
    summary="Style sheet of the phone check-in page",
    tags=["pages"],
    include_in_schema=False,
)
async def phone_css(v: str | None = None) -> Response[bytes]:
    return _CSS.response(v)


PART = Part(
    "phone-page", routes=[checkin_page, home_page, service_worker, phone_js, phone_css], metrics=setup_metrics
)
