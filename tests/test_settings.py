from __future__ import annotations

from pathlib import Path

import pytest

from checkin.platform.settings import SettingsError, load_settings
from tracing.rules.kinds import RULE_KINDS, enabled_kinds
from tracing.workers import worker_names


def test_defaults_match_the_design() -> None:
    s = load_settings({})
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert (s.ingest_port, s.tracing_port, s.ingest_workers) == (8000, 8001, 2)
    assert s.public_base_url == "http://127.0.0.1:8000"
    assert s.key_prefix == "checkin:"
    assert (s.stream_shards, s.sink_batch_rows, s.sink_batch_ms, s.retention_days) == (4, 50000, 1000, 28)
    assert s.effective_clickhouse_dsn == f"chdb://{Path('./var').resolve() / 'clickhouse'}"


def test_environment_values_are_converted() -> None:
    s = load_settings(
        {"CHECKIN_INGEST_PORT": "9000", "CHECKIN_REDIS_CLUSTER": "yes", "CHECKIN_REMOTE_SCAN_KM": "2.5"}
    )
    assert s.ingest_port == 9000 and s.redis_cluster is True and s.remote_scan_km == 2.5


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHECKIN_INGEST_PORT": "abc"}, "CHECKIN_INGEST_PORT: expected an integer, got 'abc'"),
        (
            {"CHECKIN_TRACING_PORT": "70000"},
            "CHECKIN_TRACING_PORT: expected an integer <= 65535, got '70000'",
        ),
        ({"CHECKIN_STREAM_SHARDS": "0"}, "CHECKIN_STREAM_SHARDS: expected an integer >= 1, got '0'"),
        ({"CHECKIN_REDIS_URL": "localhost:6379"}, "CHECKIN_REDIS_URL: expected redis://host:port/db"),
        ({"CHECKIN_CLICKHOUSE_DSN": "mysql://x"}, "CHECKIN_CLICKHOUSE_DSN: expected chdb:///abs/path"),
        ({"CHECKIN_REDIS_CLUSTER": "maybe"}, "CHECKIN_REDIS_CLUSTER: expected true or false, got 'maybe'"),
        ({"CHECKIN_UNKNOWN_STATUS": "blue"}, "CHECKIN_UNKNOWN_STATUS: expected one of green, yellow, red"),
        ({"CHECKIN_TZ": "Mars/Olympus"}, "CHECKIN_TZ: unknown time zone 'Mars/Olympus'"),
        ({"CHECKIN_KEYRING": "1:c2hvcnQ"}, "CHECKIN_KEYRING: key 1 is shorter than 16 bytes"),
        ({"CHECKIN_PUBLIC_BASE_URL": "ftp://x"}, "CHECKIN_PUBLIC_BASE_URL: expected http(s)://host[:port]"),
    ],
)
def test_bad_values_are_refused_with_one_line_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_toml_file_is_read_and_environment_overrides_it(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('ingest_port = 9100\ntracing_port = 9101\nkey_prefix = "x:"\n')
    s = load_settings({"CHECKIN_CONFIG": str(path), "CHECKIN_TRACING_PORT": "9200"})
    assert (s.ingest_port, s.tracing_port, s.key_prefix) == (9100, 9200, "x:")


def test_toml_unknown_key_and_missing_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("ingest_prot = 1\n")
    with pytest.raises(SettingsError, match="unknown setting 'ingest_prot'"):
        load_settings({"CHECKIN_CONFIG": str(path)})
    with pytest.raises(SettingsError, match="CHECKIN_CONFIG: no such file"):
        load_settings({"CHECKIN_CONFIG": str(tmp_path / "none.toml")})


def test_cli_prints_the_message_and_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "checkin.cli", "settings"],
        env={"CHECKIN_INGEST_WORKERS": "many", "PATH": "/usr/bin:/bin", "CHECKIN_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: CHECKIN_INGEST_WORKERS: expected an integer, got 'many'"


@pytest.mark.parametrize(
    ("command", "env", "message"),
    [
        (
            "rules",
            {"CHECKIN_RULES_ENABLED": "red_code_entry,bogus"},
            "CHECKIN_RULES_ENABLED: unknown rule(s) bogus",
        ),
        (
            "serve-tracing",
            {"CHECKIN_TRACING_WORKERS": "sink,nope"},
            "CHECKIN_TRACING_WORKERS: unknown worker(s) nope",
        ),
    ],
)
def test_cli_refuses_an_unknown_rule_or_worker_with_one_line(
    tmp_path: Path, command: str, env: dict[str, str], message: str
) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "checkin.cli", command],
        env={**env, "PATH": "/usr/bin:/bin", "CHECKIN_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {message}; known: all, ")


def test_secrets_are_generated_once_and_reused(tmp_path: Path) -> None:
    from checkin.platform.secrets import resolve_secrets

    first = resolve_secrets(load_settings({"CHECKIN_DATA_DIR": str(tmp_path)}))
    second = resolve_secrets(load_settings({"CHECKIN_DATA_DIR": str(tmp_path)}))
    assert first.admin_key and first.keyring
    assert (first.admin_key, first.keyring) == (second.admin_key, second.keyring)
    assert (tmp_path / "secrets.json").stat().st_mode & 0o077 == 0


def test_rule_kinds_and_tracing_workers_are_checked_by_the_tracing_side_with_one_line() -> None:
    assert enabled_kinds(load_settings({})) == frozenset(RULE_KINDS)
    assert enabled_kinds(load_settings({"CHECKIN_RULES_ENABLED": "remote_scan"})) == {"remote_scan"}
    with pytest.raises(SettingsError, match=r"^CHECKIN_RULES_ENABLED: unknown rule\(s\) bogus; known: all"):
        enabled_kinds(load_settings({"CHECKIN_RULES_ENABLED": "red_code_entry,bogus"}))
    assert worker_names("all") == ("sink", "rules", "mirror", "audit", "notices", "escalation")
    assert worker_names(" sink, rules ") == ("sink", "rules")
    with pytest.raises(SettingsError, match=r"^CHECKIN_TRACING_WORKERS: unknown worker\(s\) nope; known"):
        worker_names("sink,nope")
