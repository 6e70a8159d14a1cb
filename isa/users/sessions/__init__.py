"""Sessions: the one public face of `sessions` and `session_messages` (owner: `isa.users.sessions.store`).

The agent (chat history) and memory (notes, session context) read and write sessions only through these
names. The connection-level functions take the caller's connection so their writes join the caller's
transaction: the agent stores a turn's messages, its checkpoint and its charge in one commit.
"""

from __future__ import annotations

from typing import Any

from isa.core.db import DictConnection
from isa.users.sessions import schemas
from isa.users.sessions.service import SessionsService, parse_session_id, session_not_found
from isa.users.sessions.store import (
    Note,
    create_session,
    delete_session,
    get_context,
    get_session,
    insert_note,
    list_messages,
    message_by_key,
    messages_for_context,
    recent_messages,
    recent_sessions,
    search_sessions,
    session_brief,
    set_context,
    update_session,
)
from isa.users.sessions.store import count_message as _count_message
from isa.users.sessions.store import insert_message as _insert_message

__all__ = [
    "Note",
    "SessionsService",
    "add_note",
    "append_message",
    "create_session",
    "delete_session",
    "get_context",
    "get_session",
    "list_messages",
    "message_by_key",
    "messages_for_context",
    "parse_session_id",
    "recent_messages",
    "recent_sessions",
    "search_sessions",
    "session_brief",
    "session_not_found",
    "set_context",
    "update_session",
]


async def append_message(
    conn: DictConnection, user_id: str, session_id: str, message: schemas.MessageCreate
) -> dict[str, Any] | None:
    """Insert a message and count it on the session; None (and nothing counted) for a used idempotency key."""
    row = await _insert_message(conn, user_id, session_id, message)
    if row is not None:
        await _count_message(conn, user_id, session_id, message.tokens_used, message.cost_usd)
    return row


async def add_note(conn: DictConnection, user_id: str, session_id: str, note: Note) -> dict[str, Any] | None:
    """Append a memory-tool message to the caller's own session; None when the session isn't theirs.

    The session row is locked first so concurrent appends keep `message_count` exact.
    """
    if await get_session(conn, user_id, session_id, lock=True) is None:
        return None
    row = await insert_note(conn, user_id, session_id, note)
    await _count_message(conn, user_id, session_id, 0, 0)
    return row
