"""The venue operator page (``/operator``): static HTML and script, no external assets.

The script is a set of ES modules (``static/operator/*.js``, served as ``/operator/<version>/<name>``,
entry ``main.js``). The operator logs in with an API key; the script then uses the JSON API
(``/v1/venues...``, ``/v1/keys``, ``/display/{id}/setup-codes``) to find venues, switch between a printed
code and a screen at the door, set up the door tablet (its device key and a one-time set-up link), preview
and download posters (PNG, SVG, PDF A4/A3), rotate the code, close the venue, and show the venue's day
(entries per hour beside last week, occupancy, capacity alerts), refreshed every minute. The
Content-Security-Policy allows only this origin (and ``blob:`` and ``data:`` images for the poster
preview and the set-up QR code).
"""

from __future__ import annotations

import functools
from importlib import resources
from string import Template

from litestar import Response, get

from checkin.platform.context import Context
from checkin.platform.service import Part
from checkin.platform.static_assets import Asset, Modules

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


_JS = Modules("venues", "operator", "/operator")
_CSS = Asset("venues", "operator.css")
_TEMPLATE = Template((resources.files("venues") / "static" / "operator.html").read_text(encoding="utf-8"))


@functools.cache
def _page(step_s: int) -> bytes:
    return _TEMPLATE.substitute(js_version=_JS.version, css_version=_CSS.version, step_s=step_s).encode(
        "utf-8"
    )


@get("/operator", summary="Venue operator page", tags=["pages"], include_in_schema=False)
async def operator_page(ctx: Context) -> Response[bytes]:
    return Response(
        content=_page(ctx.settings.rotating_step_s),
        media_type="text/html; charset=utf-8",
        headers={**_HEADERS, "Cache-Control": "no-store"},
    )


@get(
    "/operator/{version:str}/{name:str}",
    summary="A script module of the operator page",
    tags=["pages"],
    include_in_schema=False,
)
async def operator_js(version: str, name: str) -> Response[bytes]:
    return _JS.response(version, name)


@get("/operator/app.css", summary="Style sheet of the operator page", tags=["pages"], include_in_schema=False)
async def operator_css(v: str | None = None) -> Response[bytes]:
    return _CSS.response(v)


PART = Part("operator-page", routes=[operator_page, operator_js, operator_css])
