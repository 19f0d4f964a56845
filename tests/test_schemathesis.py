"""The OpenAPI documents are the truth (docs/ARCHITECTURE.md, "The OpenAPI documents").

schemathesis loads each service's document from the app itself and runs its examples, coverage and
fuzzing phases against the app in process with every check it has: no 5xx, every status, content
type, header and body declared, schema-valid requests accepted and schema-invalid ones refused, a
protected route refuses a request without its credentials, an undocumented method gets 405 with
``Allow``. Any finding fails the test with schemathesis's own report of it (title, message, curl).

What no schema can say is given to schemathesis as the documents name it: the ``format`` of a value
only a key or a checksum makes valid (a signed venue code, an id number's check character, an
operator's text) and the streamed bodies of the imports get generators of valid values; refusals that
depend on what the record holds are the statuses :data:`STATEFUL` lists.

A bounded number of examples per operation and a fixed seed keep both runs under two minutes
(:data:`MAX_EXAMPLES`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import schemathesis
from hypothesis import strategies as st
from litestar import Litestar
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events
from schemathesis.python import asgi

from checkin.platform.keyring import Keyring
from checkin.platform.openapi_doc import ID_NUMBER_FORMAT, OPERATOR_TEXT_FORMAT, VENUE_CODE_FORMAT
from checkin.platform.persons import ID_NUMBER_PATTERN
from checkin.platform.settings import Settings
from tests.support.ingest import id_number, with_check_digit
from tests.support.values import ADMIN_KEY, free_port
from tracing.storage.store import Store
from venues import codes, importer, text

SEED = 20261129
MAX_EXAMPLES = 3
"""Per operation and mode in the fuzzing phase; the coverage phase (every boundary of every schema,
positive and negative) is most of the run: both services take about 80 s on two busy cores."""
VENUES = (1, 2, 3)
"""The venues the ingest run starts with (generated ids and codes name them)."""

SKIPPED_PATHS = [
    # a server-sent-events feed that never ends by design (tests/test_alerts_sse.py)
    "/v1/alerts/stream",
]

STATEFUL = ["2xx", "3xx", "401", "403", "404", "409", "410", "422", "429", "5xx"]
"""What a schema-valid request may answer besides success: refusals that depend on what the record
holds, which no schema can say - an id that names nothing (404), a resource in another state (409),
gone (410: a closed venue, a replaced code, an expired challenge), a rule of the record (422: a time in
the past, a street outside its district); 401 and 403 because one caller cannot call every route.
A 400 is never among them: a request the document allows must not be called malformed."""


def _config(resident_token: str = "") -> SchemathesisConfig:
    operations: list[dict[str, Any]] = [
        {
            # the ingest route relays to the tracing service, which this test does not start
            # (tests/test_own_visits*.py run both): its 503 is the documented answer then
            "include-path": "/v1/residents/me/visits",
            "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}},
        },
    ]
    if resident_token:
        operations.append(
            {
                # a resident's routes and the check-in routes are called with a resident's token
                # (revoking it would leave the rest of the run without one: that route keeps the admin's)
                "include-path-regex": r"^/v1/(residents/me(?!/revoke)|checkins)",
                "headers": {"Authorization": f"Bearer {resident_token}"},
            }
        )
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            # a pattern with a length bound (an id number's spaces, a phone's separators) makes
            # hypothesis discard many drawn strings: slower generation, not a finding
            "suppress-health-check": ["filter_too_much"],
            "headers": {"Authorization": f"Bearer {ADMIN_KEY}"},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none", "no-shrink": True},
            "phases": {"stateful": {"enabled": False}},
            "checks": {"positive_data_acceptance": {"expected-statuses": STATEFUL}},
            "operations": operations,
        }
    )


SIGNED: list[str] = []
"""Venue codes of :data:`VENUES` signed with the running test's keyring."""


def _register_generators(settings: Settings, service: str) -> None:
    """Valid values of what the documents name but no schema can check."""
    keyring = Keyring.parse(settings.keyring)
    SIGNED[:] = [codes.sign(keyring, venue, 1) for venue in VENUES]
    schemathesis.openapi.format(VENUE_CODE_FORMAT, st.sampled_from(SIGNED))
    schemathesis.openapi.format(
        ID_NUMBER_FORMAT, st.text("0123456789", min_size=17, max_size=17).map(with_check_digit)
    )
    words = st.text("场所书店广场餐厅超市东西南北路号 ABCDEFGHabcdefgh0123456789", min_size=1, max_size=30)
    schemathesis.openapi.format(OPERATOR_TEXT_FORMAT, words.filter(lambda t: text.problem(t) is None))
    person = st.fixed_dictionaries(
        {
            "name": st.sampled_from(["张三", "李四"]),
            "phone": st.just("13900000002"),
            "id_number": id_numbers(),
        }
    )
    schemathesis.openapi.media_type(
        "application/x-ndjson",
        st.lists(person, min_size=1, max_size=3).map(
            lambda rows: b"\n".join(msgspec.json.encode(r) for r in rows)
        ),
    )
    # the ingest service takes venues (a header line: the rows' rules are tests/test_venues_*.py's),
    # the tracing service region names
    venues_csv = st.just((",".join(importer.COLUMNS) + "\n").encode())
    regions_csv = st.sampled_from(
        [b"110101,\xe4\xb8\x9c\xe5\x9f\x8e\xe5\x8c\xba\n", b"code,name\n110102,Xicheng\n"]
    )
    schemathesis.openapi.media_type("text/csv", venues_csv if service == "ingest" else regions_csv)


