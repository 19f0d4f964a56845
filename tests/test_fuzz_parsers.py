"""Hypothesis fuzzing of the parsers that take untrusted input: resident tokens, venue codes,
Authorization headers, the venue CSV import and the resident NDJSON import. Only the domain
errors may come out of them, and over HTTP never a 5xx. (Bit flips of genuine venue codes are in
tests/test_venues_codes.py.)"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from checkin.platform import auth, resident_tokens
from checkin.platform.context import Context
from checkin.platform.errors import Unauthenticated
from checkin.platform.keyring import Keyring, b64url_encode
from checkin.platform.settings import Settings
from checkin.residents import service as residents
from tests.support.ingest import id_number
from tests.support.values import REDIS_URL, admin_headers
from venues import codes, importer
from venues.model import VENUE_TYPES, Venue

KEYRING = Keyring.parse(Keyring.generate(1))
FUZZ = settings(
    max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
HTTP_FUZZ = settings(
    max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)

# text that looks like a token: the right alphabet and about the right length, plus anything at all
b64_text = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=60)
token_text = st.one_of(
    st.text(max_size=80),
    b64_text,
    st.binary(max_size=60).map(b64url_encode),
    st.binary(min_size=codes.TOKEN_BYTES, max_size=codes.TOKEN_BYTES).map(b64url_encode),
)


@FUZZ
@given(text=token_text)
def test_resident_token_and_pass_verify_raise_only_unauthenticated(text: str) -> None:
    prefixes = ("", resident_tokens.PREFIX, resident_tokens.LEGACY_PREFIX, resident_tokens.PASS_PREFIX)
    for candidate in (prefix + text for prefix in prefixes):
        for verify in (resident_tokens.verify, resident_tokens.verify_pass):
            try:
                verify(KEYRING, candidate)
            except Unauthenticated:
                continue
            raise AssertionError(f"accepted a forged credential {candidate!r}")


@FUZZ
@given(body=st.binary(min_size=33, max_size=33), legacy=st.binary(min_size=29, max_size=29))
def test_credentials_of_random_bytes_of_the_right_size_are_refused(body: bytes, legacy: bytes) -> None:
    with pytest.raises(Unauthenticated):
        resident_tokens.verify(KEYRING, resident_tokens.PREFIX + b64url_encode(body), now=0)
    with pytest.raises(Unauthenticated):
        resident_tokens.verify(KEYRING, resident_tokens.LEGACY_PREFIX + b64url_encode(legacy), now=0)
    with pytest.raises(Unauthenticated):
        resident_tokens.verify_pass(KEYRING, resident_tokens.PASS_PREFIX + b64url_encode(body[:29]), now=0)


def test_verified_tokens_remember_claims_but_still_check_expiry() -> None:
    verified = resident_tokens.VerifiedTokens(KEYRING)
    token, expires = resident_tokens.issue(KEYRING, 42, ttl_s=60, now=1_000_000)
    assert verified.verify(token, now=1_000_000).person_id == 42
    assert token in verified.claims
    with pytest.raises(Unauthenticated, match="expired"):
        verified.verify(token, now=expires + 1)  # remembered, and refused once expired
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            verified.verify(forged, now=1_000_000)
    assert forged not in verified.claims


@FUZZ
@given(text=token_text)
def test_venue_code_verify_raises_only_invalid_code(text: str) -> None:
    with pytest.raises(codes.InvalidCode):
        codes.verify(KEYRING, text)


def _csv_row(values: list[str]) -> str:
    out = io.StringIO()
    import csv

    csv.writer(out).writerow(values)
    return out.getvalue()


HEADER = ",".join(importer.COLUMNS) + "\n"
cell = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "0", "-1", "4294967296", "1e309", "nan", "inf", "=cmd()", "110101", "110101001001"]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
Records = list[list[str]]
cell_rows = st.lists(st.lists(cell, min_size=0, max_size=14), max_size=6)
csv_body = st.one_of(
    st.binary(max_size=400),
    st.binary(max_size=300).map(lambda b: HEADER.encode() + b),
    cell_rows.map(lambda rows: (HEADER + "".join(_csv_row(r) for r in rows)).encode()),
)
csv_cases = st.one_of(
    st.binary(max_size=400).map(lambda b: (b, None)),
    st.binary(max_size=300).map(lambda b: (HEADER.encode() + b, None)),
    cell_rows.map(lambda rows: ((HEADER + "".join(_csv_row(r) for r in rows)).encode(), rows)),
)
"""``csv_body``'s three kinds of body, each with the records written after the header (when known)."""


def _parse_all(body: bytes) -> tuple[list[Venue], list[importer.RowError]]:
    venues: list[Venue] = []
    errors: list[importer.RowError] = []
    for batch, batch_errors, _ in importer.parse_batches(io.BytesIO(body), batch_rows=3):
        venues += batch
        errors += batch_errors
    return venues, errors


