"""The web console at ``/console``: static HTML, JS and CSS served from ``tracing/static``.

The page itself holds no data and needs no login; it asks for an API key and
sends it as ``Authorization: Bearer`` on every API call (kept in the tab's
sessionStorage only). No external CDN: everything it loads comes from here.
``GET /console/whoami`` tells the page who the key belongs to.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from litestar import Response, get

from checkin.platform.auth import Principal
from checkin.platform.context import Context
from checkin.platform.errors import NotFound
from checkin.platform.service import Part
from tracing.api.guards import API_KEYS

STATIC = Path(__file__).resolve().parent / "static"
JS = "text/javascript; charset=utf-8"
FILES = {
    "main.js": JS,
    "i18n.js": JS,
    "core.js": JS,
    "tracer.js": JS,
    "graph.js": JS,
    "sources.js": JS,
    "analyst.js": JS,
    "app.css": "text/css; charset=utf-8",
}
"""The page's files: ES modules (``<script type="module">``, same origin, so the self-only CSP holds)
and the style sheet."""
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class WhoAmI(msgspec.Struct):
    key_id: str
    role: str
    scope: str
    tz: str


@get("/console", include_in_schema=False)
async def console_page() -> Response[bytes]:
    return Response(
        content=(STATIC / "index.html").read_bytes(),
        media_type="text/html; charset=utf-8",
        headers=SECURITY_HEADERS,
    )


@get("/console/static/{name:str}", include_in_schema=False)
async def console_static(name: str) -> Response[bytes]:
    media = FILES.get(name)
    if media is None:
        raise NotFound(f"no console file {name!r}")
    return Response(content=(STATIC / name).read_bytes(), media_type=media, headers=SECURITY_HEADERS)


@get("/console/whoami", summary="Role and scope of the calling key", tags=["console"], guards=API_KEYS)
async def whoami(ctx: Context, principal: Principal) -> WhoAmI:
    return WhoAmI(key_id=principal.key_id, role=principal.role, scope=principal.scope, tz=ctx.settings.tz)


PART = Part("console", routes=[console_page, console_static, whoami])
