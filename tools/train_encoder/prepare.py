"""Step 1 of 3 (isa's venv): the training splits as JSON for the torch-side trainer.

    .venv/bin/python tools/train_encoder/prepare.py --out /tmp/enc/data.json

For each dataset (tests/bench/discovery_data.py: the same hash splits as every benchmark; `mcp` is split by server
and only its train servers' tools are written, so no dev or test tool text is seen, not even as a negative) it
writes the catalog
(each tool's key, server and the exact text isa embeds, `embed_text`), the TRAIN queries only with their relevant
tools, each tool's 10 nearest other tools under the stock int8 MiniLM (the hard negatives), and a SHA-256 of the
train split (ids and texts, sorted) for the model card. Dev and test queries are never written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "bench"), str(ROOT)]

import discovery_data as data  # noqa: E402

from isa.catalog.importer import parse_import, server_items  # noqa: E402
from isa.catalog.text import embed_text, qualified_name  # noqa: E402
from isa.core.embeddings import LocalMiniLM  # noqa: E402

NEIGHBOURS = 10


def split_hash(queries: list[data.Query]) -> str:
    lines = sorted(f"{q.id}\t{q.text}\t{','.join(sorted(q.relevant))}" for q in queries)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    stock = LocalMiniLM(precision="int8")
    out = {}
    for ds in (data.metatool(), data.toollens(), data.mcp_servers()):
        servers = parse_import(data.train_servers(ds))  # `mcp`: only its train servers' tools
        items = [i for s in servers for i in server_items(s, lambda n, s=s: qualified_name(s.name, n))]
        keys = [f"{i.server}/{i.name}" for i in items]
        texts = [embed_text(i) for i in items]
        vecs = stock.embed_batch(texts)
        sims = vecs @ vecs.T
        np.fill_diagonal(sims, -1)
        near = np.argsort(-sims, axis=1)[:, :NEIGHBOURS]
        index = {k: n for n, k in enumerate(keys)}
        out[ds.name] = {
            "tools": [{"key": k, "server": i.server, "text": t} for k, i, t in zip(keys, items, texts, strict=True)],
            "near": near.tolist(),
            "train": [{"text": q.text, "relevant": sorted(index[k] for k in q.relevant)} for q in ds.train],
            "train_sha256": split_hash(ds.train),
            "dev_sha256": split_hash(ds.dev),
            "test_sha256": split_hash(ds.test),
        }
        print(ds.name, len(keys), "tools,", len(ds.train), "train queries", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out))


if __name__ == "__main__":
    main()
