"""Operator commands: `isa files sweep` expires abandoned uploads and reports (or deletes) orphan objects."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from isa.core.cli import report, run_with_database
from isa.core.db import Database
from isa.core.settings import ConfigError, Settings
from isa.core.storage import StorageError, StorageSettings, build_storage
from isa.files.service import FilesService
from isa.files.settings import FilesSettings


def sweep(settings: Settings, args: argparse.Namespace) -> int:
    try:
        storage = build_storage(settings.section("storage", StorageSettings), settings.data_dir)
    except StorageError as exc:
        raise ConfigError(str(exc)) from None

    async def main(db: Database) -> dict[str, Any]:
        service = FilesService(db, storage, settings.section("files", FilesSettings))
        expired = await service.sweep_pending(args.older_than)
        out: dict[str, Any] = {"expired_pending": [r.id for r in expired]}
        out["temporary_removed"] = await service.sweep_temporary()
        if args.orphans:
            orphans = await service.collect_orphans(delete=args.delete, min_age_minutes=args.orphan_age)
            out["orphans"] = orphans
            out["orphans_deleted"] = args.delete
        return out

    result = run_with_database(settings, main)
    return report(
        result,
        args.json,
        lambda: [
            f"expired {len(result['expired_pending'])} pending upload(s)",
            *(f"orphan {'deleted' if args.delete else 'found'}: {key}" for key in result.get("orphans", [])),
        ],
    )


def add_commands(sub: Any, settings_loader: Callable[[], Settings]) -> None:
    files = sub.add_parser("files", help="per-user file storage").add_subparsers(dest="files_command", required=True)
    p = files.add_parser("sweep", help="expire abandoned pending uploads; --orphans also checks storage")
    p.add_argument("--older-than", type=float, default=None, help="minutes (default: files.pending_ttl_minutes)")
    p.add_argument("--orphans", action="store_true", help="list objects under users/ that no row owns")
    p.add_argument("--delete", action="store_true", help="with --orphans: delete them")
    p.add_argument("--orphan-age", type=float, default=None, help="minutes (default: files.orphan_min_age_minutes)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=lambda args: sweep(settings_loader(), args))
