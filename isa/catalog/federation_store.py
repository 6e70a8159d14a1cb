"""SQL of live upstream servers (catalog_upstreams) and users' own credentials for them (catalog_user_credentials)."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from isa.catalog.notify import CHANNEL
from isa.core.db import DictConnection, fetch_one


async def upsert_upstream(
    conn: DictConnection, name: str, url: str, headers_sealed: str | None, user_header: str | None
) -> None:
    await conn.execute(
        "INSERT INTO catalog_upstreams (name, url, headers_sealed, user_header, health, last_error, last_sync_at)"
        " VALUES (%s, %s, %s, %s, 'ok', NULL, now())"
        " ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url, headers_sealed = EXCLUDED.headers_sealed,"
        " user_header = EXCLUDED.user_header, health = 'ok', last_error = NULL, last_sync_at = now()",
        (name, url, headers_sealed, user_header),
    )


async def notify(conn: DictConnection) -> None:
    """Wake every replica's catalog listener (a new upstream to watch, or one gone)."""
    await conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(CHANNEL)))


_UPSTREAM_BY_NAME = (
    "SELECT name, url, headers_sealed, user_header, health, last_error, last_sync_at FROM catalog_upstreams"
    " WHERE name = %s"
)


async def get_upstream(conn: DictConnection, name: str) -> dict[str, Any] | None:
    return await fetch_one(conn, _UPSTREAM_BY_NAME, (name,))


async def upstream_names(conn: DictConnection) -> list[str]:
    cur = await conn.execute("SELECT name FROM catalog_upstreams ORDER BY name")
    return [r["name"] for r in await cur.fetchall()]


async def mark_health(conn: DictConnection, name: str, error: str | None) -> None:
    """After a sync attempt: ok (and when) or the error that stopped it."""
    if error is None:
        await conn.execute(
            "UPDATE catalog_upstreams SET health = 'ok', last_error = NULL, last_sync_at = now() WHERE name = %s",
            (name,),
        )
    else:
        await conn.execute(
            "UPDATE catalog_upstreams SET health = 'error', last_error = %s WHERE name = %s", (error[:500], name)
        )


async def health_of(conn: DictConnection) -> dict[str, dict[str, Any]]:
    cur = await conn.execute(
        "SELECT name, health, last_error, last_sync_at, user_header IS NOT NULL AS per_user FROM catalog_upstreams"
    )
    return {r["name"]: r for r in await cur.fetchall()}


async def set_credential(conn: DictConnection, server: str, user_id: str, sealed: str) -> None:
    await conn.execute(
        "INSERT INTO catalog_user_credentials (server, user_id, secret_sealed) VALUES (%s, %s, %s)"
        " ON CONFLICT (server, user_id) DO UPDATE SET secret_sealed = EXCLUDED.secret_sealed, created_at = now()",
        (server, user_id, sealed),
    )


async def delete_credential(conn: DictConnection, server: str, user_id: str) -> bool:
    cur = await conn.execute(
        "DELETE FROM catalog_user_credentials WHERE server = %s AND user_id = %s", (server, user_id)
    )
    return cur.rowcount > 0


async def get_credential(conn: DictConnection, server: str, user_id: str) -> dict[str, Any] | None:
    cur = await conn.execute(
        "SELECT secret_sealed, created_at FROM catalog_user_credentials WHERE server = %s AND user_id = %s",
        (server, user_id),
    )
    return await cur.fetchone()
