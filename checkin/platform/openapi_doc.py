"""What the OpenAPI documents declare beyond what Litestar reads from a route's signature
(docs/ARCHITECTURE.md, "The OpenAPI documents").

Litestar documents a route's success answer and its parameters. Everything else a route can answer
is added here, in one place, when :func:`checkin.platform.service.build_app` builds a service:

* the ``bearer`` security scheme (HTTP bearer: a resident token or an API key) and, on every route
  that takes the ``principal`` dependency, has a role guard or declares ``security`` itself, that
  requirement;
* the refusals every route of a kind can give, as ``application/problem+json`` with the shared
  :class:`Problem` schema: 400 (a parameter or body field fails its rule, a JSON body nested too deep)
  for a route with parameters or a body, 413 for a route with a body, 401 and 403 for a protected
  route, 404 for a route with path parameters, 503 for every route (the data store cannot take the
  request now);
* the refusals only some routes give, declared beside the route as ``problems=(409, 422)`` (or a
  mapping of status to description) among its decorator's arguments (Litestar keeps unknown
  arguments in the handler's ``opt``);
* a page (a route whose answer is ``text/html``) answers its refusals as pages too: each of its
  refusals is declared with both ``text/html`` and ``application/problem+json`` (a malformed request
  or an unavailable store is refused before the page is drawn);
* a route that reads its body itself (the CSV and NDJSON imports, streamed) declares it beside the
  route as ``raw_body=("text/csv", "what a line holds")``; it is documented as a non-empty body of
  that type, with the 400 and 413 of a route with a body;
* ``Retry-After`` on 429 and 503;
* a msgspec Struct is documented by msgspec's own schema of it (:mod:`checkin.platform.openapi_structs`).

``tests/test_schemathesis.py`` runs schemathesis with all its checks against both services: a status
or content type a route answers with but this module does not declare fails it.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec
from litestar import MediaType, Response
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec import OpenAPIResponse as DocResponse
from litestar.params import Parameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from checkin.platform.auth import RoleGuard
from checkin.platform.problems import PROBLEM_JSON

BEARER = "bearer"
"""Name of the security scheme in both documents."""
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}]
"""The requirement of a protected route: ``Authorization: Bearer <token>``."""
PROBLEMS_OPT = "problems"
"""The route argument (kept in ``opt``) naming the refusals only that route gives."""
RAW_BODY_OPT = "raw_body"
"""The route argument (kept in ``opt``) naming the media type and content of a body the route reads
itself (Litestar sees no ``data`` to document)."""
PAGE_TYPE = "text/html"
ID_NUMBER_FORMAT = "gb11643"
"""``format`` of an id number that must carry its GB 11643 check character (a new person's)."""
OPERATOR_TEXT_FORMAT = "operator-text"
"""``format`` of a text an operator writes that residents read (a venue's name): printable, no web
address or domain, no 【】, no bidirectional or invisible character (400 naming the rule)."""
VENUE_CODE_FORMAT = "venue-code"
"""``format`` of a venue code: one this service signed (a forged or damaged code is 400)."""


class Problem(msgspec.Struct, omit_defaults=True):
    """A refusal (RFC 9457). Routes add members of their own (``reason`` names the rule in a word; a
    batch adds per-item fields)."""

    type: str
    """``https://venue-checkin.example/problems/<slug>``"""
    title: str
    status: int
    detail: str
    """What was wrong and what to do, in a sentence."""
    instance: str = ""
    """The path the refusal answers."""
    reason: str = ""
    """The rule that refused, in a word (``rate_limited``, ``token_revoked``, ``json_too_deep``, ...)."""


DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: a parameter or body field fails its rule (named in detail), or the JSON "
    "body is nested deeper than 32 levels",
    401: "No valid bearer token: missing, unknown, expired or revoked",
    403: "The caller's role, scope or venue does not allow this",
    404: "No such resource, or none the caller may see",
    409: "Conflicts with the current state of the resource",
    410: "The resource existed but is gone (deactivated, replaced or expired)",
    413: "The request body is larger than the service takes (CHECKIN_MAX_BODY_BYTES)",
    422: "Well-formed, but a rule of the record refuses it (named in reason)",
    429: "Rate-limited: retry after Retry-After seconds",
    503: "The data store or a dependency cannot take the request now: retry after Retry-After seconds",
}
"""The description of each refusal a route may declare."""

RETRY_AFTER = {
    "Retry-After": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.INTEGER),
        description="Seconds to wait before retrying",
        required=False,
    )
}