def id_numbers() -> st.SearchStrategy[str]:
    return st.integers(1, 500).map(id_number)


def _checked(value: str) -> str:
    """An id number of the documented shape with the check character its 17 digits give."""
    chars = [c for c in value if c != " "]
    right = with_check_digit("".join(chars[:17]))[-1]
    last = max(i for i, c in enumerate(value) if c != " ")
    return value[:last] + right + value[last + 1 :]


def _formatted(key: str, value: Any, path: str) -> Any:
    """``value`` of member ``key`` made to keep the format the documents name for it."""
    if not isinstance(value, str):
        return _in_format(value, path)
    if key in ("code", "token") and SIGNED and re.search(codes.TOKEN_PATTERN, value):
        return SIGNED[sum(map(ord, value)) % len(SIGNED)]
    if key == "id_number" and re.search(ID_NUMBER_PATTERN, value):
        return _checked(value)
    if path.startswith("/v1/venues") and key in (*text.TEXT_FIELDS, "reason") and value:
        return value if text.problem(value) is None else "Fuzz venue"
    return value


def _in_format(node: Any, path: str) -> Any:
    if isinstance(node, dict):
        return {k: _formatted(k, v, path) for k, v in node.items()}
    if isinstance(node, list):
        return [_in_format(v, path) for v in node]
    return node


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Every phase keeps the formats the documents name. The coverage phase (and the documents'
    examples) make a value from its pattern alone; a value of the right shape that misses what only
    a key or a checksum gives (a signed venue code, an id number's check character, an operator's
    text) is given it, as the format generators above would. A value of the wrong shape stays."""
    path = case.operation.path
    if isinstance(case.body, (dict, list)):
        case.body = _in_format(case.body, path)
    if case.path_parameters:
        case.path_parameters = {k: _formatted(k, v, path) for k, v in case.path_parameters.items()}


def _findings(app: Litestar, config: SchemathesisConfig) -> list[str]:
    """Every failed check and error of a schemathesis run against ``app``, as readable text."""
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app, config=config)
    for path in SKIPPED_PATHS:
        schema = schema.exclude(path=path)
    found: list[str] = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished) and event.status == Status.FAILURE:
            for case_id, checks in event.recorder.checks.items():
                interaction = event.recorder.interactions.get(case_id)
                response = interaction.response if interaction is not None else None
                answer = "" if response is None else f"{response.status_code} {response.content[:300]!r}"
                for check in checks:
                    if check.failure_info is None:
                        continue
                    failure = check.failure_info.failure
                    found.append(
                        f"[{event.phase.value}] {event.recorder.label}: {failure.code} {failure.title}\n"
                        f"{failure.message}\n{check.failure_info.code_sample}\n-> {answer}"
                    )
        elif isinstance(event, events.NonFatalError):
            found.append(f"[error] {event.label}: {event.info.title}\n{event.info.message}")
        elif isinstance(event, events.FatalError):
            found.append(f"[fatal] {event.exception!r}")
    return sorted(set(found))


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    # the fuzzer registers and checks in from one address, far faster than a person; the tracing
    # service the ingest service relays own visits to is not started (a free port refuses)
    settings: Settings = make_settings(
        rate_register_per_min=100_000, rate_resident_per_min=100_000, tracing_port=free_port()
    )
    return settings


@pytest.fixture
def ingest_app(settings: Settings) -> Iterator[Litestar]:
    from checkin.app import create_app

    app = create_app(settings)
    yield app
    asgi.shutdown_lifespans()


@pytest.fixture
def tracing_app(settings: Settings, store: Store) -> Iterator[Litestar]:
    from tracing.app import create_app

    app = create_app(settings, store=store, workers=())
    yield app
    asgi.shutdown_lifespans()


def _seed_ingest(app: Litestar) -> str:
    """The venues of :data:`VENUES` and a resident; returns the resident's token."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with asgi.get_client(app) as client:
        for venue in VENUES:
            r = client.post(
                "/v1/venues",
                json={
                    "venue_id": venue,
                    "name": f"Fuzz venue {venue}",
                    "address": f"{venue} Fuzz Road",
                    "district": "110101",
                    "street": "110101001",
                    "community": "110101001001",
                    "lat": 39.9,
                    "lon": 116.4,
                },
                headers=admin,
            )
            assert r.status_code == 201, r.text
        line = msgspec.json.encode({"name": "张三丰", "phone": "13900000001", "id_number": id_number(1)})
        r = client.post("/v1/residents/import", data=line, headers=admin)
        assert r.status_code == 200, r.text
        token: str = msgspec.json.decode(r.content.splitlines()[0])["token"]
    return token


@pytest.mark.slow
def test_ingest_api_is_what_its_document_says(ingest_app: Litestar, settings: Settings) -> None:
    _register_generators(settings, "ingest")
    token = _seed_ingest(ingest_app)
    findings = _findings(ingest_app, _config(token))
    assert not findings, f"{len(findings)} findings:\n\n" + "\n\n".join(findings)


@pytest.mark.slow
def test_tracing_api_is_what_its_document_says(tracing_app: Litestar, settings: Settings) -> None:
    _register_generators(settings, "tracing")
    findings = _findings(tracing_app, _config())
    assert not findings, f"{len(findings)} findings:\n\n" + "\n\n".join(findings)
