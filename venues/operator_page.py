"""The venue operator page (``/operator``): static HTML and script, no external assets.

The operator logs in with an API key; the script then uses the JSON API
(``/v1/venues...``) to find venues, preview and download posters, rotate the
code and show today's entry count. The Content-Security-Policy allows only this
origin (and ``blob:`` images for the poster preview).
"""

from __future__ import annotations

from importlib import resources
from string import Template

from litestar import Response, get

from checkin.platform.service import Part
from checkin.platform.static_assets import Asset

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


_JS = Asset("venues", "operator.js")
_CSS = Asset("venues", "operator.css")
_PAGE = (
    Template((resources.files("venues") / "static" / "operator.html").read_text(encoding="utf-8"))
    .substitute(js_version=_JS.version, css_version=_CSS.version)
    .encode("utf-8")
)


@get("/operator", summary="Venue operator page", tags=["pages"], include_in_schema=False)
async def operator_page() -> Response[bytes]:
    return Response(
        content=_PAGE,
        media_type="text/html; charset=utf-8",
        headers={**_HEADERS, "Cache-Control": "no-store"},
    )


@get("/operator/app.js", summary="Script of the operator page", tags=["pages"], include_in_schema=False)
async def operator_js(v: str | None = None) -> Response[bytes]:
    return _JS.response(v)


@get("/operator/app.css", summary="Style sheet of the operator page", tags=["pages"], include_in_schema=False)
async def operator_css(v: str | None = None) -> Response[bytes]:
    return _CSS.response(v)


PART = Part("operator-page", routes=[operator_page, operator_js, operator_css])
