"""SQL of the MCP runtime: the audit log and the authorization requests (owner checks live in the SQL)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from isa.core.db import DictConnection, fetch_all, fetch_one


@dataclass(frozen=True)
class AuditEntry:
    user_id: str
    principal_via: str
    key_id: str | None
    tool_name: str
    server: str
    security_level: str
    arguments: dict[str, Any]
    outcome: str
    error_code: str | None
    duration_ms: float
    credits_charged: Decimal
    authorization_request_id: str | None
    request_id: str
    session_id: str | None
    at: datetime  # when the call ended: rows are written in batches, so the insert time would blur the order


# One statement per batch, its rows as one JSON parameter that Postgres unpacks: adapting 14 typed arrays
# element by element cost the node more CPU than the calls being audited.
_INSERT_MANY = """
INSERT INTO audit_log (user_id, principal_via, key_id, tool_name, server, security_level, arguments, outcome,
                       error_code, duration_ms, credits_charged, authorization_request_id, request_id, session_id,
                       created_at)
SELECT user_id, principal_via, key_id, tool_name, server, security_level, arguments, outcome,
       error_code, duration_ms, credits_charged, authorization_request_id, request_id, session_id, created_at
FROM jsonb_to_recordset(%s::jsonb) AS r(
    user_id text, principal_via text, key_id uuid, tool_name text, server text, security_level text,
    arguments jsonb, outcome text, error_code text, duration_ms float8, credits_charged numeric,
    authorization_request_id uuid, request_id text, session_id text, created_at timestamptz)
"""


def _rows_json(rows: list[AuditEntry]) -> str:
    return json.dumps(
        [
            {
                "user_id": r.user_id,
                "principal_via": r.principal_via,
                "key_id": r.key_id,
                "tool_name": r.tool_name,
                "server": r.server,
                "security_level": r.security_level,
                "arguments": r.arguments,
                "outcome": r.outcome,
                "error_code": r.error_code,
                "duration_ms": r.duration_ms,
                "credits_charged": str(r.credits_charged),
                "authorization_request_id": r.authorization_request_id,
                "request_id": r.request_id or None,
                "session_id": r.session_id,
                "created_at": r.at.isoformat(),
            }
            for r in rows
        ]
    )


async def insert_audit_many(conn: DictConnection, rows: list[AuditEntry]) -> None:
    await conn.execute(_INSERT_MANY, (_rows_json(rows),))


async def insert_audit(conn: DictConnection, e: AuditEntry) -> None:
    await conn.execute(
        """INSERT INTO audit_log (user_id, principal_via, key_id, tool_name, server, security_level, arguments,
                                  outcome, error_code, duration_ms, credits_charged, authorization_request_id,
                                  request_id, session_id, created_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            e.user_id,
            e.principal_via,
            e.key_id,
            e.tool_name,
            e.server,
            e.security_level,
            json.dumps(e.arguments),
            e.outcome,
            e.error_code,
            e.duration_ms,
            e.credits_charged,
            e.authorization_request_id,
            e.request_id or None,
            e.session_id,
            e.at,
        ),
    )


async def list_audit(
    conn: DictConnection, *, user_id: str | None, tool_name: str | None, limit: int
) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        """SELECT id, user_id, principal_via, key_id, tool_name, server, security_level, arguments, outcome,
                  error_code, duration_ms, credits_charged, authorization_request_id, request_id, session_id,
                  created_at
           FROM audit_log
           WHERE (%(user)s::text IS NULL OR user_id = %(user)s) AND (%(tool)s::text IS NULL OR tool_name = %(tool)s)
           ORDER BY created_at DESC LIMIT %(limit)s""",
        {"user": user_id, "tool": tool_name, "limit": limit},
    )


