"""What one knowledge chunk costs a writer at scale, with and without the HNSW graph migration 0040 dropped.

Run: .venv/bin/python tests/bench/bench_knowledge_writes.py [--chunks 20000 --users 100 --per-user 200]

A fresh embedded Postgres, migrated (so without the HNSW graphs on user_knowledge since 0040); one user with
--chunks chunks and --users users with --per-user each, written with SQL so the postings triggers run: 60 words per
chunk drawn Zipf-like from 5,000 made-up words, vectors around 500 random centres. Then one chunk per INSERT (a
savepoint each, the postings trigger, the bits index, the CHECK of 0040) for the big user, interleaved in rounds of
20: with migration 0005's partial HNSW index on the MiniLM vectors built again (before 0040), and with it dropped
inside the rolled-back transaction (as migrated).
The embedding of the chunk is not included (add_document embeds first); the backend's CPU time is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.core.embedded import embedded_url
from isa.core.migrations import migrate

MODEL = "all-MiniLM-L6-v2"
HNSW = (
    "CREATE INDEX user_knowledge_embedding_minilm_idx ON user_knowledge"
    f" USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = '{MODEL}'"
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--per-user", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(3)
    words = [f"w{i}x" for i in range(5000)]
    zipf = 1 / np.arange(1, 5001)
    zipf /= zipf.sum()
    centres = rng.normal(size=(500, 384))

    def batch(n: int) -> tuple[list[str], list[str]]:
        texts = [" ".join(rng.choice(words, size=60, p=zipf)) for _ in range(n)]
        vecs = centres[rng.integers(500, size=n)] + rng.normal(size=(n, 384)) * 0.5
        return texts, ["[" + ",".join(f"{x:.4f}" for x in v) + "]" for v in vecs]

    with tempfile.TemporaryDirectory(prefix="isa-bench-kw-") as tmp:
        url = embedded_url(Path(tmp))
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            pid = conn.info.backend_pid

            def cpu() -> float:
                return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e6

            def insert(user: str, texts: list[str], vecs: list[str]) -> None:
                conn.execute(
                    "INSERT INTO user_knowledge (user_id, content, embedding, embedding_model)"
                    " SELECT %s, t, v::vector, %s FROM unnest(%s::text[], %s::text[]) AS x(t, v)",
                    (user, MODEL, texts, vecs),
                )

            owners = [("kw-big", args.chunks)] + [(f"kw-{i:03d}", args.per_user) for i in range(args.users)]
            conn.execute(
                "INSERT INTO users (user_id, email, name) SELECT u, u || '@x.test', 'b' FROM unnest(%s::text[]) u",
                ([u for u, _ in owners],),
            )
            t0 = time.perf_counter()
            for user, count in owners:
                for start in range(0, count, 1000):
                    insert(user, *batch(min(1000, count - start)))
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(HNSW)  # as 0005 made it; dropped below (rolled back) for the 0040 variant
            conn.execute("VACUUM ANALYZE user_knowledge")
            print(f"loaded {sum(c for _, c in owners)} chunks, built the HNSW index: {time.perf_counter() - t0:.0f} s")
            variants = {"as migrated (0040: no HNSW index)": True, "before 0040 (with the HNSW index)": False}
            wall: dict[str, list[float]] = {name: [] for name in variants}
            cpus: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(args.rounds):
                for name, drop in variants.items():
                    texts, vecs = batch(20)
                    with conn.transaction(force_rollback=True):
                        if drop:
                            conn.execute("DROP INDEX user_knowledge_embedding_minilm_idx")
                        for text, vec in zip(texts, vecs, strict=True):
                            c, t = cpu(), time.perf_counter()
                            with conn.transaction():  # a savepoint per chunk: each insert pays its own index work
                                insert("kw-big", [text], [vec])
                            wall[name].append((time.perf_counter() - t) * 1000)
                            cpus[name].append(cpu() - c)
            for name in variants:
                print(
                    f"write one chunk, {name}: p50 {statistics.median(wall[name]):.2f} ms,"
                    f" backend CPU p50 {statistics.median(cpus[name]):.2f} ms"
                )


if __name__ == "__main__":
    main()
