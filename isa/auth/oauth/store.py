"""SQL of the OAuth authorization server: clients, grants, one-time codes, rotating refresh tokens.

Secrets never reach this module in the clear: callers pass SHA-256 hashes of client secrets, codes and
refresh tokens. One-time use is decided in SQL (`UPDATE ... WHERE used_at IS NULL RETURNING`), so two
replicas racing on the same code or refresh token can't both win.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from isa.core.db import DictConnection, fetch_one


@dataclass(frozen=True)
class ClientRow:
    client_id: str
    secret_hash: str | None
    metadata: dict[str, Any]


@dataclass(frozen=True)
class CodeRow:
    client_id: str
    user_id: str
    key_id: str | None
    scopes: list[str]
    resource: str
    code_challenge: str
    redirect_uri: str
    redirect_uri_explicit: bool
    expires_at: datetime
    used: bool
    grant_id: str | None


@dataclass(frozen=True)
class GrantRow:
    id: str
    client_id: str
    user_id: str
    key_id: str | None
    scopes: list[str]
    resource: str


@dataclass(frozen=True)
class RefreshRow:
    grant: GrantRow
    expires_at: datetime
    used: bool


async def insert_client(
    conn: DictConnection, client_id: str, secret_hash: str | None, metadata: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO oauth_clients (client_id, secret_hash, metadata) VALUES (%s, %s, %s)",
        (client_id, secret_hash, Jsonb(metadata)),
    )


async def get_client(conn: DictConnection, client_id: str) -> ClientRow | None:
    row = await fetch_one(
        conn, "SELECT client_id, secret_hash, metadata FROM oauth_clients WHERE client_id = %s", (client_id,)
    )
    return ClientRow(row["client_id"], row["secret_hash"], dict(row["metadata"])) if row else None


async def insert_code(
    conn: DictConnection,
    code_hash: str,
    *,
    client_id: str,
    user_id: str,
    key_id: str | None,
    scopes: list[str],
    resource: str,
    code_challenge: str,
    redirect_uri: str,
    redirect_uri_explicit: bool,
    seconds: int,
) -> None:
    await conn.execute(
        """INSERT INTO oauth_codes (code_hash, client_id, user_id, key_id, scopes, resource, code_challenge,
                                    redirect_uri, redirect_uri_explicit, expires_at)
           VALUES (%s, %s, %s, %s::uuid, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))""",
        (
            code_hash,
            client_id,
            user_id,
            key_id,
            scopes,
            resource,
            code_challenge,
            redirect_uri,
            redirect_uri_explicit,
            seconds,
        ),
    )


async def get_code(conn: DictConnection, code_hash: str) -> CodeRow | None:
    row = await fetch_one(
        conn,
        """SELECT client_id, user_id, key_id::text AS key_id, scopes, resource, code_challenge, redirect_uri,
                  redirect_uri_explicit, expires_at, used_at IS NOT NULL AS used, grant_id::text AS grant_id
           FROM oauth_codes WHERE code_hash = %s""",
        (code_hash,),
    )
    if row is None:
        return None
    return CodeRow(**{**row, "scopes": list(row["scopes"])})  # the columns are the fields' names


async def claim_code(conn: DictConnection, code_hash: str) -> bool:
    """Mark the code used; False when it was already used or has expired (only one caller ever gets True)."""
    cur = await conn.execute(
        "UPDATE oauth_codes SET used_at = now() WHERE code_hash = %s AND used_at IS NULL AND expires_at > now()",
        (code_hash,),
    )
    return cur.rowcount == 1


def _grant(row: dict[str, Any]) -> GrantRow:
    return GrantRow(row["id"], row["client_id"], row["user_id"], row["key_id"], list(row["scopes"]), row["resource"])


async def insert_grant(
    conn: DictConnection, client_id: str, user_id: str, key_id: str | None, scopes: list[str], resource: str
) -> GrantRow:
    row = await fetch_one(
        conn,
        """INSERT INTO oauth_grants (client_id, user_id, key_id, scopes, resource) VALUES (%s, %s, %s::uuid, %s, %s)
           RETURNING id::text AS id, client_id, user_id, key_id::text AS key_id, scopes, resource""",
        (client_id, user_id, key_id, scopes, resource),
    )
    assert row is not None
    return _grant(row)


async def set_code_grant(conn: DictConnection, code_hash: str, grant_id: str) -> None:
    await conn.execute("UPDATE oauth_codes SET grant_id = %s::uuid WHERE code_hash = %s", (grant_id, code_hash))


async def revoke_grant(conn: DictConnection, grant_id: str) -> bool:
    cur = await conn.execute(
        "UPDATE oauth_grants SET revoked_at = now() WHERE id = %s::uuid AND revoked_at IS NULL", (grant_id,)
    )
    return cur.rowcount == 1


async def insert_refresh_token(conn: DictConnection, token_hash: str, grant_id: str, days: int) -> None:
    await conn.execute(
        """INSERT INTO oauth_refresh_tokens (token_hash, grant_id, expires_at)
           VALUES (%s, %s::uuid, now() + make_interval(days => %s))""",
        (token_hash, grant_id, days),
    )


_GRANT_LIVE = """g.revoked_at IS NULL AND u.is_active AND (g.key_id IS NULL OR EXISTS (
                     SELECT 1 FROM api_keys k WHERE k.id = g.key_id AND k.revoked_at IS NULL
                       AND (k.expires_at IS NULL OR k.expires_at > now())))"""


async def get_refresh_token(conn: DictConnection, token_hash: str) -> RefreshRow | None:
    """The refresh token and its grant, while the grant is live (not revoked, user active, key live)."""
    row = await fetch_one(
        conn,
        f"""SELECT g.id::text AS id, g.client_id, g.user_id, g.key_id::text AS key_id, g.scopes, g.resource,
                   r.expires_at, r.used_at IS NOT NULL AS used
            FROM oauth_refresh_tokens r JOIN oauth_grants g ON g.id = r.grant_id JOIN users u ON u.user_id = g.user_id
            WHERE r.token_hash = %s AND {_GRANT_LIVE}""",
        (token_hash,),
    )
    if row is None:
        return None
    return RefreshRow(_grant(row), row["expires_at"], row["used"])


async def claim_refresh_token(conn: DictConnection, token_hash: str) -> bool:
    """Mark the refresh token used (rotation); False when it was used already or has expired."""
    cur = await conn.execute(
        "UPDATE oauth_refresh_tokens SET used_at = now() "
        "WHERE token_hash = %s AND used_at IS NULL AND expires_at > now()",
        (token_hash,),
    )
    return cur.rowcount == 1


async def grant_live(conn: DictConnection, grant_id: str, user_id: str) -> bool:
    """An OAuth access token's grant is live: not revoked, its user active, the API key it came from live."""
    return (
        await fetch_one(
            conn,
            f"""SELECT 1 FROM oauth_grants g JOIN users u ON u.user_id = g.user_id
            WHERE g.id = %s::uuid AND g.user_id = %s AND {_GRANT_LIVE}""",
            (grant_id, user_id),
        )
        is not None
    )


async def grant_of(conn: DictConnection, grant_id: str) -> GrantRow | None:
    row = await fetch_one(
        conn,
        """SELECT id::text AS id, client_id, user_id, key_id::text AS key_id, scopes, resource
           FROM oauth_grants WHERE id = %s::uuid AND revoked_at IS NULL""",
        (grant_id,),
    )
    if row is None:
        return None
    return _grant(row)


async def purge_expired(conn: DictConnection) -> int:
    """Delete codes and refresh tokens a day past expiry (kept that long so a late replay is still recognised)."""
    cur = await conn.execute("DELETE FROM oauth_codes WHERE expires_at < now() - interval '1 day'")
    codes = cur.rowcount
    cur = await conn.execute("DELETE FROM oauth_refresh_tokens WHERE expires_at < now() - interval '1 day'")
    return codes + cur.rowcount
