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
from isa.core.cli import run_with_database
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
    if args.json:
        print(json.dumps(out))
        return 0
    for r in out:
        generated = f", {r['generated']} generated" if "generated" in r else ""
        print(
            f"{r['server']}: {r['tools']} tools ({r['embedded']} embedded, {r['removed']} removed,"
            f" {r['examples']} examples{generated})"
            f"{'' if r['url'] else ' - no url: calls will fail until one is imported'}"
        )
    return 0


def catalog_add(settings: Settings, args: argparse.Namespace) -> int:
    if args.auth == "oauth":
        return _add_oauth(settings, args)
    if args.per_user:
        print("isa catalog: --per-user goes with --auth oauth (else use --user-header)", file=sys.stderr)
        return 1
    headers = dict(parse_header(h) for h in args.header)
    with embed_progress(None) as progress:
        out = _federated(settings, lambda f: f.add(args.name, args.url, headers, args.user_header, progress.update))
    if args.json:
        print(json.dumps(out))
        return 0
    per_user = "; each user stores their own credential" if out["per_user"] else ""
    print(
        f"{out['server']}: {out['tools']} tools, {out['prompts']} prompts, {out['resources']} resources"
        f" ({out['embedded']} embedded, {out['removed']} removed){per_user}"
    )
    return 0


def _add_oauth(settings: Settings, args: argparse.Namespace) -> int:
    if args.header or args.user_header:
        print("isa catalog: with --auth oauth isa holds the credentials: no --header or --user-header", file=sys.stderr)
        return 1
    redirect = callback_url(settings, settings.section("catalog", CatalogSettings))
    out = _federated(settings, lambda f: f.add_oauth(args.name, args.url, args.per_user, redirect, "cli"))
    return _print_grant(out, args.json)


def _print_grant(out: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(out))
        return 0
    name = out["server"]
    whose = f"; then each user authorizes theirs: POST /catalog/servers/{name}/oauth/start" if out["per_user"] else ""
    print(
        f"{name}: open this URL in a browser within {out['expires_in'] // 60} minutes and approve; isa lists"
        f" the server's tools when the grant arrives{whose}:\n{out['authorization_url']}"
    )
    return 0


def catalog_authorize(settings: Settings, args: argparse.Namespace) -> int:
    """The server's own grant of a server added with --auth oauth: start it again, or revoke it."""
    if args.revoke:
        _federated(settings, lambda f: f.oauth.revoke(args.name, None))
        print(f"{args.name}: the server's OAuth grant is revoked; calls answer upstream_authorization_required")
        return 0
    out = _federated(settings, lambda f: f.oauth.start(args.name, "cli", for_user=False))
    return _print_grant(out, args.json)


def catalog_sync(settings: Settings, args: argparse.Namespace) -> int:
    out = _federated(settings, lambda f: f.sync(args.name))
    print(f"{out['server']}: {out['tools']} tools ({out['embedded']} embedded, {out['removed']} removed)")
    return 0


def catalog_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = _federated(settings, lambda f: f.list_servers())
    if args.json:
        print(json.dumps(rows, default=str))
        return 0
    print(f"{'server':<32} {'tools':>6} {'prompts':>8} {'resources':>10}  {'health':<8} {'last sync':<20} url")
    for r in rows:
        health = r["health"] or ("-" if r["source"] != "import" else "import")
        synced = (r["last_sync_at"] or "-")[:19]
        print(
            f"{r['name'][:32]:<32} {r['tools']:>6} {r['prompts']:>8} {r['resources']:>10}  {health:<8} {synced:<20}"
            f" {r['url'] or '-'}{'  (' + r['last_error'] + ')' if r['last_error'] else ''}"
        )
    return 0


def catalog_remove(settings: Settings, args: argparse.Namespace) -> int:
    removed = _federated(settings, lambda f: f.remove(args.server))
    print(f"server {args.server} removed ({removed} items)")
    return 0


def catalog_learn(settings: Settings, args: argparse.Namespace) -> int:
    added = _run(settings, lambda s: s.learn_from_usage())
    print(f"{added} usage example(s) added")
    return 0


def _virtual(settings: Settings, work: Callable[[VirtualServers], Awaitable[T]]) -> T:
    return run_with_database(settings, lambda db: work(VirtualServers(db)))


