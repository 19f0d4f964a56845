"""A bare Litestar app with one no-op POST route: the ceiling the ingest API is compared with.

``granian --interface asgi loadtest.noop_app:app`` serves it the same way as the ingest API;
the route answers 201 with a small JSON body and does nothing else.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, post


@post("/v1/checkins", status_code=201)
async def noop() -> dict[str, Any]:
    return {"ok": True}


app = Litestar(route_handlers=[noop], debug=False)
