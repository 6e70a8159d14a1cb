"""search_memories at scale: 100,000 memory rows across 100 users, p50 latency and the plan, against baselines.

Run: .venv/bin/python tests/bench/bench_memory.py [--rows 100000 --users 100 --queries 200]
On another server (e.g. PostgreSQL 15 + pgvector 0.8.0 as on Supabase, tests/bench/supabase_like.sh): --url URL.

"today": the exact blend over every row of the user across all five memory tables (search_sql without Ann/Bits).
"NEW bits by blend" (the default since migration 0040): per type the --shortlist rows of highest blend with the
cosine their sign bits estimate, ranked by the exact blend; "0036: bits": the previous default (shortlist by
Hamming distance, top-`candidates` by cosine, blended); "ann" (unless --no-hnsw): the HNSW path of before 0036,
with the HNSW indexes that 0040 dropped built again. Recall@10 against the exact top-`candidates` per type,
blended, and against today's blend over all rows ("vs today", the one that matters for the default).
--local-index (on by default at the setting's threshold): the process-local shortlist index (migration 0042), calibrated
with int8 vectors ("NEW local index + int8", the service's default), with sign bits only ("local, sign bits only",
the default before local_index_vectors) and uncalibrated ("local uncalibrated"), beside the SQL shortlist it
replaces ("today (async)"), per query in turn on one async connection; then refresh costs and writes without its
triggers.
--queries-near: each query is one of the user's stored vectors plus noise (a question about something the user
said), instead of a random direction.
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
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.core.db import vector_literal
from isa.core.embedded import embedded_url
from isa.core.embeddings import LocalMiniLM
from isa.core.migrations import migrate
from isa.core.pgvector import ITERATIVE_SCAN_SQL as ANN_SETTINGS
from isa.memory.local_index import LocalIndex
from isa.memory.settings import MemorySettings
from isa.memory.store import Ann, Bits, Blend, Filters, Search, search, search_params, search_sql
from tests.support.memory_seed import EXTRA, MODEL, seed


def p(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


BACKEND: list[int] = []  # the pid of the benchmark's Postgres backend, once connected
CPU: dict[int, list[float]] = {}  # id(times list) -> the backend's CPU ms of each call


def backend_cpu_ms() -> float:
    """CPU time the Postgres backend has run so far (/proc schedstat, ns): unlike wall time, not inflated by other
    processes waiting for the same cores."""
    if not BACKEND:
        return 0.0
    return int(Path(f"/proc/{BACKEND[0]}/schedstat").read_text().split()[0]) / 1e6


def timed(fn: Any, n: int) -> tuple[list[float], list[Any]]:
    times, outs, cpu = [], [], []
    for i in range(n):
        c = backend_cpu_ms()
        t = time.perf_counter()
        outs.append(fn(i))
        times.append((time.perf_counter() - t) * 1000)
        cpu.append(backend_cpu_ms() - c)
    CPU[id(times)] = cpu
    return times, outs


# Per table, the NOT NULL columns besides user_id/content and their value for row g (as tests.support.memory_seed).
COLUMNS: dict[str, tuple[tuple[str, ...], Any]] = {
    "factual_memories": (
        ("fact_type", "subject", "predicate", "object_value"),
        lambda g: ("note", "user", f"p{g}", f"v{g}"),
    ),
    "episodic_memories": (("episode_title",), lambda g: (f"episode {g}",)),
    "semantic_memories": (("concept_name", "concept_category"), lambda g: (f"concept {g}", f"cat{g % 7}")),
    "procedural_memories": (("procedure_name",), lambda g: (f"procedure {g}",)),
    "working_memories": (("context_type", "expires_at"), lambda g: ("task", "infinity")),
}


def seed_clustered(conn: Any, users: int, per_table: int, centroids: Any, rng: Any) -> None:
    """`per_table` rows per table for users bench-0.. (row g to user g % users), each vector a random centroid plus
    uniform noise, written with COPY (the same distribution the SQL UPDATE of earlier runs made, minutes faster)."""
    conn.execute(
        "INSERT INTO users (user_id, email, name) SELECT 'bench-' || i, 'bench-' || i || '@example.test', 'b'"
        " FROM generate_series(0, %s) i ON CONFLICT DO NOTHING",
        (users - 1,),
    )
    now = time.time()
    for table, (extra, values) in COLUMNS.items():
        cols = ["user_id", "content", *extra, "importance_score", "created_at", "embedding", "embedding_model"]
        stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        )
        with conn.cursor().copy(stmt) as copy:
            for start in range(0, per_table, 2000):
                n = min(2000, per_table - start)
                vecs = centroids[rng.integers(len(centroids), size=n)] + rng.uniform(-0.5, 0.5, size=(n, 384))
                for j, v in enumerate(vecs):
                    g = start + j + 1
                    created = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(now - rng.uniform(0, 365 * 86400)))
                    vec = "[" + ",".join(f"{x:.4f}" for x in v) + "]"
                    copy.write_row(
                        (f"bench-{g % users}", f"memory {g}", *values(g), rng.uniform(), created, vec, MODEL)
                    )
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))


TYPES = ("factual", "episodic", "semantic", "procedural", "working")
LOCAL_EXTRA: list[str] = []  # lines printed after the table (refresh costs)


def local_variants(
    conn: Any, url: str, args: Any, users: list[str], queries: list[list[float]], results: Any, truth_of: Any, rng: Any
) -> None:
    """The local index beside the SQL shortlist at the same settings, on its own async connection (its backend's
    CPU counted), each query's local and SQL calls interleaved; then the refresh costs."""

    async def run() -> None:
        aconn = await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row)
        all_types = Filters()
        pid = aconn.info.backend_pid

        def cpu() -> float:
            return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6

        async def call(index: LocalIndex | None, bits: Bits, i: int) -> tuple[float, float, list[str]]:
            c, t = cpu(), time.perf_counter()
            if index is None:
                rows = await search(aconn, Search(users[i], queries[i], MODEL, all_types, Blend(), 10), bits)
            else:
                rows = await index.search(aconn, Search(users[i], queries[i], MODEL, all_types, Blend(), 10), bits)
            return (time.perf_counter() - t) * 1000, cpu() - c, [r["id"] for r in rows]

        for k in args.candidates:
            for r in args.shortlist:
                bits = Bits(k, r)
                index = LocalIndex(args.local_index, 1 << 31, 3600.0, args.local_shortlist, vectors=True)
                plain = LocalIndex(args.local_index, 1 << 31, 3600.0, args.local_shortlist, calibrate=False)
                bits_only = LocalIndex(args.local_index, 1 << 31, 3600.0, args.local_shortlist)
                for u in dict.fromkeys(users):
                    for _ in range(2):
                        await plain.search(aconn, Search(u, queries[0], MODEL, all_types, Blend(), 10), bits)
                t3 = time.perf_counter()
                for u in dict.fromkeys(users):
                    for _ in range(2):
                        await bits_only.search(aconn, Search(u, queries[0], MODEL, all_types, Blend(), 10), bits)
                t4 = time.perf_counter()
                t0 = time.perf_counter()
                for u in dict.fromkeys(users):  # first search per user: learns the sizes (SQL path) ...
                    await index.search(aconn, Search(u, queries[0], MODEL, all_types, Blend(), 10), bits)
                t1 = time.perf_counter()
                for u in dict.fromkeys(users):  # ... the second loads the arrays
                    await index.search(aconn, Search(u, queries[0], MODEL, all_types, Blend(), 10), bits)
                t2 = time.perf_counter()
                n_users = len(dict.fromkeys(users))
                LOCAL_EXTRA.append(
                    f"shortlist {r}: first search per user (SQL path, learns sizes)"
                    f" {(t1 - t0) * 1000 / n_users:.1f} ms,"
                    f" second (loads the arrays) {(t2 - t1) * 1000 / n_users:.1f} ms; arrays held"
                    f" {index.nbytes / 1e6:.1f} MB for {n_users} users; loads {index.loads}; sign bits only: first"
                    f" two searches {(t4 - t3) * 1000 / n_users:.1f} ms per user, {bits_only.nbytes / 1e6:.1f} MB held"
                )
                sql_t: list[float] = []
                sql_c: list[float] = []
                sql_o: list[Any] = []
                loc_t: list[float] = []
                loc_c: list[float] = []
                loc_o: list[Any] = []
                pl_t: list[float] = []
                pl_c: list[float] = []
                pl_o: list[Any] = []
                i8_t: list[float] = []
                i8_c: list[float] = []
                i8_o: list[Any] = []
                for i in range(args.queries):  # interleaved: the same load for all three
                    t, c, o = await call(None, bits, i)
                    sql_t.append(t), sql_c.append(c), sql_o.append(o)
                    t, c, o = await call(index, bits, i)
                    loc_t.append(t), loc_c.append(c), loc_o.append(o)
                    t, c, o = await call(plain, bits, i)
                    pl_t.append(t), pl_c.append(c), pl_o.append(o)
                    t, c, o = await call(bits_only, bits, i)
                    i8_t.append(t), i8_c.append(c), i8_o.append(o)
                size = max(r, args.local_shortlist)
                for name, times, cpus, outs in (
                    (f"today (async): SQL top-{k}/type shortlist {r}", sql_t, sql_c, sql_o),
                    (f"NEW local index + int8 top-{k}/type shortlist {size}", loc_t, loc_c, loc_o),
                    (f"local uncalibrated top-{k}/type shortlist {size}", pl_t, pl_c, pl_o),
                    (f"local, sign bits only top-{k}/type shortlist {size}", i8_t, i8_c, i8_o),
                ):
                    CPU[id(times)] = cpus
                    results[name] = (times, outs)
                    truth_of[name] = f"exact top-{k}/type, blended"
                same = statistics.mean(len(set(a) & set(b)) / max(len(a), 1) for a, b in zip(sql_o, pl_o, strict=True))
                LOCAL_EXTRA.append(f"shortlist {r}: overlap@10 local uncalibrated vs SQL shortlist {same:.3f}")
                slopes = [round(index.slope(users[0], t, MODEL), 3) for t in TYPES]
                LOCAL_EXTRA.append(f"shortlist {r}: learnt slopes (first user) {slopes}")
                # The first search after another connection's write (as another process): an append refresh.
                after_write: list[float] = []
                after_delete: list[float] = []
                steady: list[float] = []
                for j in range(min(10, len(queries))):
                    u = users[j % len(users)]
                    v = vector_literal([float(x) for x in rng.normal(size=384)])
                    row = conn.execute(
                        "INSERT INTO episodic_memories (user_id, content, episode_title, embedding, embedding_model)"
                        " VALUES (%s, 'bench write', 't', %s::vector(384), %s) RETURNING id",
                        (u, v, MODEL),
                    ).fetchone()
                    t = time.perf_counter()
                    await index.search(aconn, Search(u, queries[j], MODEL, all_types, Blend(), 10), bits)
                    after_write.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    await index.search(aconn, Search(u, queries[j], MODEL, all_types, Blend(), 10), bits)
                    steady.append((time.perf_counter() - t) * 1000)
                    conn.execute("DELETE FROM episodic_memories WHERE id = %s", (row["id"],) if row else ("",))
                    t = time.perf_counter()
                    await index.search(aconn, Search(u, queries[j], MODEL, all_types, Blend(), 10), bits)
                    after_delete.append((time.perf_counter() - t) * 1000)
                LOCAL_EXTRA.append(
                    f"shortlist {r}: search right after another connection's INSERT (append refresh) p50"
                    f" {p(after_write, 50):.1f} ms; the next one {p(steady, 50):.1f} ms; right after a DELETE (full"
                    f" reload of one type) {p(after_delete, 50):.1f} ms; loads {index.loads}"
                )
        await aconn.close()

    asyncio.run(run())


