"""Zero-shot discovery (no example queries) on the dev or test splits: tool text, fusion, stemming, encoder.

    .venv/bin/python tests/bench/zero_shot_discovery.py --split dev [--cache /tmp/i24-cache]
    .venv/bin/python tests/bench/zero_shot_discovery.py --split test --only final   # the report run

Each dataset is its own catalog (as `isa catalog import` would load it). Scores are computed the way the
ranking statement does (isa/core/search.py): the dense arm's `candidates` nearest tools and the BM25F arm's
`candidates` best (lexemes from Postgres's `to_tsvector`, fields A 2 / B 1 / C 0.5, k1 1.2, b 0.75) form the
candidate set; every candidate gets its exact cosine and its BM25 (0 when outside the lexical arm); fusion
happens over that set only. Each number comes with a 95 % bootstrap interval over queries (1,000 resamples),
so a difference inside the noise is not read as a gain.

Dev: the ranking choices (text, fusion, weights, stemming, encoder) are made here. Test: read once for the
report (docs/benchmarks.md). `--with-examples` adds each tool's train-split queries as example votes (the
cos^3 votes of the 40 nearest examples), to choose the votes' weight next to the new fusion.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import discovery_data as data

from isa.catalog.importer import parse_import, server_items
from isa.catalog.models import CatalogItem
from isa.catalog.text import embed_text, extra_text, name_text, qualified_name
from isa.core.embedded import embedded_url
from isa.core.embeddings import LocalMiniLM

F = np.ndarray[Any, np.dtype[np.float32]]
K = 40  # per arm, as Weights.candidates
FIELD_WEIGHTS = {"A": 2.0, "B": 1.0, "C": 0.5}


def embed(model: LocalMiniLM, texts: list[str], cache: Path | None) -> F:
    key = hashlib.sha256(("\n".join(texts) + model.model_name).encode()).hexdigest()[:20]
    path = cache / f"{model.model_name}-{key}.npy" if cache else None
    if path and path.exists():
        loaded: F = np.load(path)
        return loaded
    out = model.embed_batch(texts)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


def lexemes(conn: Any, texts: list[list[str]], config: str) -> list[dict[str, float]]:
    out = []
    for fields in texts:
        parts = " || ".join(f"setweight(to_tsvector('{config}', %s), '{w}')" for w in "ABC"[: len(fields)])
        rows = conn.execute(f"SELECT lexeme, weights FROM unnest({parts})", fields).fetchall()
        out.append({lex: sum(FIELD_WEIGHTS[w] for w in ws) for lex, ws in rows})
    return out


def bm25(docs: list[dict[str, float]], queries: list[dict[str, float]], k1: float = 1.2, b: float = 0.75) -> F:
    vocab = {t: i for i, t in enumerate(sorted({t for d in docs for t in d}))}
    m = np.zeros((len(docs), len(vocab)), np.float32)
    for i, d in enumerate(docs):
        for t, w in d.items():
            m[i, vocab[t]] = w
    dl = m.sum(1, keepdims=True)
    df = (m > 0).sum(0)
    idf = np.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
    sat = m * (k1 + 1) / (m + k1 * (1 - b + b * dl / dl.mean())) * idf
    q = np.zeros((len(queries), len(vocab)), np.float32)
    for i, d in enumerate(queries):
        for t in d:
            if t in vocab:
                q[i, vocab[t]] = 1.0
    out: F = q @ sat.T
    return out


def candidates(dense: F, lex: F, extra: F | None = None) -> tuple[np.ndarray[Any, Any], F]:
    """Mask of the candidate set per query, and BM25 restricted to the lexical arm (0 elsewhere, as in SQL)."""
    n = dense.shape[1]
    k = min(K, n)
    mask = np.zeros(dense.shape, bool)
    rows = np.arange(len(dense))[:, None]
    mask[rows, np.argpartition(-dense, k - 1, axis=1)[:, :k]] = True
    top_lex = np.argpartition(-lex, k - 1, axis=1)[:, :k]
    lex_mask = np.zeros(dense.shape, bool)
    lex_mask[rows, top_lex] = True
    lex_mask &= lex > 0
    mask |= lex_mask
    if extra is not None:
        mask |= extra > 0
    return mask, np.where(lex_mask, lex, 0).astype(np.float32)


def zscore(x: F, mask: np.ndarray[Any, Any]) -> F:
    cnt = mask.sum(1, keepdims=True)
    mean = np.where(mask, x, 0).sum(1, keepdims=True) / cnt
    var = np.where(mask, (x - mean) ** 2, 0).sum(1, keepdims=True) / cnt
    out: F = (x - mean) / np.maximum(np.sqrt(var), 1e-9)
    return out


def rank_scores(kind: str, dense: F, lex: F, w: float = 0.7, votes: F | None = None, wx: float = 1.0) -> F:
    if kind == "dense":
        return dense
    if kind == "bm25":
        return lex
    mask, lex_c = candidates(dense, lex, votes)
    v = votes if votes is not None else np.zeros_like(dense)
    if kind == "max":  # today's statement: 0.7 cos + 0.3 bm25 / max bm25 + votes
        s = w * dense + (1 - w) * lex_c / np.maximum(lex_c.max(1, keepdims=True), 1e-9) + wx * v
    elif kind == "z":
        s = w * zscore(dense, mask) + (1 - w) * zscore(lex_c, mask) + wx * v
    elif kind == "rrf":
        ranks = [np.argsort(np.argsort(-np.where(mask, m, -1e9), axis=1), axis=1) for m in (dense, lex_c)]
        s = sum(1.0 / (61 + r) for r in ranks) + wx * v  # type: ignore[assignment]
    else:
        raise ValueError(kind)
    out: F = np.where(mask, s, -1e9).astype(np.float32)
    return out


def per_query(scores: F, rel: list[list[int]]) -> dict[str, np.ndarray[Any, Any]]:
    top = np.argsort(-scores, axis=1)[:, :10]
    out: dict[str, list[float]] = {"R@1": [], "R@5": [], "R@10": [], "nDCG@10": [], "all@10": []}
    for row, r in zip(top, rel, strict=True):
        want, got = set(r), row.tolist()
        for k in (1, 5, 10):
            out[f"R@{k}"].append(len(want & set(got[:k])) / len(want))
        dcg = sum(1 / math.log2(i + 2) for i, t in enumerate(got) if t in want)
        out["nDCG@10"].append(dcg / sum(1 / math.log2(i + 2) for i in range(min(len(want), 10))))
        out["all@10"].append(float(want <= set(got)))
    return {k: np.array(v) for k, v in out.items()}


def ci(values: np.ndarray[Any, Any], seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    boots = values[rng.integers(0, len(values), (1000, len(values)))].mean(1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return f"{values.mean():.3f} [{lo:.3f}, {hi:.3f}]"


def diff_ci(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], seed: int = 0) -> str:
    """Mean of a - b over the same queries, with its paired 95 % bootstrap interval (1,000 resamples)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (1000, len(a)))
    lo, hi = np.percentile((a[idx] - b[idx]).mean(1), [2.5, 97.5])
    return f"{(a - b).mean():+.3f} [{lo:+.3f}, {hi:+.3f}]"


