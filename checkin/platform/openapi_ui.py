"""The OpenAPI page (Swagger UI) from local files, so ``/schema`` works with no network.

Litestar's Swagger plugin links swagger-ui-dist on a CDN by default. Here its script, preset, style
sheet and icon come from the ``swagger-ui-py`` package (pinned in uv.lock), which ships a copy of
swagger-ui-dist in ``swagger_ui/static/``; each service serves them under ``/schema/assets/`` with a
content-hash version, like the pages' own assets (:mod:`checkin.platform.static_assets`).
"""

from __future__ import annotations

import functools

from litestar import Response, get
from litestar.openapi.plugins import SwaggerRenderPlugin

from checkin.platform.errors import NotFound
from checkin.platform.static_assets import Asset

PACKAGE = "swagger_ui"
ASSETS_PATH = "/schema/assets"
SCRIPT, PRESET, STYLE, ICON = (
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "favicon-32x32.png",
)


@functools.cache
def assets() -> dict[str, Asset]:
    return {name: Asset(PACKAGE, name) for name in (SCRIPT, PRESET, STYLE, ICON)}


def url(name: str) -> str:
    return f"{ASSETS_PATH}/{name}?v={assets()[name].version}"


def render_plugin() -> SwaggerRenderPlugin:
    """Swagger UI pointed at the files this service serves itself."""
    return SwaggerRenderPlugin(
        js_url=url(SCRIPT),
        css_url=url(STYLE),
        standalone_preset_js_url=url(PRESET),
        favicon=f"<link rel='icon' type='image/png' href='{url(ICON)}'>",
    )


@get(f"{ASSETS_PATH}/{{asset:str}}", include_in_schema=False, sync_to_thread=False)
def swagger_asset(asset: str, v: str | None = None) -> Response[bytes]:
    found = assets().get(asset)
    if found is None:
        raise NotFound(f"no OpenAPI page asset {asset[:60]!r}")
    return found.response(v)
