"""Operator commands: `isa catalog import FILE | list | remove SERVER | learn`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from isa.catalog.importer import parse_import
from isa.catalog.service import CatalogService
from isa.catalog.settings import CatalogSettings
from isa.core.cli import run_with_database
from isa.core.db import Database
from isa.core.embeddings import LocalMiniLM
from isa.core.errors import ApiError
from isa.core.settings import Settings

T = TypeVar("T")


def _run(settings: Settings, work: Callable[[CatalogService], Awaitable[T]]) -> T:
    def with_service(db: Database) -> Awaitable[T]:
        return work(CatalogService(db, LocalMiniLM(), settings.section("catalog", CatalogSettings)))

    return run_with_database(settings, with_service)


def _fail(exc: ApiError) -> int:
    print(f"isa catalog: {exc.message}", file=sys.stderr)
    for detail in (exc.details or [])[:20]:
        print(f"  {detail}", file=sys.stderr)
    return 1


def catalog_import(settings: Settings, args: argparse.Namespace) -> int:
    try:
        data: Any = json.loads(Path(args.file).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"isa catalog: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    try:
        specs = parse_import(data)
        out = _run(settings, lambda s: s.import_servers(specs))
    except ApiError as exc:
        return _fail(exc)
    if args.json:
        print(json.dumps(out))
        return 0
    for r in out:
        print(
            f"{r['server']}: {r['tools']} tools ({r['embedded']} embedded, {r['removed']} removed,"
            f" {r['examples']} examples){'' if r['url'] else ' - no url: calls will fail until one is imported'}"
        )
    return 0


def catalog_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = _run(settings, lambda s: s.list_servers())
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    print(f"{'server':<40} {'tools':>6} {'prompts':>8} {'resources':>10}  url")
    for r in rows:
        print(f"{r['name'][:40]:<40} {r['tools']:>6} {r['prompts']:>8} {r['resources']:>10}  {r['url'] or '-'}")
    return 0


def catalog_remove(settings: Settings, args: argparse.Namespace) -> int:
    try:
        removed = _run(settings, lambda s: s.remove_server(args.server))
    except ApiError as exc:
        return _fail(exc)
    print(f"server {args.server} removed ({removed} items)")
    return 0


def catalog_learn(settings: Settings, args: argparse.Namespace) -> int:
    added = _run(settings, lambda s: s.learn_from_usage())
    print(f"{added} usage example(s) added")
    return 0


def add_commands(sub: Any, settings_loader: Callable[[], Settings]) -> None:
    def bind(fn: Callable[[Settings, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: fn(settings_loader(), args)

    catalog = sub.add_parser("catalog", help="other MCP servers' tools in the discovery catalog")
    commands = catalog.add_subparsers(dest="catalog_command", required=True)
    imp = commands.add_parser("import", help="import servers from a JSON file (a list of {name, url?, tools})")
    imp.add_argument("file")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=bind(catalog_import))
    listing = commands.add_parser("list", help="servers in the catalog with their item counts")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=bind(catalog_list))
    rm = commands.add_parser("remove", help="remove an imported server and its tools")
    rm.add_argument("server")
    rm.set_defaults(func=bind(catalog_remove))
    learn = commands.add_parser("learn", help="turn discovered-then-called tools into examples (learning from usage)")
    learn.set_defaults(func=bind(catalog_learn))