@contextlib.contextmanager
def database(server: str | None) -> Iterator[str]:
    """A fresh, migrated database: on the embedded server in a temporary folder, or (--url) a new database on that
    server (e.g. tests/bench/supabase_like.sh, PostgreSQL 15 + pgvector 0.8.0 as in production), dropped after."""
    if server is None:
        with tempfile.TemporaryDirectory(prefix="isa-bench-mem-") as tmp:
            url = embedded_url(Path(tmp))
            migrate(url)
            yield url
        return
    name = f"isa_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = make_conninfo(server, dbname=name)
        migrate(url)
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--queries-near", action="store_true")
    ap.add_argument("--clusters", type=int, default=0, help="vectors around this many topics (0: uniform random)")
    ap.add_argument("--skip-python", action="store_true", help="skip the (slow) application-side ranking baseline")
    ap.add_argument("--ef", type=int, nargs="*", default=[100])
    ap.add_argument("--candidates", type=int, nargs="*", default=[40, 100])
    ap.add_argument("--shortlist", type=int, nargs="*", default=[400], help="bits shortlists per type (0036)")
    ap.add_argument("--no-hnsw", action="store_true", help="skip the HNSW variants (and their index builds)")
    ap.add_argument(
        "--local-shortlist",
        type=int,
        default=0,
        help="the local index's own shortlist per type (0: the same --shortlist as the SQL variant it runs beside)",
    )
    ap.add_argument(
        "--local-index",
        type=int,
        default=MemorySettings().local_index_min_rows,
        metavar="MIN_ROWS",
        help="also run (0: don't) the process-local shortlist index (isa/memory/local_index.py, migration 0042) for"
        " types with at least MIN_ROWS rows (default: the setting's), beside the SQL shortlist at the same --shortlist"
        " and candidates; plus the first search after another connection's write, after a delete, and writes"
        " without 0042's triggers",
    )
    ap.add_argument(
        "--url",
        help="a server to run on instead of the embedded one (a URL the bench can CREATE DATABASE with; it migrates a"
        " fresh database there and drops it after)",
    )
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    queries = [[float(x) for x in v / np.linalg.norm(v)] for v in rng.normal(size=(args.queries, 384))]
    users = [f"bench-{i % args.users}" for i in range(args.queries)]
    with database(args.url) as url:
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            BACKEND.append(conn.info.backend_pid)
            t0 = time.perf_counter()
            # Migration 0040 dropped the HNSW indexes; unless --no-hnsw they are built after the fill (incremental
            # HNSW inserts are slow) as 0004 made them, for the baselines that read them and the write comparison.
            for table in EXTRA:
                conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(f"{table}_embedding_minilm_idx")))
            if args.clusters:  # like real embeddings: memories about the same topic sit together
                centroids = rng.uniform(-0.5, 0.5, size=(args.clusters, 384))
                seed_clustered(conn, args.users, args.rows // len(EXTRA), centroids, rng)
                for i in range(args.queries):  # a question about one topic
                    c = centroids[int(rng.integers(args.clusters))] + rng.uniform(-0.5, 0.5, 384)
                    queries[i] = [float(x) for x in c / np.linalg.norm(c)]
            else:
                seed(conn, args.users, args.rows // len(EXTRA))
            conn.execute("SET maintenance_work_mem = '512MB'")
            for table in EXTRA if not args.no_hnsw else ():  # as migration 0004 creates them
                conn.execute(
                    sql.SQL(
                        "CREATE INDEX {} ON {} USING hnsw ((embedding::vector(384)) vector_cosine_ops)"
                        " WHERE embedding_model = 'all-MiniLM-L6-v2'"
                    ).format(sql.Identifier(f"{table}_embedding_minilm_idx"), sql.Identifier(table))
                )
            conn.execute("VACUUM ANALYZE")  # what autovacuum does: the visibility map lets bits scans skip the heap
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            print(f"pgvector {version['extversion'] if version else '?'}, {conn.info.server_version}", end="")
            for name in ("shared_buffers", "work_mem", "jit", "max_parallel_workers_per_gather", "data_checksums"):
                row = conn.execute("SELECT current_setting(%s, true) AS v", (name,)).fetchone()
                print(f", {name} {row['v'] if row else '?'}", end="")
            print()
            if args.queries_near:
                for i in range(args.queries):
                    row = conn.execute(
                        "SELECT embedding::text AS v FROM episodic_memories WHERE user_id = %s OFFSET %s LIMIT 1",
                        (users[i], i % 50),
                    ).fetchone()
                    assert row is not None
                    v = np.array(json.loads(row["v"])) / np.linalg.norm(json.loads(row["v"]))
                    v = v + rng.normal(size=384) * 0.6 / np.sqrt(384)
                    queries[i] = [float(x) for x in v / np.linalg.norm(v)]
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

            def ann_at(ann: Ann, exact: bool) -> Any:
                stmt = search_sql(MODEL, 384, all_types, Blend(), ann)

                def run(i: int) -> list[str]:
                    with conn.transaction():
                        conn.execute(ANN_SETTINGS, (str(ann.ef_search),))
                        if exact:  # the same ranking computed exactly: no HNSW, the user's btree and a sort
                            conn.execute("SET LOCAL enable_indexscan = off")
                        rows = conn.execute(stmt, search_params(users[i], queries[i], all_types, 10, -1.0)).fetchall()
                    return [r["id"] for r in rows]

                return run

            def bits_at(bits: Bits) -> Any:
                stmt = search_sql(MODEL, 384, all_types, Blend(), bits)

                def run(i: int) -> list[str]:
                    rows = conn.execute(stmt, search_params(users[i], queries[i], all_types, 10, -1.0)).fetchall()
                    return [r["id"] for r in rows]

                return run

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
            results: dict[str, tuple[list[float], list[Any]]] = {"today: exact, 5 tables": timed(ours, args.queries)}
            truth_of: dict[str, str] = {}
            for k in args.candidates:
                results[f"exact top-{k}/type, blended"] = timed(ann_at(Ann(k, k), exact=True), args.queries)
                for r in args.shortlist:
                    for by_blend, tag in ((False, "0036: bits"), (True, "NEW bits by blend")):
                        name = f"{tag} top-{k}/type shortlist {r}"
                        bits_at(Bits(k, r, by_blend))(0)
                        results[name] = timed(bits_at(Bits(k, r, by_blend)), args.queries)
                        truth_of[name] = f"exact top-{k}/type, blended"
                for ef in args.ef if not args.no_hnsw else ():
                    name = f"NEW ann top-{k}/type ef_search {ef}"
                    ann_at(Ann(k, ef), exact=False)(0)
                    results[name] = timed(ann_at(Ann(k, ef), exact=False), args.queries)
                    truth_of[name] = f"exact top-{k}/type, blended"
            if args.local_index:
                local_variants(conn, url, args, users, queries, results, truth_of, rng)
            results["exact, factual only"] = timed(exact_factual, args.queries)
            truth = results["exact, factual only"][1]
            # With the user's btree present the planner never picks HNSW for one user; drop the btrees inside a
            # transaction that is rolled back, so the index path is what gets measured.
            for ef in (40, 400) if not args.no_hnsw else ():
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
            if not args.skip_python:
                results["python ranking (load user rows)"] = timed(python_rank, min(args.queries, 50))
            plan_rows = conn.execute(
                sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) ") + ours_stmt,
                search_params(users[0], queries[0], all_types, 10, -1.0),
            ).fetchall()
            with conn.transaction():
                conn.execute(ANN_SETTINGS, (str(args.ef[0]),))
                new_plan = conn.execute(
                    sql.SQL("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) ")
                    + search_sql(MODEL, 384, all_types, Blend(), Bits()),
                    search_params(users[0], queries[0], all_types, 10, -1.0),
                ).fetchall()

            # Writes: one memory per INSERT with its index maintenance (the generated bits column and its index,
            # the btrees, the HNSW index unless --no-hnsw), interleaved with the same without 0036's bits index
            # and without the HNSW index, each in a savepoint of a rolled-back transaction.
            hnsw_idx = [] if args.no_hnsw else ["factual_memories_embedding_minilm_idx"]
            drops = {
                "as before 0040 (with the HNSW index)" if hnsw_idx else "as migrated (0042: no HNSW index)": [],
                "without 0036's bits index": ["factual_memories_user_bits_idx"],
                "without 0042's triggers": [],
            }
            if hnsw_idx:
                drops["as migrated (0042: no HNSW index)"] = hnsw_idx
            writes: dict[str, list[float]] = {name: [] for name in drops}
            for _ in range(5):
                for name, indexes in drops.items():
                    with conn.transaction(force_rollback=True):
                        for index in indexes:
                            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
                        if name == "without 0042's triggers":
                            for suffix in ("ins", "del", "upd", "trunc"):
                                conn.execute(f"DROP TRIGGER factual_memories_search_{suffix} ON factual_memories")
                        for j in range(20):
                            v = vector_literal([float(x) for x in rng.normal(size=384)])
                            t = time.perf_counter()
                            with conn.transaction():
                                conn.execute(
                                    "INSERT INTO factual_memories (user_id, content, fact_type, subject, predicate,"
                                    " object_value, embedding, embedding_model)"
                                    " VALUES (%s, %s, 'note', 'user', 'p', 'v', %s::vector(384), %s)",
                                    (users[j % len(users)], f"new memory {j}", v, MODEL),
                                )
                            writes[name].append((time.perf_counter() - t) * 1000)

            BACKEND.clear()  # the connection closes; the embedding timing below has no backend
        embedder = LocalMiniLM()
        embedder.embed_batch(["warm up"])
        emb_times, _ = timed(lambda i: embedder.embed_batch([f"what is my sister's name {i}"]), 50)

    base = statistics.median(results["today: exact, 5 tables"][0])

    def recall(outs: list[Any], truth: list[Any]) -> str:
        hits = [len(set(o) & set(t)) / max(len(t), 1) for o, t in zip(outs, truth, strict=False)]
        return f"{statistics.mean(hits):.3f}"

    today = results["today: exact, 5 tables"][1]
    print(
        f"\n{'variant':52} {'p50 ms':>8} {'p95 ms':>8} {'x today':>7} {'recall@10 vs exact':>19} {'vs today':>9}"
        f" {'backend CPU p50 ms':>18}"
    )
    for name, (times, outs) in results.items():
        r, rt = "", ""
        if name.startswith("hnsw") or name.startswith("exact, factual"):
            r = recall(outs, truth)
        elif name in truth_of:
            r = recall(outs, results[truth_of[name]][1])
        if "/type" in name:
            rt = recall(outs, today)
        print(
            f"{name:52} {p(times, 50):8.2f} {p(times, 95):8.2f} {p(times, 50) / base:7.2f} {r:>19} {rt:>9}"
            f" {p(CPU[id(times)], 50):18.2f}"
        )
    print(f"{'query embedding (MiniLM, numpy, 1 text)':52} {p(emb_times, 50):8.2f} {p(emb_times, 95):8.2f}")
    for line in LOCAL_EXTRA:
        print(line)
    for name, ms in writes.items():
        print(f"{'write one memory, ' + name:52} {p(ms, 50):8.2f} {p(ms, 95):8.2f}")
    print("\nplan of today's (one user):")
    for r in plan_rows:
        print("  " + r["QUERY PLAN"])
    print("\nplan of the new default (one user):")
    for r in new_plan:
        print("  " + r["QUERY PLAN"])


if __name__ == "__main__":
    main()
