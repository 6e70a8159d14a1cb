"""Knowledge graph: k-hop query latency (p50/p95) for one user among many, at 10^4 (baseline), 10^5 and 10^6 edges.

    .venv/bin/python tests/bench/bench_graph.py [--sizes 10000,100000,1000000] [--queries 40] [--hops 2]

Embedded Postgres + pgvector under a temporary data dir, migrated. For each size, the measured user gets `size`
edges over size/5 entities (targets skewed towards hubs: index = n * random()^2), and 9 other users share another
`size` edges, so the walk has to stay on its user's rows. A query is exactly the SQL query_knowledge_graph runs
after linking (isa/graph/store.py): the recursive-CTE walk (`hops`, max 60 nodes), the entities, the relations
among them, their attributes and the seeds' mentions. Seeds are random entities of the user.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.core.db import Database
from isa.core.embedded import embedded_url
from isa.core.migrations import migrate
from isa.core.settings import load_settings
from isa.graph import store

OTHERS = 9


def load(url: str, user: str, edges: int) -> None:
    """One user's graph: one document and passage, edges/5 entities, `edges` relations (bulk SQL)."""
    nodes = max(edges // 5, 10)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (user_id, email, name) VALUES (%s, %s, 'b') ON CONFLICT DO NOTHING",
                     (user, f"{user}@x.test"))  # fmt: skip
        doc = conn.execute(
            "INSERT INTO graph_documents (user_id, status, chunk_count) VALUES (%s, 'complete', 1) RETURNING id",
            (user,),
        ).fetchone()[0]  # type: ignore[index]
        chunk = conn.execute(
            "INSERT INTO graph_chunks (user_id, document_id, chunk_index, content) VALUES (%s, %s, 0, 'x')"
            " RETURNING id",
            (user, doc),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO graph_entities (user_id, name, name_key, entity_type)"
            " SELECT %s, 'e' || i, 'e' || i, 'thing' FROM generate_series(1, %s) i",
            (user, nodes),
        )
        conn.execute(
            "CREATE TEMP TABLE ids AS SELECT row_number() OVER (ORDER BY id) AS n, id FROM graph_entities"
            " WHERE user_id = %s",
            (user,),
        )
        conn.execute("CREATE INDEX ON ids (n)")
        conn.execute(
            "INSERT INTO graph_relations (user_id, source_id, target_id, relation_type, chunk_id, document_id)"
            " SELECT %(u)s, s.id, t.id, 'rel', %(c)s, %(d)s FROM ("
            "   SELECT 1 + floor(random() * %(n)s)::bigint AS a, 1 + floor(%(n)s * random() ^ 2)::bigint AS b"
            "   FROM generate_series(1, %(e)s)) p"
            " JOIN ids s ON s.n = p.a JOIN ids t ON t.n = p.b WHERE p.a <> p.b ON CONFLICT DO NOTHING",
            {"u": user, "c": chunk, "d": doc, "n": nodes, "e": edges},
        )
        conn.execute(
            "INSERT INTO graph_mentions (user_id, entity_id, chunk_id, document_id) SELECT %s, id, %s, %s FROM ids",
            (user, chunk, doc),
        )
        conn.execute("DROP TABLE ids")


async def measure(db: Database, user: str, queries: int, hops: int) -> tuple[float, float, int]:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT id::text FROM graph_entities WHERE user_id = %s", (user,))
        ids = [r["id"] for r in await cur.fetchall()]
    rng = random.Random(1)
    times: list[float] = []
    reached = 0
    for i in range(queries + 3):
        seeds = rng.sample(ids, 2)
        started = time.perf_counter()
        async with db.connection() as conn:
            walked = await store.walk(conn, user, seeds, hops, 60, None)
            found = [r["id"] for r in walked]
            await store.entities(conn, user, found)
            await store.relations_among(conn, user, found, None, 240)
            await store.attributes_of(conn, user, found, None, 240)
            await store.mentions_of(conn, user, seeds, None)
        if i >= 3:  # the first few warm the pool and the caches
            times.append((time.perf_counter() - started) * 1000)
            reached += len(found)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], reached // queries


async def run(args: argparse.Namespace) -> None:
    settings = load_settings("all")
    sizes = [int(s) for s in args.sizes.split(",")]
    results: list[tuple[int, float, float, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="isa-bench-graph-") as tmp:
        url = embedded_url(Path(tmp))
        migrate(url)
        for size in sizes:
            user = f"bench-graph-{size}"
            started = time.perf_counter()
            load(url, user, size)
            for k in range(OTHERS):
                load(url, f"bench-other-{size}-{k}", size // OTHERS)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ANALYZE")
                total = conn.execute("SELECT count(*) FROM graph_relations").fetchone()[0]  # type: ignore[index]
                mine = conn.execute("SELECT count(*) FROM graph_relations WHERE user_id = %s", (user,)).fetchone()[0]  # type: ignore[index]
            print(f"loaded {mine} edges for the user ({total} in the table) in {time.perf_counter() - started:.0f} s")
            db = Database(url, settings)
            await db.open()
            try:
                p50, p95, reached = await measure(db, user, args.queries, args.hops)
            finally:
                await db.close()
            results.append((size, p50, p95, reached, total))
    base = results[0][1]
    print(f"\n{args.hops}-hop query (walk + subgraph), max 60 nodes, {args.queries} queries each")
    print(f"{'user edges':>11} {'table edges':>12} {'p50 ms':>8} {'p95 ms':>8} {'nodes':>6} {'p50 / baseline':>15}")
    for size, p50, p95, reached, total in results:
        print(f"{size:>11} {total:>12} {p50:8.2f} {p95:8.2f} {reached:>6} {p50 / base:15.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--hops", type=int, default=2)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
