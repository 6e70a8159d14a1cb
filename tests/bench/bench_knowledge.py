"""search_knowledge retrieval quality: hybrid (ours) vs dense-only vs lexical-only, same data, same run.

Run: .venv/bin/python tests/bench/bench_knowledge.py [--weights 0.1,0.3,0.5]

Passages: the 79 topics of the Python language reference that CPython ships as `pydoc_data.topics` (the text
`help("assert")` shows; PSF licence), each added as one document through KnowledgeService.add_document — the
code path of the `add_document` tool (chunking 400/80 characters, MiniLM embeddings, one transaction per
document) — for one user in a fresh embedded Postgres.
Questions: tests/bench/data/knowledge_pydoc_qa.jsonl, written by hand for this benchmark (see docs/benchmarks.md):
each has an `evidence` phrase copied from the topic's text. A retrieved chunk is relevant when it contains the
evidence phrase (case, quotes and emphasis marks ignored) — DPR-style "answer in passage" relevance; duplicated
text (e.g. the `compound` topic repeats `if`/`while`/...) counts wherever it appears.
Split: by a hash of the question id, 30 % dev (for choosing the fusion weight) and 70 % test (reported); both
splits are printed.
Each question is embedded once and run through KnowledgeService.search (the SQL of the search_knowledge tool) in
modes dense, lexical and hybrid (one row per --weights value).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pydoc_data.topics import topics

from isa.core.db import Database
from isa.core.embedded import embedded_url
from isa.core.embeddings import LocalMiniLM
from isa.core.migrations import migrate
from isa.core.settings import load_settings
from isa.memory.knowledge import KnowledgeService, KnowledgeSettings
from isa.memory.service import MemoryService
from isa.memory.settings import MemorySettings

DATA = Path(__file__).parent / "data" / "knowledge_pydoc_qa.jsonl"
USER = "bench-knowledge"


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


async def run(args: argparse.Namespace) -> None:
    questions = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    weights = [float(w) for w in args.weights.split(",") if w]
    rrf = [float(k) for k in args.rrf.split(",") if k]
    settings = load_settings("all")
    with tempfile.TemporaryDirectory(prefix="isa-bench-knowledge-") as tmp:
        url = embedded_url(Path(tmp))
        migrate(url)
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
            variants: list[tuple[str, str, KnowledgeSettings]] = [
                ("dense only", "dense", KnowledgeSettings()),
                ("lexical only", "lexical", KnowledgeSettings()),
            ]
            variants += [(f"hybrid w_lex={w:g}", "hybrid", KnowledgeSettings(lexical_weight=w)) for w in weights]
            variants += [(f"hybrid rrf k={k:g}", "hybrid", KnowledgeSettings(fusion="rrf", rrf_k=k)) for k in rrf]
            ranks: dict[str, list[int | None]] = {name: [] for name, _, _ in variants}
            times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
            for q, vector in zip(questions, vectors, strict=True):
                evidence = norm(q["evidence"])
                for name, mode, options in variants:
                    service.options = options
                    t = time.perf_counter()
                    hits = await service.search(USER, q["question"], 10, mode, vector)  # type: ignore[arg-type]
                    times[name].append((time.perf_counter() - t) * 1000)
                    found = [i for i, h in enumerate(hits, 1) if evidence in norm(h["content"])]
                    ranks[name].append(found[0] if found else None)
        finally:
            await db.close()
    for split in ("dev", "test"):
        keep = [i for i, q in enumerate(questions) if split_of(q["id"]) == split]
        picked = {name: [r[i] for i in keep] for name, r in ranks.items()}
        report(f"{split}: {len(keep)} questions, chunks {args.chunk_size}/{args.overlap}", picked, times)


def report(title: str, ranks: dict[str, list[int | None]], times: dict[str, list[float]]) -> None:
    table = {name: metrics(r) for name, r in ranks.items()}
    dense, lexical = table["dense only"], table["lexical only"]
    print(f"\n{title}")
    head = f"{'variant':22} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'R@5/dense':>10} {'R@5/lex':>8}"
    print(head + f" {'MRR/dense':>10} {'MRR/lex':>8} {'p50 ms':>7}")
    for name, m in table.items():
        print(
            f"{name:22} {m['R@1']:6.3f} {m['R@5']:6.3f} {m['R@10']:6.3f} {m['MRR@10']:7.3f}"
            f" {m['R@5'] / max(dense['R@5'], 1e-9):10.2f} {m['R@5'] / max(lexical['R@5'], 1e-9):8.2f}"
            f" {m['MRR@10'] / max(dense['MRR@10'], 1e-9):10.2f} {m['MRR@10'] / max(lexical['MRR@10'], 1e-9):8.2f}"
            f" {statistics.median(times[name]):7.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="0.3", help="hybrid lexical weights to compare, e.g. 0.1,0.3,0.5")
    ap.add_argument("--rrf", default="", help="reciprocal-rank-fusion k values to compare, e.g. 10,60")
    ap.add_argument("--chunk-size", type=int, default=400)
    ap.add_argument("--overlap", type=int, default=80)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