def votes_matrix(q: F, examples: F, owners: np.ndarray[Any, Any], n_tools: int) -> F:
    sims = q @ examples.T
    top = np.argpartition(-sims, K - 1, axis=1)[:, :K]
    w = np.maximum(np.take_along_axis(sims, top, 1), 0) ** 3
    out = np.zeros((len(q), n_tools), np.float32)
    np.add.at(out, (np.repeat(np.arange(len(q)), K), owners[top].ravel()), w.ravel())
    return out


@dataclasses.dataclass
class Catalog:
    name: str
    items: list[CatalogItem]
    keys: dict[str, int]
    sets: dict[str, tuple[list[str], list[list[int]]]]
    train: tuple[list[str], list[list[int]]]


def load(ds: data.Dataset, split: str) -> Catalog:
    items = [i for s in parse_import(ds.servers) for i in server_items(s, lambda n, s=s: qualified_name(s.name, n))]
    keys = {f"{i.server}/{i.name}": n for n, i in enumerate(items)}

    def conv(queries: list[data.Query]) -> tuple[list[str], list[list[int]]]:
        return [q.text for q in queries], [[keys[k] for k in q.relevant] for q in queries]

    sets = {split: conv(getattr(ds, split))}
    if split == "test":
        sets.update({name: conv(qs) for name, qs in ds.extra_test.items()})
    return Catalog(ds.name, items, keys, sets, conv(ds.train))


def two_intent_probe(cat: Catalog) -> tuple[list[str], list[list[int]]]:
    """Dev-only stand-in for the two-tool test set: pairs of dev queries of different tools."""
    texts, rel = cat.sets["dev"]
    rng = np.random.default_rng(1)
    out_t, out_r = [], []
    while len(out_t) < 400:
        a, b = (int(x) for x in rng.choice(len(texts), 2, replace=False))
        if not set(rel[a]) & set(rel[b]):
            out_t.append(f"{texts[a].rstrip('?.!')} and also {texts[b]}")
            out_r.append(rel[a] + rel[b])
    return out_t, out_r


def no_params(item: CatalogItem) -> CatalogItem:
    return dataclasses.replace(item, input_schema=None)


