"""Recall of the memory search shortlists on real MiniLM embeddings, against the exact blend over every row.

Run: .venv/bin/python tests/bench/bench_memory_real.py

One user's 4,000 facts: 300-character windows (every 100 characters) of the Python reference topics CPython ships
as `pydoc_data.topics` (PSF licence), embedded with the local MiniLM, random importance and an age of up to a year;
the 123 questions of tests/bench/data/knowledge_pydoc_qa.jsonl as queries. For the default blend and for cosine
alone: recall@10 of 0036's shortlist (Hamming order, top-40 by cosine, blended) and of the shortlist by estimated
blend (the default since 0040) at several lengths. Quality only; latency is bench_memory.py's.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.core.db import vector_literal
from isa.core.embedded import embedded_url
from isa.core.embeddings import LocalMiniLM
from isa.core.migrations import migrate
from isa.memory.store import Bits, Blend, Filters, search_params, search_sql

MODEL = "all-MiniLM-L6-v2"
QUESTIONS = Path(__file__).parent / "data" / "knowledge_pydoc_qa.jsonl"


def main() -> None:
    rng = np.random.default_rng(11)
    texts = []
    for name in sorted(topics):
        t = " ".join(topics[name].split())
        texts += [t[s : s + 300] for s in range(0, max(len(t) - 300, 1), 100)]
    texts = texts[:4000]
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line.strip()]
    embedder = LocalMiniLM()
    t0 = time.perf_counter()
    vectors, queries = embedder.embed_batch(texts), embedder.embed_batch(questions)
    print(f"{len(texts)} facts, {len(questions)} questions embedded in {time.perf_counter() - t0:.0f} s")
    only_facts = Filters(types=("factual",))
    with tempfile.TemporaryDirectory(prefix="isa-bench-mem-real-") as tmp:
        url = embedded_url(Path(tmp))
        migrate(url)
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
            conn.execute("INSERT INTO users (user_id, email, name) VALUES ('real-0', 'r@x.test', 'r')")
            copy_sql = (
                "COPY factual_memories (user_id, content, fact_type, subject, predicate, object_value,"
                " importance_score, created_at, embedding, embedding_model) FROM STDIN"
            )
            now = time.time()
            with conn.cursor().copy(copy_sql) as copy:
                for i, (text, vec) in enumerate(zip(texts, vectors, strict=True)):
                    age = float(rng.uniform(0, 365 * 86400))
                    created = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(now - age))
                    vector = vector_literal([float(x) for x in vec])
                    copy.write_row(
                        ("real-0", text, "note", "user", f"p{i}", "v", float(rng.uniform()), created, vector, MODEL)
                    )
            conn.execute("VACUUM ANALYZE factual_memories")
            for label, blend in (("default blend 0.8/0.1/0.1", Blend()), ("cosine only", Blend(1.0, 0.0, 0.0))):
                variants = {f"0036 shortlist {r}": Bits(40, r, by_blend=False) for r in (100, 300, 400)}
                variants |= {f"new shortlist {r}": Bits(40, r) for r in (50, 100, 200, 300)}
                exact = search_sql(MODEL, 384, only_facts, blend)
                recall: dict[str, list[float]] = {name: [] for name in variants}
                for q in queries:
                    params = search_params("real-0", [float(x) for x in q], only_facts, 10, -1.0)
                    truth = {r["id"] for r in conn.execute(exact, params).fetchall()}
                    for name, bits in variants.items():
                        got = conn.execute(search_sql(MODEL, 384, only_facts, blend, bits), params).fetchall()
                        recall[name].append(len({r["id"] for r in got} & truth) / 10)
                print(f"\n{label}: recall@10 against the exact blend over all 4,000")
                for name, values in recall.items():
                    print(f"  {name:22} {float(np.mean(values)):.3f}")


if __name__ == "__main__":
    main()
