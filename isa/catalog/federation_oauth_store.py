"""SQL of upstream servers reached as an OAuth client: their registration (catalog_upstream_oauth), the grants isa
holds for them (catalog_upstream_oauth_grants) and the authorization requests waiting for a callback (…_flows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from isa.core.db import DictConnection, fetch_one


async def upsert_client(
    conn: DictConnection,
    server: str,
    url: str,
    per_user: bool,
    redirect_uri: str,
    discovery: dict[str, Any],
    client_sealed: str,
) -> None:
    """Remember (or replace, on a new add) how isa is registered with the server; older grants are dropped."""
    await conn.execute("DELETE FROM catalog_upstream_oauth WHERE server = %s", (server,))
    await conn.execute(
        "INSERT INTO catalog_upstream_oauth (server, url, per_user, redirect_uri, discovery, client_sealed)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (server, url, per_user, redirect_uri, Jsonb(discovery), client_sealed),
    )


_CLIENT_BY_SERVER = (
    "SELECT server, url, per_user, redirect_uri, discovery, client_sealed FROM catalog_upstream_oauth WHERE server = %s"
)


async def get_client(conn: DictConnection, server: str) -> dict[str, Any] | None:
    return await fetch_one(conn, _CLIENT_BY_SERVER, (server,))


async def clients(conn: DictConnection) -> dict[str, dict[str, Any]]:
    cur = await conn.execute("SELECT server, per_user FROM catalog_upstream_oauth")
    return {r["server"]: r for r in await cur.fetchall()}


async def delete_client(conn: DictConnection, server: str) -> bool:
    cur = await conn.execute("DELETE FROM catalog_upstream_oauth WHERE server = %s", (server,))
    return cur.rowcount > 0


# --- authorization requests waiting for the callback ---------------------------------------------------------------


async def add_flow(
    conn: DictConnection, state_hash: str, server: str, started_by: str, for_user: bool, verifier_sealed: str, ttl: int
) -> None:
    await conn.execute("DELETE FROM catalog_upstream_oauth_flows WHERE expires_at < now()")
    await conn.execute(
        "INSERT INTO catalog_upstream_oauth_flows (state_hash, server, started_by, for_user, verifier_sealed,"
        " expires_at) VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s))",
        (state_hash, server, started_by, for_user, verifier_sealed, ttl),
    )


async def take_flow(conn: DictConnection, state_hash: str) -> dict[str, Any] | None:
    """Consume a waiting request (single use, decided here); an expired one is consumed and not returned."""
    cur = await conn.execute(
        "DELETE FROM catalog_upstream_oauth_flows WHERE state_hash = %s"
        " RETURNING server, started_by, for_user, verifier_sealed, expires_at > now() AS live",
        (state_hash,),
    )
    row = await cur.fetchone()
    return row if row is not None and row["live"] else None


# --- grants ---------------------------------------------------------------------------------------------------------


async def get_grant(
    conn: DictConnection, server: str, user_id: str | None, lock: bool = False
) -> dict[str, Any] | None:
    """The grant for `user_id` (None: the server's own); `lock` holds it until the transaction ends (refreshing)."""
    query = (
        "SELECT tokens_sealed, expires_at, updated_at FROM catalog_upstream_oauth_grants"
        " WHERE server = %s AND user_id IS NOT DISTINCT FROM %s FOR UPDATE"
        if lock
        else "SELECT tokens_sealed, expires_at, updated_at FROM catalog_upstream_oauth_grants"
        " WHERE server = %s AND user_id IS NOT DISTINCT FROM %s"
    )
    cur = await conn.execute(query, (server, user_id))
    return await cur.fetchone()


async def save_grant(
    conn: DictConnection, server: str, user_id: str | None, tokens_sealed: str, expires_at: datetime | None
) -> None:
    await conn.execute(
        "DELETE FROM catalog_upstream_oauth_grants WHERE server = %s AND user_id IS NOT DISTINCT FROM %s",
        (server, user_id),
    )
    await conn.execute(
        "INSERT INTO catalog_upstream_oauth_grants (server, user_id, tokens_sealed, expires_at)"
        " VALUES (%s, %s, %s, %s)",
        (server, user_id, tokens_sealed, expires_at),
    )


async def delete_grant(conn: DictConnection, server: str, user_id: str | None) -> str | None:
    """Delete a grant; its sealed tokens (to revoke them upstream), or None when there was none."""
    cur = await conn.execute(
        "DELETE FROM catalog_upstream_oauth_grants WHERE server = %s AND user_id IS NOT DISTINCT FROM %s"
        " RETURNING tokens_sealed",
        (server, user_id),
    )
    row = await cur.fetchone()
    return str(row["tokens_sealed"]) if row else None
