"""search_knowledge retrieval quality and latency: BM25 postings (new) vs ts_rank_cd (old), dense-only, same run.

Run: .venv/bin/python tests/bench/bench_knowledge.py [--weights 0.1,0.3,0.5] [--rrf 20,60] [--big 20000 --users 100]

Passages: the 79 topics of the Python language reference that CPython ships as `pydoc_data.topics` (the text
`help("assert")` shows; PSF licence), each added as one document through KnowledgeService.add_document — the
code path of the `add_document` tool (chunking 400/80 characters, MiniLM embeddings, one transaction per
document) — for one user in a fresh embedded Postgres.
Questions: tests/bench/data/knowledge_pydoc_qa.jsonl, written by hand for this benchmark (see docs/benchmarks.md):
each has an `evidence` phrase copied from the topic's text. A retrieved chunk is relevant when it contains the
evidence phrase (case, quotes and emphasis marks ignored) — DPR-style "answer in passage" relevance; duplicated
text (e.g. the `compound` topic repeats `if`/`while`/...) counts wherever it appears.
Split: by a hash of the question id, 30 % dev (for choosing the fusion weight) and 70 % test (reported); both
splits are printed, and the weight of the new hybrid is picked on dev by MRR@10 (ties: R@5, then the lower weight).
Each question is embedded once and run through KnowledgeService.search (the SQL of the search_knowledge tool) in
modes dense, lexical and hybrid; "old" variants use a corpus without postings (the ts_rank_cd arm that
search_knowledge used before migration 0019), "new" ones the per-user BM25 postings.
Latency at scale (--big, --users): one user with --big chunks and --users users with --per-user chunks each, made
from the real chunks (30 % of words replaced by random corpus words; the chunk's vector plus noise), inserted with
SQL (so the postings triggers run; with --hnsw the model's partial HNSW index migration 0040 dropped is built
again); p50 of KnowledgeService.search per mode for the exact search (exact dense arm, every posting), "today" (the
default settings through the SQL of --before, another version of isa/core/search.py) and "new" (this tree), in
turn per question, with recall@10 against the exact search and the overlap@10 of new with today; plus the
statistics lookup alone and (--compare-pk) the postings primary key in both column orders.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pydoc_data.topics import topics

from isa.core.db import Database
from isa.core.embeddings import LocalMiniLM
from isa.core.search import Corpus, hybrid_search
from isa.core.settings import load_settings
from isa.knowledge import service as service_module
from isa.knowledge.service import CORPUS, KnowledgeService, KnowledgeSettings, bm25_stats
from isa.memory.service import MemoryService
from isa.memory.settings import MemorySettings
from tests.bench.bench_memory import database

DATA = Path(__file__).parent / "data" / "knowledge_pydoc_qa.jsonl"
ROOT = Path(__file__).resolve().parents[2]
USER = "bench-knowledge"
OLD = Corpus(table="user_knowledge", postings=None, examples=None, active_column=None)  # ts_rank_cd arm
SCALE_MODEL = "bench-scale"  # its HNSW index is built after the bulk load (incremental inserts are slower)


def norm(text: str) -> str:
    return " ".join(text.replace('"', "").replace("*", "").split()).lower()


def split_of(qid: str) -> str:
    return "dev" if int(hashlib.sha256(qid.encode()).hexdigest(), 16) % 10 < 3 else "test"


def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {
        "R@1": sum(r is not None and r <= 1 for r in ranks) / n,
        "R@5": sum(r is not None and r <= 5 for r in ranks) / n,
        "R@10": sum(r is not None and r <= 10 for r in ranks) / n,
        "MRR@10": sum(1 / r for r in ranks if r is not None) / n,
    }


Variant = tuple[str, str, Corpus, KnowledgeSettings]


def variants(weights: list[float], rrf: list[float]) -> list[Variant]:
    out: list[Variant] = [
        ("dense only", "dense", CORPUS, KnowledgeSettings()),
        ("lexical old ts_rank_cd", "lexical", OLD, KnowledgeSettings()),
        ("lexical new BM25", "lexical", CORPUS, KnowledgeSettings()),
    ]
    for w in weights:
        out.append((f"hybrid old w={w:g}", "hybrid", OLD, KnowledgeSettings(lexical_weight=w)))
        out.append((f"hybrid new w={w:g}", "hybrid", CORPUS, KnowledgeSettings(lexical_weight=w)))
    for k in rrf:
        out.append((f"rrf old k={k:g}", "hybrid", OLD, KnowledgeSettings(fusion="rrf", rrf_k=k)))
        out.append((f"rrf new k={k:g}", "hybrid", CORPUS, KnowledgeSettings(fusion="rrf", rrf_k=k)))
    return out


async def quality(
    service: KnowledgeService, questions: list[dict[str, Any]], vectors: list[list[float]], args: Any
) -> None:
    weights = [float(w) for w in args.weights.split(",") if w]
    rrf = [float(k) for k in args.rrf.split(",") if k]
    table = variants(weights, rrf)
    ranks: dict[str, list[int | None]] = {name: [] for name, *_ in table}
    times: dict[str, list[float]] = {name: [] for name, *_ in table}
    for q, vector in zip(questions, vectors, strict=True):
        evidence = norm(q["evidence"])
        for name, mode, corpus, options in table:
            service.options, service.corpus = options, corpus
            t = time.perf_counter()
            hits = await service.search(USER, q["question"], 10, mode, vector)  # type: ignore[arg-type]
            times[name].append((time.perf_counter() - t) * 1000)
            found = [i for i, h in enumerate(hits, 1) if evidence in norm(h["content"])]
            ranks[name].append(found[0] if found else None)
    service.options, service.corpus = KnowledgeSettings(), CORPUS
    by_split = {}
    for split in ("dev", "test"):
        keep = [i for i, q in enumerate(questions) if split_of(q["id"]) == split]
        by_split[split] = {name: metrics([r[i] for i in keep]) for name, r in ranks.items()}
    for label in ("old", "new"):
        dev = by_split["dev"]
        best = max(
            weights, key=lambda w: (dev[f"hybrid {label} w={w:g}"]["MRR@10"], dev[f"hybrid {label} w={w:g}"]["R@5"], -w)
        )
        print(f"chosen on dev (MRR@10, then R@5, then the lower weight): hybrid {label} w={best:g}")
    for split, table_ in by_split.items():
        n = sum(split_of(q["id"]) == split for q in questions)
        report(f"{split}: {n} questions, chunks {args.chunk_size}/{args.overlap}", table_, times)


def report(title: str, table: dict[str, dict[str, float]], times: dict[str, list[float]]) -> None:
    dense = table["dense only"]
    print(f"\n{title}")
    print(f"{'variant':24} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'R@5/dense':>10} {'MRR/dense':>10}"
          f" {'MRR new/old':>12} {'p50 ms':>7}")  # fmt: skip
    for name, m in table.items():
        old = table.get(name.replace(" new", " old").replace("BM25", "ts_rank_cd")) if " new" in name else None
        vs_old = f"{m['MRR@10'] / max(old['MRR@10'], 1e-9):12.2f}" if old else f"{'':12}"
        print(
            f"{name:24} {m['R@1']:6.3f} {m['R@5']:6.3f} {m['R@10']:6.3f} {m['MRR@10']:7.3f}"
            f" {m['R@5'] / max(dense['R@5'], 1e-9):10.2f} {m['MRR@10'] / max(dense['MRR@10'], 1e-9):10.2f}"
            f" {vs_old} {statistics.median(times[name]):7.1f}"
        )


class ScaleEmbedder:
    """Never embeds: scale searches get the question vectors; only the model name matters."""

    model_name = SCALE_MODEL
    dimensions = 384

    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        raise AssertionError("the scale phase passes vectors")


# 0019's trigger functions as they were before migration 0043 added the generation counters (for the write cost).
BEFORE_0043 = [
    *(
        "CREATE OR REPLACE FUNCTION " + block.split("CREATE FUNCTION ", 1)[1] + "$$;"
        for block in (ROOT / "migrations/0019_knowledge_postings.sql").read_text().split("$$;")
        if "CREATE FUNCTION user_knowledge_" in block
    ),
    "DROP TRIGGER user_knowledge_search_moved ON user_knowledge",
    "DROP TRIGGER user_knowledge_search_truncated ON user_knowledge",
]


async def load_scale(url: str, big: int, users: int, per_user: int, hnsw: bool, mid: int = 0) -> float:
    """Insert the synthetic users' chunks; returns seconds taken."""
    rng = random.Random(7)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT content, embedding::text FROM user_knowledge WHERE user_id = %s", (USER,)
        ).fetchall()
        vocab = [w for content, _ in rows for w in content.split()]
        owners = [("scale-big", big)] + [("scale-mid", mid)] * (mid > 0)
        owners += [(f"scale-{i:03d}", per_user) for i in range(users)]
        conn.execute(
            "INSERT INTO users (user_id, email, name) SELECT u, u || '@x.test', 'bench' FROM unnest(%s::text[]) u",
            ([u for u, _ in owners],),
        )

        def batch(n: int) -> tuple[list[str], list[str]]:
            texts, vecs = [], []
            for _ in range(n):
                content, vec = rng.choice(rows)
                texts.append(" ".join(rng.choice(vocab) if rng.random() < 0.3 else w for w in content.split()))
                v = [float(x) + rng.gauss(0, 0.02) for x in vec.strip("[]").split(",")]
                vecs.append("[" + ",".join(f"{x:.5f}" for x in v) + "]")
            return texts, vecs

        def insert(user: str, texts: list[str], vecs: list[str]) -> float:
            t = time.perf_counter()
            conn.execute(
                "INSERT INTO user_knowledge (user_id, content, embedding, embedding_model)"
                " SELECT %s, t, v::vector, %s FROM unnest(%s::text[], %s::text[]) AS x(t, v)",
                (user, SCALE_MODEL, texts, vecs),
            )
            return time.perf_counter() - t

        seconds = 0.0
        for user, count in owners:
            for start in range(0, count, 1000):
                seconds += insert(user, *batch(min(1000, count - start)))
        if hnsw:  # migration 0040 dropped these graphs; built again only to time the ann / HNSW variants
            t = time.perf_counter()
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute(
                "CREATE INDEX user_knowledge_embedding_scale_idx ON user_knowledge USING hnsw"
                f" ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_model = '{SCALE_MODEL}'"
            )
            print(f"HNSW index over the scale rows built in {time.perf_counter() - t:.0f} s")
        # One chunk per INSERT with its index maintenance and the postings trigger (a writer's real unit), 200 times.
        texts, vecs = batch(200)
        one: list[float] = []
        for text, vec in zip(texts, vecs, strict=True):
            one.append(insert("scale-big", [text], [vec]) * 1000)
        print(f"write one chunk (index + postings maintenance, autocommit): p50 {statistics.median(one):.2f} ms")
        # The same with each index of migration 0036 dropped in turn (rolled back), and without the HNSW index
        # the new default search no longer reads: what each costs a writer, interleaved in rounds of 20.
        drops = {
            "all indexes": [],
            "0019's triggers (before migration 0043's counters)": BEFORE_0043,
            "without 0036's bits index": ["user_knowledge_user_bits_idx"],
            "without 0036's impact index": ["user_knowledge_postings_impact_idx"],
            "without both 0036 indexes": ["user_knowledge_user_bits_idx", "user_knowledge_postings_impact_idx"],
        }
        if hnsw:
            drops["without the HNSW index"] = ["user_knowledge_embedding_scale_idx"]
        writes: dict[str, list[float]] = {name: [] for name in drops}
        for _ in range(5):
            for name, indexes in drops.items():
                texts, vecs = batch(20)
                with conn.transaction(force_rollback=True):
                    for index in indexes:
                        conn.execute(index if " " in index else f"DROP INDEX {index}")
                    for text, vec in zip(texts, vecs, strict=True):
                        with conn.transaction():  # a savepoint per chunk: each insert pays its own index work
                            writes[name].append(insert("scale-big", [text], [vec]) * 1000)
        for name, ms in writes.items():
            print(f"write one chunk, {name} (in a transaction): p50 {statistics.median(ms):.2f} ms")
        # What the postings triggers cost a writer: the same 1,000 chunks with and without them, 3 times each.
        texts, vecs = batch(1000)
        cost: dict[bool, list[float]] = {True: [], False: []}
        conn.execute(
            "INSERT INTO users (user_id, email, name)"
            " SELECT 'write-' || i, i || '@w.test', 'w' FROM generate_series(0, 5) i"
        )
        for i in range(6):
            on = i % 2 == 0
            if not on:
                conn.execute("ALTER TABLE user_knowledge DISABLE TRIGGER user_knowledge_postings_insert")
            cost[on].append(insert(f"write-{i}", texts, vecs))
            conn.execute("ALTER TABLE user_knowledge ENABLE TRIGGER user_knowledge_postings_insert")
        conn.execute("DELETE FROM user_knowledge WHERE user_id LIKE 'write-%'")
        on_ms, off_ms = (statistics.median(cost[k]) for k in (True, False))
        extra = on_ms - off_ms  # seconds per 1,000 chunks = ms per chunk
        print(
            f"\nwrite cost, 1,000 chunks in one INSERT (median of 3): {on_ms * 1000:.0f} ms with the postings"
            f" trigger, {off_ms * 1000:.0f} ms without ({on_ms / off_ms:.2f}x; +{extra:.2f} ms per chunk)"
        )
        conn.execute("VACUUM ANALYZE user_knowledge")
        conn.execute("VACUUM ANALYZE user_knowledge_postings")
        postings = conn.execute("SELECT count(*) FROM user_knowledge_postings").fetchone()
        print(
            f"\nscale: {big} chunks for scale-big + {users} x {per_user}, {postings[0] if postings else 0} postings"
            f" in all, INSERTs took {seconds:.0f} s"
        )
    return seconds


