"""SQL of the discovery history: `mcp_search_history` and `selection_history` (written in batches, read for /stats)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from psycopg.types.json import Jsonb

from isa.core.db import DictConnection, fetch_all


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
    return await fetch_all(
        conn,
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
