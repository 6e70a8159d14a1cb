"""Memory search on the embedded server and on another one (--url), each query on both in turn (issue #28).

Run: .venv/bin/python tests/bench/bench_memory_servers.py --url "$(tests/bench/supabase_like.sh url DIR)"
     [--rows 100000 --users 5 --queries 80]

bench_memory.py runs one server per process; on a shared machine two runs minutes apart differ by 2-3x whatever
the server. Here both servers hold the same kind of data (tests.support.memory_seed: random vectors, rows spread
over --users) and every query goes to both, the order swapped at each query, so both see the same machine: the
SQL shortlist (`store.search`, the path with memory.local_index_min_rows = 0) and the process-local index (the
default path). p50 / p95 wall ms, backend CPU p50 (/proc schedstat of each server's backend), and the --url
server's p50 over the embedded one's. Recall is bench_memory.py's job (the same SQL on both).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.memory.local_index import LocalIndex
from isa.memory.settings import MemorySettings
from isa.memory.store import Bits, Blend, Filters, Search, search
from tests.bench.bench_memory import database
from tests.support.memory_seed import MODEL, seed


def prepare(url: str, users: int, rows: int) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        seed(conn, users, rows // 5)
        conn.execute("VACUUM ANALYZE")
        version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        label = f"PostgreSQL {conn.info.server_version}, pgvector {version[0] if version else '?'}"
        print(f"{label}: seeded {rows} rows in {time.perf_counter() - t:.0f} s", flush=True)
        return label


async def measure(urls: dict[str, str], args: Any) -> dict[tuple[str, str], list[tuple[float, float]]]:
    settings = MemorySettings()
    bits = Bits(args.candidates, args.shortlist)
    rng = np.random.default_rng(1)
    queries = [[float(x) for x in v / np.linalg.norm(v)] for v in rng.normal(size=(args.queries, 384))]
    users = [f"bench-{i % args.users}" for i in range(args.queries)]
    conns = {
        k: await psycopg.AsyncConnection.connect(u, autocommit=True, row_factory=dict_row) for k, u in urls.items()
    }
    indexes = {k: LocalIndex(settings.local_index_min_rows, 1 << 31, 3600.0) for k in urls}
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def cpu(conn: Any) -> float:
        return int(Path(f"/proc/{conn.info.backend_pid}/schedstat").read_text().split()[0]) / 1e6

    async def call(server: str, path: str, i: int, record: bool = True) -> None:
        conn, q = conns[server], Search(users[i], queries[i], MODEL, Filters(), Blend(), 10)
        c, t = cpu(conn), time.perf_counter()
        if path == "SQL shortlist (local index off)":
            await search(conn, q, bits)
        else:
            await indexes[server].search(conn, q, bits)
        if record:
            out.setdefault((path, server), []).append(((time.perf_counter() - t) * 1000, cpu(conn) - c))

    paths = ("SQL shortlist (local index off)", "local index (the default)")
    for server in urls:  # warm: the local index learns the sizes, then loads the arrays; pages read once
        for i in range(args.users * 3):
            for path in paths:
                await call(server, path, i % args.queries, record=False)
    for i in range(args.queries):
        order = list(urls) if i % 2 == 0 else list(reversed(urls))
        for path in paths:
            for server in order:
                await call(server, path, i)
    for conn in conns.values():
        await conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the other server (a URL the bench can CREATE DATABASE with)")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=5)
    ap.add_argument("--queries", type=int, default=80)
    ap.add_argument("--candidates", type=int, default=MemorySettings().search_candidates)
    ap.add_argument("--shortlist", type=int, default=MemorySettings().search_shortlist)
    args = ap.parse_args()
    with contextlib.ExitStack() as stack:
        urls = {"embedded": stack.enter_context(database(None)), "--url": stack.enter_context(database(args.url))}
        labels = {k: prepare(u, args.users, args.rows) for k, u in urls.items()}
        with open("/proc/loadavg") as f:
            load0 = f.read().split()[:3]
        out = asyncio.run(measure(urls, args))
        with open("/proc/loadavg") as f:
            load1 = f.read().split()[:3]
    print(
        f"\n{args.rows // args.users} memories per user, {args.queries} queries, candidates {args.candidates},"
        f" shortlist {args.shortlist}; load average {' '.join(load0)} -> {' '.join(load1)}"
    )
    for k, label in labels.items():
        print(f"  {k}: {label}")
    print(f"{'path':34} {'embedded p50/p95 (CPU)':>26} {'--url p50/p95 (CPU)':>26} {'url/emb':>8} {'CPU':>6}")
    for path in dict.fromkeys(p for p, _ in out):
        cells, p50, c50 = [], [], []
        for server in urls:
            wall = np.array([w for w, _ in out[(path, server)]])
            cpu = np.array([c for _, c in out[(path, server)]])
            p50.append(float(np.percentile(wall, 50)))
            c50.append(float(np.percentile(cpu, 50)))
            cells.append(f"{p50[-1]:.2f} / {np.percentile(wall, 95):.2f} ({c50[-1]:.2f})")
        print(f"{path:34} {cells[0]:>26} {cells[1]:>26} {p50[1] / p50[0]:8.2f} {c50[1] / c50[0]:6.2f}")


if __name__ == "__main__":
    main()