async def metrics(conn: DictConnection, hours: int) -> dict[str, Any]:
    """Call counts by outcome, top tools and latency percentiles over the last `hours`, plus pending approvals."""
    window = {"hours": hours}
    cur = await conn.execute(
        """SELECT outcome, count(*) AS calls FROM audit_log
           WHERE created_at > now() - make_interval(hours => %(hours)s) GROUP BY outcome ORDER BY outcome""",
        window,
    )
    by_outcome = {r["outcome"]: r["calls"] for r in await cur.fetchall()}
    cur = await conn.execute(
        """SELECT tool_name, count(*) AS calls, count(*) FILTER (WHERE outcome = 'ok') AS ok,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50_ms,
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms) AS p95_ms
           FROM audit_log WHERE created_at > now() - make_interval(hours => %(hours)s)
           GROUP BY tool_name ORDER BY calls DESC, tool_name LIMIT 20""",
        window,
    )
    tools = list(await cur.fetchall())
    cur = await conn.execute(
        "SELECT count(*) AS n FROM authorization_requests WHERE status = 'pending' AND expires_at > now()"
    )
    row = await cur.fetchone()
    return {
        "window_hours": hours,
        "total_calls": sum(by_outcome.values()),
        "by_outcome": by_outcome,
        "tools": tools,
        "pending_approvals": row["n"] if row else 0,
    }


_REQUEST_COLUMNS = """id, user_id, tool_name, security_level, arguments, reason, requested_by_key, status,
    (status = 'pending' AND expires_at <= now()) AS expired, expires_at, decided_at, decided_by, decision_note,
    used_at, created_at"""


async def find_matching_request(
    conn: DictConnection, user_id: str, tool_name: str, args_hash: str
) -> dict[str, Any] | None:
    """The newest live request of this user for exactly this tool call (pending, approved or denied)."""
    return await fetch_one(
        conn,
        f"""SELECT {_REQUEST_COLUMNS} FROM authorization_requests
            WHERE user_id = %s AND tool_name = %s AND arguments_hash = %s
              AND status IN ('pending', 'approved', 'denied') AND expires_at > now()
            ORDER BY created_at DESC LIMIT 1""",
        (user_id, tool_name, args_hash),
    )


async def insert_request(
    conn: DictConnection,
    *,
    user_id: str,
    tool_name: str,
    security_level: str,
    arguments: dict[str, Any],
    args_hash: str,
    reason: str,
    requested_by_key: str | None,
    ttl_seconds: int,
) -> dict[str, Any]:
    row = await fetch_one(
        conn,
        f"""INSERT INTO authorization_requests (user_id, tool_name, security_level, arguments, arguments_hash,
                                                reason, requested_by_key, expires_at)
            VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, now() + make_interval(secs => %s))
            RETURNING {_REQUEST_COLUMNS}""",
        (user_id, tool_name, security_level, json.dumps(arguments), args_hash, reason, requested_by_key, ttl_seconds),
    )
    assert row is not None
    return row


async def use_approval(conn: DictConnection, request_id: str, user_id: str) -> bool:
    """Consume an approval once: of two concurrent calls only one gets True."""
    cur = await conn.execute(
        """UPDATE authorization_requests SET status = 'used', used_at = now()
           WHERE id = %s AND user_id = %s AND status = 'approved' AND expires_at > now()""",
        (request_id, user_id),
    )
    return cur.rowcount == 1


async def decide(
    conn: DictConnection,
    request_id: str,
    *,
    owner: str | None,
    approve: bool,
    decided_by: str,
    decider_key: str | None,
    note: str,
    valid_seconds: int,
) -> dict[str, Any] | None:
    """Approve or deny a pending, unexpired request. `owner` None: any user's (admins). The key that asked can't."""
    return await fetch_one(
        conn,
        f"""UPDATE authorization_requests
            SET status = %(status)s, decided_at = now(), decided_by = %(by)s, decision_note = %(note)s,
                expires_at = CASE WHEN %(approve)s THEN now() + make_interval(secs => %(valid)s) ELSE expires_at END
            WHERE id = %(id)s AND status = 'pending' AND expires_at > now()
              AND (%(owner)s::text IS NULL OR user_id = %(owner)s)
              AND (requested_by_key IS NULL OR %(key)s::uuid IS NULL OR requested_by_key <> %(key)s::uuid)
            RETURNING {_REQUEST_COLUMNS}""",
        {
            "status": "approved" if approve else "denied",
            "by": decided_by,
            "note": note,
            "approve": approve,
            "valid": valid_seconds,
            "id": request_id,
            "owner": owner,
            "key": decider_key,
        },
    )