def agreement(found: set[str], truth: set[str]) -> float:
    """Share of `truth` in `found`; two empty results (a question with no matching chunk) agree."""
    return len(found & truth) / len(truth) if truth else float(not found)


def load_before(path: str) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    """hybrid_search of another version of isa/core/search.py (e.g. `git show main:isa/core/search.py`)."""
    spec = importlib.util.spec_from_file_location("search_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["search_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.hybrid_search  # type: ignore[no-any-return]


async def p50(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


async def index_mb(db: Database) -> float:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT pg_relation_size('user_knowledge_postings_pkey') / 1e6 AS mb")
        row = await cur.fetchone()
    return float(row["mb"]) if row else 0.0


def server_cpu_ms(postmaster: int) -> float:
    """CPU time all of the bench server's processes have run (/proc schedstat, ns): unlike wall time, not inflated
    by other processes waiting for the same cores."""
    total = 0
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    for pid in children:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except FileNotFoundError:  # a process that just ended
            continue
    return total / 1e6


async def latency(
    db: Database, url: str, questions: list[dict[str, Any]], vectors: list[list[float]], args: Any
) -> None:
    await load_scale(url, args.big, args.users, args.per_user, args.hnsw, args.mid)
    with psycopg.connect(url) as c:
        row = c.execute("SELECT pg_backend_pid()").fetchone()
        postmaster = int(Path(f"/proc/{row[0] if row else 0}/stat").read_text().rsplit(")", 1)[1].split()[1])
    service = KnowledgeService(MemoryService(db, ScaleEmbedder(), MemorySettings()))  # type: ignore[arg-type]
    qs = list(zip([q["question"] for q in questions], vectors, strict=True))[: args.queries]

    # exact: exact dense arm and every posting (the truth for recall); today: the default settings through the
    # SQL of --before (another version of isa/core/search.py, e.g. main's), so the two versions run side by side;
    # new: the default settings through this tree's SQL. Without --before, "today" is the HNSW iterative scan
    # (ann, the default before migration 0036; needs --hnsw for a graph to read).
    # --local: today is this tree's SQL path (the local index off), new the same settings with it on.
    before = load_before(args.before) if args.before else None
    sql_only = KnowledgeSettings(local_index_min_rows=0)
    variants = {
        "exact": KnowledgeSettings(ann=False, shortlist=0, postings_cap=0, local_index_min_rows=0),
        "today": sql_only if before or args.local else KnowledgeSettings(ann=True, shortlist=0, postings_cap=0),
        "new": KnowledgeSettings() if args.local else sql_only,
    }
    for size in (int(x) for x in args.local_shortlist.split(",") if x):  # more local variants, in the same turns
        variants[f"new@{size}"] = KnowledgeSettings(local_index_shortlist=size)
    for size in (int(x) for x in args.local_lexical.split(",") if x):
        variants[f"new+lex{size}"] = KnowledgeSettings(local_index_lexical_candidates=size)

    async def timed(user: str, mode: str) -> dict[str, tuple[float, float, float, float]]:
        """Per variant: p50, p95 and recall@10 against the exact search; variants take turns per question so load
        from other processes hits them alike."""
        times: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        recalls: dict[str, list[float]] = {name: [] for name in variants}
        overlaps: list[float] = []
        for i, (text, vector) in enumerate(qs):
            ids: dict[str, set[str]] = {}
            # today and new swap places every other question: the second of two runs of one question finds the
            # pages the first read in cache (in dense mode, the same SQL in both, that alone made new 0.80x).
            # (with more variants: the order rotates by one each question)
            rest = [name for name in variants if name != "exact"]
            order = ["exact", *(rest[i % len(rest) :] + rest[: i % len(rest)])]
            for name in order:
                options = variants[name]
                service.options = options
                service_module.hybrid_search = before if before and name == "today" else hybrid_search
                c, t = server_cpu_ms(postmaster), time.perf_counter()
                hits = await service.search(user, text, 10, mode, vector)  # type: ignore[arg-type]
                times[name].append((time.perf_counter() - t) * 1000)
                cpu[name].append(server_cpu_ms(postmaster) - c)
                ids[name] = {h["id"] for h in hits}
            for name in variants:
                recalls[name].append(agreement(ids[name], ids["exact"]))
            overlaps.append(agreement(ids["new"], ids["today"]))
        service.options = KnowledgeSettings()
        service_module.hybrid_search = hybrid_search
        print(f"  ({user}, {mode}: overlap@10 of new with today {statistics.mean(overlaps):.3f})")
        return {
            name: (
                statistics.median(t),
                float(np.percentile(t, 95)),
                statistics.mean(recalls[name]),
                statistics.median(cpu[name]),
            )
            for name, t in times.items()
        }

    async def stats_only(user: str) -> None:
        async with db.connection() as conn:
            await bm25_stats(conn, user)

    users = {"scale-big": f"{args.big} chunks", "scale-000": f"{args.per_user} chunks"}
    if args.mid:
        users = {"scale-big": users["scale-big"], "scale-mid": f"{args.mid} chunks", "scale-000": users["scale-000"]}
    if args.local:  # what loading a user's arrays costs: the first search of a fresh process, then warm ones
        for user in users:
            for mode in ("dense", "lexical"):
                fresh = KnowledgeService(service.memory, KnowledgeSettings())
                index = fresh.local_index
                assert index is not None
                t = time.perf_counter()
                await fresh.search(user, qs[0][0], 10, mode, qs[0][1])  # type: ignore[arg-type]
                cold = (time.perf_counter() - t) * 1000
                await index.settled()  # the arrays load in the background while SQL answered the first search
                loaded = (time.perf_counter() - t) * 1000
                warm = await p50(lambda f=fresh, u=user, m=mode: f.search(u, qs[1][0], 10, m, qs[1][1]), 20)  # type: ignore[misc]
                held = f"{index.nbytes / 1e6:.1f} MB held, loads {index.loads}"
                print(
                    f"{user}: first {mode} search of a fresh process {cold:.0f} ms (SQL), arrays loaded"
                    f" {loaded:.0f} ms after it began, then p50 {warm:.1f} ms; {held}"
                )
    for mode in ("lexical", "hybrid", "dense"):  # warm the caches once, untimed, so the first table is not penalised
        await timed("scale-big", mode)
    # The first table is the index as the triggers built it (page splits); then rebuilt in each column order.
    covering = "(user_id, term, entry_id) INCLUDE (tf_a, tf_b, tf_c, len_a, len_b, len_c)"
    layouts = [(covering, "as built by the triggers (migration 0030: covering, index-only BM25 probes)")]
    layouts += [
        ("(user_id, term, entry_id)", "rebuilt as before migration 0030"),
        ("(term, user_id, entry_id)", "rebuilt"),
    ]
    layouts += [(covering, "rebuilt as migration 0030 does")]
    for pk, how in layouts if args.compare_pk else [layouts[0]]:
        if how.startswith("rebuilt"):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ALTER TABLE user_knowledge_postings DROP CONSTRAINT user_knowledge_postings_pkey")
                conn.execute(f"ALTER TABLE user_knowledge_postings ADD PRIMARY KEY {pk}")
                conn.execute("VACUUM ANALYZE user_knowledge_postings")  # the visibility map index-only scans need
        size = await index_mb(db)
        print(f"\npostings primary key {pk} {how} ({size:.0f} MB); p50 ms over {len(qs)} questions, top_k 10")
        heads = " ".join(f"{n + ' p50/p95 (CPU)':>26} {'R@10':>5}" for n in variants)
        print(f"{'user':22} {'mode':8} {heads} new/today")
        for user, label in users.items():
            for mode in ("lexical", "hybrid", "dense"):
                cells = await timed(user, mode)
                line = " ".join(f"{a:8.1f}/{b:8.1f} ({c:6.1f}) {r:5.3f}" for a, b, r, c in cells.values())
                ratio = cells["new"][0] / max(cells["today"][0], 1e-9)
                print(f"{user + ' (' + label + ')':22} {mode:8} {line} {ratio:9.2f}")
            lookup = await p50(lambda u=user: stats_only(u), 200)  # type: ignore[misc]
            print(f"{user + ' (' + label + ')':22} stats lookup alone (new only): {lookup:.2f} ms")
    service.corpus = CORPUS


async def run(args: argparse.Namespace) -> None:
    questions = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    settings = load_settings("all")
    with database(args.url) as url:  # the embedded server, or a fresh database on --url's
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO users (user_id, email, name) VALUES (%s, %s, 'bench')", (USER, f"{USER}@x.test"))
        db = Database(url, settings)
        await db.open()
        try:
            memory = MemoryService(db, LocalMiniLM(), settings.section("memory", MemorySettings))
            service = KnowledgeService(memory)
            t0 = time.perf_counter()
            chunks = 0
            for name in sorted(topics):
                out = await service.add_document(
                    USER, topics[name], args.chunk_size, args.overlap, {"topic": name}, f"pydoc:{name}"
                )
                chunks += int(out["chunks"])
            print(f"loaded {len(topics)} documents, {chunks} chunks in {time.perf_counter() - t0:.0f} s")
            async with db.connection() as conn:
                cur = await conn.execute("SELECT content FROM user_knowledge WHERE user_id = %s", (USER,))
                stored = [norm(r["content"]) for r in await cur.fetchall()]
            missing = [q["id"] for q in questions if not any(norm(q["evidence"]) in c for c in stored)]
            if missing:  # another CPython version's topics may word things differently
                print(f"skipping {len(missing)} questions whose evidence is in no chunk: {missing}")
            questions = [q for q in questions if q["id"] not in missing]
            vectors = await memory.embed([q["question"] for q in questions])
            if not args.skip_quality:
                await quality(service, questions, vectors, args)
            if args.big > 0:
                await latency(db, url, questions, vectors, args)
        finally:
            await db.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="0.3", help="hybrid lexical weights to compare, e.g. 0.1,0.3,0.5")
    ap.add_argument("--rrf", default="", help="reciprocal-rank-fusion k values to compare, e.g. 10,60")
    ap.add_argument("--chunk-size", type=int, default=400)
    ap.add_argument("--overlap", type=int, default=80)
    ap.add_argument("--big", type=int, default=0, help="chunks of the one large user for the latency phase (0: skip)")
    ap.add_argument(
        "--url",
        help="a server to run on instead of the embedded one (a fresh database there, dropped after; e.g."
        " tests/bench/supabase_like.sh, PostgreSQL 15 + pgvector 0.8.0 as in production)",
    )
    ap.add_argument("--users", type=int, default=100, help="other users in the latency phase")
    ap.add_argument("--per-user", type=int, default=200, help="chunks of each other user")
    ap.add_argument("--queries", type=int, default=60, help="questions timed per latency cell")
    ap.add_argument("--skip-quality", action="store_true", help="only the latency phase (--big)")
    ap.add_argument("--before", default="", help='isa/core/search.py of the code to compare with ("today")')
    ap.add_argument("--hnsw", action="store_true", help="build the HNSW graph 0040 dropped (for the ann variant)")
    ap.add_argument("--mid", type=int, default=0, help="chunks of a second large user (e.g. 20000; 0: none)")
    ap.add_argument("--local", action="store_true", help="today = the SQL path, new = the process-local index")
    ap.add_argument("--local-shortlist", default="", help="with --local: also these local shortlists, e.g. 1000,2000")
    ap.add_argument("--local-lexical", default="", help="with --local: also these lexical candidate counts, e.g. 160")
    ap.add_argument("--compare-pk", action="store_true", help="also time rebuilt postings keys in both column orders")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
