"""Choose the ranking weights on the dev splits, and measure (optionally write) a learned query adapter.

    .venv/bin/python tests/bench/train_discovery.py [--cache /tmp/discovery-cache] [--write-adapter out.npz]

Part 1 (fusion and example votes) scores a combined catalog (both datasets' tools, both train splits as
examples) the way the SQL does (isa/core/search.py), with BM25F over the lexemes Postgres's
to_tsvector('english') produces (an embedded Postgres in a temporary folder), on the dev splits and on a
two-intent probe made of pairs of MetaTool dev queries. Part 2 is the adapter.

Everything is fitted on the train split and chosen on the dev split (discovery_data.py); the test split is
never read here. Tool texts are the product's own (isa.catalog.text.embed_text on the imported items).

The adapter (q' = normalise(q + q A), softmax over the catalog, Adam, L2 on A) is measured in-domain and
across datasets. It is not shipped as a default: trained on ToolLens it makes MetaTool worse and vice versa,
i.e. it learns the catalog it was trained on. Nearest-example votes give the same in-domain gain and cannot hurt
a catalog without examples, so they are the default (docs/discovery.md). `--write-adapter` writes an .npz that
`[catalog] adapter_path` loads, for a deployment whose own usage the adapter was trained on.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import discovery_data as data
from zero_shot_discovery import bm25, lexemes  # the same offline BM25 as the zero-shot bench

from isa.catalog.importer import parse_import, server_items
from isa.catalog.text import embed_text, extra_text, name_text, qualified_name
from isa.core.embedded import embedded_url
from isa.core.embeddings import LocalMiniLM

F = np.ndarray[Any, np.dtype[np.float32]]


def embed(model: LocalMiniLM, texts: list[str], cache: Path | None, name: str) -> F:
    path = cache / f"{name}.npy" if cache else None
    if path and path.exists():
        out: F = np.load(path)
        if len(out) == len(texts):
            return out
    out = model.embed_batch(texts)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


def metrics(scores: F, rel: list[list[int]]) -> dict[str, float]:
    top = np.argsort(-scores, axis=1)[:, :10]
    out = {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "nDCG@10": 0.0}
    for row, r in zip(top, rel, strict=True):
        want = set(r)
        for k in (1, 5, 10):
            out[f"R@{k}"] += len(want & set(row[:k].tolist())) / len(want)
        dcg = sum(1 / math.log2(i + 2) for i, t in enumerate(row) if t in want)
        out["nDCG@10"] += dcg / sum(1 / math.log2(i + 2) for i in range(min(len(want), 10)))
    return {k: round(v / len(rel), 4) for k, v in out.items()}


def train_adapter(
    tasks: list[tuple[F, F, list[list[int]]]],
    epochs: int = 8,
    lr: float = 1e-3,
    tau: float = 0.05,
    lam: float = 1e-3,
    batch: int = 256,
) -> F:
    """Softmax cross-entropy over each task's catalog; gradients by hand (numpy only)."""
    dim = tasks[0][0].shape[1]
    a = np.zeros((dim, dim), np.float32)
    m, v = np.zeros_like(a), np.zeros_like(a)
    rng = np.random.default_rng(0)
    step = 0
    for _ in range(epochs):
        order = [
            (t, idx)
            for t, (q, _, _) in enumerate(tasks)
            for idx in np.array_split(rng.permutation(len(q)), max(1, len(q) // batch))
        ]
        rng.shuffle(order)  # type: ignore[arg-type]
        for t, idx in order:
            q_all, tools, rel = tasks[t]
            q = q_all[idx]
            u = q + q @ a
            norm = np.linalg.norm(u, axis=1, keepdims=True)
            qp = u / norm
            logits = qp @ tools.T / tau
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            y = np.zeros_like(p)
            for row, i in enumerate(idx):
                y[row, rel[i]] = 1.0 / len(rel[i])
            g_qp = (p - y) @ tools / tau / len(idx)
            g_u = (g_qp - qp * (qp * g_qp).sum(1, keepdims=True)) / norm
            g = q.T @ g_u + lam * a
            step += 1
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            a -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    return a


def adapt(q: F, a: F) -> F:
    u = q + q @ a
    out: F = u / np.linalg.norm(u, axis=1, keepdims=True)
    return out


def fuse(dense: F, lex: F, lexical: float = 0.3) -> F:
    out: F = (1 - lexical) * dense + lexical * lex / np.maximum(lex.max(1, keepdims=True), 1e-9)
    return out


def votes(q: F, examples: F, owners: F, n_tools: int, k: int, p: float, norm: bool) -> F:
    sims = q @ examples.T
    top = np.argsort(-sims, axis=1)[:, :k]
    w = np.maximum(np.take_along_axis(sims, top, 1), 0) ** p
    out = np.zeros((len(q), n_tools), np.float32)
    np.add.at(out, (np.repeat(np.arange(len(q)), k), owners[top].ravel()), w.ravel())
    if norm:
        out /= np.maximum(w.sum(1, keepdims=True), 1e-9)
    return out


def all_in_10(scores: F, rel: list[list[int]]) -> float:
    top = np.argsort(-scores, axis=1)[:, :10]
    return round(float(np.mean([set(r) <= set(t.tolist()) for t, r in zip(top, rel, strict=True)])), 4)


def tune_fusion(model: LocalMiniLM, cache: Path | None, loaded: dict[str, Any], raw: dict[str, Any]) -> None:
    """Part 1: dense, BM25F, RRF, weighted fusion and example votes on the combined catalog's dev splits."""
    offsets, tools, docs = {}, [], []
    for name, (t, _) in loaded.items():
        offsets[name] = sum(len(x) for x in tools)
        tools.append(t)
        docs += [[f[0], f[1], f[2]] for f in raw[name]["fields"]]
    catalog = np.vstack(tools)
    # Postgres does the tokenising, so the terms are the ones the SQL ranks on. The server stops when we exit.
    conn = psycopg.connect(embedded_url(Path(tempfile.mkdtemp(prefix="isa-train-"))))
    doc_lex = lexemes(conn, docs, "english")
    ex_q, ex_owner = [], []
    for name, (_, split) in loaded.items():
        q, rel = split["train"]
        for i, r in enumerate(rel):
            ex_q += [q[i]] * len(r)
            ex_owner += [offsets[name] + t for t in r]
    examples, owners = np.vstack(ex_q), np.array(ex_owner)
    meta = raw["metatool"]
    rng = np.random.default_rng(1)
    pairs: list[tuple[int, int]] = []
    dev_rel = loaded["metatool"][1]["dev"][1]
    while len(pairs) < 400:
        a, b = (int(x) for x in rng.choice(len(dev_rel), 2, replace=False))
        if not set(dev_rel[a]) & set(dev_rel[b]):
            pairs.append((a, b))
    pair_texts = [f"{meta['dev_texts'][a].rstrip('?.!')} and also {meta['dev_texts'][b]}" for a, b in pairs]
    sets = {
        "metatool dev": (loaded["metatool"][1]["dev"][0], meta["dev_texts"], dev_rel),
        "metatool two-intent probe": (
            embed(model, pair_texts, cache, "metatool_pairs"),
            pair_texts,
            [dev_rel[a] + dev_rel[b] for a, b in pairs],
        ),
        "toollens dev": (
            loaded["toollens"][1]["dev"][0],
            raw["toollens"]["dev_texts"],
            [[offsets["toollens"] + t for t in r] for r in loaded["toollens"][1]["dev"][1]],
        ),
    }
    for label, (q, texts, rel) in sets.items():
        dense = q @ catalog.T
        lex = bm25(doc_lex, lexemes(conn, [[t] for t in texts], "english"))
        ranks = [np.argsort(np.argsort(-m, axis=1), axis=1) for m in (dense, lex)]
        rrf: F = sum(1.0 / (60 + r + 1) for r in ranks)  # type: ignore[assignment]
        base = fuse(dense, lex)
        print(f"\n{label} (combined catalog of {len(catalog)} tools, {len(examples)} examples)")
        for name, s in (("dense", dense), ("BM25F", lex), ("RRF k=60", rrf), ("0.7 cos + 0.3 bm25/max", base)):
            print(f"  {name:<34} {metrics(s, rel)} all@10 {all_in_10(s, rel)}")
        for k, p, norm, w in ((40, 3, False, 1.0), (40, 3, False, 4.0), (40, 3, True, 4.0), (20, 1, False, 1.0)):
            s = base + w * votes(q, examples, owners, len(catalog), k, p, norm)
            print(f"  + votes K={k} p={p} w={w} norm={norm!s:<5} {metrics(s, rel)} all@10 {all_in_10(s, rel)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", type=Path, default=None, help="keep embeddings here between runs")
    parser.add_argument("--write-adapter", type=Path, default=None)
    parser.add_argument("--skip-adapter", action="store_true", help="part 1 only")
    args = parser.parse_args()
    model = LocalMiniLM()
    loaded: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    for ds in (data.metatool(), data.toollens()):
        items = [i for s in parse_import(ds.servers) for i in server_items(s, lambda n, s=s: qualified_name(s.name, n))]
        keys = {f"{i.server}/{i.name}": n for n, i in enumerate(items)}
        raw[ds.name] = {
            "fields": [(name_text(i), i.description, extra_text(i)) for i in items],
            "dev_texts": [q.text for q in ds.dev],
        }
        tools = embed(model, [embed_text(i) for i in items], args.cache, f"{ds.name}_tools")
        split = {}
        for name in ("train", "dev"):
            queries = getattr(ds, name)
            vectors = embed(model, [q.text for q in queries], args.cache, f"{ds.name}_{name}")
            split[name] = (vectors, [[keys[k] for k in q.relevant] for q in queries])
        loaded[ds.name] = (tools, split)
        dev_q, dev_rel = split["dev"]
        print(f"{ds.name} dev, dense alone: {metrics(dev_q @ tools.T, dev_rel)}")
    tune_fusion(model, args.cache, loaded, raw)
    if args.skip_adapter:
        return
    adapters = {
        "joint": train_adapter([(s["train"][0], t, s["train"][1]) for t, s in loaded.values()]),
        **{f"{n} only": train_adapter([(s["train"][0], t, s["train"][1])]) for n, (t, s) in loaded.items()},
    }
    for label, a in adapters.items():
        for name, (tools, split) in loaded.items():
            dev_q, dev_rel = split["dev"]
            print(f"adapter trained on {label:<14} -> {name} dev: {metrics(adapt(dev_q, a) @ tools.T, dev_rel)}")
    if args.write_adapter:
        np.savez(args.write_adapter, A=adapters["joint"].astype(np.float32), model=np.array(model.model_name))
        print(f"wrote {args.write_adapter}")


if __name__ == "__main__":
    main()
