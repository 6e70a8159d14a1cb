"""How search_memories reaches its rows: exactly through the per-user btree, the user's nearest by sign bits (the
default, migration 0036), or the user's nearest through HNSW.

Without `Ann` (search_candidates = 0, or pgvector < 0.8) every row of the caller is ranked exactly. With it, each
type's nearest rows come from the shared HNSW index with pgvector 0.8's iterative scan, which keeps reading the
graph until enough rows of this user passed the filter; without that scan a user with few rows among others'
nearer ones gets too few (shown below; latency and recall at scale in tests/bench/bench_memory.py).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg.rows import dict_row

from isa.core.pgvector import ITERATIVE_SCAN_SQL
from isa.memory.store import Ann, Bits, Blend, Filters, search_params, search_sql
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


def _small_users_hits(conn: Any, iterative: bool) -> list[str]:
    """ANN search of a user with 5 facts among 2,500 of others, HNSW forced (the btrees dropped, rolled back)."""
    filters = Filters(types=("factual",))
    with conn.transaction(force_rollback=True):
        for idx in ("created", "subject", "type", "hash"):
            conn.execute(f"DROP INDEX factual_memories_user_{idx}_idx")
        conn.execute(
            "INSERT INTO users (user_id, email, name) VALUES ('tiny', 'tiny@example.test', 't') ON CONFLICT DO NOTHING"
        )
        conn.execute(
            "INSERT INTO factual_memories (user_id, content, fact_type, subject, predicate, object_value,"
            " importance_score, embedding, embedding_model) SELECT 'tiny', 'fact ' || g, 'note', 'user', 'p', 'v',"
            " 0.5, (SELECT array_agg(random() - 0.5)::vector FROM generate_series(1, 384) d WHERE g > 0), %s"
            " FROM generate_series(1, 5) g",
            (MODEL,),
        )
        # The new rows are not in the statistics: keep the planner off a scan + sort of the whole table.
        conn.execute("SET LOCAL enable_seqscan = off")
        conn.execute("SET LOCAL enable_sort = off")
        if iterative:
            conn.execute(ITERATIVE_SCAN_SQL, ("10",))
        else:
            conn.execute("SET LOCAL hnsw.ef_search = 10")
        stmt = search_sql(MODEL, 384, filters, Blend(), Ann(candidates=10, ef_search=10))
        plan = conn.execute(psycopg.sql.SQL("EXPLAIN ") + stmt, search_params("tiny", _query(), filters, 10, -1.0))
        assert "factual_memories_embedding_minilm_idx" in " ".join(r["QUERY PLAN"] for r in plan.fetchall())
        rows = conn.execute(stmt, search_params("tiny", _query(), filters, 10, -1.0)).fetchall()
    return [r["id"] for r in rows]


def test_the_iterative_hnsw_scan_finds_every_row_of_a_user_whose_rows_others_outnumber(conn: Any) -> None:
    assert len(_small_users_hits(conn, iterative=True)) == 5


def test_without_the_iterative_scan_the_filtered_hnsw_scan_loses_that_users_rows(conn: Any) -> None:
    assert len(_small_users_hits(conn, iterative=False)) < 5  # why pgvector < 0.8 ranks exactly instead


def _exact_top(conn: Any, user: str, n: int) -> list[str]:
    rows = conn.execute("SELECT id::text, embedding::text AS v FROM factual_memories WHERE user_id = %s", (user,))
    rows = rows.fetchall()
    matrix = np.array([json.loads(r["v"]) for r in rows])
    sims = matrix @ np.array(_query()) / np.linalg.norm(matrix, axis=1)
    return [rows[i]["id"] for i in np.argsort(-sims)[:n]]


def test_the_stored_bits_are_the_signs_of_the_embedding(conn: Any) -> None:
    row = conn.execute(
        "SELECT embedding::text AS v, embedding_bits::text AS b FROM factual_memories WHERE user_id = 'bench-3' LIMIT 1"
    ).fetchone()
    assert row["b"] == "".join("1" if x > 0 else "0" for x in json.loads(row["v"]))


def test_the_bits_shortlist_is_read_from_the_bits_index_alone(conn: Any) -> None:
    filters = Filters(types=("factual", "working"))
    conn.execute("VACUUM factual_memories, working_memories")  # the visibility map, as autovacuum keeps it
    stmt = search_sql(MODEL, 384, filters, Blend(), Bits(candidates=10, shortlist=20))
    plan = conn.execute(
        psycopg.sql.SQL("EXPLAIN (FORMAT JSON) ") + stmt, search_params("bench-3", _query(), filters, 10, -1.0)
    )
    text = json.dumps(plan.fetchall()[0]["QUERY PLAN"])
    assert text.count('"Node Type": "Index Only Scan"') == 2
    assert "factual_memories_user_bits_idx" in text and "working_memories_user_bits_idx" in text
    assert "embedding_minilm_idx" not in text and '"Node Type": "Seq Scan"' not in text


def test_with_a_shortlist_of_every_row_the_bits_path_is_the_exact_ranking(conn: Any) -> None:
    filters, cosine_only = Filters(types=("factual",)), Blend(similarity=1.0, importance=0.0, recency=0.0)
    stmt = search_sql(MODEL, 384, filters, cosine_only, Bits(candidates=50, shortlist=50))  # bench-3 has 50 facts
    rows = conn.execute(stmt, search_params("bench-3", _query(), filters, 10, -1.0)).fetchall()
    assert [r["id"] for r in rows] == _exact_top(conn, "bench-3", 10)


def test_a_short_shortlist_still_finds_the_nearest_rows_and_only_the_callers(conn: Any) -> None:
    """The shortlist is by Hamming distance, then exact: rows near the query have near bits. A user with a fact
    made almost equal to the query finds it first from a shortlist of 5 of their 50 facts."""
    filters, cosine_only = Filters(types=("factual",)), Blend(similarity=1.0, importance=0.0, recency=0.0)
    with conn.transaction(force_rollback=True):
        near = np.array(_query()) + np.random.default_rng(3).normal(size=384) * 0.01
        conn.execute(
            "UPDATE factual_memories SET embedding = %s::vector WHERE id = (SELECT id FROM factual_memories"
            " WHERE user_id = 'bench-3' ORDER BY id LIMIT 1)",
            (json.dumps([float(x) for x in near]),),
        )
        stmt = search_sql(MODEL, 384, filters, cosine_only, Bits(candidates=5, shortlist=5))
        rows = conn.execute(stmt, search_params("bench-3", _query(), filters, 10, -1.0)).fetchall()
        owners = conn.execute(
            "SELECT DISTINCT user_id FROM factual_memories WHERE id = ANY(%s::uuid[])", ([r["id"] for r in rows],)
        ).fetchall()
        assert len(rows) == 5 and rows[0]["id"] == _exact_top(conn, "bench-3", 1)[0]
        assert [o["user_id"] for o in owners] == ["bench-3"]
