"""How search_memories reaches its rows: an exact scan of the caller's rows through the per-user btree.

The per-type HNSW indexes are not used for per-user search on purpose: pgvector < 0.8 filters an HNSW scan by
user only afterwards and returns at most hnsw.ef_search candidates, so a user's rows can go missing (shown below
and in tests/bench/bench_memory.py). The exact per-user scan returns every match and meets the latency target.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row

from isa.memory.store import Blend, Filters, search_params, search_sql
from tests.support.memory_seed import MODEL, seed


@pytest.fixture(scope="module")
def conn(db_url: str) -> Any:
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as c:
        seed(c, users=50, rows_per_table=2500, tables=("factual_memories", "working_memories"))
        yield c


def _query() -> list[float]:
    v = np.random.default_rng(7).normal(size=384)
    return [float(x) for x in v / np.linalg.norm(v)]


def _plan(conn: Any, filters: Filters) -> str:
    stmt = search_sql(MODEL, 384, filters, Blend())
    params = search_params("bench-3", _query(), filters, 10, -1.0)
    rows = conn.execute(psycopg.sql.SQL("EXPLAIN (FORMAT JSON) ") + stmt, params).fetchall()
    return json.dumps(rows[0]["QUERY PLAN"])


def test_search_reads_only_the_callers_rows_through_the_user_btree(conn: Any) -> None:
    plan = _plan(conn, Filters(types=("factual", "working")))
    assert "factual_memories_user_" in plan and "working_memories_user_" in plan
    assert '"Node Type": "Seq Scan"' not in plan
    assert "embedding_minilm_idx" not in plan  # exact by design; see the module docstring


def test_the_search_ranks_every_row_of_the_user_exactly(conn: Any) -> None:
    filters = Filters(types=("factual",))
    cosine_only = Blend(similarity=1.0, importance=0.0, recency=0.0)
    got = conn.execute(
        search_sql(MODEL, 384, filters, cosine_only), search_params("bench-3", _query(), filters, 10, -1.0)
    )
    ids = [r["id"] for r in got.fetchall()]
    rows = conn.execute(
        "SELECT id::text, embedding::text AS v FROM factual_memories WHERE user_id = 'bench-3'"
    ).fetchall()
    matrix = np.array([json.loads(r["v"]) for r in rows])
    sims = matrix @ np.array(_query()) / np.linalg.norm(matrix, axis=1)
    expected = [rows[i]["id"] for i in np.argsort(-sims)[:10]]
    assert len(rows) == 50 and ids == expected
