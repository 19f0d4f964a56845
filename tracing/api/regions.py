"""Region names: what the codes of districts (6 digits), streets (9) and communities (12) are called.

* ``POST /v1/regions/import`` (admin): a CSV ``code,name`` (header optional, UTF-8 with or without a
  byte-order mark). The whole file is checked first and a bad line refuses it (400 naming the line),
  so a table is never half imported; a code imported again takes the new name. The answer counts the
  codes created, renamed and unchanged.
* ``GET /v1/regions`` (tracer, analyst): every code with its name, for the console, which shows a name
  wherever a code appears (the code on hover).

The names live in ClickHouse ``regions`` (ReplacingMergeTree by ``updated_at``: the newest name of a
code wins), beside the venue mirror: the tracing service owns them and nothing on the check-in path
needs them.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
import unicodedata
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post

from checkin.platform.auth import requires_role
from checkin.platform.errors import BadInput
from checkin.platform.service import Part
from tracing.storage.store import Store

CODE_RE = re.compile(r"^(\d{6}|\d{9}|\d{12})$")
NAME_MAX = 60
MAX_ROWS = 100_000
EXAMPLE = {"620102": "城关区", "620102001": "酒泉路街道", "620102001001": "金塔巷社区"}


class ImportAnswer(msgspec.Struct):
    rows: Annotated[int, msgspec.Meta(examples=[485])]
    created: int
    renamed: int
    unchanged: int


class RegionList(msgspec.Struct):
    count: Annotated[int, msgspec.Meta(examples=[3])]
    regions: Annotated[dict[str, str], msgspec.Meta(examples=[EXAMPLE])]
    """Code -> name."""


def _name_problem(name: str) -> str | None:
    if not name:
        return "the name is empty"
    if len(name) > NAME_MAX:
        return f"the name is longer than {NAME_MAX} characters"
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp"):
            return f"the name holds a control or invisible character (U+{ord(ch):04X})"
    return None


def parse_regions(raw: bytes) -> dict[str, str]:
    """Code -> name of a ``code,name`` CSV; :class:`BadInput` naming the first bad line."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInput("the CSV must be UTF-8 text") from None
    found: dict[str, str] = {}
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        cells = [cell.strip() for cell in row]
        if line == 1 and [c.lower() for c in cells] == ["code", "name"]:
            continue
        if len(cells) != 2:
            raise BadInput(f"line {line}: expected 2 columns (code,name), got {len(cells)}")
        code, name = cells
        if not CODE_RE.fullmatch(code):
            raise BadInput(
                f"line {line}: code {code!r} is not a district (6 digits), street (9) or community (12) code"
            )
        problem = _name_problem(name)
        if problem:
            raise BadInput(f"line {line}: {problem}")
        found[code] = name
        if len(found) > MAX_ROWS:
            raise BadInput(f"at most {MAX_ROWS} regions in one import")
    if not found:
        raise BadInput("the CSV names no region: send lines of code,name")
    return found


def region_names(store: Store) -> dict[str, str]:
    """Blocking: the newest name of every code."""
    rows = store.rows(f"SELECT code, argMax(name, updated_at) FROM {store.table('regions')} GROUP BY code")
    return {str(code): str(name) for code, name in rows}


def write_regions(store: Store, names: dict[str, str]) -> ImportAnswer:
    """Blocking: store the names that are new or changed; count what happened to each code."""
    before = region_names(store)
    changed = [(code, name) for code, name in names.items() if before.get(code) != name]
    if changed:
        now = dt.datetime.now(dt.UTC)
        store.insert(
            "regions",
            ["code", "name", "updated_at"],
            [[code, name, now] for code, name in changed],
            column_oriented=False,
        )
    created = sum(1 for code, _ in changed if code not in before)
    return ImportAnswer(
        rows=len(names), created=created, renamed=len(changed) - created, unchanged=len(names) - len(changed)
    )


@post(
    "/v1/regions/import",
    status_code=200,
    summary="Import names of districts, streets and communities (CSV code,name; admin)",
    description="Body: CSV lines `code,name` (header optional). A bad line refuses the whole file (400).",
    tags=["regions"],
    raw_body=("text/csv", "lines of code,name (a header line code,name may come first)"),
    guards=[requires_role("admin")],
)
async def import_regions(request: Request[Any, Any, Any], store: Store) -> ImportAnswer:
    names = parse_regions(await request.body())
    return await asyncio.to_thread(write_regions, store, names)


@get(
    "/v1/regions",
    summary="Names of districts, streets and communities (tracer, analyst)",
    tags=["regions"],
    guards=[requires_role("tracer", "analyst")],
)
async def list_regions(store: Store) -> RegionList:
    names = await asyncio.to_thread(region_names, store)
    return RegionList(count=len(names), regions=dict(sorted(names.items())))


PART = Part("regions", routes=[import_regions, list_regions])
