"""The audit trail's writer: calls hand their row to a queue; one task writes queued rows in batches.

A synchronous INSERT per call cost more than the SDK's whole request (a commit waits for the WAL flush), so
rows are written by a background task, many per transaction. The queue is bounded: when it is full a call
waits for room (back-pressure), it never drops a row. Shutdown drains the queue after the MCP sessions
closed. What a hard crash (SIGKILL) can lose is the queue's content: the last ~200 ms of calls.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from isa.core.db import Database
from isa.core.logging import get_logger
from isa.mcp.store import AuditEntry, insert_audit

log = get_logger(__name__)

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


class AuditWriter:
    def __init__(
        self, db: Database, *, capacity: int = 10_000, batch: int = 500, linger_seconds: float = 0.2, attempts: int = 3
    ) -> None:
        self.db = db
        self.linger_seconds = linger_seconds
        self.capacity = capacity
        self.batch = batch
        self.attempts = attempts
        self._send: MemoryObjectSendStream[AuditEntry] | None = None
        self._closing = anyio.Event()
        self.written = 0

    async def write(self, entry: AuditEntry) -> None:
        """Queue one row (waits only while the queue is full); written directly when no writer runs."""
        if self._send is None:
            async with self.db.connection() as conn:
                await insert_audit(conn, entry)
            self.written += 1
            return
        try:
            self._send.send_nowait(entry)  # no yield to the event loop on the hot path
        except anyio.WouldBlock:
            await self._send.send(entry)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Lifespan: the writer task; on exit the queue is drained before the database pool closes."""
        send, receive = anyio.create_memory_object_stream[AuditEntry](self.capacity)
        self._closing = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._drain, receive)
            self._send = send
            try:
                yield
            finally:
                self._send = None
                self._closing.set()
                await send.aclose()  # the drain task writes what is left, then ends

    async def _drain(self, receive: MemoryObjectReceiveStream[AuditEntry]) -> None:
        async with receive:
            async for first in receive:
                # Let rows gather (without waking up for each one), so a batch is one statement; stop
                # waiting at once when the node shuts down.
                with anyio.move_on_after(self.linger_seconds):
                    await self._closing.wait()
                rows = [first]
                while len(rows) < self.batch:
                    try:
                        rows.append(receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                await self._flush(rows)

    async def _flush(self, rows: list[AuditEntry]) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                async with self.db.connection() as conn:
                    await conn.set_autocommit(True)
                    try:
                        await conn.execute(_INSERT_MANY, (_rows_json(rows),))
                    finally:
                        await conn.set_autocommit(False)
                self.written += len(rows)
                return
            except Exception as exc:
                log.error("audit_write_failed", rows=len(rows), attempt=attempt, error=type(exc).__name__)
                if attempt < self.attempts:
                    await anyio.sleep(0.5 * attempt)
        log.error("audit_rows_lost", rows=len(rows), users=sorted({r.user_id for r in rows})[:20])
