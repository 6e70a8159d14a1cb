"""selection_history: every discovery result is logged off the request path (SQL in `history_store.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from isa.catalog.history_store import Selection, write
from isa.core.db import Database
from isa.core.logging import get_logger

log = get_logger(__name__)
_BATCH = 200
# After the first selection of a batch, wait this long for more: under load one INSERT carries many rows
# instead of every request paying for its own transaction (6 % of a /discover's CPU when written one by one).
_LINGER_SECONDS = 0.25


class SelectionLog:
    """A bounded queue drained by one writer task; a full queue drops (and counts) instead of slowing requests."""

    def __init__(self, db: Database, capacity: int, linger: float = _LINGER_SECONDS) -> None:
        self.db = db
        self.linger = linger
        self.dropped = 0
        self.written = 0
        send, receive = anyio.create_memory_object_stream[Selection](capacity)
        self._send: MemoryObjectSendStream[Selection] = send
        self._receive: MemoryObjectReceiveStream[Selection] = receive
        self._running = False

    def record(self, selection: Selection) -> None:
        try:
            self._send.send_nowait(selection)
        except anyio.WouldBlock:
            self.dropped += 1
            log.warning("selection_log_full", dropped=self.dropped)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.dropped += 1

    async def _flush(self, batch: list[Selection]) -> None:
        try:
            async with self.db.transaction() as conn:
                await write(conn, batch)
            self.written += len(batch)
        except Exception as exc:  # logging must never take discovery down with it
            log.warning("selection_log_failed", error=type(exc).__name__, rows=len(batch))

    async def _run(self) -> None:
        async with self._receive:
            async for first in self._receive:
                batch = [first]
                with anyio.move_on_after(self.linger):  # receive() is cancel-safe: nothing is lost
                    while len(batch) < _BATCH:
                        try:
                            batch.append(await self._receive.receive())
                        except anyio.EndOfStream:
                            break
                await self._flush(batch)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Write in the background while the app runs; on shutdown, write what is queued, then stop."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run)
            try:
                yield
            finally:
                await self._send.aclose()


__all__ = ["Selection", "SelectionLog"]
