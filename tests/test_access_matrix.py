"""Authorization matrix: every route of both services x every kind of caller.

The expectation is one declarative table (``RULES``); the routes come from the apps' own route
tables, so a new route without a row fails the test. ``python -m tests.test_access_matrix``
renders the same table into docs/SECURITY_MATRIX.md (a test checks the file is current).

Outcomes are exact statuses: ``ok`` = a 2xx, or the specific status a row names where the request
is refused after the access check (an unknown id, a used challenge); ``401``; ``403``; ``hidden`` =
the row's 404 (or 403) for a thing out of the caller's scope or not theirs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import ASGIRoute
from litestar.testing import AsyncTestClient

from checkin.platform import resident_tokens
from checkin.platform.keyring import Keyring
from checkin.platform.settings import Settings
from tests.support.access_world import World, build_world, iso, venue_body
from tests.support.ingest import bearer, child_id_number, id_number, register
from tests.support.values import admin_headers
from tracing.storage.store import Store
from venues import importer

DOC = Path(__file__).resolve().parent.parent / "docs" / "SECURITY_MATRIX.md"

# Callers. Scoped variants: "_in" = jurisdiction containing venue A (district 110101),
# "_out" = another district (120101); "_other" = bound to venue B.
ROLES: tuple[str, ...] = (
    "anonymous",
    "forged",
    "expired",
    "resident",
    "resident_other",
    "admin",
    "operator",
    "operator_in",
    "operator_out",
    "operator_other",
    "operator_street",
    "operator_bound",
    "device",
    "device_other",
    "health",
    "tracer",
    "tracer_in",
    "tracer_out",
    "tracer_community",
    "tracer_community_out",
    "analyst",
    "analyst_in",
    "analyst_out",
    "analyst_street_out",
)
ROLE_NOTES = {
    "anonymous": "no Authorization header",
    "forged": "a bearer token that is no key (random `ck_...`)",
    "expired": "resident token of P past its expiry",
    "resident": "resident P (owner of the check-in, the index person)",
    "resident_other": "resident Q acting on P's things",
    "admin": "CHECKIN_ADMIN_KEY",
    "operator": "operator key, whole city",
    "operator_in": "operator scoped to district 110101 (venue A's)",
    "operator_out": "operator scoped to district 120101",
    "operator_other": "operator bound to venue B",
    "operator_street": "operator scoped to street 110101001 (venue A's)",
    "operator_bound": "operator bound to venue A",
    "device": "device key bound to venue A",
    "device_other": "device key bound to venue B",
    "health": "health-feed key",
    "tracer": "tracer key, whole city",
    "tracer_in": "tracer scoped to district 110101",
    "tracer_out": "tracer scoped to district 120101",
    "tracer_community": "tracer scoped to community 110101001001 (venue A's)",
    "tracer_community_out": "tracer scoped to community 110101001002 (same street, not venue A's)",
    "analyst": "analyst key, whole city",
    "analyst_in": "analyst scoped to district 110101",
    "analyst_out": "analyst scoped to district 120101",
    "analyst_street_out": "analyst scoped to street 110101002 (venue A's district, another street)",
}
KEYED = ROLES[5:]
UNAUTH = ("anonymous", "forged", "expired")

OPERATORS = {"admin", "operator", "operator_in", "operator_street"}
OF_VENUE_A = OPERATORS | {"operator_bound"}
TRACERS = {"admin", "tracer", "tracer_in", "tracer_community"}
OUT_TRACERS = {"tracer_out", "tracer_community_out"}
ANALYSTS = {"admin", "analyst", "analyst_in", "analyst_out", "analyst_street_out"}
RESIDENTS = {"resident", "resident_other"}
EVERYONE = set(ROLES)


@dataclass(frozen=True)
class Rule:
    allow: frozenset[str]
    """Callers that get ``ok``; every other authenticated caller gets 403 unless listed below."""
    hidden: frozenset[str] = frozenset()
    """Callers refused with 403 or 404 (outside their scope / not theirs)."""
    public: bool = False
    """No authentication at all (then ``allow`` is everyone)."""
    note: str = ""
    send_allowed: bool = True
    """False for endless responses (SSE): only refusals are sent."""
    ok: frozenset[int] = frozenset()
    """The statuses an allowed caller gets (empty: any 2xx); a specific status where the request
    is refused for a reason after the access check (an unknown id, a used challenge)."""
    hidden_as: int = 404
    """The status of a ``hidden`` refusal."""

    def expect(self, role: str) -> str:
        if self.public or role in self.allow:
            return "ok"
        if role in UNAUTH:
            return "401"
        if role in self.hidden:
            return "hidden"
        return "403"


def rule(
    allow: set[str],
    hidden: set[str] | None = None,
    note: str = "",
    send_allowed: bool = True,
    ok: set[int] | None = None,
    hidden_as: int = 404,
) -> Rule:
    return Rule(
        frozenset(allow),
        frozenset(hidden or ()),
        note=note,
        send_allowed=send_allowed,
        ok=frozenset(ok or ()),
        hidden_as=hidden_as,
    )


def public(note: str = "", ok: set[int] | None = None) -> Rule:
    return Rule(frozenset(EVERYONE), public=True, note=note, ok=frozenset(ok or ()))


PUBLIC = public()

V = "/v1/venues/{venue_id:int}"
RULES: dict[tuple[str, str, str], Rule] = {
    # --- ingest ------------------------------------------------------------------------------------
    ("ingest", "GET", "/healthz"): PUBLIC,
    ("ingest", "GET", "/metrics"): public("counters only, no ids"),
    ("ingest", "GET", "/v1/keys"): rule(
        {"admin"},
        note="records only; secrets are never stored; an operator lists the device keys of a venue it "
        "manages with ?venue_id= (test_venue_operator.py)",
    ),
    ("ingest", "POST", "/v1/keys"): rule(
        {"admin"},
        note="an operator makes device keys of a venue it manages, audited (test_venue_operator.py)",
    ),
    ("ingest", "DELETE", "/v1/keys/{key_id:str}"): rule(
        {"admin"}, ok={404}, note="an unknown key id: 404; an operator revokes its venues' device keys"
    ),
    ("ingest", "POST", "/v1/residents/otp"): public(
        "limited per phone and per address: the first caller gets 202, the others 429", ok={202, 429}
    ),
    ("ingest", "POST", "/v1/residents"): public(
        "needs the code sent to the phone: an unknown challenge is 410 otp_expired", ok={410}
    ),
    ("ingest", "GET", "/v1/residents/me/guardians"): rule(RESIDENTS, note="own list only"),
    ("ingest", "DELETE", "/v1/residents/me/guardians/{person_id:int}"): rule(
        RESIDENTS, ok={404}, note="ends only a guardianship over the caller (P is no one's guardian: 404)"
    ),
    ("ingest", "POST", "/v1/residents/me/guardians/{person_id:int}/confirm"): rule(
        RESIDENTS, ok={404}, note="confirms only a guardian of the caller (P is no one's guardian: 404)"
    ),
    ("ingest", "GET", "/v1/residents/me/pass"): rule(RESIDENTS, note="a 120 s pass of the caller"),
    ("ingest", "POST", "/v1/residents/me/revoke"): rule(
        RESIDENTS, note="ends the caller's own tokens (sent with two spare residents' tokens)"
    ),
    ("ingest", "PUT", "/v1/residents/{person_id:int}/phone"): rule({"admin", "health"}, note="audited"),
    ("ingest", "POST", "/v1/residents/{person_id:int}/revoke"): rule({"admin", "health"}, note="audited"),
    ("ingest", "POST", "/v1/residents/import"): rule({"admin"}),
    ("ingest", "GET", "/v1/residents/me/companions"): rule(RESIDENTS, note="own list only"),
    ("ingest", "POST", "/v1/residents/me/companions"): rule(RESIDENTS, note="own list only"),
    ("ingest", "DELETE", "/v1/residents/me/companions/{person_id:int}"): rule(
        {"resident"}, hidden={"resident_other"}, note="Q cannot remove P's companion (404)"
    ),
    ("ingest", "GET", "/v1/health/{person_id:int}"): rule({"admin", "health"}),
    ("ingest", "PUT", "/v1/health/{person_id:int}"): rule({"admin", "health"}),
    ("ingest", "POST", "/v1/health/tests"): rule({"admin", "health"}),
    ("ingest", "PUT", "/v1/watchlist/{person_id:int}"): rule({"admin", "health"}),
    ("ingest", "DELETE", "/v1/watchlist/{person_id:int}"): rule({"admin", "health"}),
    ("ingest", "POST", "/v1/checkins"): rule(RESIDENTS),
    ("ingest", "POST", "/v1/checkins/batch"): rule(RESIDENTS),
    ("ingest", "GET", "/v1/checkins/{checkin_id:str}"): rule(
        {"resident"}, hidden={"resident_other"}, note="only the owner, judged now (404 for others)"
    ),
    ("ingest", "GET", "/v1/residents/me"): rule(
        RESIDENTS, note="own health code, and the persons the caller may check in"
    ),
    ("ingest", "PUT", "/v1/residents/me/language"): rule(RESIDENTS, note="own record only"),
    ("ingest", "GET", "/v1/residents/me/notices"): rule(RESIDENTS, note="own notices only"),
    ("ingest", "POST", "/v1/residents/me/notices/{notice_id:str}/ack"): rule(
        RESIDENTS, ok={404}, note="own notices only (no such notice: 404)"
    ),
    ("ingest", "GET", "/v1/residents/me/visits"): rule(
        RESIDENTS,
        ok={503},
        note="relayed to the tracing service, not served in this test: 503 after the access check "
        "(test_resident_record.py serves it)",
    ),
    ("ingest", "POST", "/v1/checkins/{checkin_id:str}/checkout"): rule(
        {"resident"}, hidden={"resident_other"}, note="only the owner of the check-in (404 for others)"
    ),
    ("ingest", "POST", "/v1/sentinel/scans"): rule(
        {"admin", "device"}, note="upload for venue A; a device key only for its own venue"
    ),
    ("ingest", "GET", "/v/{token:str}"): PUBLIC,
    ("ingest", "GET", "/me"): public("the page without a venue code; its script reads with the token"),
    ("ingest", "GET", "/sw.js"): PUBLIC,
    ("ingest", "GET", "/static/phone/{version:str}/{name:str}"): PUBLIC,
    ("ingest", "GET", "/static/phone.css"): PUBLIC,
    ("ingest", "GET", "/v1/venues"): rule(
        OF_VENUE_A | {"operator_out", "operator_other"}, note="each sees only its venues"
    ),
    ("ingest", "POST", "/v1/venues"): rule(OPERATORS, note="a venue in district 110101"),
    ("ingest", "POST", "/v1/venues/import"): rule(
        OPERATORS | {"operator_out"}, note="rows outside the key's scope are rejected per row"
    ),
    ("ingest", "GET", V): rule(OF_VENUE_A),
    ("ingest", "PATCH", V): rule(
        OF_VENUE_A, note="its name; the place only by admin (test_integrity.py: 403 place_change)"
    ),
    ("ingest", "GET", V + "/code"): rule(
        OF_VENUE_A | {"device"}, note="the venue's device too (its screen shows the code)"
    ),
    ("ingest", "GET", V + "/history"): rule(
        {"admin", "analyst", "analyst_in"}, note="admins and analysts whose jurisdiction holds the venue"
    ),
    ("ingest", "GET", "/display/{venue_id:int}"): rule(
        {"admin", "device"}, ok={409}, note="the venue's device key; venue A shows a poster: 409 not_rotating"
    ),
    ("ingest", "GET", "/display/{venue_id:int}/code"): rule(
        {"admin", "device"}, ok={409}, note="as the page; the screen itself: test_display_browser.py"
    ),
    ("ingest", "POST", "/display/{venue_id:int}/setup-codes"): rule(
        {"device"}, ok={409}, note="the venue's device key makes a link carrying itself; venue A: 409"
    ),
    ("ingest", "GET", "/display/{venue_id:int}/setup"): public(
        "the page of a one-time set-up link; an unknown or spent code: 410", ok={410}
    ),
    ("ingest", "POST", "/display/{venue_id:int}/setup"): public(
        "confirms a one-time set-up link; an unknown or spent code: 410", ok={410}
    ),
    ("ingest", "GET", "/static/display.js"): PUBLIC,
    ("ingest", "GET", "/static/display.css"): PUBLIC,
    ("ingest", "POST", V + "/code/rotate"): rule(OF_VENUE_A),
    ("ingest", "GET", V + "/entries"): rule(OF_VENUE_A),
    ("ingest", "GET", V + "/day"): rule(OF_VENUE_A, note="counts, occupancy and capacity alerts; no persons"),
    ("ingest", "GET", V + "/poster.png"): rule(OF_VENUE_A),
    ("ingest", "GET", V + "/poster.svg"): rule(OF_VENUE_A),
    ("ingest", "GET", V + "/poster.pdf"): rule(OF_VENUE_A),
    ("ingest", "GET", "/operator"): PUBLIC,
    ("ingest", "GET", "/operator/{version:str}/{name:str}"): PUBLIC,
    ("ingest", "GET", "/operator/app.css"): PUBLIC,
    ("ingest", "GET", "/schema"): PUBLIC,
    ("ingest", "GET", "/schema/swagger"): PUBLIC,
    ("ingest", "GET", "/schema/{path:str}"): public("an unknown schema page: 404", ok={404}),
    ("ingest", "GET", "/schema/openapi.json"): PUBLIC,
    ("ingest", "GET", "/schema/oauth2-redirect.html"): PUBLIC,
    ("ingest", "GET", "/schema/assets/{asset:str}"): public("Swagger UI's script, style and icon"),
    # --- tracing -----------------------------------------------------------------------------------
    ("tracing", "GET", "/healthz"): PUBLIC,
    ("tracing", "GET", "/metrics"): public("counters only, no ids"),
    ("tracing", "GET", "/v1/alerts"): rule(ANALYSTS, note="a scoped key gets only its district's alerts"),
    ("tracing", "GET", "/v1/alerts/stream"): rule(
        ANALYSTS, note="SSE: refusals checked here, the feed in test_alerts_sse", send_allowed=False
    ),
    ("tracing", "POST", "/v1/alerts/{alert_id:str}/ack"): rule(
        ANALYSTS, ok={404}, note="an unknown alert: 404 (out of scope: 404 too, test_alerts_escalation)"
    ),
    ("tracing", "POST", "/v1/alerts/{alert_id:str}/resolve"): rule(
        ANALYSTS, ok={404}, note="an unknown alert: 404 (out of scope: 404 too, test_alerts_escalation)"
    ),
    ("tracing", "GET", "/v1/report"): rule(
        ANALYSTS, note="the key's jurisdiction by default; a wider scope is refused (test_report)"
    ),
    ("tracing", "GET", "/v1/alerts/queue"): rule(
        ANALYSTS, note="the key's level (scope length) and jurisdiction only"
    ),
    ("tracing", "GET", "/v1/exposure-sites"): rule(
        ANALYSTS | TRACERS | OUT_TRACERS, note="filtered to the key's scope"
    ),
    ("tracing", "POST", "/v1/exposure-sites"): rule(TRACERS, hidden=OUT_TRACERS, note="venue A"),
    ("tracing", "DELETE", "/v1/exposure-sites/{site_id:str}"): rule(
        TRACERS, hidden=OUT_TRACERS, ok={204, 404}, note="the first delete ends the site: 204, then 404"
    ),
    ("tracing", "GET", "/v1/trace/persons/{person_id:str}/visits"): rule(
        TRACERS, hidden=OUT_TRACERS, note="P has stays only in community 110101001001"
    ),
    ("tracing", "POST", "/v1/trace/contacts"): rule(TRACERS, hidden=OUT_TRACERS),
    ("tracing", "POST", "/v1/trace/persons/lookup"): rule(
        TRACERS | OUT_TRACERS, note="a scoped key finds only persons with stays in its jurisdiction"
    ),
    ("tracing", "POST", "/v1/trace/exposures"): rule(TRACERS, hidden=OUT_TRACERS, hidden_as=403),
    ("tracing", "POST", "/v1/trace/sources"): rule(
        TRACERS, hidden=OUT_TRACERS, note="cases P and Q; none has a stay in an outside jurisdiction: 404"
    ),
    ("tracing", "GET", "/v1/trace/persons/{person_id:str}/contact-details"): rule(
        TRACERS,
        hidden=OUT_TRACERS,
        hidden_as=403,
        note="sent after the contacts rows (P is their index person): only persons a contacts or exposure "
        "answer named to the key (403 not_traced)",
    ),
    ("tracing", "GET", "/v1/audit"): rule({"admin"}),
    ("tracing", "POST", "/v1/regions/import"): rule({"admin"}, note="CSV code,name"),
    ("tracing", "GET", "/v1/regions"): rule(TRACERS | OUT_TRACERS | ANALYSTS, note="names are not scoped"),
    ("tracing", "GET", "/v1/residents/me/visits"): rule(RESIDENTS, note="the caller's own stays only"),
    ("tracing", "GET", "/v1/stats/scans-per-hour"): rule(ANALYSTS, note="counts only the key's scope"),
    ("tracing", "GET", "/v1/stats/districts"): rule(ANALYSTS, note="counts only the key's scope"),
    ("tracing", "GET", "/v1/stats/venues"): rule(ANALYSTS, note="counts only the key's scope"),
    ("tracing", "GET", "/console"): PUBLIC,
    ("tracing", "GET", "/console/static/{name:str}"): PUBLIC,
    ("tracing", "GET", "/console/whoami"): rule(set(KEYED), note="any API key; residents refused"),
    ("tracing", "GET", "/schema"): PUBLIC,
    ("tracing", "GET", "/schema/swagger"): PUBLIC,
    ("tracing", "GET", "/schema/{path:str}"): public("an unknown schema page: 404", ok={404}),
    ("tracing", "GET", "/schema/openapi.json"): PUBLIC,
    ("tracing", "GET", "/schema/oauth2-redirect.html"): PUBLIC,
    ("tracing", "GET", "/schema/assets/{asset:str}"): public("Swagger UI's script, style and icon"),
}


def route_table(app: Litestar, declared: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """(method, path) of every route; a plain ASGI route takes every method, so it is matched
    by the methods declared for its path (it must have at least one row)."""
    out = set()
    for route in app.routes:
        if isinstance(route, ASGIRoute):
            methods = {m for m, p in declared if p == route.path} or {"ANY"}
        else:
            methods = set(route.methods) - {"HEAD", "OPTIONS"}
        out |= {(m, route.path) for m in methods}
    return out


def render() -> str:
    """docs/SECURITY_MATRIX.md, generated from ``RULES`` (and the bad-input list below)."""
    short = {"ok": "ok", "401": "401", "403": "403"}
    lines = [
        "# Access matrix and bad inputs",
        "",
        "Generated by `python -m tests.test_access_matrix` from the table that "
        "`tests/test_access_matrix.py` enforces (do not edit by hand).",
        "",
        "`ok` = allowed: a 2xx, or the status the note names where the request is refused after the "
        "access check (an unknown id, a used challenge); `401` = not authenticated; `403` = wrong role "
        "or outside the key's scope; `404` = out of scope or not the caller's, without revealing "
        "whether the thing exists. Every cell is the exact status the test expects. "
        "The requests name venue A (district 110101), person P and P's check-in.",
        "",
        "## Callers",
        "",
        "| caller | what |",
        "|---|---|",
        *[f"| `{r}` | {ROLE_NOTES[r]} |" for r in ROLES],
        "",
    ]
    for service in ("ingest", "tracing"):
        lines += [
            f"## {service} service",
            "",
            "| route | " + " | ".join(ROLES) + " | note |",
            "|---|" + "---|" * (len(ROLES) + 1),
        ]
        for (svc, method, path), r in sorted(RULES.items(), key=lambda kv: (kv[0][2], kv[0][1])):
            if svc != service:
                continue
            cells = [short.get(r.expect(role), str(r.hidden_as)) for role in ROLES]
            ok = f" (ok = {', '.join(map(str, sorted(r.ok)))})" if r.ok else ""
            lines.append(f"| `{method} {path}` | " + " | ".join(cells) + f" | {r.note}{ok} |")
        lines.append("")
    lines += [
        "## Other access properties (tests)",
        "",
        *[f"- {text} (`{test}`)" for test, text in PROPERTIES],
        "",
        "## Bad inputs tried",
        "",
        *[f"- {text} (`{test}`)" for test, text in BAD_INPUTS],
        "",
    ]
    return "\n".join(lines)


PROPERTIES = [
    ("test_access_matrix.py::test_access_matrix", "every route x every caller above, against the table"),
    (
        "test_access_matrix.py::test_resident_tokens_expire_and_act_only_for_their_person",
        "an expired or re-signed resident token is refused; a resident cannot check out another "
        "person's check-in, nor check in with someone who is not their companion",
    ),
    (
        "test_access_matrix.py::test_device_keys_are_bound_to_one_venue",
        "a device key cannot upload for another venue, and a device key without a venue cannot be made",
    ),
    (
        "test_access_matrix.py::test_scoped_keys_see_only_their_district",
        "scoped analysts, tracers and operators get only their district's stays, stats, exposure sites "
        "and venues (scoped alert history and feed: test_alerts_api.py, test_alerts_sse.py)",
    ),
    (
        "test_access_matrix.py::test_revocation_takes_effect",
        "a deleted API key gets 401 on both services within the 5 s key cache; a resident's revoke "
        "ends their token at once",
    ),
    (
        "test_integrity.py::test_an_operator_cannot_move_or_blind_its_venue_and_every_change_is_kept",
        "an operator bound to its venue renames it but cannot move it (403 place_change) or set "
        "dwell_minutes outside [5, 720] (400); every change is kept, readable by admins and analysts "
        "in scope only",
    ),
    (
        "test_integrity.py::test_contact_details_only_of_persons_a_trace_named_to_the_key",
        "contact details only of the index case or persons a trace or exposure answer named to the "
        "same key in the last 24 h (403 not_traced, audited)",
    ),
    (
        "test_integrity.py::test_a_device_answer_names_no_one_and_a_device_has_its_own_budget",
        "a door device's answer has no person id, check-in id or test time; its scans spend its own "
        "budget and may be a day old at most",
    ),
    (
        "test_integrity.py::test_forwarded_for_counts_only_behind_a_trusted_proxy",
        "X-Forwarded-For from an untrusted peer changes nothing; behind a trusted proxy the right-most "
        "untrusted hop is the client",
    ),
    (
        "test_access_matrix.py::test_api_keys_are_stored_hashed",
        "Redis holds SHA-256 digests of API keys, never the key; listings never show it",
    ),
    (
        "test_identity.py::test_knowing_a_name_and_id_number_is_not_enough_to_act_as_them",
        "registering a registered id number with another phone (its code proved) gets 409 "
        "phone_mismatch, no token, and the phone on record stays",
    ),
    (
        "test_identity.py::test_five_wrong_codes_lock_the_challenge",
        "one-time codes: 5 wrong codes lock the challenge; a used or expired challenge is 410; codes "
        "are limited per phone (1 a minute, 10 a day) and per address (test_codes_are_limited_*)",
    ),
    (
        "test_identity.py::test_a_revoked_token_is_refused_everywhere",
        "after a revoke, the older token gets 401 token_revoked at check-in, batch, companions, pass; "
        "re-binding a phone (health, audited) ends the tokens too",
    ),
    (
        "test_identity.py::test_a_door_pass_checks_in_for_two_minutes_and_a_bearer_token_is_not_a_pass",
        "door scanners take a signed pass valid 120 s; an old, forged or cut pass, a bearer token, "
        "or the pass of a revoked person is refused",
    ),
    (
        "test_identity.py::test_a_registered_stranger_is_added_only_with_their_code",
        "a registered person becomes a companion only with the code of the phone on their record "
        "(403 consent_required otherwise); they see and end it in /v1/residents/me/guardians",
    ),
    (
        "test_identity_round2.py::test_an_attacker_cannot_claim_a_stranger_and_the_real_person_takes_their_record_over",
        "knowing a stranger's name and id number adds them as a dependant only when they are a child "
        "(under 16) or an elder (70 or over) today; anyone else needs the code of a phone they hold "
        "(403 consent_required). The real person who registers later takes the record over (201, same "
        "person and stays); every guardian link then waits for their confirmation, and the guardian "
        "cannot check them in (403 foreign_companion) until they confirm it; refusing ends it "
        "(test_a_child_or_an_elder_*, test_a_dependant_who_registers_*)",
    ),
    (
        "test_identity_round2.py::test_a_phone_rebind_by_the_health_authority_ends_every_guardian_link",
        "a phone re-bound by the health authority ends every guardian link of the person, confirmed or "
        "pending; the stays stay",
    ),
    (
        "test_identity_round2.py::test_the_companions_route_answers_registered_and_unknown_id_numbers_alike",
        "without a code the companions route answers a registered and an unknown id number with the same "
        "problem body, the same Redis commands and the same time, and is limited per resident and per "
        "address (429 with Retry-After; test_the_companions_route_is_limited_*)",
    ),
    (
        "test_identity_round2.py::test_a_phone_has_one_canonical_form_everywhere",
        "+86, 0086, spaces and dashes spell the same phone: one code budget, one phone on record "
        "(registration, import, re-bind, companions)",
    ),
    (
        "test_identity_round2.py::test_a_door_pass_is_read_once",
        "a door pass is read once: the same door device reading it again within 60 s is the same "
        "check-in, any other device or venue gets 401 pass_used; the phone's next poll gets a fresh pass",
    ),
    (
        "test_identity.py::test_tokens_have_one_spelling",
        "a token with junk characters, padding or other padding bits is refused",
    ),
    (
        "test_no_secret_leaks.py::test_no_secret_or_raw_identifier_leaks",
        "after a full scenario no raw id number, phone number, API key, admin key or keyring secret "
        "is in any Redis value, ClickHouse row, log record or error body",
    ),
    (
        "test_access_round2_tracing.py::test_a_visits_timeline_binds_no_one",
        "a visits timeline or a person lookup binds no one: visits of id 1, 2, 3, ... then contact "
        "details of each is 403 not_traced for every id; a contacts answer binds its index person and "
        "the contacts it names",
    ),
    (
        "test_access_round2_tracing.py::test_contact_details_have_an_hourly_budget_and_a_key_that_reaches_it_alerts_the_city",
        "a key reads at most CHECKIN_CONTACT_DETAILS_PER_HOUR contact details an hour (429 over_budget, "
        "audited); the read that reaches it raises one bulk_read alert at the city level, listed for a "
        "city analyst and not for a district's",
    ),
    (
        "test_access_round2_tracing.py::test_own_visits_are_rate_limited_on_the_tracing_service_too",
        "a resident's own visits are limited on the tracing service too (CHECKIN_RATE_VISITS_PER_MIN; "
        "100 calls in a row: the rest 429)",
    ),
    (
        "test_access_round2_tracing.py::test_reads_of_statistics_venue_history_and_exposure_sites_are_audited",
        "reads of statistics, exposure-site lists and a venue's history write audit rows like trace queries",
    ),
    (
        "test_access_round2_venues.py::test_an_operator_cannot_move_its_venue_a_thousand_km",
        "an operator cannot change its venue's lat or lon (403 place_change), by PATCH or by CSV import "
        "(refused whole, nothing written); an admin can, and the history keeps it",
    ),
    (
        "test_access_round2_venues.py::test_an_operator_cannot_name_its_venue_with_a_phishing_text",
        "venue names and addresses are 1..60 printable characters with no web address, domain-like word, "
        "【】, bidirectional override (U+202E), zero-width or control character: 400 naming the rule on "
        "create, PATCH and CSV import (test_a_right_to_left_*, test_a_csv_import_*)",
    ),
    (
        "test_access_round2_venues.py::test_a_notice_text_is_the_project_template_never_anyones_free_text",
        "an exposure notice's SMS is the project's template (venue, window in local time, the level's "
        "instruction in the resident's language, a link to the notice): never a tracer's message or a "
        "venue name that breaks the text rules",
    ),
]

BAD_INPUTS = [
    (
        "test_schemathesis.py",
        "schemathesis-generated requests (paths, queries, bodies; admin key) for every operation of "
        "both OpenAPI schemas: never a 5xx, 2xx answers match their documented schema and media type",
    ),
    (
        "test_fuzz_parsers.py",
        "arbitrary text and bytes to resident-token and venue-code verification: only the domain error",
    ),
    (
        "test_fuzz_parsers.py",
        "arbitrary bytes, broken quoting, huge fields, formula cells and binary to the venue CSV "
        "import, and arbitrary NDJSON lines to the resident import, in process and over HTTP: "
        "per-row errors or a 4xx, never a 500",
    ),
    (
        "test_fuzz_parsers.py",
        "arbitrary Authorization headers: 401, never a 500",
    ),
    ("test_venues_codes.py", "bit flips and truncations of venue codes"),
    ("test_checkins_protection.py", "body-size limits and rate limits"),
    (
        "test_access_round2_depth.py",
        "a body nested 1,000 levels deep (arrays, objects, inside a valid body, unclosed), with any "
        "content type and no key, to every POST, PUT and PATCH route of both services: 400 "
        "json_too_deep, never a 500, nothing logged as an error",
    ),
]


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    settings: Settings = make_settings(
        rate_register_per_min=100_000, rate_resident_per_min=100_000, resident_token_ttl_hours=1
    )
    return settings


def request_for(w: World, method: str, path: str, role: str) -> tuple[str, dict[str, Any]]:
    """The concrete request a caller sends for a route (path, httpx keyword arguments)."""
    now = dt.datetime.now(dt.UTC)
    since, until = iso(now - dt.timedelta(days=1)), iso(now + dt.timedelta(hours=1))
    concrete = (
        path.replace("{venue_id:int}", str(w.venue_a))
        .replace("{key_id:str}", "000000000000")
        .replace("{checkin_id:str}", w.checkin_id)
        .replace("{token:str}", w.code_a)
        .replace("{alert_id:str}", "0" * 22)
        .replace("{site_id:str}", w.site_id)
        .replace("{notice_id:str}", "0" * 18)
        .replace("{name:str}", "main.js")
        .replace("{asset:str}", "swagger-ui.css")
        .replace("{path:str}", "openapi.yaml")
    )
    if "{person_id" in path:
        pid = w.companion if ("companions" in path or path.endswith("/revoke")) else w.p
        pid = w.rebound if path.endswith("/phone") else pid
        concrete = concrete.replace("{person_id:int}", str(pid)).replace("{person_id:str}", str(pid))
    kw: dict[str, Any] = {}
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/v1/keys"): {"role": "analyst", "name": "matrix"},
        ("POST", "/v1/residents/otp"): {"phone": "13900000009"},
        ("POST", "/v1/residents"): {
            "name": "N",
            "phone": "13900000009",
            "id_number": id_number(9),
            "challenge_id": "no-such-challenge",
            "otp": "000000",
        },
        ("PUT", "/v1/residents/{person_id:int}/phone"): {"phone": "13900000077", "reason": "matrix"},
        # a new child per caller: anyone else would need a code (test_identity_round2.py)
        ("POST", "/v1/residents/me/companions"): {
            "name": "kid",
            "id_number": child_id_number(100 + ROLES.index(role)),
        },
        ("PUT", "/v1/residents/me/language"): {"lang": "en"},
        ("PUT", "/v1/health/{person_id:int}"): {"status": "green", "reason": "matrix"},
        ("POST", "/v1/health/tests"): [{"person_id": w.p, "sampled_at": since, "result": "negative"}],
        ("PUT", "/v1/watchlist/{person_id:int}"): {"reason": "matrix", "until": until},
        ("POST", "/v1/checkins"): {"code": w.code_a},
        ("POST", "/v1/checkins/batch"): {"items": [{"code": w.code_a}]},
        ("POST", "/v1/sentinel/scans"): {"scans": [{"id_number": id_number(1)}]},
        ("POST", "/v1/venues"): venue_body("Venue new", "110101"),
        ("PATCH", V): {"name": "Venue A"},
        ("POST", "/v1/exposure-sites"): {
            "venue_id": w.venue_a,
            "since": since,
            "until": until,
            "reason": "matrix",
        },
        ("POST", "/v1/alerts/{alert_id:str}/resolve"): {"outcome": "handled"},
        ("POST", "/v1/trace/persons/lookup"): {"id_number": id_number(1), "reason": "matrix"},
        ("POST", "/v1/trace/contacts"): {"person_id": w.p, "since": since, "until": until, "reason": "m"},
        ("POST", "/v1/trace/exposures"): {
            "sites": [{"venue_id": w.venue_a, "since": since, "until": until}],
            "reason": "matrix",
        },
        ("POST", "/v1/trace/sources"): {
            "person_ids": [w.p, w.q],
            "since": since,
            "until": until,
            "reason": "m",
        },
    }
    if (method, path) in bodies:
        kw["json"] = bodies[(method, path)]
    if path == "/v1/residents/import":
        line = f'{{"name":"I","phone":"13900000010","id_number":"{id_number(10)}"}}\n'
        kw["content"] = line.encode()
    if path == "/v1/venues/import":
        kw["content"] = (
            ",".join(importer.COLUMNS)
            + "\n777,Imported,1 Road,supermarket,110101,110101001,110101001001,39.9,116.4,100,30,\n"
        ).encode()
    if path == "/v1/regions/import":
        kw["content"] = "code,name\n110101,东城区\n".encode()
    if path == "/display/{venue_id:int}/setup":
        if method == "GET":
            kw["params"] = {"code": "matrix-no-such-code"}
        else:
            kw["data"] = {"code": "matrix-no-such-code"}
    if path == "/v1/sentinel/scans":
        kw["params"] = {"venue_id": w.venue_a}
    if path == "/v1/report":
        kw["params"] = {"period": "day", "date": now.date().isoformat()}
    if path.startswith("/v1/trace/persons"):
        kw["params"] = {"since": since, "until": until, "reason": "matrix"}
    return concrete, kw


def check(r: Rule, expected: str, status: int) -> bool:
    if expected == "ok":
        return status in r.ok if r.ok else 200 <= status < 300
    if expected == "hidden":
        return status == r.hidden_as
    return status == int(expected)


async def test_access_matrix(
    settings: Settings, ingest: AsyncTestClient[Any], tracing: AsyncTestClient[Any], store: Store
) -> None:
    from checkin.app import create_app as ingest_app
    from tracing.app import create_app as tracing_app

    apps = {"ingest": ingest_app(settings), "tracing": tracing_app(settings, store=store, workers=())}
    for service, app in apps.items():
        declared = {(m, p) for (s, m, p) in RULES if s == service}
        routes = route_table(app, declared)
        assert routes - declared == set(), f"{service}: routes without a row in RULES"
        assert declared - routes == set(), f"{service}: rows in RULES for routes that do not exist"

    w = await build_world(settings, ingest, tracing, store)
    clients = {"ingest": ingest, "tracing": tracing}
    wrong: list[str] = []
    sent = 0
    # the owner's own checkout goes last among residents so resident_other meets an open stay
    order = sorted(ROLES, key=lambda r: r == "resident")
    for (service, method, path), r in RULES.items():
        for role in order:
            expected = r.expect(role)
            if expected == "ok" and not r.send_allowed:
                continue
            url, kw = request_for(w, method, path, role)
            own = w.spare if path == "/v1/residents/me/revoke" and role in w.spare else w.headers
            headers = {**own[role], **kw.pop("headers", {})}
            resp = await clients[service].request(method, url, headers=headers, **kw)
            sent += 1
            if not check(r, expected, resp.status_code):
                wrong.append(
                    f"{service} {method} {path} as {role}: expected {expected}, got {resp.status_code} "
                    f"{resp.text[:160]}"
                )
            if resp.status_code in (401, 403, 404) and resp.headers.get("content-type", "").startswith(
                "application/problem+json"
            ):
                assert resp.json()["status"] == resp.status_code
    assert not wrong, "\n".join(wrong)
    assert sent > 500


async def test_resident_tokens_expire_and_act_only_for_their_person(
    settings: Settings, ingest: AsyncTestClient[Any], tracing: AsyncTestClient[Any], store: Store
) -> None:
    w = await build_world(settings, ingest, tracing, store)
    keyring = Keyring.parse(settings.keyring)
    with pytest.raises(Exception, match="expired"):
        resident_tokens.verify(keyring, resident_tokens.issue(keyring, w.p, ttl_s=-1)[0])
    token, _ = resident_tokens.issue(keyring, w.p, ttl_s=60)
    # a token re-pointed at another person (body edited, MAC kept) is refused
    raw = bytearray(resident_tokens.b64url_decode(token[3:]))
    raw[7] ^= 1
    forged = "r2." + resident_tokens.b64url_encode(bytes(raw))
    r = await ingest.get("/v1/residents/me/companions", headers=bearer(forged))
    assert r.status_code == 401
    r = await ingest.post("/v1/checkins", json={"code": w.code_a}, headers=w.headers["expired"])
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    # Q cannot end P's stay, nor take P's companion along (at venue B: no repeat-scan merging)
    r = await ingest.post(f"/v1/checkins/{w.checkin_id}/checkout", headers=w.headers["resident_other"])
    assert r.status_code in (403, 404)
    code_b = (await ingest.get(f"/v1/venues/{w.venue_b}/code", headers=admin_headers())).json()["token"]
    r = await ingest.post(
        "/v1/checkins",
        json={"code": code_b, "companions": [w.companion]},
        headers=w.headers["resident_other"],
    )
    assert r.status_code in (400, 403, 404, 422), r.text
    r = await ingest.post(
        "/v1/checkins", json={"code": code_b, "companions": [w.q]}, headers=w.headers["resident"]
    )
    assert r.status_code in (400, 403, 404, 422), r.text
    listed = (await ingest.get("/v1/residents/me/companions", headers=w.headers["resident_other"])).json()
    assert listed == []
    # the owner may
    r = await ingest.post(
        "/v1/checkins", json={"code": code_b, "companions": [w.companion]}, headers=w.headers["resident"]
    )
    assert r.status_code == 201 and len(r.json()["people"]) == 2, r.text
    r = await ingest.post(f"/v1/checkins/{w.checkin_id}/checkout", headers=w.headers["resident"])
    assert r.status_code == 200, r.text


async def test_device_keys_are_bound_to_onevenue_body(
    settings: Settings, ingest: AsyncTestClient[Any], tracing: AsyncTestClient[Any], store: Store
) -> None:
    w = await build_world(settings, ingest, tracing, store)
    body = {"scans": [{"id_number": id_number(1)}]}
    r = await ingest.post("/v1/sentinel/scans", json=body, headers=w.headers["device"])
    assert r.status_code == 200 and r.json()["venue_id"] == w.venue_a, r.text
    r = await ingest.post(
        "/v1/sentinel/scans", json=body, params={"venue_id": w.venue_b}, headers=w.headers["device"]
    )
    assert r.status_code == 403
    r = await ingest.post("/v1/sentinel/scans", json=body, headers=w.headers["device_other"])
    assert r.status_code == 200 and r.json()["venue_id"] == w.venue_b
    r = await ingest.post("/v1/keys", json={"role": "device", "name": "unbound"}, headers=admin_headers())
    assert r.status_code == 400


async def test_scoped_keys_see_only_their_district(
    settings: Settings, ingest: AsyncTestClient[Any], tracing: AsyncTestClient[Any], store: Store
) -> None:
    w = await build_world(settings, ingest, tracing, store)
    h = w.headers
    now = dt.datetime.now(dt.UTC)
    window = {"since": iso(now - dt.timedelta(days=1)), "until": iso(now + dt.timedelta(hours=1))}
    for who, expect in (("analyst", 1), ("analyst_in", 1), ("analyst_out", 0)):
        rows = (await tracing.get("/v1/stats/districts", params=window, headers=h[who])).json()["rows"]
        total = sum(int(row.get("scans", 0)) for row in rows)
        assert (total > 0) == bool(expect), (who, rows)
        venues = (await tracing.get("/v1/stats/venues", params=window, headers=h[who])).json()["rows"]
        assert bool(venues) == bool(expect), (who, venues)
    for who, expect in (("tracer_in", 1), ("tracer_out", 0), ("analyst_out", 0)):
        sites = (await tracing.get("/v1/exposure-sites", headers=h[who])).json()["sites"]
        assert len(sites) == expect, (who, sites)
    params = {**window, "reason": "scope test"}
    r = await tracing.get(f"/v1/trace/persons/{w.p}/visits", params=params, headers=h["tracer_in"])
    assert r.status_code == 200 and r.json()["count"] == 1 and w.checkin_id in r.text
    r = await tracing.get(f"/v1/trace/persons/{w.p}/visits", params=params, headers=h["tracer_out"])
    assert r.status_code == 404 and "Venue A" not in r.text and w.checkin_id not in r.text
    r = await tracing.get(f"/v1/trace/persons/{w.p}/contact-details", params=params, headers=h["tracer_out"])
    assert r.status_code in (403, 404) and "139" not in r.text
    # operators: a scoped or bound key lists only its venues
    for who, ids in (
        ("operator_in", {w.venue_a}),
        ("operator_out", {w.venue_b}),
        ("operator_other", {w.venue_b}),
    ):
        page = (await ingest.get("/v1/venues", headers=h[who])).json()
        assert {v["venue_id"] for v in page["items"]} == ids, (who, page)


async def test_api_keys_are_stored_hashed(
    settings: Settings, ingest: AsyncTestClient[Any], sync_redis: Any
) -> None:
    r = await ingest.post("/v1/keys", json={"role": "tracer", "name": "hashed"}, headers=admin_headers())
    key = r.json()["key"]
    digest = hashlib.sha256(key.encode()).hexdigest()
    found_digest = False
    for name in sync_redis.scan_iter(match=settings.key_prefix + "*", count=1000):
        assert key.encode() not in name
        kind = sync_redis.type(name)
        if kind == b"string":
            value = sync_redis.get(name) or b""
        elif kind == b"hash":
            value = b" ".join(k + b"=" + v for k, v in sync_redis.hgetall(name).items())
        else:
            continue
        assert key.encode() not in value
        found_digest = found_digest or digest.encode() in name or digest.encode() in value
    assert found_digest
    listed = (await ingest.get("/v1/keys", headers=admin_headers())).text
    assert key not in listed and digest not in listed


async def test_revocation_takes_effect(
    settings: Settings, ingest: AsyncTestClient[Any], tracing: AsyncTestClient[Any], store: Store
) -> None:
    """A deleted API key stops working on both services within the key cache's few seconds; a
    resident's revoke ends their token at once."""
    import asyncio
    import time

    adm = admin_headers()
    made = (await ingest.post("/v1/keys", json={"role": "operator", "name": "leaving"}, headers=adm)).json()
    key = bearer(made["key"])
    assert (await ingest.get("/v1/venues", headers=key)).status_code == 200
    assert (await tracing.get("/console/whoami", headers=key)).status_code == 200
    assert (await ingest.delete(f"/v1/keys/{made['record']['key_id']}", headers=adm)).status_code == 204
    started = time.monotonic()
    while (await ingest.get("/v1/venues", headers=key)).status_code != 401:
        assert time.monotonic() - started < 7, "a deleted key still works after the cache TTL"
        await asyncio.sleep(0.25)
    assert (await tracing.get("/console/whoami", headers=key)).status_code == 401
    _pid, token = await register(ingest, 60)
    assert (await ingest.get("/v1/residents/me/companions", headers=bearer(token))).status_code == 200
    assert (await ingest.post("/v1/residents/me/revoke", headers=bearer(token))).status_code == 200
    r = await ingest.get("/v1/residents/me/companions", headers=bearer(token))
    assert r.status_code == 401 and r.json()["reason"] == "token_revoked"


def test_security_matrix_doc_is_current() -> None:
    assert DOC.exists() and DOC.read_text(encoding="utf-8") == render(), (
        "docs/SECURITY_MATRIX.md is out of date: run `python -m tests.test_access_matrix`"
    )


def main() -> int:
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