def load_sampled(ds: data.Dataset, split: str, max_queries: int) -> Catalog:
    """`load`, plus the two-intent probe on dev, each query set sampled to `max_queries` (0: all; seed 7)."""
    cat = load(ds, split)
    if split == "dev":
        cat.sets["two-intent probe"] = two_intent_probe(cat)
    if max_queries:
        rng = np.random.default_rng(7)
        for name, (t, r) in list(cat.sets.items()):
            if len(t) > max_queries:
                idx = rng.choice(len(t), max_queries, replace=False)
                cat.sets[name] = ([t[i] for i in idx], [r[i] for i in idx])
    return cat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", choices=["dev", "test"], default="dev")
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--only", default="", help="'final': only the report rows (baselines, today, new stack)")
    parser.add_argument("--with-examples", action="store_true")
    parser.add_argument("--max-queries", type=int, default=0, help="sample this many queries per set (0: all)")
    args = parser.parse_args()
    encoders = {"fp32": LocalMiniLM(), "int8": LocalMiniLM(precision="int8")}
    conn = psycopg.connect(embedded_url(Path(tempfile.mkdtemp(prefix="isa-zs-"))), autocommit=True)
    for ds in (data.metatool(), data.toollens()):
        cat = load_sampled(ds, args.split, args.max_queries)
        texts: dict[str, Callable[[CatalogItem], CatalogItem]] = {"params": lambda i: i, "no params": no_params}
        tool_vecs: dict[tuple[str, str], F] = {}
        docs: dict[tuple[str, str], list[dict[str, float]]] = {}
        for tname, fn in texts.items():
            items = [fn(i) for i in cat.items]
            for ename, enc in encoders.items():
                tool_vecs[tname, ename] = embed(enc, [embed_text(i) for i in items], args.cache)
            for cfg in ("english", "simple"):
                docs[tname, cfg] = lexemes(conn, [[name_text(i), i.description, extra_text(i)] for i in items], cfg)
        ex_vecs: dict[str, tuple[F, np.ndarray[Any, Any]]] = {}
        if args.with_examples:
            tt, tr = cat.train
            owners = np.array([t for r in tr for t in r])
            for ename, enc in list(encoders.items())[:1]:  # the votes' weight does not depend on the encoder
                v = embed(enc, tt, args.cache)
                ex_vecs[ename] = (np.vstack([v[i] for i, r in enumerate(tr) for _ in r]), owners)
        for set_name, (qtexts, rel) in cat.sets.items():
            print(f"\n## {cat.name} {set_name}: {len(qtexts)} queries, {len(cat.items)} tools", flush=True)
            qv = {ename: embed(enc, qtexts, args.cache) for ename, enc in encoders.items()}
            qlex = {cfg: lexemes(conn, [[t] for t in qtexts], cfg) for cfg in ("english", "simple")}
            rows: list[tuple[str, F]] = []

            def arms(tname: str, ename: str, cfg: str, ctx: Any = (qv, qlex, tool_vecs, docs)) -> tuple[F, F]:
                qv_, qlex_, tool_vecs_, docs_ = ctx
                dense: F = qv_[ename] @ tool_vecs_[tname, ename].T
                return dense, bm25(docs_[tname, cfg], qlex_[cfg])

            d, lx = arms("params", "fp32", "english")
            rows += [("BM25F alone (english)", lx), ("MiniLM fp32 alone", d)]
            rows.append(("today: 0.7 cos + 0.3 bm25/max", rank_scores("max", d, lx)))
            if args.only != "final":
                dn, lxn = arms("no params", "fp32", "english")
                rows += [
                    ("no params: BM25F alone", lxn),
                    ("no params: MiniLM alone", dn),
                    ("no params: z 0.7/0.3", rank_scores("z", dn, lxn)),
                    ("BM25F alone (simple, unstemmed)", arms("params", "fp32", "simple")[1]),
                    ("z 0.7/0.3, simple (unstemmed)", rank_scores("z", *arms("params", "fp32", "simple"))),
                    ("RRF k=60 (candidates)", rank_scores("rrf", d, lx)),
                ]
                for w in (0.5, 0.6, 0.7, 0.8):
                    rows.append((f"z-score {w:.1f} dense + {1 - w:.1f} bm25", rank_scores("z", d, lx, w)))
                d8, _ = arms("params", "int8", "english")
                rows.append(("MiniLM int8 alone", d8))
            d8, _ = arms("params", "int8", "english")
            rows.append(("new: z 0.7/0.3, int8", rank_scores("z", d8, lx)))
            rows.append(("new: z 0.7/0.3, fp32", rank_scores("z", d, lx)))
            if ex_vecs:
                for ename, dd in (("fp32", d), ("int8", d8)):
                    if ename not in ex_vecs:
                        continue
                    ev, owners = ex_vecs[ename]
                    vt = votes_matrix(qv[ename], ev, owners, len(cat.items))
                    rows.append((f"examples {ename}: today + 1 votes", rank_scores("max", dd, lx, votes=vt)))
                    for wx in (1.0, 2.0, 4.0, 8.0):
                        rows.append((f"examples {ename}: z + {wx:g} votes", rank_scores("z", dd, lx, votes=vt, wx=wx)))
            for label, s in rows:
                m = per_query(s, rel)
                print(
                    f"  {label:<36} R@1 {ci(m['R@1'])}  R@10 {ci(m['R@10'])}  nDCG@10 {ci(m['nDCG@10'])}"
                    f"  all@10 {ci(m['all@10'])}",
                    flush=True,
                )


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"\n{time.perf_counter() - t0:.0f} s")
