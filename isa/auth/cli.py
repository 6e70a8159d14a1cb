"""Operator commands: `isa users create|list|disable|enable`, `isa keys create|list|revoke`."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from isa.auth import store
from isa.auth.principal import SCOPES
from isa.auth.service import AuthService
from isa.core.cli import report, run_with_database
from isa.core.db import Database, DictConnection
from isa.core.settings import Settings
from isa.users.signup import billing_settings, grant_signup_credits

T = TypeVar("T")


def users_create(settings: Settings, args: argparse.Namespace) -> int:
    billing = billing_settings(settings)

    async def work(db: Database) -> bool:
        async with db.transaction() as conn:
            created = await store.ensure_user(conn, args.user, args.email, args.name)
            await grant_signup_credits(conn, args.user, billing)  # once per user ever, however it was made
            return created

    created = run_with_database(settings, work)
    return report(
        {"user_id": args.user, "created": created},
        args.json,
        lambda: f"user {args.user} {'created' if created else 'exists'}",
    )


def users_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> list[dict[str, Any]]:
        async with db.connection() as conn:
            return await store.list_users(conn, args.limit, 0)

    rows = run_with_database(settings, work)
    return report(
        rows,
        args.json,
        lambda: (
            f"{r['user_id']:<40} {'active' if r['is_active'] else 'disabled':<9} {r['email'] or ''}" for r in rows
        ),
    )


def users_set_active(settings: Settings, args: argparse.Namespace) -> int:
    active = args.users_command == "enable"

    done = f"user {args.user} {'enabled' if active else 'disabled'}"
    return _change(settings, lambda conn: store.set_user_active(conn, args.user, active), done, f"no user {args.user}")


def keys_create(settings: Settings, args: argparse.Namespace) -> int:
    billing = billing_settings(settings)

    async def work(db: Database) -> dict[str, Any]:
        async with db.transaction() as conn:
            await store.ensure_user(conn, args.user, None, None)
            await grant_signup_credits(conn, args.user, billing)
        new = await AuthService(db).create_api_key(args.user, [args.scope], args.name, created_by="cli")
        return {"key": new.key, "id": new.id, "user_id": new.user_id, "scopes": new.scopes}

    out = run_with_database(settings, work)
    return report(out, args.json, lambda: f"{out['key']}\n(key id {out['id']}; shown once — store it now)")


def keys_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(db: Database) -> list[store.ApiKeyRow]:
        async with db.connection() as conn:
            return await store.list_api_keys(conn, args.user)

    rows = run_with_database(settings, work)
    return report([r.__dict__ for r in rows], args.json, lambda: map(_key_line, rows))


def _key_line(r: store.ApiKeyRow) -> str:
    state = "revoked" if r.revoked_at else "active"
    return f"{r.id}  {r.prefix}…  {','.join(r.scopes):<16} {state:<8} last used {r.last_used_at or 'never'}"


def keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    key = args.key_id
    return _change(
        settings, lambda conn: store.revoke_api_key(conn, key, None), f"key {key} revoked", f"no active key {key}"
    )


def _change(settings: Settings, change: Callable[[DictConnection], Awaitable[bool]], done: str, missing: str) -> int:
    """One store change in a transaction: prints `done`, or `missing` (exit 1) when there was nothing to change."""

    async def work(db: Database) -> bool:
        async with db.transaction() as conn:
            return await change(conn)

    if not run_with_database(settings, work):
        print(missing)
        return 1
    print(done)
    return 0


def add_commands(sub: Any, settings_loader: Callable[[], Settings]) -> None:
    def bind(fn: Callable[[Settings, argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: fn(settings_loader(), args)

    users = sub.add_parser("users", help="manage user accounts").add_subparsers(dest="users_command", required=True)
    create = users.add_parser("create", help="create a user (no-op if it exists)")
    create.add_argument("user")
    create.add_argument("--email")
    create.add_argument("--name")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=bind(users_create))
    listing = users.add_parser("list", help="list users")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=bind(users_list))
    for verb in ("disable", "enable"):
        p = users.add_parser(verb, help=f"{verb} a user (their keys and tokens stop/start working)")
        p.add_argument("user")
        p.set_defaults(func=bind(users_set_active))

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    kc = keys.add_parser("create", help="create an API key for a user (creating the user if needed)")
    kc.add_argument("--user", required=True)
    kc.add_argument("--scope", choices=SCOPES, default="write")
    kc.add_argument("--name", default="")
    kc.add_argument("--json", action="store_true", help='print one JSON object with the key under "key"')
    kc.set_defaults(func=bind(keys_create))
    kl = keys.add_parser("list", help="list a user's keys (never the keys themselves)")
    kl.add_argument("--user", required=True)
    kl.add_argument("--json", action="store_true")
    kl.set_defaults(func=bind(keys_list))
    kr = keys.add_parser("revoke", help="revoke a key by id")
    kr.add_argument("key_id")
    kr.set_defaults(func=bind(keys_revoke))
