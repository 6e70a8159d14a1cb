"""Process-local BM25 postings (isa/knowledge/lexical_index.py) vs the SQL lexical arm, same data, same run.

Run: .venv/bin/python tests/bench/bench_lexical_index.py [--big 100000 --users 100 --per-user 200 --queries 40]

Data, in a fresh embedded Postgres: the Python language reference topics (`pydoc_data.topics`) cut into 400/80
character chunks (isa.knowledge.service.chunk_text); one user gets --big chunks and --users users get --per-user
each, every chunk a random real chunk with 30 % of its words replaced by random corpus words (as
tests/bench/bench_knowledge.py makes its scale data, without embeddings: the lexical arm reads none), inserted with
SQL so the postings triggers run. Questions: tests/bench/data/knowledge_pydoc_qa.jsonl.
Reported: the full load of the big user's postings (median of --loads, and how much of it is the statement), bytes
per posting; per question in turn, the SQL arm (isa.core.search.hybrid_search in lexical mode with the statistics
lookup: what KnowledgeService.search runs) and the local one (statistics lookup + query_terms + Postings.top, and
Postings.top alone), p50/p95 and their ratio, with the share of questions whose top 10 (ids and order) and scores
are equal; then 1,000 chunks more and `load(since=...)` + `merged` against a full load again (the top 10 of the merged
postings against the SQL arm's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pydoc_data.topics import topics

from isa.core.db import Database, DictConnection
from isa.core.embedded import embedded_url
from isa.core.migrations import migrate
from isa.core.search import Query, Slice, Weights, hybrid_search
from isa.core.settings import load_settings
from isa.knowledge.lexical_index import LexicalHits, Postings, packed, query_terms
from isa.knowledge.service import CORPUS, chunk_text
from isa.knowledge.store import bm25_stats

DATA = Path(__file__).parent / "data" / "knowledge_pydoc_qa.jsonl"
BIG = "lex-big"
WEIGHTS = Weights(examples=0.0, field_a=1.0, field_b=0.0, field_c=0.0)  # KnowledgeService.weights' BM25 part


def build(url: str, big: int, users: int, per_user: int) -> None:
    rng = random.Random(7)
    base = [c for name in sorted(topics) for c in chunk_text(topics[name], 400, 80)]
    vocab = [w for c in base for w in c.split()]

    def batch(n: int) -> list[str]:
        return [" ".join(rng.choice(vocab) if rng.random() < 0.3 else w for w in rng.choice(base).split())
                for _ in range(n)]  # fmt: skip

    owners = [(BIG, big)] + [(f"lex-{i:03d}", per_user) for i in range(users)]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (user_id, email, name) SELECT u, u || '@x.test', 'bench' FROM unnest(%s::text[]) u",
            ([u for u, _ in owners],),
        )
        t = time.perf_counter()
        for user, count in owners:
            for start in range(0, count, 1000):
                conn.execute(
                    "INSERT INTO user_knowledge (user_id, content) SELECT %s, unnest(%s::text[])",
                    (user, batch(min(1000, count - start))),
                )
        conn.execute("VACUUM ANALYZE user_knowledge")
        conn.execute("VACUUM ANALYZE user_knowledge_postings")
        n = conn.execute("SELECT count(*) FROM user_knowledge_postings WHERE user_id = %s", (BIG,)).fetchone()
        print(f"{big} chunks for {BIG} ({n[0] if n else 0} postings) + {users} x {per_user}, in"
              f" {time.perf_counter() - t:.0f} s")  # fmt: skip
    build.batch = batch  # type: ignore[attr-defined]  # more chunks of the same kind for the merge phase


async def sql_arm(conn: DictConnection, text: str, k: int) -> LexicalHits:
    stats = {"k": await bm25_stats(conn, BIG)}
    q = Query(text, None, "m", 384, "lexical")
    rows = await hybrid_search(conn, CORPUS, q, [Slice("k", "user_id", BIG, k, exact=True)], WEIGHTS, stats, ["id"])
    return LexicalHits([str(r["id"]) for r in rows], [float(r["lex"]) for r in rows])


async def local(conn: DictConnection, postings: Postings, text: str, k: int, terms: list[str] | None = None) -> Any:
    stats = await bm25_stats(conn, BIG)
    terms = terms if terms is not None else await query_terms(conn, text)
    return postings.top(terms, k, k1=WEIGHTS.k1, b=WEIGHTS.b, n=stats.rows, avgdl=stats.len_a)


def ms(times: list[float]) -> str:
    return f"{statistics.median(times):7.2f} / {float(np.percentile(times, 95)):7.2f}"


async def run(args: argparse.Namespace) -> None:
    questions = [json.loads(line)["question"] for line in DATA.read_text().splitlines() if line.strip()]
    questions = questions[: args.queries]
    with tempfile.TemporaryDirectory(prefix="isa-bench-lexical-") as tmp:
        url = embedded_url(Path(tmp))
        migrate(url)
        build(url, args.big, args.users, args.per_user)
        db = Database(url, load_settings("all"))
        await db.open()
        try:
            async with db.connection() as conn:
                await measure(conn, url, questions, args)
        finally:
            await db.close()


async def measure(conn: DictConnection, url: str, questions: list[str], args: argparse.Namespace) -> None:
    loads, decodes = [], []
    postings = Postings.empty()
    for _ in range(args.loads):
        t = time.perf_counter()
        postings = await Postings.load(conn, BIG)
        loads.append(time.perf_counter() - t)
    # The Python side alone: the same statement's row decoded again.
    row = await packed(conn, BIG)
    if row is not None:
        for _ in range(args.loads):
            t = time.perf_counter()
            Postings.decode(row)
            decodes.append(time.perf_counter() - t)
    per = postings.nbytes / max(postings.postings, 1)
    print(f"\nfull load of {len(postings)} chunks, {postings.postings} postings, {len(postings.terms)} terms:"
          f" median {statistics.median(loads) * 1000:.0f} ms of {args.loads}"
          + (f" (decoding the row {statistics.median(decodes) * 1000:.0f} ms)" if decodes else "")
          + f"; {postings.nbytes / 1e6:.1f} MB, {per:.2f} bytes per posting")  # fmt: skip

    times: dict[str, list[float]] = {"sql arm": [], "local (stats+terms+top)": [], "top alone": []}
    same_ids = same_scores = 0
    matched: list[int] = []
    for _ in range(2):  # warm both once, untimed
        for text in questions:
            await sql_arm(conn, text, 10)
            await local(conn, postings, text, 10)
    for i, text in enumerate(questions):
        terms = await query_terms(conn, text)
        stats = await bm25_stats(conn, BIG)
        matched.append(sum(postings.df(term) for term in terms))
        order = ["sql", "local"] if i % 2 == 0 else ["local", "sql"]
        for _ in range(args.repeat):
            for name in order:
                t = time.perf_counter()
                if name == "sql":
                    want = await sql_arm(conn, text, 10)
                    times["sql arm"].append((time.perf_counter() - t) * 1000)
                else:
                    got = await local(conn, postings, text, 10)
                    times["local (stats+terms+top)"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            postings.top(terms, 10, k1=WEIGHTS.k1, b=WEIGHTS.b, n=stats.rows, avgdl=stats.len_a)
            times["top alone"].append((time.perf_counter() - t) * 1000)
        same_ids += got.ids == want.ids
        close = all(abs(a - b) <= 1e-9 * abs(b) for a, b in zip(got.scores, want.scores, strict=False))
        same_scores += got.ids == want.ids and close
    print(f"\n{len(questions)} questions x {args.repeat}, top 10; postings per question: median"
          f" {statistics.median(matched):.0f}, max {max(matched)}")  # fmt: skip
    print(f"{'':26} {'p50 / p95 ms':>17} {'vs sql arm (p50)':>17}")
    base = statistics.median(times["sql arm"])
    for name, ts in times.items():
        print(f"{name:26} {ms(ts)} {statistics.median(ts) / base:17.3f}")
    print(f"top 10 equal (ids, in order): {same_ids}/{len(questions)}; and scores within 1e-9 relative:"
          f" {same_scores}/{len(questions)}")  # fmt: skip

    # Inserts since the load: the new chunks only (from --overlap seconds before the newest held), merged, vs a full
    # load again.
    with psycopg.connect(url, autocommit=True) as c:
        for _ in range(10):
            c.execute(
                "INSERT INTO user_knowledge (user_id, content) SELECT %s, unnest(%s::text[])",
                (BIG, build.batch(100)),  # type: ignore[attr-defined]
            )
    newest = postings.newest
    assert newest is not None
    t = time.perf_counter()
    newer = await Postings.load(conn, BIG, since=newest - args.overlap)
    t_since = time.perf_counter() - t
    t = time.perf_counter()
    merged = postings.merged(newer)
    t_merge = time.perf_counter() - t
    t = time.perf_counter()
    fresh = await Postings.load(conn, BIG)
    t_full = time.perf_counter() - t
    assert len(merged) == len(fresh) and merged.postings == fresh.postings
    agree = 0
    for text in questions:
        a, b = await local(conn, merged, text, 10), await sql_arm(conn, text, 10)
        agree += a.ids == b.ids
    print(f"\n+{len(merged) - len(postings)} chunks ({len(newer)} read): load(since) {t_since * 1000:.0f} ms"
          f" + merged {t_merge * 1000:.0f} ms vs a full load"
          f" {t_full * 1000:.0f} ms ({(t_since + t_merge) / t_full:.3f}x); merged top 10 equal to the SQL arm's:"
          f" {agree}/{len(questions)}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", type=int, default=100_000, help="chunks of the one large user")
    ap.add_argument("--users", type=int, default=100, help="other users")
    ap.add_argument("--per-user", type=int, default=200, help="chunks of each other user")
    ap.add_argument("--queries", type=int, default=40, help="questions timed")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each question per variant")
    ap.add_argument("--loads", type=int, default=3, help="full loads timed")
    ap.add_argument("--overlap", type=float, default=0.0, help="seconds before the newest chunk held to load since")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
