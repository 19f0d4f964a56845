"""The HTTP contract of both services as plain data: every route with its methods, and the
OpenAPI document. ``python -m tests.support.api_contract --write`` refreshes the snapshots in
``tests/snapshots/`` after an intended change of the contract; ``tests/test_api_contract.py``
fails when the code and the snapshots disagree."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.serialization import encode_json

SNAPSHOTS = Path(__file__).resolve().parent.parent / "snapshots"


def routes(app: Litestar) -> list[list[Any]]:
    """[path, sorted methods] of every route the app serves, sorted by path."""
    out = []
    for route in app.routes:
        methods = sorted(m for m in getattr(route, "methods", ()) if m != "OPTIONS")
        out.append([route.path, methods])
    return sorted(out)


def _without_generated_examples(node: Any) -> Any:
    """Litestar fills ``examples`` of response specs with random values on every build: they are
    not part of the contract, so they are left out of the comparison."""
    if isinstance(node, dict):
        return {k: _without_generated_examples(v) for k, v in node.items() if k != "examples"}
    if isinstance(node, list):
        return [_without_generated_examples(v) for v in node]
    return node


def document(app: Litestar) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(encode_json(app.openapi_schema.to_schema()))
    return dict(_without_generated_examples(schema))


def describe(app: Litestar) -> dict[str, Any]:
    return {"routes": routes(app), "openapi": document(app)}


def apps() -> dict[str, Litestar]:
    """Both service apps, built with throwaway settings (nothing is started)."""
    from checkin.app import create_app as create_ingest
    from checkin.platform.keyring import Keyring
    from checkin.platform.settings import load_settings
    from tracing.app import create_app as create_tracing

    settings = load_settings(
        {
            "CHECKIN_ADMIN_KEY": "adm_contract",
            "CHECKIN_KEYRING": Keyring.generate(1),
            "CHECKIN_DATA_DIR": "/nonexistent/contract",
        }
    )
    return {"ingest": create_ingest(settings), "tracing": create_tracing(settings, workers=())}


def snapshot_path(service: str) -> Path:
    return SNAPSHOTS / f"http-{service}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the snapshots from the code")
    args = parser.parse_args()
    for service, app in apps().items():
        text = json.dumps(describe(app), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        path = snapshot_path(service)
        if args.write:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        else:
            same = path.exists() and path.read_text(encoding="utf-8") == text
            print(f"{service}: {'matches' if same else 'DIFFERS from'} {path}")


if __name__ == "__main__":
    main()
