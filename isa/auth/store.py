"""SQL for users' identity rows and API keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from isa.core.db import DictConnection, fetch_all, fetch_one


@dataclass(frozen=True)
class ApiKeyRow:
    id: str
    user_id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None


def _key(row: dict[str, Any]) -> ApiKeyRow:
    """A row of `_KEY_COLUMNS` (they are the fields' names)."""
    return ApiKeyRow(**{**row, "id": str(row["id"]), "scopes": list(row["scopes"])})


_KEY_COLUMNS = "id, user_id, name, prefix, scopes, created_at, last_used_at, revoked_at, expires_at"


async def ensure_user(conn: DictConnection, user_id: str, email: str | None, name: str | None) -> bool:
    """Create the user if missing; True when this call created it."""
    cur = await conn.execute(
        "INSERT INTO users (user_id, email, name) VALUES (%s, %s, %s) ON CONFLICT (user_id) DO NOTHING",
        (user_id, email, name),
    )
    return cur.rowcount == 1


async def set_user_active(conn: DictConnection, user_id: str, active: bool) -> bool:
    cur = await conn.execute("UPDATE users SET is_active = %s WHERE user_id = %s", (active, user_id))
    return cur.rowcount == 1


async def list_users(conn: DictConnection, limit: int, offset: int) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        "SELECT user_id, email, name, is_active, credits_remaining, created_at FROM users "
        "ORDER BY created_at, user_id LIMIT %s OFFSET %s",
        (limit, offset),
    )


async def insert_api_key(
    conn: DictConnection, user_id: str, name: str, prefix: str, key_hash: str, scopes: list[str], created_by: str
) -> ApiKeyRow:
    cur = await conn.execute(
        "INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes, created_by) "
        f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_KEY_COLUMNS}",
        (user_id, name, prefix, key_hash, scopes, created_by),
    )
    row = await cur.fetchone()
    assert row is not None
    return _key(row)


async def principal_row_for_key(conn: DictConnection, key_hash: str) -> dict[str, Any] | None:
    """The live key with this hash and its active user, touching last_used_at at most once a minute.

    One statement (one round trip per authenticated request): the touch is a data-modifying CTE that only
    updates when the last touch is older than a minute.
    """
    return await fetch_one(
        conn,
        """WITH live AS (
               SELECT k.id, k.user_id, k.scopes, k.last_used_at FROM api_keys k JOIN users u ON u.user_id = k.user_id
               WHERE k.key_hash = %s AND k.revoked_at IS NULL
                 AND (k.expires_at IS NULL OR k.expires_at > now()) AND u.is_active
           ), touched AS (
               UPDATE api_keys k SET last_used_at = now() FROM live
               WHERE k.id = live.id AND (live.last_used_at IS NULL OR live.last_used_at < now() - interval '1 minute')
           )
           SELECT id, user_id, scopes FROM live""",
        (key_hash,),
    )


async def list_api_keys(conn: DictConnection, user_id: str) -> list[ApiKeyRow]:
    rows = await fetch_all(
        conn, f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE user_id = %s ORDER BY created_at DESC", (user_id,)
    )
    return [_key(r) for r in rows]


async def revoke_api_key(conn: DictConnection, key_id: str, owner: str | None) -> bool:
    """Revoke a key; with `owner`, only that user's key (the owner check is in SQL)."""
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s::uuid AND revoked_at IS NULL "
        "AND (%s::text IS NULL OR user_id = %s)",
        (key_id, owner, owner),
    )
    return cur.rowcount == 1


async def ensure_active_user(conn: DictConnection, user_id: str, email: str | None) -> tuple[bool, bool]:
    """Create a JWT user on first sight; (the user exists and is active, this call created it)."""
    cur = await conn.execute(
        """WITH created AS (
               INSERT INTO users (user_id, email) VALUES (%(user)s, %(email)s)
               ON CONFLICT (user_id) DO NOTHING RETURNING is_active)
           SELECT is_active, true AS created FROM created
           UNION ALL SELECT is_active, false FROM users WHERE user_id = %(user)s""",
        {"user": user_id, "email": email},
    )
    row = await cur.fetchone()
    if row is None:
        # A concurrent first sight committed between our snapshot and the insert: read it now.
        cur = await conn.execute("SELECT is_active, false AS created FROM users WHERE user_id = %s", (user_id,))
        row = await cur.fetchone()
    return bool(row and row["is_active"]), bool(row and row["created"])


