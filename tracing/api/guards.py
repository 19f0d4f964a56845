"""Route guards of the tracing service that the platform's ``requires_role`` does not state.

``requires_role`` (:mod:`checkin.platform.auth`) admits named roles; :data:`API_KEYS` admits any API
key and refuses a resident's token exactly as ``Principal.require("tracer", "analyst")`` does (403
problem+json ``forbidden``), as the console's ``whoami`` always has.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from checkin.platform.auth import request_principal


async def api_keys_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Any API key passes; a resident is told the route needs a tracer or analyst key."""
    principal = await request_principal(connection)
    if principal.role == "resident":
        principal.require("tracer", "analyst")


API_KEYS = [api_keys_only]
