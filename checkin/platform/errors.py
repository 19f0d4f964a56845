"""Domain errors. Services raise these; :mod:`checkin.platform.problems` maps them to problem+json."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 400
    title = "Bad request"
    slug = "bad-request"

    def __init__(self, detail: str, *, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.extra = extra


class BadInput(DomainError):
    status, title, slug = 400, "Bad request", "bad-request"


class Unauthenticated(DomainError):
    status, title, slug = 401, "Unauthorized", "unauthorized"


class Forbidden(DomainError):
    status, title, slug = 403, "Forbidden", "forbidden"


class NotFound(DomainError):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(DomainError):
    status, title, slug = 409, "Conflict", "conflict"


class Gone(DomainError):
    status, title, slug = 410, "Gone", "gone"


class PayloadTooLarge(DomainError):
    status, title, slug = 413, "Payload too large", "payload-too-large"


class Unprocessable(DomainError):
    status, title, slug = 422, "Unprocessable content", "unprocessable"


class TooManyRequests(DomainError):
    status, title, slug = 429, "Too many requests", "rate-limited"


class Unavailable(DomainError):
    status, title, slug = 503, "Service unavailable", "unavailable"
