"""Issue 25, item 2: a body nested 1,000 levels deep, sent without a key, is a 400 problem+json on
every route of both services: never a 500, never a traceback in the log.

The attacker's steps: a 2 KB ``[[[[...]]]]`` (and ``{"a":{"a":...}}``) to ``/v1/residents/otp``,
``/v1/residents``, ``/v1/venues``, ``/v1/sentinel/scans`` and the tracing service's
``/v1/trace/exposures`` with no Authorization header; then the same to every other POST, PUT and PATCH
route of both apps, whatever content type the request claims.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from checkin.platform.json_depth import MAX_DEPTH, depth, too_deep
from tests.support.values import admin_headers

ARRAYS = b"[" * 1000 + b"]" * 1000
OBJECTS = b'{"a":' * 1000 + b"1" + b"}" * 1000
INSIDE = b'{"phone":"13800000001","x":' + b"[" * 1000 + b"]" * 1000 + b"}"
"""A valid-looking body with the deep part where a decoder skips an unknown field."""
UNCLOSED = b"[" * 1000
BODIES = {"arrays": ARRAYS, "objects": OBJECTS, "inside": INSIDE, "unclosed": UNCLOSED}
CONTENT_TYPES = ("application/json", "text/plain", None)

NAMED_INGEST = {"/v1/residents/otp", "/v1/residents", "/v1/venues", "/v1/sentinel/scans"}
NAMED_TRACING = {"/v1/trace/exposures"}


def body_routes(app: Litestar) -> list[tuple[str, str]]:
    """(method, path) of every POST, PUT and PATCH route, path parameters filled in."""
    out: list[tuple[str, str]] = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method in sorted(set(route.methods) & {"POST", "PUT", "PATCH"}):
            out.append((str(method), re.sub(r"\{[^}]+\}", "1", route.path)))
    return out


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.exc_info or r.levelno >= logging.ERROR or "Traceback" in r.getMessage()
    ]


async def attack(client: AsyncTestClient[Any], caplog: pytest.LogCaptureFixture) -> set[str]:
    """Every body-taking route with every deep body and content type, no key: each must be a 400
    problem+json naming the depth, and nothing may be logged as an error."""
    routes = body_routes(client.app)
    assert routes
    failures = []
    for method, path in routes:
        for shape, body in BODIES.items():
            for content_type in CONTENT_TYPES:
                headers = {"content-type": content_type} if content_type else {}
                r = await client.request(method, path, content=body, headers=headers)
                ok = (
                    r.status_code == 400
                    and r.headers.get("content-type", "").startswith("application/problem+json")
                    and r.json().get("reason") == "json_too_deep"
                )
                if not ok:
                    failures.append((method, path, shape, content_type, r.status_code, r.text[:200]))
    assert failures == []
    assert tracebacks(caplog) == []
    return {path for _method, path in routes}


async def test_a_deep_body_is_a_400_on_every_ingest_route(
    ingest: AsyncTestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    paths = await attack(ingest, caplog)
    assert NAMED_INGEST <= paths


async def test_a_deep_body_is_a_400_on_every_tracing_route(
    tracing: AsyncTestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    paths = await attack(tracing, caplog)
    assert NAMED_TRACING <= paths


async def test_the_streamed_imports_measure_a_json_body_and_still_take_their_own_formats(
    ingest: AsyncTestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The CSV and NDJSON imports are measured when the body claims JSON; declared as CSV or NDJSON
    they stream as before (an NDJSON import with nested brackets across many lines is no deep body)."""
    caplog.set_level(logging.INFO)
    adm = admin_headers()
    for path in ("/v1/residents/import", "/v1/venues/import"):
        r = await ingest.post(path, content=ARRAYS, headers={**adm, "content-type": "application/json"})
        assert r.status_code == 400 and r.json()["reason"] == "json_too_deep", (path, r.text)
    lines = b"\n".join(b'{"name":"[[[[","phone":"1390000%04d","id_number":"x"}' % i for i in range(50))
    r = await ingest.post(
        "/v1/residents/import", content=lines, headers={**adm, "content-type": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    csv = b"venue_id\n" + b"[" * 100 + b"\n"
    r = await ingest.post("/v1/venues/import", content=csv, headers={**adm, "content-type": "text/csv"})
    assert r.status_code == 400 and r.json().get("reason") != "json_too_deep", r.text
    assert tracebacks(caplog) == []


async def test_ordinary_nesting_still_reaches_the_route(ingest: AsyncTestClient[Any]) -> None:
    """A body exactly at the limit is decoded as usual (the route's own validation answers)."""
    at_limit = b'{"phone":"13800000001","x":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    assert depth(at_limit) == MAX_DEPTH and not too_deep(at_limit)
    r = await ingest.post("/v1/residents/otp", content=at_limit, headers={"content-type": "application/json"})
    assert r.json().get("reason") != "json_too_deep", r.text
    assert r.status_code in (400, 202), r.text


def test_depth_counts_brackets_outside_strings_only() -> None:
    assert depth(b"[]") == 1 and depth(b'{"a":[{"b":[]}]}') == 4
    assert depth(b'["[[[[[[", "]]]"]') == 1
    assert depth(b'["\\"[[[", "x"]') == 1
    assert depth(b"[" * 40) == 40
    assert depth(b'"' + b"[" * 40) == 0  # an unterminated string: the decoder stops there
    batch = b'{"items":[' + b",".join([b'{"code":"c","companions":[1,2],"location":{"lat":1}}'] * 500) + b"]}"
    assert depth(batch) == 4 and not too_deep(batch)


async def test_a_deep_line_in_a_resident_import_is_refused_on_its_own(
    ingest: AsyncTestClient[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """One NDJSON line nested 1,000 levels deep: that line's result says why, the others are imported,
    and nothing is logged as a traceback."""
    from tests.support.ingest import id_number

    caplog.set_level(logging.INFO)
    good = msgspec.json.encode({"name": "张三", "phone": "13900009001", "id_number": id_number(9001)})
    deep = b"[" * 1000 + b"]" * 1000
    r = await ingest.post(
        "/v1/residents/import",
        content=good + b"\n" + deep + b"\n",
        headers={**admin_headers(), "content-type": "application/x-ndjson"},
    )
    assert r.status_code == 200, r.text
    results = [line for line in r.text.splitlines() if line.strip()]
    assert any('"person_id"' in line for line in results)
    assert any('"line":2' in line and "nested deeper" in line for line in results), results
    assert tracebacks(caplog) == []
