"""Hot routes: declared once, answered from raw ASGI.

Litestar's per-request machinery (signature model, data extraction, dependency resolution, the
Request object) costs more CPU than a whole check-in. :func:`hot_post` declares a POST route from
one function ``async def answer(data: Body, scope: Scope) -> Response[bytes]``:

* Litestar reads the function's signature and the decorator's arguments for routing, 405 and
  the OpenAPI document, as for any route;
* a route middleware answers every request itself: it reads the raw body, decodes it with msgspec
  into ``Body`` and calls the same function with it, then sends the response's bytes.

So the function is the handler, and the only one: there is no second body behind the fast one.
Errors it raises become problem+json through the app's exception handlers, like any route's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, get_type_hints

import msgspec
from litestar import Response, post
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from checkin.platform import json_depth, strict_body
from checkin.platform.context import Context

Answer = Callable[..., Awaitable[Response[bytes]]]
"""``async def answer(data: Body, scope: Scope) -> Response[bytes]``."""


class HotResponse(Response[bytes]):
    """What a hot answer returns: a JSON body and its status, which the front sends itself. A
    Litestar ``Response`` (the route's declared type), made without the header, cookie and encoder
    bookkeeping the front does not use (it costs more than a microsecond a request)."""

    __slots__ = ("extra_headers",)

    def __init__(
        self, content: bytes, status_code: int, extra_headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.content = content
        self.status_code = status_code
        self.extra_headers = extra_headers


def context_of(scope: Scope) -> Context:
    ctx: Context = scope["app"].state["ctx"]
    return ctx


def authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; 413 above ``limit`` bytes (announced or received)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                announced = int(value)
            except ValueError:
                raise ClientException(detail="Content-Length is not a number") from None
            if announced > limit:
                raise HTTPException(status_code=413, detail="Request Entity Too Large")
            break
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientException(detail="the client closed the connection before sending the whole body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise HTTPException(status_code=413, detail="Request Entity Too Large")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode_body(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """The request struct; 400 problem+json naming the field, as Litestar's own validation does."""
    if not body.strip():
        raise ValidationException(
            detail="Validation failed", extra=[{"message": "the request body is empty", "key": "data"}]
        )
    json_depth.check(body)
    try:
        return strict_body.decode(decoder, body)
    except msgspec.ValidationError as exc:
        raise strict_body.refusal(exc) from None
    except msgspec.DecodeError as exc:
        raise ClientException(detail=str(exc)) from None


def _front(answer: Answer, decoder: msgspec.json.Decoder[Any]) -> Callable[[ASGIApp], ASGIApp]:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def front(scope: Scope, receive: Receive, send: Send) -> None:
            limit = context_of(scope).settings.max_body_bytes
            data = decode_body(decoder, await read_body(scope, receive, limit))
            response = await answer(data=data, scope=scope)
            body: bytes = response.content
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            extra = getattr(response, "extra_headers", None)
            if extra:
                headers += extra
            start: HTTPResponseStartEvent = {
                "type": "http.response.start",
                "status": response.status_code or 200,
                "headers": headers,
            }
            await send(start)
            done: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
            await send(done)

        return front

    return middleware


def hot_post(path: str, **route: Any) -> Callable[[Answer], HTTPRouteHandler]:
    """Declare a hot POST route; ``route`` takes Litestar's route arguments (status_code,
    summary, tags, responses)."""

    def declare(answer: Answer) -> HTTPRouteHandler:
        body_type = get_type_hints(answer)["data"]
        decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(body_type)
        return post(path, middleware=[_front(answer, decoder)], **route)(answer)

    return declare