async def isa_token_live(conn: DictConnection, user_id: str, key_id: str | None) -> bool:
    """An isa token's user is active and, when it came from an API key, that key is still live."""
    cur = await conn.execute(
        """SELECT u.is_active AND (%(key)s::uuid IS NULL OR EXISTS (
               SELECT 1 FROM api_keys k WHERE k.id = %(key)s::uuid AND k.user_id = u.user_id
                 AND k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()))) AS live
           FROM users u WHERE u.user_id = %(user)s""",
        {"user": user_id, "key": key_id},
    )
    row = await cur.fetchone()
    return bool(row and row["live"])


@dataclass(frozen=True)
class RateVerdict:
    allowed: bool
    retry_after: int


async def rate_hit(conn: DictConnection, key: str, limit: int, window_s: int) -> RateVerdict:
    """One GCRA step for `key` in one statement: `limit` requests per `window_s`, bursts up to `limit`.

    `tat` is the theoretical arrival time; a request is allowed when pushing it one emission interval
    (window/limit) ahead keeps it within one window of now. The database clock is the only clock, so
    replicas with skewed clocks still share one budget.
    """
    cur = await conn.execute(
        """INSERT INTO rate_limits AS r (key, tat, allowed)
           VALUES (%(key)s, now() + make_interval(secs => %(t)s), true)
           ON CONFLICT (key) DO UPDATE SET
               allowed = greatest(r.tat, now()) + make_interval(secs => %(t)s)
                         <= now() + make_interval(secs => %(w)s),
               tat = CASE WHEN greatest(r.tat, now()) + make_interval(secs => %(t)s)
                               <= now() + make_interval(secs => %(w)s)
                          THEN greatest(r.tat, now()) + make_interval(secs => %(t)s) ELSE r.tat END
           RETURNING allowed,
               ceil(extract(epoch FROM tat + make_interval(secs => %(t)s - %(w)s) - now()))::int AS retry_after""",
        {"key": key, "t": window_s / limit, "w": float(window_s)},
    )
    row = await cur.fetchone()
    assert row is not None
    return RateVerdict(bool(row["allowed"]), max(1, int(row["retry_after"] or 1)))


async def purge_rate_limits(conn: DictConnection) -> int:
    """Delete rows whose budget is fully restored (tat in the past is the same as no row)."""
    cur = await conn.execute("DELETE FROM rate_limits WHERE tat < now()")
    return cur.rowcount


async def rate_lease(conn: DictConnection, key: str, n: int, window_s: float, interval_s: float) -> tuple[int, int]:
    """Take up to `n` requests of `key`'s GCRA budget at once (a node's lease): (granted, retry_after seconds).

    Run inside a transaction: the row is locked between reading its theoretical arrival time and moving it.
    """
    await conn.execute(
        "INSERT INTO rate_limits (key, tat, allowed) VALUES (%s, now(), true) ON CONFLICT (key) DO NOTHING", (key,)
    )
    cur = await conn.execute(
        """SELECT greatest(0, least(%(n)s, floor((%(w)s - extract(epoch FROM greatest(tat, now()) - now()))
                                                 / %(t)s)::int)) AS granted
           FROM rate_limits WHERE key = %(key)s FOR UPDATE""",
        {"key": key, "n": n, "w": window_s, "t": interval_s},
    )
    row = await cur.fetchone()
    granted = int(row["granted"]) if row else 0
    cur = await conn.execute(
        """UPDATE rate_limits SET tat = greatest(tat, now()) + make_interval(secs => %(g)s * %(t)s), allowed = %(g)s > 0
           WHERE key = %(key)s
           RETURNING greatest(1, ceil(extract(epoch FROM tat + make_interval(secs => %(t)s - %(w)s) - now()))::int)
               AS retry_after""",
        {"key": key, "g": granted, "t": interval_s, "w": window_s},
    )
    after = await cur.fetchone()
    return granted, int(after["retry_after"]) if after else 1