async def get_request(conn: DictConnection, request_id: str, owner: str | None) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        f"""SELECT {_REQUEST_COLUMNS} FROM authorization_requests
            WHERE id = %s AND (%s::text IS NULL OR user_id = %s)""",
        (request_id, owner, owner),
    )


async def list_requests(
    conn: DictConnection, *, owner: str | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    """Requests of `owner` (None: everyone's); status 'pending' means pending and not expired."""
    return await fetch_all(
        conn,
        f"""SELECT {_REQUEST_COLUMNS} FROM authorization_requests
            WHERE (%(owner)s::text IS NULL OR user_id = %(owner)s)
              AND (%(status)s::text IS NULL OR status = %(status)s)
              AND (%(status)s::text IS DISTINCT FROM 'pending' OR expires_at > now())
            ORDER BY created_at DESC LIMIT %(limit)s""",
        {"owner": owner, "status": status, "limit": limit},
    )


def request_view(row: dict[str, Any]) -> dict[str, Any]:
    """The wire shape of a request row."""
    status = "expired" if row.get("expired") else row["status"]
    out = {k: v for k, v in row.items() if k not in ("expired", "requested_by_key")}
    out["id"] = str(row["id"])
    out["status"] = status
    for key in ("expires_at", "decided_at", "used_at", "created_at"):
        value = out.get(key)
        if isinstance(value, datetime):
            out[key] = value.isoformat()
    return out


# --- progressive disclosure: the tools a session selected (mcp_session_tools) ---------------------------------


async def select_tools(conn: DictConnection, user_id: str, session_id: str, names: list[str], cap: int) -> list[str]:
    """Add `names` to the session's selection unless it would then hold more than `cap`; returns the selection."""
    await conn.execute(
        "INSERT INTO mcp_session_tools (user_id, session_id, tool_name)"
        " SELECT %(user)s, %(session)s, n FROM unnest(%(names)s::text[]) AS n"
        " WHERE (SELECT count(*) FROM mcp_session_tools WHERE user_id = %(user)s AND session_id = %(session)s"
        " AND NOT (tool_name = ANY(%(names)s))) + cardinality(%(names)s::text[]) <= %(cap)s"
        " ON CONFLICT DO NOTHING",
        {"user": user_id, "session": session_id, "names": names, "cap": cap},
    )
    return await selected_tools(conn, user_id, session_id)


async def deselect_tools(conn: DictConnection, user_id: str, session_id: str, names: list[str] | None) -> int:
    """Remove `names` (None: all) from the session's selection; returns how many went."""
    cur = await conn.execute(
        "DELETE FROM mcp_session_tools WHERE user_id = %s AND session_id = %s"
        " AND (%s::text[] IS NULL OR tool_name = ANY(%s::text[]))",
        (user_id, session_id, names, names),
    )
    return cur.rowcount


async def selected_tools(conn: DictConnection, user_id: str, session_id: str) -> list[str]:
    rows = await fetch_all(
        conn,
        "SELECT tool_name FROM mcp_session_tools WHERE user_id = %s AND session_id = %s"
        " ORDER BY selected_at, tool_name",
        (user_id, session_id),
    )
    return [r["tool_name"] for r in rows]


async def drop_session_tools(conn: DictConnection, session_id: str) -> None:
    await conn.execute("DELETE FROM mcp_session_tools WHERE session_id = %s", (session_id,))
