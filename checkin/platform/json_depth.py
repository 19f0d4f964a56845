"""Bounded nesting of JSON bodies (docs/ARCHITECTURE.md, "Integrity of the record").

No request body the API takes nests deeper than a handful of levels, but the decoder would follow
an attacker's ``[[[[...]]]]`` until the interpreter's recursion limit and fail with an error that is
no client error (a 500 and a traceback in the log, for 2 KB sent without a key). Every body is
therefore measured before it is decoded, and one nested deeper than :data:`MAX_DEPTH` is a 400
problem+json:

* Litestar routes: :func:`guard` runs as the app's ``before_request`` hook (both services), after
  routing and before the route's body is decoded or its caller authenticated, so every route answers
  the same 400 whoever calls it;
* the raw-ASGI hot routes (``checkin/checkins/hot_route.py``) call :func:`check` on the bytes they
  read themselves.

Measuring costs two ``bytes.count`` calls for an ordinary body: a body with at most ``MAX_DEPTH``
brackets cannot nest deeper. Only a body with more brackets (a long batch) is measured exactly: its
strings are cut out (a bracket inside a string does not nest), then the running sum of +1 per opening
and -1 per closing bracket is taken in C (``itertools.accumulate`` over signed bytes): about 0.25 ms
for a batch of 500 items.
"""

from __future__ import annotations

import re
from array import array
from itertools import accumulate
from typing import Any

from litestar import Request

from checkin.platform.errors import BadInput

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects a JSON body may have (the API's own bodies use 4 at most)."""
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STREAMED_TYPES = ("text/csv", "application/x-ndjson", "multipart/", "application/x-www-form-urlencoded")
"""Content types of bodies that are no JSON document (the imports' CSV and NDJSON, forms)."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class TooDeep(BadInput):
    """A JSON body nested deeper than :data:`MAX_DEPTH`."""


def depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body`` (outside strings). For text that is not
    well-formed JSON it is at least the depth a decoder reading it from the left reaches before it
    fails."""
    if b'"' not in body:
        stripped = body
    elif b"\\" not in body:
        stripped = b"".join(body.split(b'"')[::2])  # no escaped quote: every other piece is a string
    else:
        stripped = _STRING.sub(b"", body)
    steps = stripped.translate(_BRACKETS, _NOT_BRACKETS)
    if not steps:
        return 0
    return max(0, max(accumulate(array("b", steps))))


def too_deep(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when ``body`` nests deeper than ``limit``; two C-speed counts for an ordinary body."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    return depth(body) > limit


def refusal(limit: int = MAX_DEPTH) -> TooDeep:
    return TooDeep(
        f"the JSON body is nested deeper than {limit} levels of arrays and objects; no request of this "
        "API needs that",
        reason="json_too_deep",
    )


def check(body: bytes, limit: int = MAX_DEPTH) -> None:
    """400 ``json_too_deep`` for a body nested deeper than ``limit`` (the test of :func:`too_deep`,
    inline: this runs on every check-in)."""
    if body.count(b"[") + body.count(b"{") > limit and depth(body) > limit:
        raise refusal(limit)


def _streamed(request: Request[Any, Any, Any]) -> bool:
    content_type = request.headers.get("content-type", "").lower()
    return content_type.startswith(STREAMED_TYPES)


async def guard(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook of both services: measure the body before anything decodes it.

    A route that streams its body (the CSV and NDJSON imports: no body size limit of the app's) is
    measured only when the body does not say it is CSV, NDJSON or a form and announces a length within
    ``CHECKIN_MAX_BODY_BYTES``: reading it here would otherwise hold the whole import in memory. Every
    other route is measured whatever its content type says (Litestar decodes a route's body as JSON
    whatever the header claims).
    """
    if request.method not in BODY_METHODS:
        return None
    if request.route_handler.resolve_request_max_body_size() is None:
        announced = request.headers.get("content-length", "")
        limit = request.app.state["ctx"].settings.max_body_bytes
        if _streamed(request) or not announced.isdigit() or int(announced) > limit:
            return None
    check(await request.body())
    return None
