"""Cost of the relevance floor per clause (catalog.floor_per_clause) on /discover's in-process path.

    .venv/bin/python tests/bench/bench_clause_floor.py [--queries 200]

MetaTool's catalog (199 tools) on a fresh embedded database; the requests are MetaTool's two-tool queries (the
kind the clause floor is for) and single-tool dev queries. Two services over the same rows, floor per clause on
and off, no query-embedding cache (every request is cold: its clauses are embedded too), taking turns per
request. Prints p50 / p95 of each and the ratio, and how many requests had clauses. Quality is measured over HTTP
by bench_discovery.py (ISA_CATALOG__FLOOR_PER_CLAUSE=false for the baseline).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import discovery_data as data

from isa.auth.principal import Principal
from isa.catalog.importer import parse_import
from isa.catalog.service import CatalogService
from isa.catalog.settings import CatalogSettings
from isa.catalog.text import clauses
from isa.core.db import Database
from isa.core.embedded import embedded_url
from isa.core.embeddings import shared_minilm
from isa.core.migrations import migrate
from isa.core.settings import load_settings

READER = Principal("bench-reader", frozenset({"read"}), "api_key", None)


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


async def main(args: argparse.Namespace) -> None:
    ds = data.metatool()
    url = embedded_url(Path(tempfile.mkdtemp(prefix="isa-clause-")))
    migrate(url)
    db = Database(url, load_settings())
    await db.open()
    try:
        encoder = shared_minilm("tuned")
        on = CatalogService(db, encoder, CatalogSettings(floor_per_clause=True, query_cache_size=0))
        off = CatalogService(db, encoder, CatalogSettings(floor_per_clause=False, query_cache_size=0))
        await on.import_servers(parse_import(ds.servers))
        for name, queries in (("two-tool", ds.extra_test["multi"]), ("single-tool dev", ds.dev)):
            texts = [q.text for q in queries[: args.queries]]
            times: dict[str, list[float]] = {"on": [], "off": []}
            for text in texts[:5]:  # warm the statement caches and the encoder
                for svc in (on, off):
                    await svc.discover(text, {"tools": 10}, READER)
            for n, text in enumerate(texts):
                order = [("on", on), ("off", off)] if n % 2 else [("off", off), ("on", on)]
                for label, svc in order:
                    started = time.perf_counter()
                    await svc.discover(text, {"tools": 10}, READER)
                    times[label].append((time.perf_counter() - started) * 1000)
            split = sum(1 for t in texts if clauses(t))
            p50 = {k: statistics.median(v) for k, v in times.items()}
            print(
                f"{name}: {len(texts)} requests, {split} with clauses | floor per clause p50 {p50['on']:.2f} ms"
                f" p95 {pct(times['on'], 0.95):.2f} | request only p50 {p50['off']:.2f} ms"
                f" p95 {pct(times['off'], 0.95):.2f} | ratio {p50['on'] / p50['off']:.2f}",
                flush=True,
            )
    finally:
        await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=200)
    anyio.run(main, parser.parse_args())
