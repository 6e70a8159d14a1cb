"""Discovery's /discover statement with the BM25 arm of another isa/core/search.py beside this tree's (issue #28).

Run: git show 87a8b7a:isa/core/search.py > /tmp/search_before.py
     .venv/bin/python tests/bench/bench_bm25_arm.py --before /tmp/search_before.py [--tools 1000 10000]

A fresh embedded Postgres per size, migrated; --tools synthetic catalog rows (90 % tools, 5 % prompts, 5 % resources,
descriptions like bench_discovery.py's synthetic servers, random unit vectors) inserted with SQL so the postings
trigger runs. Each of 100 requests (like bench_discovery.py's latency queries) is ranked by `hybrid_sql` of both
versions in turn (the order alternating per round, two rounds) in lexical and hybrid mode, three slices as /discover
asks (tool 10, prompt 3, resource 3), the catalog's default weights. Printed: p50 wall ms of each version, the
ratio, the overlap of their results, and of the requests whose results differ, how many have the same list of
scores (ties: rows of equal score in another order).
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.catalog import store
from isa.catalog.service import CORPUS
from isa.catalog.settings import CatalogSettings
from isa.core import search
from isa.core.embedded import embedded_url
from isa.core.migrations import migrate
from tests.bench.bench_discovery import _OBJECTS, _PLACES, _VERBS

MODEL = "all-MiniLM-L6-v2"


def load_module(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("search_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["search_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def fill(conn: psycopg.Connection[Any], tools: int, rng: random.Random, nrng: Any) -> None:
    rows = []
    for i in range(tools):
        verb, obj, place = rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_PLACES)
        kind = "tool" if i % 10 else ("prompt" if i % 20 else "resource")
        v = nrng.normal(size=384)
        rows.append(
            (
                kind,
                f"{verb}_{obj.replace(' ', '_')}_{i}",
                f"synthetic{i // 5000}",
                f"synthetic{i // 5000}__{verb}_{i}",
                f"{verb.capitalize()} {obj} {place}. Variant {i} with its own options and limits.",
                "[" + ",".join(f"{x:.4f}" for x in v / np.linalg.norm(v)) + "]",
            )
        )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO mcp_unified_search_embeddings (item_type, item_name, server, qualified_name, description,"
            f" content_hash, embedding, embedding_model) VALUES (%s, %s, %s, %s, %s, 'h', %s::vector, '{MODEL}')",
            rows,
        )
    conn.execute("VACUUM ANALYZE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="isa/core/search.py of the code to compare with")
    ap.add_argument("--tools", type=int, nargs="*", default=[1000, 10000])
    args = ap.parse_args()
    before = load_module(args.before)
    for tools in args.tools:
        rng, nrng = random.Random(5), np.random.default_rng(5)
        with tempfile.TemporaryDirectory(prefix="isa-bench-bm25-") as tmp:
            url = embedded_url(Path(tmp))
            migrate(url)
            with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
                fill(conn, tools, rng, nrng)
                stats = {
                    r["item_type"]: search.Bm25Stats(int(r["n"]), float(r["a"]), float(r["b"]), float(r["c"]))
                    for r in conn.execute(
                        "SELECT item_type, count(DISTINCT entry_id) AS n, avg(len_a) AS a, avg(len_b) AS b,"
                        " avg(len_c) AS c FROM mcp_search_postings GROUP BY 1"
                    ).fetchall()
                }
                weights = CatalogSettings().weights()
                slices = [
                    search.Slice("tool", "item_type", "tool", 10),
                    search.Slice("prompt", "item_type", "prompt", 3),
                    search.Slice("resource", "item_type", "resource", 3),
                ]
                requests = [
                    f"{rng.choice(_VERBS)} my {rng.choice(_OBJECTS)} {rng.choice(_PLACES)} #{i}" for i in range(100)
                ]
                for mode in ("lexical", "hybrid"):
                    times: dict[str, list[float]] = {"today": [], "new": []}
                    overlap: list[float] = []
                    differ = ties = 0
                    for rnd in range(2):
                        for text in requests:
                            v = nrng.normal(size=384)
                            vector = [float(x) for x in v / np.linalg.norm(v)]
                            out: dict[str, list[dict[str, Any]]] = {}
                            order = [("today", before), ("new", search)]
                            for name, module in order if rnd % 2 == 0 else order[::-1]:
                                q = search.Query(text, vector, MODEL, 384, mode)  # type: ignore[arg-type]
                                stmt, params = module.hybrid_sql(CORPUS, q, slices, weights, stats, store.ITEM_COLUMNS)
                                t = time.perf_counter()
                                out[name] = conn.execute(stmt, params).fetchall()
                                times[name].append((time.perf_counter() - t) * 1000)
                            a = {(r["slice"], r["item_name"]) for r in out["today"]}
                            b = {(r["slice"], r["item_name"]) for r in out["new"]}
                            overlap.append(len(a & b) / len(a) if a else float(not b))
                            if a != b:
                                differ += 1
                                scores = [sorted(round(float(r["score"]), 9) for r in out[n]) for n in ("today", "new")]
                                ties += scores[0] == scores[1]
                    p50 = {name: statistics.median(ms) for name, ms in times.items()}
                    print(
                        f"{tools} rows, {mode:7}: today {p50['today']:.2f} ms, new {p50['new']:.2f} ms p50"
                        f" ({p50['new'] / p50['today']:.2f}x); overlap {statistics.mean(overlap):.3f};"
                        f" {differ} of {len(overlap)} requests differ, {ties} of them only by ties",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
