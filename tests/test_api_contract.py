"""The HTTP contract (routes and OpenAPI documents) equals the reviewed snapshot."""

from __future__ import annotations

import json

import pytest

from tests.support.api_contract import apps, describe, snapshot_path


@pytest.mark.parametrize("service", ["ingest", "tracing"])
def test_routes_and_openapi_match_the_snapshot(service: str) -> None:
    app = apps()[service]
    expected = json.loads(snapshot_path(service).read_text(encoding="utf-8"))
    got = describe(app)
    assert got["routes"] == expected["routes"]
    assert sorted(got["openapi"]["paths"]) == sorted(expected["openapi"]["paths"])
    for path, item in expected["openapi"]["paths"].items():
        assert got["openapi"]["paths"][path] == item, path
    assert got["openapi"] == expected["openapi"]
