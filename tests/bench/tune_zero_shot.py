"""Cheap zero-shot levers for the tuned encoder, chosen on the dev splits: fusion weight, BM25F field weights, k1.

    .venv/bin/python tests/bench/tune_zero_shot.py --cache /tmp/i24-cache [--split dev]

zero_shot_discovery.py's protocol (each dataset its own catalog, 40 dense + 40 BM25F candidates, z-score fusion
over the candidate set, lexemes from Postgres's `to_tsvector('english')`), read for two encoders: the tuned one
(the default; it was trained on these datasets' train splits, so its dev numbers are in-domain) and the stock int8
MiniLM, which never saw them — the stand-in for a catalog the tuned encoder never saw. A lever is worth adopting
only if it helps under both. Every row is the paired bootstrap interval (1,000 resamples of the same queries) of
its difference to today's default (z 0.7 dense / 0.3 BM25F, fields A 2 / B 1 / C 0.5, k1 1.2, b 0.75).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import discovery_data as data
import zero_shot_discovery as zs
from zero_shot_discovery import diff_ci

from isa.catalog.text import embed_text, extra_text, name_text
from isa.core.embedded import embedded_url
from isa.core.embeddings import LocalMiniLM

F = zs.F
Counts = dict[str, list[int]]  # lexeme -> occurrences in fields A, B, C


def field_counts(conn: Any, docs: list[list[str]]) -> list[Counts]:
    out = []
    for fields in docs:
        parts = " || ".join(f"setweight(to_tsvector('english', %s), '{w}')" for w in "ABC"[: len(fields)])
        rows = conn.execute(f"SELECT lexeme, weights FROM unnest({parts})", fields).fetchall()
        out.append({lex: [sum(1 for w in ws if w == f) for f in "ABC"] for lex, ws in rows})
    return out


def weighted(counts: list[Counts], fields: tuple[float, float, float]) -> list[dict[str, float]]:
    return [{t: sum(w * c for w, c in zip(fields, cs, strict=True)) for t, cs in d.items()} for d in counts]


def fused(dense: F, lex: F, w_dense: float) -> F:
    return zs.rank_scores("z", dense, lex, w_dense)


DEFAULT = {"w": 0.7, "fields": (2.0, 1.0, 0.5), "k1": 1.2, "b": 0.75}
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("default (z 0.7/0.3, A2 B1 C0.5, k1 1.2)", {}),
    *[(f"z {w:.2f} dense", {"w": w}) for w in (0.5, 0.6, 0.65, 0.75, 0.8, 0.9)],
    *[
        (f"fields A{a:g} B{b:g} C{c:g}", {"fields": (a, b, c)})
        for a, b, c in (
            (1, 1, 0.5),
            (3, 1, 0.5),
            (2, 1, 0.25),
            (2, 1, 0.75),
            (2, 1, 1),
            (2, 1, 1.5),
            (2, 1, 2),
            (2, 1, 3),
            (2, 1, 4),
            (2, 1.5, 2),
            (2, 1, 0),
        )
    ],
    *[(f"k1 {k:g}", {"k1": k}) for k in (0.9, 1.5, 2.0)],
    *[(f"b {b:g}", {"b": b}) for b in (0.5, 0.9)],
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=["dev", "test"], default="dev")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--only", default="", help="comma-separated variant labels to read (default: all)")
    parser.add_argument("--max-queries", type=int, default=0)
    args = parser.parse_args()
    encoders = {"tuned": LocalMiniLM(precision="tuned"), "stock int8": LocalMiniLM(precision="int8")}
    variants = [v for v in VARIANTS if not args.only or v[0] in args.only.split(",") or v[1] == {}]
    conn = psycopg.connect(embedded_url(Path(tempfile.mkdtemp(prefix="isa-tune-"))), autocommit=True)
    for ds in (data.metatool(), data.toollens()):
        cat = zs.load_sampled(ds, args.split, args.max_queries)
        tool_vecs = {n: zs.embed(e, [embed_text(i) for i in cat.items], args.cache) for n, e in encoders.items()}
        counts = field_counts(conn, [[name_text(i), i.description, extra_text(i)] for i in cat.items])
        for set_name, (qtexts, rel) in cat.sets.items():
            print(f"\n## {cat.name} {args.split} {set_name}: {len(qtexts)} queries, {len(cat.items)} tools", flush=True)
            qlex = zs.lexemes(conn, [[t] for t in qtexts], "english")
            dense = {n: zs.embed(e, qtexts, args.cache) @ tool_vecs[n].T for n, e in encoders.items()}
            lex_cache: dict[tuple[Any, ...], F] = {}
            base: dict[str, dict[str, np.ndarray[Any, Any]]] = {}
            for label, change in variants:
                p = {**DEFAULT, **change}
                key = (p["fields"], p["k1"], p["b"])
                if key not in lex_cache:
                    lex_cache[key] = zs.bm25(weighted(counts, p["fields"]), qlex, p["k1"], p["b"])
                for ename in encoders:
                    m = zs.per_query(fused(dense[ename], lex_cache[key], p["w"]), rel)
                    line = f"  {ename:<10} {label:<40}"
                    if ename not in base:
                        base[ename] = m
                        line += f" R@1 {zs.ci(m['R@1'])}  R@10 {zs.ci(m['R@10'])}  nDCG@10 {zs.ci(m['nDCG@10'])}"
                        line += f"  all@10 {zs.ci(m['all@10'])}"
                    else:
                        b = base[ename]
                        line += f" ΔR@1 {diff_ci(m['R@1'], b['R@1'])}  ΔR@10 {diff_ci(m['R@10'], b['R@10'])}"
                        line += f"  ΔnDCG@10 {diff_ci(m['nDCG@10'], b['nDCG@10'])}"
                        line += f"  Δall@10 {diff_ci(m['all@10'], b['all@10'])}"
                    print(line, flush=True)


if __name__ == "__main__":
    main()
