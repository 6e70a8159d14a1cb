"""A user's conversation sessions and their messages (the agent builds on these)."""

from __future__ import annotations

import uuid

import psycopg.errors

from isa.core.db import Database
from isa.core.errors import ApiError
from isa.users.accounts.service import user_not_found
from isa.users.sessions import schemas
from isa.users.sessions import store as session_store


def session_not_found() -> ApiError:
    return ApiError(404, "session_not_found", "no such session")


def parse_session_id(raw: str) -> str:
    """A session id from a path; anything that isn't a UUID can't name a session (404, like a foreign one)."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise session_not_found() from None


class SessionsService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, user_id: str, body: schemas.SessionCreate) -> schemas.Session:
        try:
            async with self.db.transaction() as conn:
                row = await session_store.create_session(conn, user_id, body)
        except psycopg.errors.ForeignKeyViolation:
            raise user_not_found() from None
        return schemas.Session.model_validate(row)

    async def list(self, user_id: str, query: schemas.SessionQuery) -> schemas.SessionPage:
        async with self.db.connection() as conn:
            rows = await session_store.list_sessions(conn, user_id, query)
        return schemas.SessionPage(
            sessions=[schemas.Session.model_validate(r) for r in rows], limit=query.limit, offset=query.offset
        )

    async def get(self, user_id: str, session_id: str, message_limit: int = 100) -> schemas.SessionWithMessages:
        async with self.db.connection() as conn:
            row = await session_store.get_session(conn, user_id, session_id)
            if row is None:
                raise session_not_found()
            messages = await session_store.list_messages(conn, user_id, session_id, message_limit, 0)
        return schemas.SessionWithMessages(**row, messages=[schemas.Message.model_validate(m) for m in messages])

    async def update(self, user_id: str, session_id: str, body: schemas.SessionUpdate) -> schemas.Session:
        async with self.db.transaction() as conn:
            row = await session_store.update_session(conn, user_id, session_id, body)
        if row is None:
            raise session_not_found()
        return schemas.Session.model_validate(row)

    async def delete(self, user_id: str, session_id: str) -> schemas.Deleted:
        async with self.db.transaction() as conn:
            if not await session_store.delete_session(conn, user_id, session_id):
                raise session_not_found()
        return schemas.Deleted(deleted=True, id=session_id)

    async def messages(self, user_id: str, session_id: str, query: schemas.MessageQuery) -> schemas.MessagePage:
        async with self.db.connection() as conn:
            if await session_store.get_session(conn, user_id, session_id) is None:
                raise session_not_found()
            rows = await session_store.list_messages(conn, user_id, session_id, query.limit, query.offset)
        return schemas.MessagePage(
            messages=[schemas.Message.model_validate(r) for r in rows], limit=query.limit, offset=query.offset
        )

    async def add_message(self, user_id: str, session_id: str, body: schemas.MessageCreate) -> schemas.Message:
        """Append a message and update the session's counters; a repeated idempotency key adds nothing."""
        async with self.db.transaction() as conn:
            # The row lock orders concurrent appends and keeps the counters exact.
            if await session_store.get_session(conn, user_id, session_id, lock=True) is None:
                raise session_not_found()
            row = await session_store.insert_message(conn, user_id, session_id, body)
            if row is None:
                assert body.idempotency_key is not None
                row = await session_store.message_by_key(conn, user_id, session_id, body.idempotency_key)
                assert row is not None
            else:
                await session_store.count_message(conn, user_id, session_id, body.tokens_used, body.cost_usd)
        return schemas.Message.model_validate(row)
