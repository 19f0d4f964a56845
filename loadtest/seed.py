"""Seed a running system with a synthetic city through the public HTTP API.

Steps (each with a progress bar on stderr and a summary line, :mod:`checkin.platform.progress`):

1. ``POST /v1/venues/import`` with ``venues.csv`` in chunks (header repeated), then the names of
   districts, streets and communities (``regions.csv``) to the tracing service's
   ``POST /v1/regions/import``.
2. ``POST /v1/residents/import`` with ``residents.ndjson`` in chunks; the per-line
   results give the person ids of a sample of residents.
3. Resident tokens for the sample: from the import results when they carry one,
   else ``POST /v1/residents`` with the same identity (same id number, same person).
4. API keys (``POST /v1/keys``): operator, tracer, analyst, and one device key
   bound to each of the busiest venues (door sentinels).
5. Venue-code tokens of the sampled venues (``GET /v1/venues/{id}/code``): the busiest
   ones plus an even spread, each with its popularity weight.

The result is the seed file (JSON) the locustfile reads: URLs, keys, venues with
tokens and weights, residents with tokens.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import msgspec

from checkin.platform.progress import Progress
from loadtest.city import id_check_char, read_manifest, read_popularity

# (method, a concrete path) of every route the seeding and the locustfile use, by service.
REQUIRED_INGEST_ROUTES: tuple[tuple[str, str], ...] = (
    ("POST", "/v1/keys"),
    ("POST", "/v1/venues/import"),
    ("POST", "/v1/residents/import"),
    ("POST", "/v1/residents"),
    ("GET", "/v1/venues/1"),
    ("GET", "/v1/venues/1/code"),
    ("GET", "/v1/venues/1/entries"),
    ("GET", "/v1/venues/1/poster.png"),
    ("POST", "/v1/checkins"),
    ("POST", "/v1/checkins/batch"),
    ("POST", "/v1/checkins/0123456789abcdef/checkout"),
    ("POST", "/v1/sentinel/scans"),
)
REQUIRED_TRACING_ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/v1/trace/persons/1/visits"),
    ("POST", "/v1/trace/contacts"),
    ("POST", "/v1/trace/exposures"),
    ("GET", "/v1/alerts"),
    ("GET", "/v1/stats/scans-per-hour"),
    ("GET", "/v1/stats/venues"),
    ("POST", "/v1/regions/import"),
)


T = TypeVar("T")
R = TypeVar("R")


class SeedVenue(msgspec.Struct):
    venue_id: int
    token: str
    weight: float
    lat: float
    lon: float
    dwell_minutes: int


class SeedResident(msgspec.Struct):
    person_id: int
    token: str
    id_number: str
    companions: list[int] = msgspec.field(default_factory=list)
    """Person ids of family members this resident may check in with."""


class SeedDevice(msgspec.Struct):
    venue_id: int
    key: str


class SeedFile(msgspec.Struct, kw_only=True):
    ingest_url: str
    tracing_url: str
    created_at: str
    city: str
    seed: int
    operator_key: str
    tracer_key: str
    analyst_key: str
    devices: list[SeedDevice]
    venues: list[SeedVenue]
    residents: list[SeedResident]


def dependant_id_number(k: int) -> str:
    """An id number of a child born in 2024 (area 620102), one per k: the synthetic city's residents
    are born before 2024 (``loadtest.city.BIRTH_END``), so a dependant never collides with one."""
    first17 = f"6201022024{1 + k // 28 % 12:02d}{1 + k % 28:02d}{k // 336 % 1000:03d}"
    return first17 + id_check_char(first17)


class SeedError(RuntimeError):
    """Seeding cannot go on; the message says which call failed and why."""


def missing_routes(ingest_app: Any, tracing_app: Any) -> list[str]:
    """Routes the load test needs that the given Litestar apps do not serve ("METHOD path")."""
    out: list[str] = []
    for app, required in ((ingest_app, REQUIRED_INGEST_ROUTES), (tracing_app, REQUIRED_TRACING_ROUTES)):
        patterns = []
        for path, methods in app.route_handler_method_map.items():
            regex = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(path)) + "$"
            patterns.append((re.compile(regex), set(methods)))
        for method, sample in required:
            if not any(rx.match(sample) and method in methods for rx, methods in patterns):
                out.append(f"{method} {sample}")
    return out


def _problem(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict) and "detail" in body:
            return f"{resp.status_code} {body.get('title', '')}: {body['detail']}"
    except ValueError:
        pass
    return f"{resp.status_code} {resp.text[:300]}"


def _check(resp: httpx.Response, what: str) -> httpx.Response:
    if resp.status_code >= 400:
        raise SeedError(f"{what}: {resp.request.method} {resp.request.url.path} -> {_problem(resp)}")
    return resp


def _chunks(path: Path, rows: int, header: bool) -> Iterator[tuple[int, bytes, int]]:
    """(first data line index, body, line count) chunks of a line-oriented file."""
    with path.open("rb") as fh:
        head = fh.readline() if header else b""
        buf: list[bytes] = []
        first = 0
        index = 0
        for line in fh:
            buf.append(line)
            index += 1
            if len(buf) >= rows:
                yield first, head + b"".join(buf), len(buf)
                first = index
                buf = []
        if buf:
            yield first, head + b"".join(buf), len(buf)


def parse_import_results(resp: httpx.Response) -> list[dict[str, Any]]:
    """Per-line results of a resident import, whether NDJSON, a JSON list, or ``{"results": [...]}``."""
    text = resp.content.strip()
    if not text:
        return []
    if text.startswith(b"["):
        data = msgspec.json.decode(text)
        return [d for d in data if isinstance(d, dict)]
    if text.startswith(b"{") and b"\n" not in text:
        data = msgspec.json.decode(text)
        for key in ("results", "items", "lines"):
            if isinstance(data.get(key), list):
                return [d for d in data[key] if isinstance(d, dict)]
        return [data]
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            obj = msgspec.json.decode(line)
            if isinstance(obj, dict):
                out.append(obj)
    return out


def _import_summary_errors(resp: httpx.Response) -> int:
    """Rows a venue import refused, read from common summary shapes."""
    try:
        body = resp.json()
    except ValueError:
        return 0
    if not isinstance(body, dict):
        return 0
    for key in ("failed", "rejected", "error_count"):
        if isinstance(body.get(key), int):
            return int(body[key])
    errors = body.get("errors")
    if isinstance(errors, list):
        return len(errors)
    if isinstance(errors, int):
        return errors
    return 0


def _bounded_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items`` on ``workers`` threads, results in order, at most 2 x workers in flight
    (so a multi-GB file is streamed, not read into memory)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: collections.deque[Future[R]] = collections.deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def sample_indices(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)``."""
    count = min(count, total)
    return sorted({(i * total) // count for i in range(count)})


class Seeder:
    def __init__(
        self,
        city_dir: Path,
        ingest_url: str,
        tracing_url: str,
        admin_key: str,
        *,
        venue_chunk: int = 20_000,
        resident_chunk: int = 20_000,
        residents_sample: int = 2_000,
        venues_sample: int = 2_000,
        devices: int = 20,
        companions: int = 100,
        parallel: int = 2,
        stream: IO[str] | None = None,
        timeout_s: float = 600.0,
        client: httpx.Client | None = None,
        tracing_client: httpx.Client | None = None,
    ) -> None:
        """``client`` / ``tracing_client`` replace the HTTP clients (e.g. an in-process test client)."""
        self.city_dir = city_dir
        self.manifest = read_manifest(city_dir)
        self.ingest_url = ingest_url.rstrip("/")
        self.tracing_url = tracing_url.rstrip("/")
        self.admin = {"Authorization": f"Bearer {admin_key}"}
        self.venue_chunk = venue_chunk
        self.resident_chunk = resident_chunk
        self.residents_sample = residents_sample
        self.venues_sample = venues_sample
        self.devices = devices
        self.companions = companions
        self.parallel = max(1, parallel)
        self.identities: dict[str, dict[str, Any]] = {}
        """Name, phone and id number of the sampled residents (by id number)."""
        self.stream = stream if stream is not None else sys.stderr
        self.client = client or httpx.Client(base_url=self.ingest_url, timeout=timeout_s)
        self.tracing = tracing_client or httpx.Client(base_url=self.tracing_url, timeout=60.0)
        self._close = [
            c for c, given in ((self.client, client), (self.tracing, tracing_client)) if given is None
        ]

    def close(self) -> None:
        for c in self._close:
            c.close()

    def log(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    # --- steps -----------------------------------------------------------------------------------

    def check_health(self) -> None:
        for url, client in ((self.ingest_url, self.client), (self.tracing_url, self.tracing)):
            try:
                resp = client.get("/healthz", timeout=10)
            except httpx.HTTPError as exc:
                raise SeedError(f"{url} is not reachable ({exc}); is the system up (checkin up)?") from exc
            if resp.status_code != 200:
                raise SeedError(f"{url}/healthz -> {_problem(resp)}")

    def import_venues(self) -> int:
        path = self.city_dir / self.manifest.files["venues"]
        bar = Progress("import venues", self.manifest.counts["venues"], "venues", self.stream)
        refused = 0
        for _first, body, n in _chunks(path, self.venue_chunk, header=True):
            resp = self.client.post(
                "/v1/venues/import",
                content=body,
                headers={**self.admin, "Content-Type": "text/csv; charset=utf-8"},
            )
            _check(resp, "venue import")
            refused += _import_summary_errors(resp)
            bar.advance(n)
        bar.finish()
        if refused:
            raise SeedError(f"the venue import refused {refused} rows; see the server's import report")
        return self.manifest.counts["venues"]

    def import_regions(self) -> int:
        """The names of the city's districts, streets and communities (``regions.csv``) to the tracing
        service; a city written before the file existed has none to send."""
        name = self.manifest.files.get("regions")
        if not name or not (self.city_dir / name).exists():
            return 0
        resp = self.tracing.post(
            "/v1/regions/import",
            content=(self.city_dir / name).read_bytes(),
            headers={**self.admin, "Content-Type": "text/csv; charset=utf-8"},
        )
        return int(_check(resp, "region import").json()["rows"])

    def import_residents(self) -> dict[int, tuple[int, str, dict[str, Any]]]:
        """Import every resident; return the sample's ``{line: (person_id, token or "", identity)}``."""
        path = self.city_dir / self.manifest.files["residents"]
        total = self.manifest.counts["residents"]
        wanted = set(sample_indices(total, self.residents_sample))
        found: dict[int, tuple[int, str, dict[str, Any]]] = {}
        bar = Progress("import residents", total, "residents", self.stream)
        failed = 0

        def upload(chunk: tuple[int, bytes, int]) -> tuple[int, bytes, int, httpx.Response]:
            first, body, n = chunk
            sampled = any(first <= i < first + n for i in wanted)
            resp = self.client.post(
                "/v1/residents/import",
                params={"tokens": "true" if sampled else "false"},
                content=body,
                headers={**self.admin, "Content-Type": "application/x-ndjson"},
            )
            return first, body, n, _check(resp, "resident import")

        chunks = _chunks(path, self.resident_chunk, header=False)
        for first, body, n, resp in _bounded_map(upload, chunks, self.parallel):
            sampled = any(first <= i < first + n for i in wanted)
            if not sampled and resp.headers.get("x-import-rejected", "") == "0":
                bar.advance(n)
                continue
            results = parse_import_results(resp)
            lines = body.split(b"\n")
            for pos, res in enumerate(results):
                index = first + int(res.get("line", pos + 1)) - 1 if "line" in res else first + pos
                if res.get("error") or res.get("ok") is False or "person_id" not in res:
                    failed += 1
                    continue
                if index in wanted:
                    identity = msgspec.json.decode(lines[index - first])
                    found[index] = (int(res["person_id"]), str(res.get("token") or ""), identity)
                    self.identities[identity["id_number"]] = identity
            bar.advance(n)
        bar.finish()
        if failed:
            raise SeedError(f"the resident import refused {failed} lines")
        missing = wanted - set(found)
        if missing:
            raise SeedError(
                f"the resident import gave no person_id for {len(missing)} sampled lines "
                f"(e.g. line {min(missing) + 1}); expected one result per line"
            )
        return found

    def resident_tokens(self, found: dict[int, tuple[int, str, dict[str, Any]]]) -> list[SeedResident]:
        """Tokens of the sampled residents: the import gave them; a line without one is imported again
        with tokens (the registry's path: registration by phone needs a one-time code)."""
        need = [i for i, (_pid, token, _ident) in found.items() if not token]
        out = {i: SeedResident(pid, token, ident["id_number"]) for i, (pid, token, ident) in found.items()}
        if need:
            body = b"".join(msgspec.json.encode(found[i][2]) + b"\n" for i in need)
            resp = _check(
                self.client.post(
                    "/v1/residents/import",
                    params={"tokens": "true"},
                    content=body,
                    headers={**self.admin, "Content-Type": "application/x-ndjson"},
                ),
                "resident tokens",
            )
            results = parse_import_results(resp)
            if len(results) != len(need):
                raise SeedError(f"asked tokens for {len(need)} residents, got {len(results)} results")
            for i, res in zip(need, results, strict=True):
                if res.get("error") or not res.get("token"):
                    raise SeedError(f"no token for line {i + 1}: {res}")
                if int(res["person_id"]) != found[i][0]:
                    raise SeedError(
                        f"line {i + 1} is person {res['person_id']} now, the import gave {found[i][0]}"
                    )
                out[i] = SeedResident(int(res["person_id"]), str(res["token"]), found[i][2]["id_number"])
        return [out[i] for i in sorted(out)]

    def add_companions(self, residents: list[SeedResident]) -> int:
        """Give the first residents of the sample a family member: a dependant not registered before
        (a child), which needs no consent; a registered person would need the code of their phone."""
        count = min(self.companions, len(residents))
        if count <= 0:
            return 0
        bar = Progress("companions", count, "residents", self.stream)
        for k in range(count):
            head = residents[k]
            resp = self.client.post(
                "/v1/residents/me/companions",
                json={"name": f"家属{k}", "id_number": dependant_id_number(k)},
                headers={"Authorization": f"Bearer {head.token}"},
            )
            body = _check(resp, "adding a companion").json()
            head.companions = [int(body["person_id"])]
            bar.advance(1)
        bar.finish()
        return count

    def create_key(self, role: str, name: str, venue_id: int | None = None) -> str:
        body: dict[str, Any] = {"role": role, "name": name}
        if venue_id is not None:
            body["venue_id"] = venue_id
        resp = _check(self.client.post("/v1/keys", json=body, headers=self.admin), f"creating a {role} key")
        return str(resp.json()["key"])

    def venue_codes(self, operator_key: str) -> list[SeedVenue]:
        ids, weights = read_popularity(self.city_dir / self.manifest.files["popularity"])
        by_weight = sorted(range(len(ids)), key=lambda i: (-weights[i], ids[i]))
        busiest = by_weight[: self.venues_sample // 2]
        rest = by_weight[len(busiest) :]
        spread = [rest[i] for i in sample_indices(len(rest), self.venues_sample - len(busiest))]
        chosen = sorted(busiest + spread)
        coords = self._venue_coords({ids[i] for i in chosen})
        headers = {"Authorization": f"Bearer {operator_key}"}
        bar = Progress("venue codes", len(chosen), "venues", self.stream)

        def fetch(i: int) -> SeedVenue:
            vid = ids[i]
            resp = _check(self.client.get(f"/v1/venues/{vid}/code", headers=headers), "venue code")
            lat, lon, dwell = coords[vid]
            return SeedVenue(vid, str(resp.json()["token"]), weights[i], lat, lon, dwell)

        out: list[SeedVenue] = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            for venue in pool.map(fetch, chosen):
                out.append(venue)
                bar.advance(1)
        bar.finish()
        return out

    def _venue_coords(self, wanted: set[int]) -> dict[int, tuple[float, float, int]]:
        import csv

        out: dict[int, tuple[float, float, int]] = {}
        with (self.city_dir / self.manifest.files["venues"]).open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                vid = int(row["venue_id"])
                if vid in wanted:
                    out[vid] = (float(row["lat"]), float(row["lon"]), int(row["dwell_minutes"]))
        return out

    def run(self, out_path: Path, skip_venues: bool = False) -> SeedFile:
        self.check_health()
        if not skip_venues:
            n = self.import_venues()
            self.log(f"imported {n:,} venues")
        else:
            self.log("venues: import skipped")
        regions = self.import_regions()
        if regions:
            self.log(f"imported the names of {regions:,} districts, streets and communities")
        found = self.import_residents()
        residents = self.resident_tokens(found)
        self.log(f"residents: {self.manifest.counts['residents']:,} imported, {len(residents):,} tokens kept")
        with_companion = self.add_companions(residents)
        if with_companion:
            self.log(f"companions: {with_companion} residents check in with a family member")
        operator = self.create_key("operator", "loadtest operator")
        tracer = self.create_key("tracer", "loadtest tracer")
        analyst = self.create_key("analyst", "loadtest analyst")
        venues = self.venue_codes(operator)
        busiest = sorted(venues, key=lambda v: -v.weight)[: self.devices]
        devices = [
            SeedDevice(v.venue_id, self.create_key("device", f"sentinel {v.venue_id}", v.venue_id))
            for v in busiest
        ]
        self.log(f"keys: operator, tracer, analyst and {len(devices)} sentinel devices")
        seed = SeedFile(
            ingest_url=self.ingest_url,
            tracing_url=self.tracing_url,
            created_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            city=self.manifest.spec.name,
            seed=self.manifest.seed,
            operator_key=operator,
            tracer_key=tracer,
            analyst_key=analyst,
            devices=devices,
            venues=venues,
            residents=residents,
        )
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_bytes(msgspec.json.encode(seed))
        self.log(f"seed file written: {out_path} ({len(venues):,} venues, {len(residents):,} residents)")
        return seed


def read_seed(path: Path) -> SeedFile:
    return msgspec.json.decode(path.read_bytes(), type=SeedFile)
