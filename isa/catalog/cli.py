"""Operator commands: `isa catalog import FILE | add NAME URL | authorize NAME | sync NAME | list | remove SERVER |
learn | virtual`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from isa.catalog.doc2query import doc2query_writer
from isa.catalog.federation import Federation, parse_header
from isa.catalog.federation_oauth import callback_url
from isa.catalog.importer import parse_import
from isa.catalog.progress import embed_progress
from isa.catalog.service import CatalogService
from isa.catalog.settings import CatalogSettings, Doc2QuerySettings
from isa.catalog.virtual import VirtualServers
from isa.core.cli import report, run_with_database
from isa.core.db import Database
from isa.core.embeddings import shared_minilm
from isa.core.errors import ApiError
from isa.core.settings import Settings

T = TypeVar("T")


def _service(db: Database, settings: Settings) -> CatalogService:
    cfg = settings.section("catalog", CatalogSettings)
    # doc2query as on the serving nodes: with a model configured, imports and adds write example requests through
    # the model node (services.model_url), bounded and cached the same way.
    doc2query = doc2query_writer(settings)
    if doc2query is None and settings.section("catalog", Doc2QuerySettings).doc2query_model:
        print(
            "isa catalog: catalog.doc2query_model is set but no model node is reachable from here (services.model_url"
            " and isa tokens are needed): no example requests are generated",
            file=sys.stderr,
        )
    return CatalogService(db, shared_minilm(cfg.encoder), cfg, doc2query=doc2query)  # the server's encoder


def _run(settings: Settings, work: Callable[[CatalogService], Awaitable[T]]) -> T:
    return run_with_database(settings, lambda db: work(_service(db, settings)))


def _federated(settings: Settings, work: Callable[[Federation], Awaitable[T]]) -> T:
    def with_federation(db: Database) -> Awaitable[T]:
        service = _service(db, settings)
        return work(Federation(service, db, service.settings))

    return run_with_database(settings, with_federation)


def _said(line: str) -> int:
    """A command's one line for the operator; the exit code 0."""
    print(line)
    return 0


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
    specs = parse_import(data)
    with embed_progress(sum(len(spec.tools) for spec in specs)) as progress:
        out = _run(settings, lambda s: s.import_servers(specs, progress=progress.update))
    return report(out, args.json, lambda: map(_imported_line, out))


def _imported_line(r: dict[str, Any]) -> str:
    generated = f", {r['generated']} generated" if "generated" in r else ""
    return (
        f"{r['server']}: {r['tools']} tools ({r['embedded']} embedded, {r['removed']} removed,"
        f" {r['examples']} examples{generated})"
        f"{'' if r['url'] else ' - no url: calls will fail until one is imported'}"
    )


def catalog_add(settings: Settings, args: argparse.Namespace) -> int:
    if args.auth == "oauth":
        return _add_oauth(settings, args)
    if args.per_user:
        print("isa catalog: --per-user goes with --auth oauth (else use --user-header)", file=sys.stderr)
        return 1
    headers = dict(parse_header(h) for h in args.header)
    with embed_progress(None) as progress:
        out = _federated(settings, lambda f: f.add(args.name, args.url, headers, args.user_header, progress.update))
    return report(
        out,
        args.json,
        lambda: (
            f"{out['server']}: {out['tools']} tools, {out['prompts']} prompts, {out['resources']} resources"
            f" ({out['embedded']} embedded, {out['removed']} removed)"
            + ("; each user stores their own credential" if out["per_user"] else "")
        ),
    )


def _add_oauth(settings: Settings, args: argparse.Namespace) -> int:
    if args.header or args.user_header:
        print("isa catalog: with --auth oauth isa holds the credentials: no --header or --user-header", file=sys.stderr)
        return 1
    redirect = callback_url(settings, settings.section("catalog", CatalogSettings))
    out = _federated(settings, lambda f: f.add_oauth(args.name, args.url, args.per_user, redirect, "cli"))
    return _print_grant(out, args.json)


def _print_grant(out: dict[str, Any], as_json: bool) -> int:
    return report(out, as_json, lambda: _grant_text(out))


def _grant_text(out: dict[str, Any]) -> str:
    name = out["server"]
    whose = f"; then each user authorizes theirs: POST /catalog/servers/{name}/oauth/start" if out["per_user"] else ""
    return (
        f"{name}: open this URL in a browser within {out['expires_in'] // 60} minutes and approve; isa lists"
        f" the server's tools when the grant arrives{whose}:\n{out['authorization_url']}"
    )


def catalog_authorize(settings: Settings, args: argparse.Namespace) -> int:
    """The server's own grant of a server added with --auth oauth: start it again, or revoke it."""
    if args.revoke:
        _federated(settings, lambda f: f.oauth.revoke(args.name, None))
        return _said(f"{args.name}: the server's OAuth grant is revoked; calls answer upstream_authorization_required")
    out = _federated(settings, lambda f: f.oauth.start(args.name, "cli", for_user=False))
    return _print_grant(out, args.json)


def catalog_sync(settings: Settings, args: argparse.Namespace) -> int:
    out = _federated(settings, lambda f: f.sync(args.name))
    return _said(f"{out['server']}: {out['tools']} tools ({out['embedded']} embedded, {out['removed']} removed)")


def catalog_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = _federated(settings, lambda f: f.list_servers())
    header = f"{'server':<32} {'tools':>6} {'prompts':>8} {'resources':>10}  {'health':<8} {'last sync':<20} url"
    return report(rows, args.json, lambda: [header, *map(_server_line, rows)])