def _blank(row: list[str]) -> bool:
    """A record the importer skips: no field, or one blank field."""
    return not row or (len(row) == 1 and not row[0].strip())


@FUZZ
@given(case=csv_cases)
def test_venue_csv_parser_reports_rows_or_refuses_the_header(
    case: tuple[bytes, list[list[str]] | None],
) -> None:
    body, rows = case
    starts_with_header = body.startswith(HEADER.encode())
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    try:
        venues, errors = _parse_all(body)
    except importer.HeaderError as exc:
        # refused whole: a file whose first line is not the header, or one that is not UTF-8 text
        assert not starts_with_header or text is None, f"refused a file with the right header: {exc}"
        if starts_with_header:
            assert "UTF-8" in str(exc)
        return
    lowered = body.decode("utf-8", "replace").lower()
    assert starts_with_header or all(c in lowered for c in importer.COLUMNS), "accepted a bad header"
    # one report per record, in file order, never for the header
    lines = [e.line for e in errors]
    assert lines == sorted(set(lines)) and all(line > 1 for line in lines), lines
    assert all(e.reason for e in errors)
    ids = [v.venue_id for v in venues]
    assert len(ids) == len(set(ids)), "a venue_id accepted twice"
    if text is None:
        assert errors and "UTF-8" in errors[-1].reason  # the read stops at the first bad byte
    elif rows is not None:
        assert len(venues) + len(errors) == sum(1 for r in rows if not _blank(r))
    else:
        assert len(venues) + len(errors) <= len(text.splitlines()) - 1


BREAKS = [
    ("venue_id", "0"),
    ("venue_id", "4294967296"),
    ("venue_id", "seven"),
    ("name", "   "),
    ("name", "x" * 201),
    ("address", "tab\tin it"),
    ("type", "spaceship"),
    ("district", "11010"),
    ("street", "120101001"),
    ("community", "12345"),
    ("lat", "90.5"),
    ("lon", "nan"),
    ("capacity", "-1"),
    ("dwell_minutes", "0"),
    ("dwell_minutes", "4"),  # a venue too short for any 15-minute overlap: blind to tracing
    ("dwell_minutes", "721"),
    ("requires_negative_test_hours", "8761"),
    ("fields", ""),
]
"""One field made invalid (``fields``: the last field left out)."""


@st.composite
def venue_rows(draw: st.DrawFn) -> tuple[list[str], bool]:
    """A CSV record of a valid venue, or of one with exactly one field made invalid; and which."""
    district = draw(st.sampled_from(["110101", "620102", "310104"]))
    street = district + draw(st.sampled_from(["001", "013", "999"]))
    values = {
        "venue_id": str(draw(st.integers(1, 12))),  # few ids: some rows repeat an earlier one
        "name": draw(st.text(alphabet="ab店面 -1", max_size=20).map(lambda t: "店" + t)),
        "address": draw(st.text(alphabet="ab路号 ,1", max_size=20)),
        "type": draw(st.sampled_from(["", *VENUE_TYPES])),
        "district": district,
        "street": street,
        "community": street + draw(st.sampled_from(["001", "101"])),
        "lat": repr(draw(st.floats(-90, 90))),
        "lon": repr(draw(st.floats(-180, 180))),
        "capacity": draw(st.sampled_from(["", "0", "250", "10000000"])),
        "dwell_minutes": draw(st.sampled_from(["", "5", "60", "720"])),
        "requires_negative_test_hours": draw(st.sampled_from(["", "1", "48", "8760"])),
    }
    broken = draw(st.none() | st.sampled_from(BREAKS))
    row = [values[c] for c in importer.COLUMNS]
    if broken == ("fields", ""):
        return row[:-1], False
    if broken is not None:
        column, value = broken
        row[importer.COLUMNS.index(column)] = value
    return row, broken is None


BLANK_RECORDS = [[], [""], ["   "]]


@FUZZ
@given(records=st.lists(venue_rows() | st.sampled_from(BLANK_RECORDS).map(lambda r: (r, True)), max_size=10))
def test_venue_csv_parser_counts_good_and_bad_rows_exactly(records: list[tuple[list[str], bool]]) -> None:
    body = (HEADER + "".join(_csv_row(row) for row, _ in records)).encode()
    expected_ids: list[int] = []
    expected_bad: list[int] = []
    duplicates: list[int] = []
    for line, (row, valid) in enumerate(records, start=2):  # line 1 is the header; one line per record
        if _blank(row):
            continue
        if not valid:
            expected_bad.append(line)
        elif int(row[0]) in expected_ids:
            expected_bad.append(line)
            duplicates.append(line)
        else:
            expected_ids.append(int(row[0]))
    venues, errors = _parse_all(body)
    assert [v.venue_id for v in venues] == expected_ids
    assert [e.line for e in errors] == expected_bad, [(e.line, e.reason) for e in errors]
    assert [e.line for e in errors if e.reason.startswith("duplicate venue_id")] == duplicates
    by_id = {int(row[0]): row for row, valid in reversed(records) if valid and not _blank(row)}
    for v in venues:
        row = dict(zip(importer.COLUMNS, by_id[v.venue_id], strict=True))
        assert (v.name, v.community, v.lat) == (row["name"].strip(), row["community"], float(row["lat"]))


