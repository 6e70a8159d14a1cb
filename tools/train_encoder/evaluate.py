"""The transfer table: candidate encoders against the stock int8 MiniLM, zero-shot, by zero_shot_discovery's protocol.

    .venv/bin/python tools/train_encoder/evaluate.py --split test \
        --candidate metatool-trained=/tmp/enc/mt.onnx:toollens --candidate toollens-trained=/tmp/enc/tl.onnx:metatool

Each `--candidate NAME=GRAPH:DATASETS` is measured on the listed datasets only (a model trained on MetaTool is read
on ToolLens: the catalog it never saw). Rows: dense alone, and the default fusion (z-score 0.7 dense + 0.3 BM25F
over the candidate set), each with its 95 % bootstrap interval, and the paired bootstrap interval of its
difference to the stock int8 row of the same kind (same resampled queries).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "bench"), str(ROOT)]

import discovery_data as data  # noqa: E402
import zero_shot_discovery as zs  # noqa: E402
from bench_floor import OFF_TOPIC  # noqa: E402
from zero_shot_discovery import diff_ci  # noqa: E402

from isa.catalog.text import embed_text, extra_text, name_text  # noqa: E402
from isa.core.embedded import embedded_url  # noqa: E402
from isa.core.embeddings import LocalMiniLM  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=["dev", "test"], default="dev")
    parser.add_argument("--candidate", action="append", default=[], help="NAME=GRAPH.onnx:dataset[,dataset]")
    parser.add_argument("--max-queries", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--floor", type=float, default=0.2, help="catalog.min_similarity to check (offline)")
    args = parser.parse_args()
    stock = LocalMiniLM(precision="int8")
    cands: list[tuple[str, LocalMiniLM, set[str]]] = []
    for spec in args.candidate:
        name, rest = spec.split("=", 1)
        graph, sets = rest.rsplit(":", 1)
        cands.append((name, LocalMiniLM(graph_file=Path(graph), model_name=name), set(sets.split(","))))
    conn = psycopg.connect(embedded_url(Path(tempfile.mkdtemp(prefix="isa-enc-"))), autocommit=True)
    for ds in (data.metatool(), data.toollens(), data.mcp_servers()):
        encs = [("stock int8", stock)] + [(n, e) for n, e, s in cands if ds.name in s]
        if cands and len(encs) == 1:  # with no candidate at all: the stock rows only (and a warm cache)
            continue
        cat = zs.load(ds, args.split)
        if args.max_queries:
            rng = np.random.default_rng(7)
            for sname, (t, r) in list(cat.sets.items()):
                if len(t) > args.max_queries:
                    idx = rng.choice(len(t), args.max_queries, replace=False)
                    cat.sets[sname] = ([t[i] for i in idx], [r[i] for i in idx])
        tools = {n: zs.embed(e, [embed_text(i) for i in cat.items], args.cache) for n, e in encs}
        print(f"\n## {cat.name} floor {args.floor}: off-topic queries (of {len(OFF_TOPIC)}) whose best tool clears it")
        for n, e in encs:
            best = (zs.embed(e, OFF_TOPIC, args.cache) @ tools[n].T).max(1)
            print(f"  {n:<18} {int((best >= args.floor).sum())} of {len(OFF_TOPIC)}, best cosine max {best.max():.3f}")
        docs = zs.lexemes(conn, [[name_text(i), i.description, extra_text(i)] for i in cat.items], "english")
        for sname, (qtexts, rel) in cat.sets.items():
            print(f"\n## {cat.name} {sname}: {len(qtexts)} queries, {len(cat.items)} tools", flush=True)
            lex = zs.bm25(docs, zs.lexemes(conn, [[t] for t in qtexts], "english"))
            base: dict[str, dict[str, np.ndarray[Any, Any]]] = {}
            for n, e in encs:
                dense = zs.embed(e, qtexts, args.cache) @ tools[n].T
                pairs = np.array([dense[i, t] for i, r in enumerate(rel) for t in r])
                print(
                    f"  {n:<18} relevant tools at cosine >= {args.floor}: {(pairs >= args.floor).mean():.3f}"
                    f" (median cosine {np.median(pairs):.3f}; all tools' median {np.median(dense):.3f})"
                )
                for kind, scores in (("dense", dense), ("fused", zs.rank_scores("z", dense, lex))):
                    m = zs.per_query(scores, rel)
                    line = f"  {n:<18} {kind:<6} R@1 {zs.ci(m['R@1'])}  R@10 {zs.ci(m['R@10'])}"
                    line += f"  nDCG@10 {zs.ci(m['nDCG@10'])}  all@10 {zs.ci(m['all@10'])}"
                    if kind in base:
                        b = base[kind]
                        line += f"\n  {'':<18} {'Δ':<6} R@1 {diff_ci(m['R@1'], b['R@1'])}"
                        line += f"  R@10 {diff_ci(m['R@10'], b['R@10'])}  nDCG@10 {diff_ci(m['nDCG@10'], b['nDCG@10'])}"
                    else:
                        base[kind] = m
                    print(line, flush=True)


if __name__ == "__main__":
    main()
