"""SQL for a user's sessions and their messages; every statement is filtered by the owning user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from isa.core.db import DictConnection, fetch_all, fetch_one
from isa.users.sessions import schemas

_SESSION_COLUMNS = (
    "id::text AS session_id, user_id, title, status, is_active, message_count, total_tokens, total_cost, "
    "metadata, session_summary, last_activity_at, created_at"
)
_MESSAGE_COLUMNS = (
    "id::text, session_id::text, role, message_type, content, status, tool_calls, tool_call_id, "
    "message_metadata AS metadata, tokens_used, cost_usd, created_at"
)


async def create_session(conn: DictConnection, user_id: str, body: schemas.SessionCreate) -> dict[str, Any]:
    row = await fetch_one(
        conn,
        f"INSERT INTO sessions (user_id, title, metadata) VALUES (%s, %s, %s) RETURNING {_SESSION_COLUMNS}",
        (user_id, body.title, Jsonb(body.metadata)),
    )
    assert row is not None
    return row


async def list_sessions(conn: DictConnection, user_id: str, query: schemas.SessionQuery) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        f"""SELECT {_SESSION_COLUMNS} FROM sessions
            WHERE user_id = %s AND (NOT %s OR status = 'active')
            ORDER BY last_activity_at DESC, id LIMIT %s OFFSET %s""",
        (user_id, query.active_only, query.limit, query.offset),
    )


async def get_session(
    conn: DictConnection, user_id: str, session_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = %s::uuid AND user_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (session_id, user_id),
    )


async def update_session(
    conn: DictConnection, user_id: str, session_id: str, body: schemas.SessionUpdate
) -> dict[str, Any] | None:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude_none=True)
    assignments = ["last_activity_at = now()"]
    values: list[Any] = []
    for column in ("title", "status", "session_summary", "metadata"):
        if column in changes:
            assignments.append(f"{column} = %s")
            values.append(Jsonb(changes[column]) if column == "metadata" else changes[column])
    return await fetch_one(
        conn,
        f"UPDATE sessions SET {', '.join(assignments)} WHERE id = %s::uuid AND user_id = %s "
        f"RETURNING {_SESSION_COLUMNS}",
        (*values, session_id, user_id),
    )


async def delete_session(conn: DictConnection, user_id: str, session_id: str) -> bool:
    cur = await conn.execute("DELETE FROM sessions WHERE id = %s::uuid AND user_id = %s", (session_id, user_id))
    return cur.rowcount == 1


async def get_context(conn: DictConnection, user_id: str, session_id: str) -> dict[str, Any] | None:
    """The session's stored context (conversation_data), or None when it is not the user's session."""
    row = await fetch_one(
        conn, "SELECT conversation_data FROM sessions WHERE id = %s::uuid AND user_id = %s", (session_id, user_id)
    )
    return None if row is None else dict(row["conversation_data"] or {})


async def set_context(
    conn: DictConnection, user_id: str, session_id: str, context: dict[str, Any]
) -> dict[str, Any] | None:
    """Replace the session's context; None when it is not the user's session."""
    row = await fetch_one(
        conn,
        "UPDATE sessions SET conversation_data = %s WHERE id = %s::uuid AND user_id = %s RETURNING conversation_data",
        (Jsonb(context), session_id, user_id),
    )
    return None if row is None else dict(row["conversation_data"] or {})


async def list_messages(
    conn: DictConnection, user_id: str, session_id: str, limit: int, offset: int
) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        f"""SELECT {_MESSAGE_COLUMNS} FROM session_messages
            WHERE session_id = %s::uuid AND user_id = %s ORDER BY seq LIMIT %s OFFSET %s""",
        (session_id, user_id, limit, offset),
    )


async def insert_message(
    conn: DictConnection, user_id: str, session_id: str, body: schemas.MessageCreate
) -> dict[str, Any] | None:
    """Insert a message into the caller's session; None when its idempotency key was used before.

    The composite foreign key (session_id, user_id) makes a message for someone else's session
    impossible even if a caller skipped the ownership check.
    """
    return await fetch_one(
        conn,
        f"""INSERT INTO session_messages
               (session_id, user_id, role, message_type, content, status, tool_calls, tool_call_id,
                message_metadata, tokens_used, cost_usd, idempotency_key)
            VALUES (%s::uuid, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING {_MESSAGE_COLUMNS}""",
        (
            session_id,
            user_id,
            body.role,
            body.message_type,
            body.content,
            body.status,
            None if body.tool_calls is None else Jsonb(body.tool_calls),
            body.tool_call_id,
            Jsonb(body.metadata),
            body.tokens_used,
            body.cost_usd,
            body.idempotency_key,
        ),
    )


async def message_by_key(conn: DictConnection, user_id: str, session_id: str, key: str) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        f"SELECT {_MESSAGE_COLUMNS} FROM session_messages "
        "WHERE session_id = %s::uuid AND user_id = %s AND idempotency_key = %s",
        (session_id, user_id, key),
    )


async def count_message(conn: DictConnection, user_id: str, session_id: str, tokens: int, cost: Any) -> None:
    await conn.execute(
        """UPDATE sessions SET message_count = message_count + 1, total_tokens = total_tokens + %s,
                  total_cost = total_cost + %s, last_activity_at = now()
           WHERE id = %s::uuid AND user_id = %s""",
        (tokens, cost, session_id, user_id),
    )


async def search_sessions(
    conn: DictConnection, user_id: str, *, search: str | None, status: str | None, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The user's sessions, newest activity first, filtered by title/summary/message text; and the total."""
    pattern = None if not search else "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    where = """WHERE s.user_id = %(user)s AND (%(status)s::text IS NULL OR s.status = %(status)s)
               AND (%(pattern)s::text IS NULL OR s.title ILIKE %(pattern)s OR s.session_summary ILIKE %(pattern)s
                    OR EXISTS (SELECT 1 FROM session_messages m WHERE m.session_id = s.id AND m.user_id = s.user_id
                               AND m.content ILIKE %(pattern)s))"""
    params = {"user": user_id, "status": status, "pattern": pattern, "limit": limit, "offset": offset}
    total_row = await fetch_one(conn, f"SELECT count(*) AS total FROM sessions s {where}", params)
    columns = ", ".join("s." + c.strip() for c in _SESSION_COLUMNS.split(","))
    order = "ORDER BY s.last_activity_at DESC, s.id LIMIT %(limit)s OFFSET %(offset)s"
    return await fetch_all(conn, f"SELECT {columns} FROM sessions s {where} {order}", params), int(
        total_row["total"]
    ) if total_row else 0


async def messages_for_context(conn: DictConnection, user_id: str, session_id: str, limit: int) -> list[dict[str, Any]]:
    """The last `limit` complete user/assistant chat messages of a session, oldest first."""
    return await fetch_all(
        conn,
        """SELECT role, content FROM (
               SELECT role, content, seq FROM session_messages
               WHERE session_id = %s::uuid AND user_id = %s AND status = 'complete'
                 AND message_type = 'chat' AND role IN ('user', 'assistant')
               ORDER BY seq DESC LIMIT %s) recent
           ORDER BY seq""",
        (session_id, user_id, limit),
    )


@dataclass(frozen=True)
class Note:
    """A message the memory tools add to a session: an importance score, no tokens or cost."""

    role: str
    message_type: str
    content: str
    importance: float


async def insert_note(conn: DictConnection, user_id: str, session_id: str, note: Note) -> dict[str, Any]:
    row = await fetch_one(
        conn,
        "INSERT INTO session_messages (session_id, user_id, message_type, role, content, importance_score)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id::text, created_at",
        (session_id, user_id, note.message_type, note.role, note.content, note.importance),
    )
    assert row is not None
    return row


async def recent_sessions(conn: DictConnection, user_id: str, limit: int) -> list[dict[str, Any]]:
    """The user's newest sessions, in the short form the memory resources show."""
    return await fetch_all(
        conn,
        "SELECT id::text, title, status, message_count, last_activity_at FROM sessions WHERE user_id = %s"
        " ORDER BY last_activity_at DESC LIMIT %s",
        (user_id, limit),
    )


async def session_brief(conn: DictConnection, user_id: str, session_id: str) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        "SELECT id::text, title, status, message_count, session_summary, created_at, last_activity_at"
        " FROM sessions WHERE id = %s AND user_id = %s",
        (session_id, user_id),
    )


async def recent_messages(conn: DictConnection, user_id: str, session_id: str, limit: int) -> list[dict[str, Any]]:
    """The last `limit` messages of any kind, oldest first (for memory's session context)."""
    return await fetch_all(
        conn,
        "SELECT role, message_type, content, created_at FROM (SELECT role, message_type, content, created_at, seq"
        " FROM session_messages WHERE session_id = %s AND user_id = %s ORDER BY seq DESC LIMIT %s) m ORDER BY seq",
        (session_id, user_id, limit),
    )
