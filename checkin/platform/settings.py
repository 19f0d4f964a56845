"""Settings: one typed struct, read from ``CHECKIN_*`` environment variables.

An optional TOML file (``CHECKIN_CONFIG=/path/settings.toml``, keys are the
field names in lower case) supplies values first; environment variables
override it. The stored secrets are filled in by :func:`checkin.platform.secrets.get_settings`, the
process's settings built once. Every bad value is refused at start with one line naming the
variable, e.g. ``CHECKIN_INGEST_PORT: expected an integer 1..65535, got 'x'``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from checkin.platform.client_address import parse_networks
from checkin.platform.keyring import Keyring, KeyringError

ENV_PREFIX = "CHECKIN_"

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
PosInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]


class SettingsError(ValueError):
    """A setting has a bad value; the message is one line naming the variable."""


ALL = "all"
"""In a setting that picks names from a list: every name of it."""


def chosen_names(variable: str, value: str, known: Sequence[str], noun: str) -> tuple[str, ...]:
    """The names a comma-separated setting picks from ``known`` (:data:`ALL`: every one, in the list's
    order). The list is the owning room's (this module holds no domain list); an unknown name is a
    one-line :class:`SettingsError` naming ``variable``."""
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if ALL in names:
        return tuple(known)
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise SettingsError(
            f"{variable}: unknown {noun}(s) {', '.join(unknown)}; known: {ALL}, {', '.join(known)}"
        )
    return names


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    # --- storage and processes -------------------------------------------
    data_dir: str = "./var"
    """Embedded ClickHouse, private Redis, secrets and logs live here."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis DSN. If unreachable, `checkin up` starts a private redis-server under the data dir."""
    redis_cluster: bool = False
    """Treat `redis_url` as a Redis Cluster seed node (also implied by a `redis+cluster://` URL)."""
    redis_appendfsync: Literal["everysec", "always", "no"] = "always"
    """AOF fsync policy of the private redis-server started by `checkin up`. Under `everysec` Redis
    holds back its AOF writes while a background fsync runs (up to 2 s) and answers meanwhile, so a
    crash of the process can lose scans already answered 201 (docs/RELIABILITY.md)."""
    clickhouse_dsn: str = ""
    """`chdb:///abs/path` (embedded engine, default `<data_dir>/clickhouse`) or `http(s)://user:pass@host:8123/db`."""
    clickhouse_database: str = "checkin"
    """Database holding the tables."""
    clickhouse_cluster: str = ""
    """ClickHouse cluster name: schema `ON CLUSTER` with replicated local and distributed tables."""
    clickhouse_timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    """Timeout of one ClickHouse request against a server."""

    # --- HTTP ---------------------------------------------------------------
    bind: str = "127.0.0.1"
    """Interface both services listen on."""
    ingest_port: Port = 8000
    tracing_port: Port = 8001
    tracing_workers: str = ""
    """Background workers run inside the tracing service: comma-separated sink, rules, mirror, audit,
    notices, escalation, or ``all`` (checked by the tracing side; `checkin up` runs all of them there:
    the embedded engine is open in one process only)."""
    tracing_url: str = ""
    """Where the ingest API reaches the tracing service for a resident's own visits (empty:
    `http://127.0.0.1:<CHECKIN_TRACING_PORT>`)."""
    ingest_workers: Annotated[int, msgspec.Meta(ge=1, le=256)] = 2
    """Granian worker processes of the ingest API."""
    public_base_url: str = "http://127.0.0.1:8000"
    """What venue QR codes point at: `{public_base_url}/v/{token}`."""
    tz: str = "Asia/Shanghai"
    """Local time zone for pages, local days (alert dedupe) and reports."""
    max_body_bytes: PosInt = 1_048_576
    """Largest JSON body accepted; bulk imports have their own limit."""
    max_import_bytes: PosInt = 2_147_483_648
    """Largest CSV / NDJSON import body."""

    # --- secrets ------------------------------------------------------------
    admin_key: str = ""
    """First admin API key; generated on first start and stored in the data dir when empty."""
    keyring: str = ""
    """`id:base64url-secret,...` (ids 0..255, the highest signs); generated and stored when empty."""

    # --- Redis layout and streams ------------------------------------------
    key_prefix: str = "checkin:"
    """Prefix of every Redis key (tests use their own)."""
    stream_shards: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 4
    """Scan streams `checkin:scans:{n}`, n = venue_id mod shards."""
    backlog_limit: PosInt = 2_000_000
    """Un-acked scans across shards above which check-ins get 503 + Retry-After."""

    # --- sink ----------------------------------------------------------------
    sink_batch_rows: PosInt = 50_000
    sink_batch_ms: PosInt = 1000
    sink_claim_idle_ms: PosInt = 30_000
    """Pending entries idle this long on another consumer are reclaimed."""
    sink_max_tries: PosInt = 5
    """Deliveries before an entry goes to the dead-letter stream."""
    retention_days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 28

    # --- residents, health, check-in policy ----------------------------------
    unknown_status: Literal["green", "yellow", "red"] = "green"
    """Health colour of a person the health feed never mentioned."""
    resident_token_ttl_hours: PosInt = 720
    checkin_window_past_hours: PosInt = 72
    """Offline check-ins may be this old."""
    checkin_window_future_s: PosInt = 300
    device_backlog_hours: PosInt = 24
    """A door device may upload scans this old at most."""
    rotating_step_s: PosInt = 30
    """Seconds one code of a venue's screen (code_mode rotating) is current; the one before it is still
    accepted, older ones are refused with 410."""
    rotating_register_s: PosInt = 300
    """A screen code the phone page saw current is still taken this long after, with the page's proof
    (a first-time visitor registers in between); the scan is recorded at the instant it was seen."""
    rate_resident_per_min: PosInt = 120
    """Scans a resident may write a minute (a check-in with two companions is three; a batch item
    counts the same as a single check-in)."""
    rate_ip_per_min: PosInt = 6000
    """Scans one client address may write a minute."""
    rate_device_per_min: PosInt = 600
    """Scans one door device may upload a minute."""
    rate_register_per_min: PosInt = 60
    """One-time codes and registrations per client address per minute."""
    trusted_proxies: str = ""
    """Comma-separated CIDRs of proxies whose `X-Forwarded-For` is believed (empty: none)."""
    rate_visits_per_min: PosInt = 30
    """Times a minute a resident may read their own visits (on the ingest API and on the tracing
    service, each)."""
    contact_details_per_hour: PosInt = 200
    """Contact details (name and phone) one tracer key may read an hour; the key that reaches it
    raises a `bulk_read` alert at the city level, and beyond it gets 429."""
    exposure_isolate_yellow: bool = False
    """An exposure site flagged with level `isolate` turns its green visitors yellow (reason
    `exposure`, audited)."""
    max_companions: Annotated[int, msgspec.Meta(ge=0, le=50)] = 10
    """Family members one resident may check in with."""
    sms_gateway: str = "outbox"
    """Where texts go: `outbox` (NDJSON lines in `<data dir>/sms-outbox.ndjson`) or an `http(s)://` URL
    that receives `POST {"phone", "text"}`."""
    shed_inflight: PosInt = 512
    """Check-in requests in progress per worker above which new ones get a fast 503 + Retry-After."""
    degrade_inflight: PosInt = 192
    """In-progress check-ins per worker above which optional work (the test-result lookup) is skipped."""
    shed_loop_lag_ms: PosInt = 500
    """Smoothed event-loop lag per worker above which check-ins are shed (the worker is saturated)."""

    # --- rules -----------------------------------------------------------------
    rules_enabled: str = "all"
    """Comma-separated alert kinds the rule engine raises, or ``all`` (checked by the tracing side)."""
    impossible_travel_kmh: NonNegFloat = 150.0
    impossible_travel_min_km: NonNegFloat = 2.0
    remote_scan_km: NonNegFloat = 1.0
    impossible_travel_window_hours: PosInt = 12
    """How long a person's last check-in is remembered for `impossible_travel` (bounds rule memory)."""
    alerts_stream_maxlen: PosInt = 100_000
    """Approximate cap of the live alerts stream (`MAXLEN ~`); history is in ClickHouse."""
    escalation_s: Annotated[float, msgspec.Meta(gt=0)] = 900.0
    """Seconds an alert may stay unacknowledged at its command-centre level before it moves up one
    (community -> street -> district -> city)."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"rediss?(\+cluster)?://\S+|unix://\S+", self.redis_url):
            raise SettingsError(f"CHECKIN_REDIS_URL: expected redis://host:port/db, got {self.redis_url!r}")
        if self.clickhouse_dsn and not re.fullmatch(r"(chdb://(/\S*)?|https?://\S+)", self.clickhouse_dsn):
            raise SettingsError(
                f"CHECKIN_CLICKHOUSE_DSN: expected chdb:///abs/path or http(s)://host:port, "
                f"got {self.clickhouse_dsn!r}"
            )
        if self.sms_gateway != "outbox" and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.sms_gateway):
            raise SettingsError(
                f"CHECKIN_SMS_GATEWAY: expected outbox or an http(s):// URL, got {self.sms_gateway!r}"
            )
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.clickhouse_database):
            raise SettingsError(
                f"CHECKIN_CLICKHOUSE_DATABASE: expected an identifier, got {self.clickhouse_database!r}"
            )
        if self.clickhouse_cluster and not re.fullmatch(r"[A-Za-z0-9_.-]+", self.clickhouse_cluster):
            raise SettingsError(f"CHECKIN_CLICKHOUSE_CLUSTER: bad cluster name {self.clickhouse_cluster!r}")
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.public_base_url):
            raise SettingsError(
                f"CHECKIN_PUBLIC_BASE_URL: expected http(s)://host[:port], got {self.public_base_url!r}"
            )
        if not re.fullmatch(r"[A-Za-z0-9_:.{}-]*", self.key_prefix) or "{" in self.key_prefix:
            raise SettingsError(f"CHECKIN_KEY_PREFIX: letters, digits and _:.- only, got {self.key_prefix!r}")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.tz)
        except Exception:
            raise SettingsError(f"CHECKIN_TZ: unknown time zone {self.tz!r}") from None
        if self.trusted_proxies:
            try:
                parse_networks(self.trusted_proxies)
            except ValueError as exc:
                raise SettingsError(f"CHECKIN_TRUSTED_PROXIES: {exc}") from None
        if self.keyring:
            try:
                Keyring.parse(self.keyring)
            except KeyringError as exc:
                raise SettingsError(f"CHECKIN_KEYRING: {exc}") from None

    # --- derived values ---------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def effective_clickhouse_dsn(self) -> str:
        return self.clickhouse_dsn or f"chdb://{self.data_path / 'clickhouse'}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.effective_clickhouse_dsn.startswith("chdb://")

    @property
    def is_redis_cluster(self) -> bool:
        return self.redis_cluster or self.redis_url.startswith(("redis+cluster://", "rediss+cluster://"))

    @property
    def effective_tracing_url(self) -> str:
        return (self.tracing_url or f"http://127.0.0.1:{self.tracing_port}").rstrip("/")

    def to_env(self) -> dict[str, str]:
        """The settings as ``CHECKIN_*`` variables, for child processes."""
        out: dict[str, str] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            out[ENV_PREFIX + name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
        return out


_TYPE_HINTS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
}


def _friendly(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    match = re.search(r"at `\$\.(\w+)`", text)
    if not match:
        return text
    field = match.group(1)
    reason = text[: match.start()].strip(" -")
    reason = re.sub(r", got `\w+`$", "", reason)
    for name, words in _TYPE_HINTS.items():
        reason = reason.replace(f"`{name}`", words)
    if reason.lower().startswith("invalid enum value"):
        hint = str(Settings.__annotations__.get(field, ""))
        choices = ", ".join(re.findall(r"'(\w+)'", hint))
        reason = f"expected one of {choices}"
    return f"{ENV_PREFIX}{field.upper()}: {reason[0].lower()}{reason[1:]}"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from a TOML file (``CHECKIN_CONFIG``) and the environment.

    Raises :class:`SettingsError` with a one-line message naming the variable.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    config_path = env.get(ENV_PREFIX + "CONFIG")
    if config_path:
        try:
            with open(config_path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise SettingsError(f"CHECKIN_CONFIG: no such file {config_path!r}") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"CHECKIN_CONFIG: {config_path}: {exc}") from None
        for key, value in data.items():
            if key not in Settings.__struct_fields__:
                raise SettingsError(f"CHECKIN_CONFIG: unknown setting {key!r} in {config_path}")
            raw[key] = value
    fields = set(Settings.__struct_fields__)
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name in fields:
            raw[name] = value
    for name, value in list(raw.items()):
        if isinstance(value, str) and Settings.__annotations__.get(name) in ("bool",):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                raw[name] = True
            elif lowered in ("0", "false", "no", "off", ""):
                raw[name] = False
            else:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()}: expected true or false, got {value!r}")
    try:
        return msgspec.convert(raw, Settings, strict=False)
    except SettingsError:
        raise
    except msgspec.ValidationError as exc:
        cause = exc.__context__
        if isinstance(cause, SettingsError):
            raise cause from None
        message = _friendly(exc)
        match = re.match(r"(CHECKIN_\w+):", message)
        if match:
            value = raw.get(match.group(1)[len(ENV_PREFIX) :].lower())
            if value is not None:
                message = f"{message}, got {value!r}"
        raise SettingsError(message) from None
