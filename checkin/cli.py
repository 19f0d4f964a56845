"""The ``checkin`` command: run the system, its parts, and bulk jobs.

The product's commands come from the packages that own them (imported here: ``venues.cli``,
``checkin.residents.cli``, ``tracing.cli``); tools that are not part of the product (the load-test
kit in ``loadtest/``) plug in through the ``checkin.commands`` entry point group, so the product
never imports them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from checkin.platform.secrets import get_settings
from checkin.platform.settings import Settings, SettingsError, load_settings
from checkin.residents import cli as residents_cli
from tracing import cli as tracing_cli
from venues import cli as venues_cli

Handler = Callable[[argparse.Namespace, Settings], int]
Register = Callable[[Any], None]

PRODUCT_COMMANDS: list[Register] = [venues_cli.register, residents_cli.register, tracing_cli.register]
PLUGIN_GROUP = "checkin.commands"


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from checkin.launcher import Launcher

    return Launcher(settings).run()


def cmd_serve_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from checkin.platform.serve import serve

    workers = args.workers or settings.ingest_workers
    return serve("checkin.app:create_app", settings, settings.ingest_port, workers)


def cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    from checkin.launcher import summary
    from checkin.platform.redis_conn import redacted

    shown = summary(settings)
    shown["clickhouse_dsn"] = redacted(settings.effective_clickhouse_dsn)
    for key, value in shown.items():
        print(f"CHECKIN_{key.upper()}={value}")
    print(
        "# secrets hidden: CHECKIN_ADMIN_KEY, CHECKIN_KEYRING and passwords in URLs are not printed"
        f" (stored in {settings.data_path / 'secrets.json'} when not set)"
    )
    return 0


def cmd_migrate_keys(args: argparse.Namespace, settings: Settings) -> int:
    from checkin.platform.key_migration import migrate
    from checkin.platform.redis_conn import sync_client

    client = sync_client(settings)
    try:
        report = migrate(client, settings.key_prefix, lambda old, n: print(f"  {old}*: {n:,} keys renamed"))
    except (OSError, ConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    for name in report.conflicts[:20]:
        print(f"  left {name}: its new name exists already", file=sys.stderr)
    print(f"{report.total:,} keys renamed to the current layout; {len(report.conflicts):,} left in place")
    return 1 if report.conflicts else 0


def plugin_commands() -> list[Register]:
    """``register(subparsers)`` of every installed ``checkin.commands`` entry point."""
    return [ep.load() for ep in entry_points(group=PLUGIN_GROUP)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="checkin", description="venue-checkin: city-scale venue QR check-in"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="run the whole system on embedded defaults (Ctrl-C stops it)")
    p.set_defaults(handler=cmd_up)
    p = sub.add_parser("serve-ingest", help="run the ingest API (granian)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default CHECKIN_INGEST_WORKERS)")
    p.set_defaults(handler=cmd_serve_ingest)
    p = sub.add_parser("settings", help="print the effective settings (secrets hidden)")
    p.set_defaults(handler=cmd_settings, creates_secrets=False)
    p = sub.add_parser(
        "migrate-keys", help="rename Redis keys of the earlier layout (once, after an upgrade)"
    )
    p.set_defaults(handler=cmd_migrate_keys)

    for register in (*PRODUCT_COMMANDS, *plugin_commands()):
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "creates_secrets", True):
            settings = get_settings()
        else:
            # read-only commands: the secrets file is read when it exists, never created
            from checkin.platform.secrets import resolve_secrets

            settings = resolve_secrets(load_settings(), create=False)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except SettingsError as exc:  # a choice checked by the side that owns it (rule kinds, workers)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