PY_SPACE = (
    "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
"""What Python's ``str.split()`` takes for white space, as the inside of a regular-expression class
that means the same in Python and ECMA (whose ``\\s`` differs)."""


def trimmed(max_chars: int) -> str:
    """A JSON-schema pattern of a text that keeps 1 to ``max_chars`` characters after ``str.strip()``."""
    return f"^[{PY_SPACE}]*[^{PY_SPACE}](?:[\\s\\S]{{0,{max_chars - 2}}}[^{PY_SPACE}])?[{PY_SPACE}]*$"


INSTANT = Parameter(
    description="An RFC 3339 instant (2026-11-29T08:15:00Z, 2026-11-29T16:15:00+08:00); empty: the default",
    schema_extra={"anyOf": [{"format": "date-time"}, {"maxLength": 0}]},
)
"""A query parameter that :func:`checkin.platform.instants.parse_instant` reads."""

NOT_PARAMETERS = frozenset(
    {
        "ctx",
        "principal",
        "store",
        "request",
        "state",
        "scope",
        "headers",
        "cookies",
        "socket",
        "body",
        "query",
    }
)
"""Signature names Litestar fills itself (dependencies, the connection), never from the request."""


def components() -> Components:
    """The document components both services declare: the bearer scheme."""
    return Components(
        security_schemes={
            BEARER: SecurityScheme(
                type="http",
                scheme="bearer",
                description="A resident token (from registration) or an API key (from POST /v1/keys; "
                "the first admin key is CHECKIN_ADMIN_KEY)",
            )
        }
    )


def _extras(handler: HTTPRouteHandler) -> dict[int, str]:
    declared = handler.opt.get(PROBLEMS_OPT) or ()
    if isinstance(declared, Mapping):
        return {int(status): str(text) for status, text in declared.items()}
    return {int(status): DESCRIPTIONS[int(status)] for status in declared}


def refusals(handler: HTTPRouteHandler, dependencies: Iterable[str] = ()) -> dict[int, str]:
    """Every refusal ``handler`` can answer with, and its description."""
    names = set(inspect.signature(handler.fn).parameters)
    ignored = NOT_PARAMETERS | set(dependencies)
    has_body = "data" in names or RAW_BODY_OPT in handler.opt
    has_path_params = any("{" in path for path in handler.paths)
    has_params = has_body or has_path_params or bool(names - ignored - {"data"})
    out: dict[int, str] = {}
    if has_params:
        out[400] = DESCRIPTIONS[400]
    if handler.security:
        out[401] = DESCRIPTIONS[401]
        out[403] = DESCRIPTIONS[403]
    if has_path_params:
        out[404] = DESCRIPTIONS[404]
    if has_body:
        out[413] = DESCRIPTIONS[413]
    out[503] = DESCRIPTIONS[503]
    out.update(_extras(handler))
    return dict(sorted(out.items()))


@dataclass
class DocumentedOperation(Operation):
    """An operation whose refusals carry ``Retry-After`` where they have one, and a page's refusals
    their ``text/html`` form beside the problem+json one."""

    PAGE: ClassVar[bool] = False
    """A page: a route whose media type is ``text/html`` (its success may be a redirect)."""
    BODY: ClassVar[RequestBody | None] = None
    """The body a route reads itself."""

    def __post_init__(self) -> None:
        if self.BODY is not None:
            self.request_body = self.BODY
        answers = self.responses or {}
        for status, answer in answers.items():
            if (
                not isinstance(answer, DocResponse)
                or not answer.content
                or PROBLEM_JSON not in answer.content
            ):
                continue
            if status in ("429", "503"):
                answer.headers = {**(answer.headers or {}), **RETRY_AFTER}
            if self.PAGE:
                answer.content = {
                    f"{PAGE_TYPE}; charset=utf-8": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
                    **answer.content,
                }


def document(handler: HTTPRouteHandler, dependencies: Iterable[str] = ()) -> HTTPRouteHandler:
    """A copy of ``handler`` that declares its security and every refusal it can answer with
    (the route itself is unchanged)."""
    if not handler.include_in_schema:
        return handler
    out = copy.copy(handler)
    if out.security is None and (
        "principal" in inspect.signature(handler.fn).parameters
        or any(isinstance(guard, RoleGuard) for guard in handler.guards or ())
    ):
        out.security = SECURITY
    declared = dict(handler.responses or {})
    problems = {
        status: ResponseSpec(
            data_container=Problem, description=text, media_type=PROBLEM_JSON, generate_examples=False
        )
        for status, text in refusals(out, dependencies).items()
        if status not in declared
    }
    out.responses = {**declared, **problems}
    page = str(getattr(handler.media_type, "value", handler.media_type)).startswith(PAGE_TYPE)
    raw_body = handler.opt.get(RAW_BODY_OPT)
    if not page and raw_body is None:
        out.operation_class = DocumentedOperation
        return out
    body = None
    if raw_body is not None:
        media_type, description = raw_body
        schema = Schema(type=OpenAPIType.STRING, min_length=1)
        body = RequestBody(
            content={media_type: OpenAPIMediaType(schema=schema)}, description=description, required=True
        )
    out.operation_class = dataclass(
        type("RouteOperation", (DocumentedOperation,), {"PAGE": page, "BODY": body})
    )
    return out


def options_answers(handlers: Sequence[Any]) -> list[HTTPRouteHandler]:
    """One OPTIONS route per path that lists every method of the path in ``Allow``.

    Litestar adds an OPTIONS answer when it registers a path's first route and keeps that answer
    when the path's other methods join later, so ``Allow`` would name only the first method; an
    explicit OPTIONS route registered first takes its place.
    """
    methods: dict[str, set[str]] = {}
    for handler in handlers:
        if isinstance(handler, HTTPRouteHandler):
            for path in handler.paths:
                methods.setdefault(path, set()).update(handler.http_methods)
    out = []
    for path, found in methods.items():
        if "OPTIONS" in found:
            continue
        allow = ", ".join(sorted(found | {"OPTIONS"}))
        out.append(_options(path, allow))
    return out


def _options(path: str, allow: str) -> HTTPRouteHandler:
    def options_answer() -> Response[None]:
        return Response(content=None, status_code=HTTP_204_NO_CONTENT, headers={"Allow": allow})

    return HTTPRouteHandler(
        path=path,
        http_method="OPTIONS",
        include_in_schema=False,
        sync_to_thread=False,
        media_type=MediaType.TEXT,
        name=f"options:{path}",
    )(options_answer)
