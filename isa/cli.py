"""The `isa` command: serve, migrate, db url, doctor, config show."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from isa.core.logging import configure_logging
from isa.core.migrations import MigrationError
from isa.core.settings import ROLE_NAMES, ConfigError, Settings, load_settings, mask_secrets


def _settings(role: str | None = None) -> Settings:
    settings = load_settings(role)
    configure_logging(settings.logging.format, settings.logging.level)
    return settings


def cmd_serve(args: argparse.Namespace) -> int:
    from isa.app import create_app
    from isa.roles import DEFAULT_PORTS
    from isa.server import serve

    settings = _settings(args.role)
    host = args.host or settings.server.host
    port = args.port or settings.server.port or DEFAULT_PORTS[settings.role]
    # The app knows where it listens (the first-run sign-in hint prints the page's address).
    settings = settings.model_copy(update={"server": settings.server.model_copy(update={"host": host, "port": port})})
    serve(create_app(settings), host, port)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from isa.core.db import migration_url
    from isa.core.migrations import migrate, status

    settings = _settings()
    url = migration_url(settings)
    if args.status:
        rows = status(url)
        print(f"{'version':<8} {'name':<32} {'state':<13} {'applied_at':<32} ms")
        for row in rows:
            applied = row.applied_at.isoformat() if row.applied_at else "-"
            duration = "-" if row.duration_ms is None else str(row.duration_ms)
            print(f"{row.version:04d}     {row.name:<32} {row.state:<13} {applied:<32} {duration}")
        return 1 if any(r.state in ("changed", "missing_file") for r in rows) else 0
    done = migrate(
        url,
        lock_timeout_ms=settings.migrations.lock_timeout_ms,
        statement_timeout_ms=settings.migrations.statement_timeout_ms,
    )
    for f in done:
        print(f"applied {f.filename}")
    print(f"{len(done)} migration(s) applied; schema is up to date")
    return 0


def cmd_db_url(args: argparse.Namespace) -> int:
    from isa.core.db import resolve_url

    # The embedded server stays up after this command, so `psql "$(isa db url)"` works.
    print(resolve_url(_settings(), keep_running=True))
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    settings = _settings(args.role)
    shown = {"env": settings.env, "role": settings.role, "data_dir": str(settings.data_dir)}
    shown.update({k: v for k, v in settings.raw.items() if k not in shown and k != "load_dotenv"})
    print(json.dumps(mask_secrets(shown), indent=2, sort_keys=True, default=str))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from isa.core.doctor import run_doctor

    return run_doctor(_settings(args.role))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="isa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one role (mcp, model, agent or all)")
    serve.add_argument("--role", choices=ROLE_NAMES, help="default: ISA_ROLE, then 'all'")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    mig = sub.add_parser("migrate", help="apply pending SQL migrations")
    mig.add_argument("--status", action="store_true", help="list applied and pending migrations")
    mig.set_defaults(func=cmd_migrate)

    db = sub.add_parser("db", help="database helpers").add_subparsers(dest="db_command", required=True)
    db.add_parser("url", help="print the connection URL this node uses").set_defaults(func=cmd_db_url)

    config = sub.add_parser("config", help="settings").add_subparsers(dest="config_command", required=True)
    show = config.add_parser("show", help="print the effective settings, secrets masked")
    show.add_argument("--role", choices=ROLE_NAMES)
    show.set_defaults(func=cmd_config_show)

    doctor = sub.add_parser("doctor", help="check what this node can reach and use")
    doctor.add_argument("--role", choices=ROLE_NAMES)
    doctor.set_defaults(func=cmd_doctor)

    for module in domain_cli_modules():
        importlib.import_module(module).add_commands(sub, _settings)
    return parser


def domain_cli_modules() -> list[str]:
    """`<domain>.cli` of every domain that has one, in roles.py's order.

    Found by file, not by import: importing every domain package (litellm, the MCP SDK) would slow each command.
    """
    from isa.roles import domains_for

    root = Path(__file__).resolve().parent
    return [f"{d}.cli" for d in domains_for("all") if (root / d.removeprefix("isa.") / "cli.py").is_file()]


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
    except ConfigError as exc:
        print(f"isa: configuration error: {exc}", file=sys.stderr)
        code = 2
    except MigrationError as exc:
        print(f"isa: migration error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
