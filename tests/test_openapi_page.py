"""The OpenAPI page works with no network, and its examples look like real data.

Both services' ``/schema`` page, its OAuth redirect page and every asset they link are fetched and
searched for a URL on another host; the page is opened in headless Chromium with every request to
another host refused, and Swagger UI must still draw the API. Examples of the check-in, resident,
trace and alert shapes are the values the API really uses.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from litestar.serialization import encode_json
from litestar.testing import AsyncTestClient

from checkin.checkins.wire import CheckinIn, CheckinOut, PersonOut
from checkin.platform.openapi_ui import ASSETS_PATH
from checkin.platform.settings import Settings
from checkin.residents.service import Registered, RegisterIn
from tests.support.api_contract import apps
from tests.support.browser import chromium
from tests.support.servers import ingest_server, tracing_server
from tests.support.values import ADMIN_KEY, free_port
from tracing.api.alerts import SEVERITIES
from tracing.api.trace import ContactOut, ContactsRequest, VisitOut
from tracing.rules.alerts import Alert
from tracing.rules.kinds import RULE_KINDS

URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+(?::\d+)?""")
LINKED = re.compile(r"""(?:src|href)=['"]([^'"]+)['"]""")
SHOTS = Path("/tmp/shots-ecosystem")


def _foreign_urls(text: str, own_host: str) -> list[str]:
    """Absolute URLs in ``text`` whose host is not ``own_host``."""
    return [
        u
        for u in URL.findall(text)
        if urlsplit(u if ":" in u.split("//")[0] else "http:" + u).hostname != own_host
    ]


async def test_ingest_schema_page_and_its_assets_name_no_other_host(ingest: AsyncTestClient[Any]) -> None:
    await _check_schema_page(ingest)


async def test_tracing_schema_page_and_its_assets_name_no_other_host(tracing: AsyncTestClient[Any]) -> None:
    await _check_schema_page(tracing)


async def _check_schema_page(client: AsyncTestClient[Any]) -> None:
    r = await client.get("/schema")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    own = urlsplit(str(r.url)).hostname or ""
    assert "SwaggerUIBundle(" in page
    assert _foreign_urls(page, own) == []
    linked = LINKED.findall(page)
    assert sorted(urlsplit(u).path for u in linked) == sorted(
        f"{ASSETS_PATH}/{name}"
        for name in (
            "swagger-ui-bundle.js",
            "swagger-ui-standalone-preset.js",
            "swagger-ui.css",
            "favicon-32x32.png",
        )
    )
    for link in linked:
        asset = await client.get(link)
        assert asset.status_code == 200, link
        assert "max-age=2592000" in asset.headers["cache-control"]  # linked with its content version
    redirect = await client.get("/schema/oauth2-redirect.html")
    assert redirect.status_code == 200 and _foreign_urls(redirect.text, own) == []
    missing = await client.get(f"{ASSETS_PATH}/secrets.json")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")


def test_foreign_url_finder_finds_a_cdn_link() -> None:
    page = "<script src='https://cdn.jsdelivr.net/npm/x.js'></script><a href='//unpkg.com/y'>"
    assert _foreign_urls(page + "<a href='http://testserver.local/schema'>", "testserver.local") == [
        "https://cdn.jsdelivr.net",
        "//unpkg.com",
    ]


def _schemas() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for service, app in apps().items():
        document = json.loads(encode_json(app.openapi_schema.to_schema()))
        for name, schema in document["components"]["schemas"].items():
            out[f"{service}:{name}"] = schema
    return out


def _examples(schemas: dict[str, dict[str, Any]], field: str) -> list[Any]:
    found: list[Any] = []
    for schema in schemas.values():
        prop = schema.get("properties", {}).get(field)
        if prop is not None:
            found.extend(prop.get("examples", []))
    return found


def test_examples_of_enumerated_fields_are_values_the_api_uses() -> None:
    schemas = _schemas()
    allowed = {
        "verdict": {"pass", "restricted", "deny"},
        "status": {"green", "yellow", "red"},
        "kind": set(RULE_KINDS),
        "severity": set(SEVERITIES),
        "source": {"phone", "batch", "sentinel"},
    }
    for field, values in allowed.items():
        examples = _examples(schemas, field)
        assert examples, f"no example for {field}"
        assert set(examples) <= values, (field, examples)


def test_no_example_is_a_generated_random_string() -> None:
    text = json.dumps(_schemas(), ensure_ascii=False)
    examples = re.findall(r'"examples": \[("[^"]*")', text)
    assert examples
    assert [e for e in examples if re.fullmatch(r'"[A-Za-z]{20}"', e)] == []


