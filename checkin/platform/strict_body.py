"""JSON bodies are decoded as strictly as the OpenAPI documents describe them.

Litestar converts a route's ``data`` with msgspec in lax mode, built for query strings: a body's
``"sampled_at": 0`` becomes 1970, ``"active": 0`` becomes false, ``"limit": "5"`` becomes 5. The
documents (msgspec's own schema of the same types, :mod:`checkin.platform.openapi_structs`) say a
date-time is an RFC 3339 string and a flag is a boolean, and the hot routes decode strictly already
(``checkin/checkins/hot_route.py``). So before Litestar reads it, every JSON body of a route that takes
``data`` is decoded strictly with the route's ``data`` type; a body the strict decoder refuses is the
same 400 problem+json a Litestar validation error is, naming the member.

One leniency JSON Schema itself has: an ``integer`` is any number without a fraction, so ``5.0`` is
one (:func:`decode` takes it where an integer is expected, as every JSON-schema validator does).
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

from checkin.platform.json_depth import BODY_METHODS, STREAMED_TYPES


@functools.cache
def _decoder(annotation: Any) -> msgspec.json.Decoder[Any] | None:
    try:
        return msgspec.json.Decoder(annotation)
    except TypeError:  # a type msgspec cannot decode (none of this API's bodies)
        return None


def _integral(value: Any) -> Any:
    """``value`` with every float that has no fraction made an int (``5.0`` -> ``5``)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, list):
        return [_integral(v) for v in value]
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    return value


def decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """``body`` decoded strictly with ``decoder``, a number without a fraction counting as an integer
    (the fast path first: only a body with such a number is decoded twice)."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        if "got `float`" not in str(exc):
            raise
    return msgspec.convert(_integral(msgspec.json.decode(body)), decoder.type, strict=True)


def refusal(exc: msgspec.ValidationError) -> ValidationException:
    """The 400 of a body member that fails its type or rule, in Litestar's validation shape."""
    text, sep, where = str(exc).rpartition(" - at `$")
    if sep:
        key = where.rstrip("`").lstrip(".") or "data"
    else:
        text, key = str(exc), "data"
    return ValidationException(detail="Validation failed", extra=[{"message": text, "key": key}])


async def check(request: Request[Any, Any, Any]) -> None:
    """Decode the body of a route that takes ``data`` strictly; 400 when that fails."""
    if request.method not in BODY_METHODS:
        return
    field = request.route_handler.parsed_data_field
    if field is None or request.headers.get("content-type", "").lower().startswith(STREAMED_TYPES):
        return
    decoder = _decoder(field.annotation)
    body = await request.body()
    if decoder is None or not body.strip():
        return  # Litestar answers a missing body itself
    try:
        decode(decoder, body)
    except msgspec.ValidationError as exc:
        raise refusal(exc) from None
    except msgspec.DecodeError:
        return  # not JSON: Litestar refuses it with its own 400
