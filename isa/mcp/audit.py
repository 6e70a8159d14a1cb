"""The audit trail's writer: calls hand their row to a queue; one task writes queued rows in batches.

A synchronous INSERT per call cost more than the SDK's whole request (a commit waits for the WAL flush), so
rows are written by a background task, many per transaction. The queue is bounded: when it is full a call
waits for room (back-pressure), it never drops a row. Shutdown drains the queue after the MCP sessions
closed. What a hard crash (SIGKILL) can lose is the queue's content: the last ~200 ms of calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import KW_ONLY, dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from isa.core.db import Database
from isa.core.logging import get_logger
from isa.mcp.store import AuditEntry, insert_audit, insert_audit_many

log = get_logger(__name__)


@dataclass(eq=False)
class AuditWriter:
    db: Database
    _: KW_ONLY
    capacity: int = 10_000
    batch: int = 500
    linger_seconds: float = 0.2
    attempts: int = 3
    written: int = field(default=0, init=False)
    _send: MemoryObjectSendStream[AuditEntry] | None = field(default=None, init=False)
    _closing: anyio.Event = field(default_factory=anyio.Event, init=False)

    def write_nowait(self, entry: AuditEntry) -> bool:
        """Queue one row if the writer runs and has room, without yielding; False: call `write` instead."""
        if self._send is None:
            return False
        try:
            self._send.send_nowait(entry)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False  # full, or closing: `write` waits for room, or fails loudly
        return True

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
                        await insert_audit_many(conn, rows)
                    finally:
                        await conn.set_autocommit(False)
                self.written += len(rows)
                return
            except Exception as exc:
                log.error("audit_write_failed", rows=len(rows), attempt=attempt, error=type(exc).__name__)
                if attempt < self.attempts:
                    await anyio.sleep(0.5 * attempt)
        log.error("audit_rows_lost", rows=len(rows), users=sorted({r.user_id for r in rows})[:20])
