"""search_memories at scale: 100,000 memory rows across 100 users, p50 latency and the plan, against baselines.

Run: .venv/bin/python tests/bench/bench_memory.py [--rows 100000 --users 100 --queries 200]

Ours: the exact per-user scan across all five memory tables (isa.memory.store.search_sql, the SQL the tool runs).
Baselines, same process, same data:
- hnsw: the per-table HNSW index with the user filter applied afterwards (pgvector 0.6 behaviour), factual table
  only, hnsw.ef_search 40 and 400: its latency and how many of the true top 10 it returns (recall@10);
- exact-factual: ours restricted to the factual table (the like-for-like latency next to hnsw);
- python: load every row of the user (vectors as text) and rank them in numpy, as an application-side ranking would.
Vectors are random (the latency of a cosine does not depend on what the vector means); the query embedding is timed
separately with the real MiniLM model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.core.db import vector_literal
from isa.core.embedded import embedded_url
from isa.core.embeddings import LocalMiniLM
from isa.core.migrations import migrate
from isa.memory.store import Blend, Filters, search_params, search_sql
from tests.support.memory_seed import EXTRA, MODEL, seed


def p(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def timed(fn: Any, n: int) -> tuple[list[float], list[Any]]:
    times, outs = [], []
    for i in range(n):
        t = time.perf_counter()
        outs.append(fn(i))
        times.append((time.perf_counter() - t) * 1000)
    return times, outs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    queries = [[float(x) for x in v / np.linalg.norm(v)] for v in rng.normal(size=(args.queries, 384))]
    users = [f"bench-{i % args.users}" for i in range(args.queries)]
    with tempfile.TemporaryDirectory(prefix="isa-bench-mem-") as tmp:
        url = embedded_url(Path(tmp))
        migrate(url)
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            t0 = time.perf_counter()
            # Fill without the HNSW indexes (incremental HNSW inserts are slow), then rebuild the factual one for
            # the baseline; our query does not use them.
            for table in EXTRA:
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(f"{table}_embedding_minilm_idx")))
            seed(conn, args.users, args.rows // len(EXTRA))
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(
                "CREATE INDEX factual_memories_embedding_minilm_idx ON factual_memories USING hnsw"
                " ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = 'all-MiniLM-L6-v2'"
            )
            conn.execute("ANALYZE")
            total = conn.execute(
                "SELECT (SELECT count(*) FROM factual_memories) + (SELECT count(*) FROM episodic_memories)"
                " + (SELECT count(*) FROM semantic_memories) + (SELECT count(*) FROM procedural_memories)"
                " + (SELECT count(*) FROM working_memories) AS n"
            ).fetchone()
            print(
                f"seeded {total['n'] if total else 0} rows for {args.users} users in {time.perf_counter() - t0:.0f} s"
            )

            all_types, factual = Filters(), Filters(types=("factual",))
            ours_stmt = search_sql(MODEL, 384, all_types, Blend())
            fact_stmt = search_sql(MODEL, 384, factual, Blend(1.0, 0.0, 0.0))

            def ours(i: int) -> list[str]:
                rows = conn.execute(ours_stmt, search_params(users[i], queries[i], all_types, 10, -1.0)).fetchall()
                return [r["id"] for r in rows]

            def exact_factual(i: int) -> list[str]:
                rows = conn.execute(fact_stmt, search_params(users[i], queries[i], factual, 10, -1.0)).fetchall()
                return [r["id"] for r in rows]

            def hnsw(i: int) -> list[str]:
                rows = conn.execute(
                    "SELECT id::text FROM factual_memories WHERE embedding_model = 'all-MiniLM-L6-v2'"
                    " AND user_id = %s ORDER BY embedding::vector(384) <=> %s::vector(384) LIMIT 10",
                    (users[i], vector_literal(queries[i])),
                ).fetchall()
                return [r["id"] for r in rows]

            def python_rank(i: int) -> list[str]:
                ids, vecs = [], []
                for table in EXTRA:
                    for r in conn.execute(
                        sql.SQL("SELECT id::text, embedding::text AS v FROM {} WHERE user_id = %s").format(
                            sql.Identifier(table)
                        ),
                        (users[i],),
                    ):
                        ids.append(r["id"])
                        vecs.append(json.loads(r["v"]))
                m = np.array(vecs, dtype=np.float32)
                sims = m @ np.array(queries[i], dtype=np.float32) / np.linalg.norm(m, axis=1)
                return [ids[j] for j in np.argsort(-sims)[:10]]

            ours(0)  # warm the cache
            results: dict[str, tuple[list[float], list[Any]]] = {"ours (exact, 5 tables)": timed(ours, args.queries)}
            results["exact, factual only"] = timed(exact_factual, args.queries)
            truth = results["exact, factual only"][1]
            # With the user's btree present the planner never picks HNSW for one user; drop the btrees inside a
            # transaction that is rolled back, so the index path is what gets measured.
            for ef in (40, 400):
                with conn.transaction(force_rollback=True):
                    for idx in ("created", "subject", "type", "hash"):
                        conn.execute(f"DROP INDEX factual_memories_user_{idx}_idx")
                    conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                    conn.execute("SET LOCAL enable_seqscan = off")
                    plan = conn.execute(
                        "EXPLAIN SELECT id FROM factual_memories WHERE embedding_model = 'all-MiniLM-L6-v2'"
                        " AND user_id = %s ORDER BY embedding::vector(384) <=> %s::vector(384) LIMIT 10",
                        (users[0], vector_literal(queries[0])),
                    ).fetchall()
                    uses = any("embedding_minilm_idx" in r["QUERY PLAN"] for r in plan)
                    label = f"hnsw + user filter, ef_search {ef}{'' if uses else ' (NOT via index)'}"
                    results[label] = timed(hnsw, args.queries)
            results["python ranking (load user rows)"] = timed(python_rank, min(args.queries, 50))
            plan_rows = conn.execute(
                sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ") + ours_stmt,
                search_params(users[0], queries[0], all_types, 10, -1.0),
            ).fetchall()

        embedder = LocalMiniLM()
        embedder.embed_batch(["warm up"])
        emb_times, _ = timed(lambda i: embedder.embed_batch([f"what is my sister's name {i}"]), 50)

    base = statistics.median(results["ours (exact, 5 tables)"][0])
    print(f"\n{'variant':52} {'p50 ms':>8} {'p95 ms':>8} {'x ours':>7} {'recall@10 vs exact':>19}")
    for name, (times, outs) in results.items():
        recall = ""
        if name.startswith("hnsw") or name.startswith("exact"):
            hits = [len(set(o) & set(t)) / max(len(t), 1) for o, t in zip(outs, truth, strict=False)]
            recall = f"{statistics.mean(hits):.3f}"
        print(f"{name:52} {p(times, 50):8.2f} {p(times, 95):8.2f} {p(times, 50) / base:7.2f} {recall:>19}")
    print(f"{'query embedding (MiniLM, numpy, 1 text)':52} {p(emb_times, 50):8.2f} {p(emb_times, 95):8.2f}")
    print("\nplan of ours (one user):")
    for r in plan_rows:
        print("  " + r["QUERY PLAN"])


if __name__ == "__main__":
    main()
