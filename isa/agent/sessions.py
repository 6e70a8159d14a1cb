"""The agent's sessions API (the original frontend's `/api/sessions...`), over the user service's session tables."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from isa.agent import schemas, store
from isa.core.db import Database
from isa.users import schemas as user_schemas
from isa.users import sessions
from isa.users.sessions import parse_session_id, session_not_found


def _session(row: dict[str, Any]) -> dict[str, Any]:
    out = user_schemas.Session.model_validate(row).model_dump(mode="json")
    out["id"] = out["session_id"]
    out["tags"] = list((row.get("metadata") or {}).get("tags") or [])
    return out


def _message(row: dict[str, Any]) -> dict[str, Any]:
    return user_schemas.Message.model_validate(row).model_dump(mode="json")


class AgentSessions:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, user_id: str, body: schemas.SessionCreateBody) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            row = await sessions.create_session(
                conn, user_id, user_schemas.SessionCreate(title=body.title or "New chat", metadata=body.metadata)
            )
        return _session(row)

    async def list(self, user_id: str, query: schemas.SessionListQuery) -> dict[str, Any]:
        async with self.db.connection() as conn:
            rows, total = await sessions.search_sessions(
                conn, user_id, search=query.search, status=query.status, limit=query.limit, offset=query.offset
            )
        return {
            "sessions": [_session(r) for r in rows],
            "pagination": {
                "total": total,
                "page": query.offset // query.limit + 1,
                "per_page": query.limit,
                "has_more": query.offset + len(rows) < total,
            },
        }

    async def _owned(self, conn: Any, user_id: str, raw_id: str) -> dict[str, Any]:
        row = await sessions.get_session(conn, user_id, parse_session_id(raw_id))
        if row is None:
            raise session_not_found()
        return row

    async def get(self, user_id: str, raw_id: str, include_history: bool, limit: int) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await self._owned(conn, user_id, raw_id)
            out = _session(row)
            if include_history:
                messages = await sessions.list_messages(conn, user_id, row["session_id"], limit, 0)
                out["messages"] = [_message(m) for m in messages]
            paused = await store.paused_view(conn, user_id, row["session_id"])
        out["waiting_for_human"] = paused["pending"] if paused else None
        return out

    async def context(self, user_id: str, raw_id: str, replace: dict[str, Any] | None = None) -> dict[str, Any]:
        """The original's /api/sessions/{id}/context: read it, or replace it ({} clears it)."""
        session_id = parse_session_id(raw_id)
        if replace is None:
            async with self.db.connection() as conn:
                found = await sessions.get_context(conn, user_id, session_id)
        else:
            async with self.db.transaction() as conn:
                found = await sessions.set_context(conn, user_id, session_id, replace)
        if found is None:
            raise session_not_found()
        return {"session_id": session_id, "context": found}

    async def stats(self, user_id: str, raw_id: str) -> dict[str, Any]:
        """The original's GET /api/sessions/{id}/stats: the counters the session row keeps."""
        async with self.db.connection() as conn:
            row = await self._owned(conn, user_id, raw_id)
        session = _session(row)
        return {
            "session_id": session["session_id"],
            "status": session["status"],
            "message_count": session["message_count"],
            "total_tokens": session["total_tokens"],
            "total_cost": session["total_cost"],
            "created_at": session["created_at"],
            "last_activity_at": session["last_activity_at"],
            "duration_seconds": round((row["last_activity_at"] - row["created_at"]).total_seconds(), 3),
        }

    async def update(self, user_id: str, raw_id: str, body: schemas.SessionUpdateBody) -> dict[str, Any]:
        async with self.db.transaction() as conn:
            row = await self._owned(conn, user_id, raw_id)
            metadata = dict(row.get("metadata") or {}) if body.metadata is None else dict(body.metadata)
            if body.tags is not None:
                metadata["tags"] = body.tags
            change = user_schemas.SessionUpdate(title=body.title, status=body.status, metadata=metadata)
            updated = await sessions.update_session(conn, user_id, row["session_id"], change)
        if updated is None:
            raise session_not_found()
        return _session(updated)

    async def delete(self, user_id: str, raw_id: str) -> dict[str, Any]:
        session_id = parse_session_id(raw_id)
        async with self.db.transaction() as conn:
            if not await sessions.delete_session(conn, user_id, session_id):
                raise session_not_found()
        return {"deleted": True, "id": session_id}

    async def messages(self, user_id: str, raw_id: str, query: schemas.MessagesQuery) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await self._owned(conn, user_id, raw_id)
            rows = await sessions.list_messages(
                conn, user_id, row["session_id"], 1000 if query.role else query.limit, query.offset
            )
        items = [_message(m) for m in rows if query.role is None or m["role"] == query.role][: query.limit]
        return {"messages": items, "limit": query.limit, "offset": query.offset}

    async def plan(self, user_id: str, plan_id: str) -> dict[str, Any] | None:
        """One of the caller's plans (a plan belongs to a session's conversation), as stored."""
        async with self.db.connection() as conn:
            return await store.get_plan(conn, user_id, plan_id)

    async def export(self, user_id: str, raw_id: str, fmt: str) -> tuple[str, str, str]:
        """(body, media type, file name) of the whole conversation."""
        async with self.db.connection() as conn:
            row = await self._owned(conn, user_id, raw_id)
            messages = [_message(m) for m in await sessions.list_messages(conn, user_id, row["session_id"], 100_000, 0)]
        session = _session(row)
        name = f"session-{session['session_id']}"
        if fmt == "json":
            return (
                json.dumps({"session": session, "messages": messages}, ensure_ascii=False, indent=2),
                "application/json",
                name + ".json",
            )
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["created_at", "role", "message_type", "status", "content"])
            for m in messages:
                # A leading =, +, - or @ would make a spreadsheet run the cell as a formula.
                content = m["content"]
                if content[:1] in ("=", "+", "-", "@"):
                    content = "'" + content
                writer.writerow([m["created_at"], m["role"], m["message_type"], m["status"], content])
            return out.getvalue(), "text/csv; charset=utf-8", name + ".csv"
        lines = [f"# {session['title'] or 'Chat'} ({session['created_at']})", ""]
        for m in messages:
            if m["message_type"] == "chat":
                lines.append(f"[{m['created_at']}] {m['role']}: {m['content']}")
        return "\n".join(lines) + "\n", "text/plain; charset=utf-8", name + ".txt"
