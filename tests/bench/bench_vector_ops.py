"""The per-row cost of pgvector's operators on two servers, side by side: the embedded one and --url.

Run: .venv/bin/python tests/bench/bench_vector_ops.py --url "$(tests/bench/supabase_like.sh url DIR)" [--rows 20000]

Memory search's costs are a scan of one user's rows plus, per row, a cosine (`<=>`) of 384 floats or a Hamming
distance of sign bits. This times those alone, serial (no parallel workers, JIT off) so the servers' builds compare:
a table of --rows random 384-dimension vectors on each server, and per round each statement once on each server in
turn; p50 of the rounds, and the --url server's time over the embedded one's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.core.embedded import embedded_url

STATEMENTS = {
    "scan only: count(*)": "SELECT count(*) FROM vec_bench",
    "read each vector: max(vector_dims(v))": "SELECT max(vector_dims(v)) FROM vec_bench",
    "cosine: max(v <=> q)": "SELECT max(v <=> %(q)s::vector) FROM vec_bench",
    "sign bits: max(binary_quantize(v) <~> bits(q))": (
        "SELECT max(binary_quantize(v) <~> binary_quantize(%(q)s::vector)) FROM vec_bench"
    ),
    "stored bits: max(b <~> bits(q))": "SELECT max(b <~> binary_quantize(%(q)s::vector)) FROM vec_bench",
}


def prepare(url: str, rows: int) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    conn.execute("CREATE TABLE vec_bench (v vector(384), b bit(384))")
    conn.execute(
        "INSERT INTO vec_bench (v)"
        " SELECT (SELECT array_agg(random() - 0.5) FROM generate_series(1, 384) WHERE g > 0)::vector"
        " FROM generate_series(1, %s) g",
        (rows,),
    )
    conn.execute("UPDATE vec_bench SET b = binary_quantize(v)")
    conn.execute("VACUUM ANALYZE vec_bench")
    conn.execute("SET max_parallel_workers_per_gather = 0")
    conn.execute("SET jit = off")
    for stmt in STATEMENTS.values():  # warm the cache
        conn.execute(stmt, {"q": "[" + ",".join(["0.1"] * 384) + "]"})
    return conn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the other server (a URL the bench can CREATE DATABASE with)")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    name = f"isa_vecbench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(args.url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with tempfile.TemporaryDirectory(prefix="isa-bench-vec-") as tmp:
            servers = {"embedded": prepare(embedded_url(Path(tmp)), args.rows)}
            servers["--url"] = prepare(make_conninfo(args.url, dbname=name), args.rows)
            for label, conn in servers.items():
                version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
                print(f"{label}: PostgreSQL {conn.info.server_version}, pgvector {version[0] if version else '?'}")
            times: dict[tuple[str, str], list[float]] = {}
            q = "[" + ",".join(f"{(i % 7 - 3) / 10}" for i in range(384)) + "]"
            for _ in range(args.rounds):
                for stmt_name, stmt in STATEMENTS.items():
                    for label, conn in servers.items():
                        t = time.perf_counter()
                        conn.execute(stmt, {"q": q})
                        times.setdefault((stmt_name, label), []).append((time.perf_counter() - t) * 1000)
            print(f"\n{args.rows} rows, p50 ms of {args.rounds} rounds")
            print(f"{'statement':48} {'embedded':>9} {'--url':>9} {'url/emb':>8}")
            for stmt_name in STATEMENTS:
                emb = statistics.median(times[(stmt_name, "embedded")])
                url = statistics.median(times[(stmt_name, "--url")])
                print(f"{stmt_name:48} {emb:9.2f} {url:9.2f} {url / emb:8.2f}")
            for conn in servers.values():
                conn.close()
    finally:
        with psycopg.connect(args.url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