@pytest.mark.parametrize(
    "shape",
    [CheckinIn, CheckinOut, PersonOut, RegisterIn, Registered, ContactsRequest, VisitOut, ContactOut, Alert],
)
def test_a_shape_built_from_its_examples_is_valid(shape: type[msgspec.Struct]) -> None:
    """The first example of every field that has one, filled in with the other fields' minimal
    values, decodes into the shape: examples respect the fields' own limits."""
    _, components = msgspec.json.schema_components([shape])
    props = components[shape.__name__]["properties"]
    filler: dict[str, Any] = {"integer": 1, "string": "x", "boolean": False, "array": [], "object": {}}
    value: dict[str, Any] = {}
    for name, prop in props.items():
        if "examples" in prop:
            value[name] = prop["examples"][0]
        elif name in components[shape.__name__].get("required", []):
            value[name] = filler[prop.get("type", "object")] if "$ref" not in prop else {}
    if shape is CheckinOut:
        value["venue"] = {"venue_id": 1024, "name": "Wangfujing Bookstore"}
    if shape is Registered:
        value["created"] = True
    if shape is RegisterIn:
        value["challenge_id"] = "c1"
    decoded = msgspec.convert(value, shape, strict=False)
    assert sum(1 for name in props if "examples" in props[name]) >= 3
    assert isinstance(decoded, shape)


@pytest.mark.browser
@pytest.mark.slow
def test_swagger_ui_draws_both_apis_with_other_hosts_unreachable(
    tmp_path: Path, prefix: str, make_settings: Any
) -> None:
    SHOTS.mkdir(exist_ok=True)
    settings: Settings = make_settings(tracing_port=free_port())
    with (
        ingest_server(tmp_path, prefix) as (ingest_base, _keyring, _log),
        tracing_server(settings, "", tmp_path / "tracing.log") as tracing_base,
        chromium() as browser,
    ):
        for base, title in ((ingest_base, "venue-checkin ingest"), (tracing_base, "venue-checkin tracing")):
            refused: list[str] = []
            for width, height in ((390, 844), (1440, 900)):
                page = browser.new_page(viewport={"width": width, "height": height})

                def guard(route: Any) -> None:
                    if urlsplit(route.request.url).hostname == "127.0.0.1":
                        route.continue_()
                    else:
                        refused.append(route.request.url)
                        route.abort()

                page.route("**/*", guard)
                page.goto(base + "/schema")
                page.wait_for_selector(".swagger-ui .information-container .title", timeout=20_000)
                assert (
                    title.split()[-1] in page.inner_text(".swagger-ui .information-container .title").lower()
                )
                assert page.locator(".opblock").count() > 3
                name = title.split()[-1]
                if name == "ingest" and width > 1000:
                    page.locator(
                        ".opblock-summary-path", has_text=re.compile(r"^/v1/checkins$")
                    ).first.click()
                    body = page.locator(".opblock.is-open .opblock-body").first
                    body.locator(".responses-wrapper").wait_for(timeout=10_000)
                    assert '"verdict": "pass"' in body.inner_text()
                    assert '"name": "Wangfujing Bookstore"' in body.inner_text()
                page.screenshot(path=str(SHOTS / f"schema-{name}-{width}x{height}.png"))
                page.close()
            assert refused == []


@pytest.mark.browser
@pytest.mark.slow
def test_swagger_authorize_takes_a_bearer_key_and_try_it_out_answers_200(tmp_path: Path, prefix: str) -> None:
    """The documents declare the bearer scheme: Swagger UI's Authorize takes the admin key, and "Try it
    out" on a protected route (GET /v1/keys) sends it and shows the 200."""
    with ingest_server(tmp_path, prefix) as (base, _keyring, _log), chromium() as browser:
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(base + "/schema")
        page.locator(".swagger-ui .auth-wrapper .authorize").click()
        dialog = page.locator(".swagger-ui .dialog-ux .modal-ux")
        dialog.locator("input#auth-bearer-value").fill(ADMIN_KEY)
        dialog.locator("button.authorize").click()
        dialog.locator("h6", has_text="Authorized").wait_for(timeout=5_000)
        dialog.locator("button.btn-done").click()

        route = page.locator(
            ".opblock-get", has=page.locator(".opblock-summary-path", has_text=re.compile(r"^/v1/keys$"))
        )
        assert route.locator(".authorization__btn svg.locked").count() == 1  # the route needs the scheme
        route.locator(".opblock-summary-control").click()
        route.locator("button.try-out__btn").click()
        route.locator("button.execute").click()
        live = route.locator(".live-responses-table tbody .response-col_status").first
        live.wait_for(timeout=20_000)
        assert live.inner_text().strip() == "200"
        assert (
            '"role": "admin"' not in route.locator(".live-responses-table").inner_text()
        )  # keys listed, no secret
        curl = route.locator(".curl-command").inner_text()
        assert "Authorization: Bearer" in curl
        page.screenshot(path=str(tmp_path / "swagger-authorize.png"))
        page.close()