def _server_line(r: dict[str, Any]) -> str:
    health = r["health"] or ("-" if r["source"] != "import" else "import")
    synced = (r["last_sync_at"] or "-")[:19]
    return (
        f"{r['name'][:32]:<32} {r['tools']:>6} {r['prompts']:>8} {r['resources']:>10}  {health:<8} {synced:<20}"
        f" {r['url'] or '-'}{'  (' + r['last_error'] + ')' if r['last_error'] else ''}"
    )


def catalog_remove(settings: Settings, args: argparse.Namespace) -> int:
    removed = _federated(settings, lambda f: f.remove(args.server))
    return _said(f"server {args.server} removed ({removed} items)")


def catalog_learn(settings: Settings, args: argparse.Namespace) -> int:
    added = _run(settings, lambda s: s.learn_from_usage())
    return _said(f"{added} usage example(s) added")


def _virtual(settings: Settings, work: Callable[[VirtualServers], Awaitable[T]]) -> T:
    return run_with_database(settings, lambda db: work(VirtualServers(db)))


def virtual_create(settings: Settings, args: argparse.Namespace) -> int:
    out = _virtual(
        settings,
        lambda v: v.create(args.name, args.tool, args.prompt, args.resource, "cli", args.description),
    )
    return report(
        out,
        args.json,
        lambda: (
            f"{out['name']}: {len(out['tools'])} tools, {len(out['prompts'])} prompts,"
            f" {len(out['resources'])} resources at {out['path']}"
        ),
    )


def virtual_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = _virtual(settings, lambda v: v.list_all())
    header = f"{'name':<32} {'tools':>6} {'prompts':>8} {'resources':>10}  path"
    return report(
        rows,
        args.json,
        lambda: [
            header,
            *(
                f"{r['name']:<32} {len(r['tools']):>6} {len(r['prompts']):>8} {len(r['resources']):>10}  {r['path']}"
                for r in rows
            ),
        ],
    )


def virtual_remove(settings: Settings, args: argparse.Namespace) -> int:
    _virtual(settings, lambda v: v.remove(args.name))
    return _said(f"virtual server {args.name} removed")


Command = Callable[[Settings, argparse.Namespace], int]
Bind = Callable[[Command], Callable[[argparse.Namespace], int]]


def _command(
    parent: Any, bind: Bind, name: str, help: str, run: Command, *positional: str, json: bool = False
) -> argparse.ArgumentParser:
    """A subcommand running `run`: its positional arguments, `--json` when it can answer in JSON."""
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help)
    for arg in positional:
        parser.add_argument(arg)
    if json:
        parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=bind(run))
    return parser


def add_virtual_commands(commands: Any, bind: Bind) -> None:
    virtual = commands.add_parser("virtual", help="named endpoints /mcp/v/NAME exposing a chosen set of items")
    sub = virtual.add_subparsers(dest="virtual_command", required=True)
    create = _command(sub, bind, "create", "create (or replace) a virtual server", virtual_create, "name")
    create.add_argument("--tool", action="append", default=[], help="a tool by the name it is called here")
    create.add_argument("--prompt", action="append", default=[], help="a prompt by the name it is called here")
    create.add_argument("--resource", action="append", default=[], help="a resource by URI")
    create.add_argument("--description", default="")
    create.add_argument("--json", action="store_true")
    _command(sub, bind, "list", "virtual servers and what they expose", virtual_list, json=True)
    _command(sub, bind, "remove", "remove a virtual server (its endpoint answers 404)", virtual_remove, "name")


def add_commands(sub: Any, settings_loader: Callable[[], Settings]) -> None:
    def bind(fn: Command) -> Callable[[argparse.Namespace], int]:
        def run(args: argparse.Namespace) -> int:
            try:
                return fn(settings_loader(), args)
            except ApiError as exc:  # every command reports a refusal the same way
                return _fail(exc)

        return run

    catalog = sub.add_parser("catalog", help="other MCP servers' tools in the discovery catalog")
    commands = catalog.add_subparsers(dest="catalog_command", required=True)
    _command(
        commands,
        bind,
        "import",
        "import servers from a JSON file (a list of {name, url?, tools})",
        catalog_import,
        "file",
        json=True,
    )
    add = _command(
        commands, bind, "add", "add a live MCP server by URL and keep its tools in sync", catalog_add, "name", "url"
    )
    add.add_argument("--header", action="append", default=[], help="'Name: value' sent to the server (sealed)")
    add.add_argument(
        "--user-header", help="per-user credential, e.g. 'Authorization: Bearer {credential}' (each user stores theirs)"
    )
    add.add_argument(
        "--auth", choices=["oauth"], help="oauth: isa registers as the server's OAuth client; prints the URL to approve"
    )
    add.add_argument("--per-user", action="store_true", help="with --auth oauth: calls carry each user's own grant")
    add.add_argument("--json", action="store_true")
    authorize = _command(
        commands, bind, "authorize", "a new OAuth grant for a server added with --auth oauth", catalog_authorize, "name"
    )
    authorize.add_argument("--revoke", action="store_true", help="revoke the server's grant instead")
    authorize.add_argument("--json", action="store_true")
    _command(commands, bind, "sync", "list a server added by URL again now", catalog_sync, "name")
    _command(
        commands, bind, "list", "servers in the catalog: item counts, health and last sync", catalog_list, json=True
    )
    _command(commands, bind, "remove", "remove an imported server and its tools", catalog_remove, "server")
    _command(
        commands, bind, "learn", "turn discovered-then-called tools into examples (learning from usage)", catalog_learn
    )
    add_virtual_commands(commands, bind)
