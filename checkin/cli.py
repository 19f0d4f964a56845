"""The ``checkin`` command: run the system, its parts, and bulk jobs.

Subcommands register themselves from their own packages (``venues.cli``,
``checkin.residents_cli``, ``tracing.cli``, ``loadtest.cli``) when present.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable

from checkin.platform.settings import Settings, SettingsError, get_settings

Handler = Callable[[argparse.Namespace, Settings], int]

EXTENSION_MODULES = [
    "venues.cli",
    "checkin.residents.cli",
    "tracing.cli",
    "tracing.report_cli",
    "loadtest.cli",
]


def _serve(target: str, settings: Settings, port: int, workers: int) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        target,
        address=settings.bind,
        port=port,
        interface=Interfaces.ASGI,
        workers=workers,
        factory=True,
        respawn_failed_workers=True,
        log_access=False,
        backlog=2048,
    ).serve()
    return 0


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from checkin.launcher import Launcher

    return Launcher(settings).run()


def cmd_serve_ingest(args: argparse.Namespace, settings: Settings) -> int:
    workers = args.workers or settings.ingest_workers
    return _serve("checkin.app:create_app", settings, settings.ingest_port, workers)


def cmd_serve_tracing(args: argparse.Namespace, settings: Settings) -> int:
    os.environ["CHECKIN_TRACING_WORKERS"] = args.workers
    return _serve("tracing.app:create_app", settings, settings.tracing_port, 1)


def cmd_schema(args: argparse.Namespace, settings: Settings) -> int:
    from tracing.storage.schema import statements
    from tracing.storage.store import Store

    if args.print:
        for stmt in statements(
            settings.clickhouse_database, settings.retention_days, settings.clickhouse_cluster
        ):
            print(stmt + ";\n")
        return 0
    store = Store.from_settings(settings)
    store.apply_schema(settings.retention_days)
    print(
        f"schema applied to {store.safe_dsn} database {settings.clickhouse_database}: "
        f"{', '.join(sorted(store.existing_tables()))}"
    )
    return 0


def cmd_settings(args: argparse.Namespace, settings: Settings) -> int:
    from checkin.launcher import summary

    for key, value in summary(settings).items():
        print(f"CHECKIN_{key.upper()}={value}")
    return 0


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
    p = sub.add_parser("serve-tracing", help="run the tracing API (owns ClickHouse)")
    p.add_argument("--workers", default="", help="background loops to run inside: sink,rules,mirror")
    p.set_defaults(handler=cmd_serve_tracing)
    p = sub.add_parser("schema", help="apply the ClickHouse schema (idempotent)")
    p.add_argument("--print", action="store_true", help="print the DDL instead of applying it")
    p.set_defaults(handler=cmd_schema)
    p = sub.add_parser("settings", help="print the effective settings (secrets hidden)")
    p.set_defaults(handler=cmd_settings)

    for name in EXTENSION_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
