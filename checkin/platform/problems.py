"""HTTP plumbing shared by both services: problem+json errors (RFC 9457) in one place."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import redis.exceptions
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from checkin.platform.errors import DomainError
from checkin.platform.hot_redis import RedisReplyError

log = logging.getLogger("checkin.platform.problems")

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response[bytes]:
    body: dict[str, Any] = {
        "type": f"https://venue-checkin.example/problems/{slug or status}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers or {},
    )


PROBLEMS = "http_problems_total"
"""Every refusal a domain error answered, by status and reason (the ``reason`` member, else the slug)."""


def _domain_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[bytes]:
    ctx = request.app.state.get("ctx")
    if ctx is not None:
        ctx.metrics.inc(PROBLEMS, status=str(exc.status), reason=str(exc.extra.get("reason") or exc.slug))
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        slug=exc.slug,
        instance=request.url.path,
        headers=headers,
        extra=exc.extra or None,
    )


def _validation_detail(exc: ValidationException) -> str:
    extra = exc.extra
    if isinstance(extra, list) and extra:
        parts = []
        for item in extra[:5]:
            if isinstance(item, dict):
                key = item.get("key")
                msg = item.get("message", "")
                parts.append(f"{key}: {msg}" if key else str(msg))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(exc.detail)


def _http_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        detail = _validation_detail(exc)
        return problem(400, "Invalid request", detail, slug="invalid-request", instance=request.url.path)
    headers = dict(exc.headers or {})
    title = {
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not found",
        405: "Method not allowed",
        413: "Payload too large",
        429: "Too many requests",
    }.get(status, "Error")
    return problem(status, title, str(exc.detail), instance=request.url.path, headers=headers)


def _internal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(
        HTTP_500_INTERNAL_SERVER_ERROR,
        "Internal server error",
        "The server failed to handle this request; it has been logged.",
        instance=request.url.path,
    )


TRANSIENT_REDIS_REPLIES = ("OOM", "LOADING", "BUSY", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")
"""Error replies that mean "Redis cannot take this now" (full, restarting, failing over), not a bug."""

TRANSIENT_REDIS_ERRORS = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.MasterDownError,
)


def _redis_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Redis full, restarting or unreachable is a 503 the client retries, never a 500."""
    text = str(exc)
    transient = isinstance(exc, TRANSIENT_REDIS_ERRORS) or (
        isinstance(exc, RedisReplyError) and text.startswith(TRANSIENT_REDIS_REPLIES)
    )
    if not transient:
        return _internal_handler(request, exc)
    reason = text.split(" ", 1)[0] if isinstance(exc, RedisReplyError) else type(exc).__name__
    log.warning("redis unavailable on %s %s: %s", request.method, request.url.path, reason)
    return problem(
        503,
        "Service unavailable",
        f"the data store cannot take this request now ({reason}); retry shortly",
        slug="unavailable",
        instance=request.url.path,
        headers={"Retry-After": "2"},
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: _domain_handler,
    HTTPException: _http_handler,
    RedisReplyError: _redis_handler,
    redis.exceptions.RedisError: _redis_handler,
    Exception: _internal_handler,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "MediaType", "problem"]
