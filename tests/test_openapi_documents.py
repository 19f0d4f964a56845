"""What keeps the OpenAPI documents true (docs/ARCHITECTURE.md, "The OpenAPI documents"), part by part;
tests/test_schemathesis.py checks the whole against the running apps.

The bearer scheme and each protected operation's requirement, a problem+json answer for every refusal,
``Allow`` naming every method of a path, msgspec's own schema of a Struct, strict bodies, and the
patterns that stand for the registry's own checks agreeing with them.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from checkin.platform import openapi_doc, strict_body
from checkin.platform.errors import BadInput
from checkin.platform.persons import ID_NUMBER_PATTERN, PHONE_PATTERN, normalise_id_number, normalise_phone
from checkin.residents.service import NAME_PATTERN, normalise_name
from tests.support.api_contract import apps, document

METHODS = ("get", "put", "post", "delete", "patch")
PUBLIC = {
    "ingest": {
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/me"),
        ("GET", "/display/{venue_id}/setup"),  # a one-time set-up code in the address, no key
        ("POST", "/display/{venue_id}/setup"),
        ("GET", "/v/{token}"),
        ("POST", "/v1/residents/otp"),
        ("POST", "/v1/residents"),
    },
    "tracing": {("GET", "/healthz"), ("GET", "/metrics")},
}
"""Operations anyone may call (the rest need ``Authorization: Bearer``)."""


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {service: document(app) for service, app in apps().items()}


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (m.upper(), path, op) for path, item in doc["paths"].items() for m, op in item.items() if m in METHODS
    ]


@pytest.mark.parametrize("service", ["ingest", "tracing"])
def test_protected_operations_name_the_bearer_scheme_and_public_ones_none(
    documents: dict[str, dict[str, Any]], service: str
) -> None:
    doc = documents[service]
    assert doc["components"]["securitySchemes"]["bearer"]["type"] == "http"
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for method, path, op in _operations(doc):
        if (method, path) in PUBLIC[service]:
            assert "security" not in op, (method, path)
            assert "401" not in op["responses"], (method, path)
        else:
            assert op.get("security") == [{"bearer": []}], (method, path)
            assert {"401", "403"} <= set(op["responses"]), (method, path)


@pytest.mark.parametrize("service", ["ingest", "tracing"])
def test_every_refusal_is_a_declared_problem(documents: dict[str, dict[str, Any]], service: str) -> None:
    doc = documents[service]
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    for method, path, op in _operations(doc):
        answers = op["responses"]
        assert "503" in answers and "Retry-After" in answers["503"]["headers"], (method, path)
        if "{" in path:
            assert "404" in answers, (method, path)
        if "requestBody" in op:
            assert {"400", "413"} <= set(answers), (method, path)
        for status, answer in answers.items():
            if status >= "400" and not (path == "/healthz" and status == "503"):
                content = answer["content"]
                assert content["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }
                page = any(code.startswith("3") for code in answers) or any(
                    t.startswith("text/html")
                    for code, ok in answers.items()
                    if code.startswith("2")
                    for t in ok.get("content") or {}
                )  # a page, or the form a page posts
                assert page == any(t.startswith("text/html") for t in content), (method, path, status)


def test_a_route_declares_the_refusals_only_it_gives_beside_it(documents: dict[str, dict[str, Any]]) -> None:
    answers = documents["ingest"]["paths"]["/v1/checkins"]["post"]["responses"]
    assert {"404", "410", "422", "429"} <= set(answers)
    assert "Retry-After" in answers["429"]["headers"]
    imports = documents["ingest"]["paths"]["/v1/venues/import"]["post"]
    assert imports["requestBody"]["content"]["text/csv"]["schema"] == {"type": "string", "minLength": 1}


@pytest.mark.parametrize("service", ["ingest", "tracing"])
def test_options_names_every_method_of_the_path(documents: dict[str, dict[str, Any]], service: str) -> None:
    client = TestClient(app=apps()[service])  # no lifespan: an OPTIONS answer needs no store
    for path, item in documents[service]["paths"].items():
        if path.startswith("/schema"):
            continue
        methods = {m.upper() for m in item if m in METHODS} | {"OPTIONS"}
        r = client.options(re.sub(r"\{[^}]+\}", "1", path))
        assert r.status_code == 204, path
        assert set(r.headers["allow"].split(", ")) == methods, path


def test_struct_schemas_are_what_msgspec_decodes(documents: dict[str, dict[str, Any]]) -> None:
    schemas = documents["ingest"]["components"]["schemas"]
    checkin = schemas["CheckinIn"]
    assert checkin["additionalProperties"] is False
    assert checkin["properties"]["companions"]["items"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 2**63 - 1,
    }
    assert checkin["properties"]["companions"]["uniqueItems"] is True
    assert schemas["VenuePatch"]["properties"]["capacity"]["minimum"] == 0
    assert schemas["VenueIn"]["properties"]["district"]["pattern"] == "^[0-9]{6}$"  # \Z in the decoder
    assert "reason" in documents["tracing"]["components"]["schemas"]["ContactsRequest"]["required"]


def test_a_body_is_decoded_strictly_and_a_whole_number_counts_as_an_integer() -> None:
    decoder = msgspec.json.Decoder(list[int])
    assert strict_body.decode(decoder, b"[1, 2.0]") == [1, 2]
    with pytest.raises(msgspec.ValidationError):
        strict_body.decode(decoder, b"[1, 2.5]")
    with pytest.raises(msgspec.ValidationError):
        strict_body.decode(decoder, b'["1"]')


def _matches(pattern: str, value: str) -> bool:
    """``pattern`` read as a JSON-schema (ECMA) pattern: ``$`` is the end of the text."""
    return re.search(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern, value, re.ASCII) is not None


def _takes(check: Any, value: str) -> bool:
    try:
        check(value)
    except BadInput:
        return False
    return True


TEXTS = st.text(st.sampled_from("0123456789+-() \t\u3000\u00a0\nx86\x00\x1cXx张"), max_size=24)


@settings(max_examples=400, deadline=None)
@given(st.one_of(TEXTS, st.builds("{}1{}".format, st.sampled_from(["", "+86", "0086", "86 "]), TEXTS)))
def test_the_phone_pattern_takes_what_the_registry_takes(value: str) -> None:
    assert _matches(PHONE_PATTERN, value) == _takes(normalise_phone, value)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("0123456789 Xx\n"), min_size=15, max_size=22))
def test_the_id_number_pattern_takes_what_the_registry_takes(value: str) -> None:
    assert _matches(ID_NUMBER_PATTERN, value) == _takes(normalise_id_number, value)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("张三 \t\n\x00\x07\x1b\x1c\x85\u3000a"), min_size=1, max_size=8))
def test_the_name_pattern_takes_what_the_registry_takes(value: str) -> None:
    assert _matches(NAME_PATTERN, value) == _takes(normalise_name, value)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from("ab \t\n\u3000\x1c"), max_size=9))
def test_a_trimmed_text_pattern_is_str_strip(value: str) -> None:
    assert _matches(openapi_doc.trimmed(5), value) == (1 <= len(value.strip()) <= 5)