ndjson_line = st.one_of(
    st.binary(max_size=200),
    st.fixed_dictionaries(
        {"name": st.text(max_size=40), "phone": st.text(max_size=30), "id_number": st.text(max_size=30)}
    ).map(lambda d: json.dumps(d).encode()),
    st.dictionaries(
        st.text(max_size=10), st.one_of(st.none(), st.integers(), st.text(max_size=10)), max_size=4
    ).map(lambda d: json.dumps(d).encode()),
)


@FUZZ
@given(lines=st.lists(ndjson_line, max_size=8))
def test_resident_ndjson_parser_reports_each_line(lines: list[bytes]) -> None:
    numbered = list(enumerate(lines, start=1))
    good, bad = residents.parse_lines(KEYRING, numbered)
    non_blank = [n for n, raw in numbered if raw.strip()]
    assert sorted([n for n, _ in good] + [r.line for r in bad]) == non_blank
    for result in bad:
        assert result.error


header_value = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=80),
    st.sampled_from(["Bearer", "Bearer ", "bearer r1.", "Basic abc", "Bearer ck_", "Bearer r1.AAAA"]),
    token_text.map(lambda t: "Bearer " + t),
    token_text.map(lambda t: "Bearer r1." + t),
)


@pytest.fixture
def fuzz_settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings(rate_register_per_min=100_000)
    return settings


def test_authorization_headers_authenticate_or_raise_401(fuzz_settings: Settings) -> None:
    async def attempt_all(values: list[str]) -> None:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            ctx = Context.build(fuzz_settings, client, "test")
            for value in values:
                try:
                    principal = await auth.authenticate(ctx, value)
                except Unauthenticated:
                    continue
                raise AssertionError(f"{value!r} authenticated as {principal}")
        finally:
            await client.aclose()

    collected: list[str] = []

    @FUZZ
    @given(value=header_value)
    def collect(value: str) -> None:
        collected.append(value)

    collect()
    asyncio.run(attempt_all(collected))


@pytest.fixture
def ingest_sync(fuzz_settings: Settings) -> Iterator[TestClient[Any]]:
    from checkin.app import create_app

    with TestClient(app=create_app(fuzz_settings)) as client:
        yield client


def test_imports_and_auth_over_http_never_answer_5xx(ingest_sync: TestClient[Any]) -> None:
    seen: set[int] = set()

    @HTTP_FUZZ
    @given(body=csv_body, strict=st.booleans())
    def csv_import(body: bytes, strict: bool) -> None:
        r = ingest_sync.post(
            "/v1/venues/import",
            content=body,
            params={"strict": str(strict).lower()},
            headers={**admin_headers(), "Content-Type": "text/csv"},
        )
        seen.add(r.status_code)
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith("application/problem+json")

    @HTTP_FUZZ
    @given(lines=st.lists(ndjson_line, max_size=6))
    def ndjson_import(lines: list[bytes]) -> None:
        r = ingest_sync.post(
            "/v1/residents/import",
            content=b"\n".join(lines),
            headers={**admin_headers(), "Content-Type": "application/x-ndjson"},
        )
        seen.add(r.status_code)
        assert r.status_code < 500, r.text
        if r.status_code == 200:
            for row in r.text.splitlines():
                assert "line" in json.loads(row)

    @HTTP_FUZZ
    @given(value=header_value)
    def authorization(value: str) -> None:
        r = ingest_sync.get("/v1/keys", headers={"Authorization": value.encode("utf-8")})
        assert r.status_code == 401, r.text

    csv_import()
    ndjson_import()
    authorization()
    assert 200 in seen and 400 in seen


def test_a_valid_import_still_imports(ingest_sync: TestClient[Any]) -> None:
    """The fuzzers above must not pass by refusing everything."""
    body = HEADER + "7001,Shop,1 Road,supermarket,110101,110101001,110101001001,39.9,116.4,10,60,\n"
    r = ingest_sync.post("/v1/venues/import", content=body.encode(), headers=admin_headers())
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    line = json.dumps({"name": "A", "phone": "13900000001", "id_number": id_number(1)})
    r = ingest_sync.post("/v1/residents/import", content=line.encode(), headers=admin_headers())
    assert r.status_code == 200 and '"person_id"' in r.text, r.text
