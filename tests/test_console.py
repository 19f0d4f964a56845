"""The console's files are served from the package with a strict CSP; the API is described in OpenAPI."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import AsyncTestClient

from checkin.platform.settings import Settings
from tests.support.trace_world import make_key


async def test_console_is_served_without_external_resources(tracing: AsyncTestClient[Any]) -> None:
    r = await tracing.get("/console")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert '<script type="module" src="/console/static/main.js">' in r.text  # ES modules, same origin
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    seen: set[str] = set()
    while urls:
        url = urls.pop()
        if url in seen:
            continue
        seen.add(url)
        assert url.startswith("/console/static/"), url
        asset = await tracing.get(url)
        assert asset.status_code == 200, url
        text = asset.text.replace("http://www.w3.org/2000/svg", "")  # the SVG namespace, not a fetch
        assert "http://" not in text and "https://" not in text
        if url.endswith(".js"):  # the modules it imports, each under 500 lines
            assert text.count("\n") < 500, url
            urls += ["/console/static/" + m for m in re.findall(r'from "\./([\w.]+)"', text)]
    assert {u.rsplit("/", 1)[1] for u in seen} >= {"main.js", "i18n.js", "core.js", "tracer.js", "sources.js"}
    assert (await tracing.get("/console/static/../app.py")).status_code == 404
    assert (await tracing.get("/console/static/nope.js")).status_code == 404


async def test_whoami_tells_the_console_the_role_and_scope(
    tracing: AsyncTestClient[Any], settings: Settings
) -> None:
    headers = await make_key(settings, "tracer", "620102")
    r = await tracing.get("/console/whoami", headers=headers)
    assert r.status_code == 200
    assert r.json()["role"] == "tracer" and r.json()["scope"] == "620102" and r.json()["tz"] == settings.tz
    assert (await tracing.get("/console/whoami")).status_code == 401


async def test_trace_routes_are_in_the_openapi_document(tracing: AsyncTestClient[Any]) -> None:
    paths = (await tracing.get("/schema/openapi.json")).json()["paths"]
    for path in (
        "/v1/trace/contacts",
        "/v1/trace/exposures",
        "/v1/trace/persons/{person_id}/visits",
        "/v1/trace/persons/{person_id}/contact-details",
        "/v1/audit",
        "/v1/stats/scans-per-hour",
        "/v1/stats/districts",
        "/v1/stats/venues",
    ):
        assert path in paths, path
