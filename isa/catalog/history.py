"""selection_history: every discovery result is logged off the request path, then read back for /stats."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from psycopg.types.json import Jsonb

from isa.core.db import Database, DictConnection
from isa.core.logging import get_logger

log = get_logger(__name__)
_BATCH = 200
# After the first selection of a batch, wait this long for more: under load one INSERT carries many rows
# instead of every request paying for its own transaction (6 % of a /discover's CPU when written one by one).
_LINGER_SECONDS = 0.25


@dataclass(frozen=True)
class Selection:
    kind: str  # discover | search
    query: str
    user_id: str | None
    latency_ms: float
    items: list[tuple[str, str, str, float]]  # (item_type, qualified name, server, score), best first
    filters: dict[str, Any] = field(default_factory=dict)
    search_id: uuid.UUID = field(default_factory=uuid.uuid4)


async def write(conn: DictConnection, batch: list[Selection]) -> None:
    """One mcp_search_history row per call and one selection_history row per returned item."""
    users = {s.user_id for s in batch if s.user_id}
    known: set[str] = set()
    if users:
        # A principal without a users row (a token-only caller) is logged as NULL rather than failing the FK.
        cur = await conn.execute("SELECT user_id FROM users WHERE user_id = ANY(%s)", (list(users),))
        known = {r["user_id"] for r in await cur.fetchall()}
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO mcp_search_history (id, user_id, search_kind, query, filters, search_method,"
            " results_count, result_types, top_results, response_time_ms) VALUES"
            " (%s, %s, %s, %s, %s, 'hybrid', %s, %s, %s, %s)",
            [
                (
                    s.search_id,
                    s.user_id if s.user_id in known else None,
                    s.kind,
                    s.query,
                    Jsonb(s.filters),
                    len(s.items),
                    sorted({i[0] for i in s.items}),
                    Jsonb([{"type": t, "name": n, "score": round(sc, 4)} for t, n, _, sc in s.items[:20]]),
                    s.latency_ms,
                )
                for s in batch
            ],
        )
        await cur.executemany(
            "INSERT INTO selection_history (search_id, user_id, search_kind, user_query, selection_type, item_name,"
            " server, rank, score, latency_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    s.search_id,
                    s.user_id if s.user_id in known else None,
                    s.kind,
                    s.query,
                    t,
                    n,
                    srv,
                    rank,
                    sc,
                    s.latency_ms,
                )
                for s in batch
                for rank, (t, n, srv, sc) in enumerate(s.items, start=1)
            ],
        )


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


async def stats(conn: DictConnection, top: int = 20) -> dict[str, Any]:
    """Selection counts and latency from the history (all callers, no query texts)."""
    cur = await conn.execute(
        "SELECT search_kind, count(*) AS n, avg(response_time_ms) AS avg_ms,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY response_time_ms) AS p50_ms,"
        " percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms) AS p95_ms,"
        " count(*) FILTER (WHERE results_count = 0) AS empty"
        " FROM mcp_search_history GROUP BY search_kind"
    )
    calls = {
        r["search_kind"]: {
            "total": r["n"],
            "empty_results": r["empty"],
            "avg_latency_ms": round(float(r["avg_ms"] or 0), 2),
            "p50_latency_ms": round(float(r["p50_ms"] or 0), 2),
            "p95_latency_ms": round(float(r["p95_ms"] or 0), 2),
        }
        for r in await cur.fetchall()
    }
    cur = await conn.execute(
        "SELECT * FROM (SELECT selection_type, item_name, server, count(*) AS n, avg(score) AS avg_score,"
        " row_number() OVER (PARTITION BY selection_type ORDER BY count(*) DESC, item_name) AS rn"
        " FROM selection_history GROUP BY selection_type, item_name, server) x WHERE rn <= %s"
        " ORDER BY selection_type, rn",
        (top,),
    )
    usage: dict[str, list[dict[str, Any]]] = {"tools": [], "prompts": [], "resources": []}
    for r in await cur.fetchall():
        usage[r["selection_type"] + "s"].append(
            {
                "name": r["item_name"],
                "server": r["server"],
                "selections": r["n"],
                "avg_score": round(float(r["avg_score"]), 4),
            }
        )
    return {"calls": calls, "usage": usage}


async def confirmed_selections(conn: DictConnection, window_minutes: int, limit: int) -> list[dict[str, Any]]:
    """(query, index row) pairs where the same user called the returned tool successfully soon after.

    That call is the usage signal: the tool was the right answer to the query. Pairs already stored as
    examples are skipped.
    """
    cur = await conn.execute(
        "SELECT DISTINCT ON (s.user_query, e.id) s.user_query AS query, e.id AS entry_id"
        " FROM selection_history s"
        " JOIN audit_log a ON a.user_id = s.user_id AND a.tool_name = s.item_name AND a.outcome = 'ok'"
        " AND a.created_at >= s.created_at AND a.created_at < s.created_at + make_interval(mins => %s)"
        " JOIN mcp_unified_search_embeddings e ON e.item_type = 'tool' AND e.qualified_name = s.item_name"
        " WHERE s.selection_type = 'tool' AND s.user_id IS NOT NULL AND length(s.user_query) <= 4000"
        " AND NOT EXISTS (SELECT 1 FROM mcp_query_examples x WHERE x.entry_id = e.id"
        " AND x.query_hash = encode(sha256(convert_to(s.user_query, 'UTF8')), 'hex'))"
        " ORDER BY s.user_query, e.id LIMIT %s",
        (window_minutes, limit),
    )
    return await cur.fetchall()