def virtual_create(settings: Settings, args: argparse.Namespace) -> int:
    out = _virtual(
        settings,
        lambda v: v.create(args.name, args.tool, args.prompt, args.resource, "cli", args.description),
    )
    if args.json:
        print(json.dumps(out))
        return 0
    print(
        f"{out['name']}: {len(out['tools'])} tools, {len(out['prompts'])} prompts, {len(out['resources'])} resources"
        f" at {out['path']}"
    )
    return 0


def virtual_list(settings: Settings, args: argparse.Namespace) -> int:
    rows = _virtual(settings, lambda v: v.list_all())
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'name':<32} {'tools':>6} {'prompts':>8} {'resources':>10}  path")
    for r in rows:
        print(f"{r['name']:<32} {len(r['tools']):>6} {len(r['prompts']):>8} {len(r['resources']):>10}  {r['path']}")
    return 0


def virtual_remove(settings: Settings, args: argparse.Namespace) -> int:
    _virtual(settings, lambda v: v.remove(args.name))
    print(f"virtual server {args.name} removed")
    return 0


def add_virtual_commands(commands: Any, bind: Callable[[Callable[[Settings, argparse.Namespace], int]], Any]) -> None:
    virtual = commands.add_parser("virtual", help="named endpoints /mcp/v/NAME exposing a chosen set of items")
    sub = virtual.add_subparsers(dest="virtual_command", required=True)
    create = sub.add_parser("create", help="create (or replace) a virtual server")
    create.add_argument("name")
    create.add_argument("--tool", action="append", default=[], help="a tool by the name it is called here")
    create.add_argument("--prompt", action="append", default=[], help="a prompt by the name it is called here")
    create.add_argument("--resource", action="append", default=[], help="a resource by URI")
    create.add_argument("--description", default="")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=bind(virtual_create))
    listing = sub.add_parser("list", help="virtual servers and what they expose")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=bind(virtual_list))
    rm = sub.add_parser("remove", help="remove a virtual server (its endpoint answers 404)")
    rm.add_argument("name")
    rm.set_defaults(func=bind(virtual_remove))


def add_commands(sub: Any, settings_loader: Callable[[], Settings]) -> None:
    def bind(fn: Callable[[Settings, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        def run(args: argparse.Namespace) -> int:
            try:
                return fn(settings_loader(), args)
            except ApiError as exc:  # every command reports a refusal the same way
                return _fail(exc)

        return run

    catalog = sub.add_parser("catalog", help="other MCP servers' tools in the discovery catalog")
    commands = catalog.add_subparsers(dest="catalog_command", required=True)
    imp = commands.add_parser("import", help="import servers from a JSON file (a list of {name, url?, tools})")
    imp.add_argument("file")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=bind(catalog_import))
    add = commands.add_parser("add", help="add a live MCP server by URL and keep its tools in sync")
    add.add_argument("name")
    add.add_argument("url")
    add.add_argument("--header", action="append", default=[], help="'Name: value' sent to the server (sealed)")
    add.add_argument(
        "--user-header", help="per-user credential, e.g. 'Authorization: Bearer {credential}' (each user stores theirs)"
    )
    add.add_argument(
        "--auth", choices=["oauth"], help="oauth: isa registers as the server's OAuth client; prints the URL to approve"
    )
    add.add_argument("--per-user", action="store_true", help="with --auth oauth: calls carry each user's own grant")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=bind(catalog_add))
    authorize = commands.add_parser("authorize", help="a new OAuth grant for a server added with --auth oauth")
    authorize.add_argument("name")
    authorize.add_argument("--revoke", action="store_true", help="revoke the server's grant instead")
    authorize.add_argument("--json", action="store_true")
    authorize.set_defaults(func=bind(catalog_authorize))
    sync = commands.add_parser("sync", help="list a server added by URL again now")
    sync.add_argument("name")
    sync.set_defaults(func=bind(catalog_sync))
    listing = commands.add_parser("list", help="servers in the catalog: item counts, health and last sync")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=bind(catalog_list))
    rm = commands.add_parser("remove", help="remove an imported server and its tools")
    rm.add_argument("server")
    rm.set_defaults(func=bind(catalog_remove))
    learn = commands.add_parser("learn", help="turn discovered-then-called tools into examples (learning from usage)")
    learn.set_defaults(func=bind(catalog_learn))
    add_virtual_commands(commands, bind)
