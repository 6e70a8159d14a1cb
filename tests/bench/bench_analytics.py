"""Data analytics: schema-linking recall, 1,000,000-row ingestion (time, peak RSS), query p50 — each beside a
baseline measured in the same run — and, with --provider, text-to-SQL accuracy on a labelled set.

    .venv/bin/python tests/bench/bench_analytics.py [--rows 1000000] [--queries 20]
    .venv/bin/python tests/bench/bench_analytics.py --provider https://host/v1 --model gpt-4.1-mini  (key: $BENCH_KEY)

Everything goes through AnalyticsService (the code of the tools) on a fresh embedded Postgres and local storage:
files are stored through FilesService.upload, ingested by file id.

- Schema linking: three generated multi-table datasets (shop, hr, logistics; 11 tables, 60 columns) and 30
  hand-written questions (tests/bench/data/analytics_questions.jsonl), each labelled with the columns its SQL
  needs. Recall@5 = share of needed columns among the top 5 columns of the metadata search (the ranking of
  search_available_data / query_with_language), against plain BM25 (k1 1.2, b 0.75) over each column's
  "table column" name words, same questions, same run.
- Ingestion: a generated 1M-row CSV (id, region, product, amount, day), uploaded and then ingested; wall time
  and how far this process's RSS rose above its level before (sampled every 20 ms), against a baseline of
  csv.reader loading the same file into a Python list (in a child process: its peak RSS minus its RSS before).
- Query p50: a GROUP BY over the 1M rows through the service's path (checked SQL, locked connection, views),
  against the same SQL on a plain DuckDB connection over the same Parquet file.
- Text-to-SQL (--provider): each question's schema prompt is built the way query_with_language builds it; the
  model's SQL is checked and run, and its result compared with the labelled SQL's (as sorted multisets of rows,
  numbers rounded to 2 places). Without --provider this part is skipped (tests run its plumbing with the fake).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.analytics.engine import locked_connection
from isa.analytics.service import SYSTEM_PROMPT, AnalyticsService, extract_sql
from isa.analytics.settings import AnalyticsSettings
from isa.analytics.sqlcheck import UnsafeSql, check_sql
from isa.analytics.store import list_tables
from isa.core.db import Database
from isa.core.embedded import embedded_url
from isa.core.embeddings import LocalMiniLM
from isa.core.migrations import migrate
from isa.core.settings import load_settings
from isa.core.storage import StorageSettings, build_storage
from isa.files.multipart import FilePart
from isa.files.service import FilesService
from isa.files.settings import FilesSettings

DATA = Path(__file__).parent / "data" / "analytics_questions.jsonl"
USER = "bench-analytics"
rng = random.Random(7)
DAY0 = date(2023, 1, 1)


def day(n: int) -> str:
    return (DAY0 + timedelta(days=n)).isoformat()


def datasets() -> dict[str, dict[str, list[list[Any]]]]:
    """Three small multi-table datasets, rows as lists with the header first."""
    countries = ["FR", "DE", "ES", "IT", "NL"]
    shop = {
        "customers": [["customer_id", "full_name", "email", "country", "signup_date", "loyalty_tier"]]
        + [
            [
                i,
                f"Name {i}",
                f"c{i}@example.{'org' if i % 3 else 'com'}",
                rng.choice(countries),
                day(i % 700),
                rng.choice(["bronze", "silver", "gold"]),
            ]
            for i in range(1, 201)
        ],
        "orders": [
            ["order_id", "customer_id", "order_date", "net_revenue_eur", "discount_eur", "shipping_country", "channel"]
        ]
        + [
            [
                i,
                rng.randint(1, 200),
                day(rng.randint(0, 700)),
                round(rng.uniform(5, 500), 2),
                round(rng.uniform(0, 20), 2),
                rng.choice(countries),
                rng.choice(["web", "app", "store"]),
            ]
            for i in range(1, 1001)
        ],
        "products": [["product_id", "product_name", "category", "unit_price_eur", "stock_quantity"]]
        + [
            [
                i,
                f"Product {i}",
                rng.choice(["toys", "books", "garden", "kitchen"]),
                round(rng.uniform(2, 300), 2),
                rng.randint(0, 500),
            ]
            for i in range(1, 81)
        ],
        "order_items": [["order_id", "product_id", "quantity", "line_total_eur"]]
        + [
            [rng.randint(1, 1000), rng.randint(1, 80), rng.randint(1, 5), round(rng.uniform(2, 900), 2)]
            for _ in range(2500)
        ],
    }
    hr = {
        "employees": [
            ["employee_id", "first_name", "last_name", "department_id", "hire_date", "job_title", "manager_id"]
        ]
        + [
            [
                i,
                f"First{i}",
                f"Last{i % 40}",
                rng.randint(1, 8),
                day(rng.randint(0, 2000)),
                rng.choice(["engineer", "analyst", "manager", "designer"]),
                None if i < 6 else rng.randint(1, 5),
            ]
            for i in range(1, 301)
        ],
        "departments": [["department_id", "department_name", "cost_center", "office_city"]]
        + [[i, f"Dept {i}", f"CC-{100 + i}", rng.choice(["Paris", "Berlin", "Madrid"])] for i in range(1, 9)],
        "salaries": [["employee_id", "annual_salary_usd", "bonus_usd", "effective_date"]]
        + [
            [i, rng.randint(40, 200) * 1000, rng.randint(0, 20) * 500, day(rng.randint(300, 700))]
            for i in range(1, 301)
        ],
        "absences": [["employee_id", "absence_type", "start_date", "days_absent"]]
        + [
            [
                rng.randint(1, 300),
                rng.choice(["sick", "vacation", "parental"]),
                day(rng.randint(0, 700)),
                rng.randint(1, 15),
            ]
            for _ in range(600)
        ],
    }
    logistics = {
        "shipments": [
            [
                "shipment_id",
                "warehouse_id",
                "carrier_id",
                "ship_date",
                "delivery_date",
                "weight_kg",
                "freight_cost_usd",
                "status",
            ]
        ]
        + [
            [
                i,
                rng.randint(1, 6),
                rng.randint(1, 5),
                day(d := rng.randint(0, 700)),
                day(d + rng.randint(1, 9)),
                round(rng.uniform(1, 900), 1),
                round(rng.uniform(10, 2000), 2),
                rng.choice(["delivered", "in_transit", "lost"]),
            ]
            for i in range(1, 1501)
        ],
        "warehouses": [["warehouse_id", "warehouse_city", "capacity_pallets", "manager_name"]]
        + [
            [i, rng.choice(["Lyon", "Hamburg", "Porto"]) + f" {i}", rng.randint(100, 5000), f"Manager {i}"]
            for i in range(1, 7)
        ],
        "carriers": [["carrier_id", "carrier_name", "on_time_rate", "contract_type"]]
        + [[i, f"Carrier {i}", round(rng.uniform(0.7, 0.99), 3), rng.choice(["spot", "annual"])] for i in range(1, 6)],
    }
    return {"shop": shop, "hr": hr, "logistics": logistics}


def to_csv(rows: list[list[Any]]) -> bytes:
    lines = [",".join("" if v is None else str(v) for v in row) for row in rows]
    return ("\n".join(lines) + "\n").encode()


async def store_file(files: FilesService, name: str, data: bytes) -> str:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1 << 20):
            yield data[start : start + (1 << 20)]

    row = await files.upload(USER, FilePart(name, "text/csv", chunks()), len(data))
    return row.id


async def store_path(files: FilesService, name: str, path: Path) -> str:
    async def chunks() -> AsyncIterator[bytes]:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                yield chunk

    row = await files.upload(USER, FilePart(name, "text/csv", chunks()), path.stat().st_size)
    return row.id


def bm25_rank(question: str, docs: dict[str, list[str]], k1: float = 1.2, b: float = 0.75) -> list[str]:
    """Plain BM25 over each column's name words (the baseline)."""
    terms = [t.strip("?,.'").lower() for t in question.split()]
    n = len(docs)
    avgdl = sum(len(d) for d in docs.values()) / n
    df = Counter(t for d in docs.values() for t in set(d))
    scores = {}
    for name, words in docs.items():
        tf = Counter(words)
        score = 0.0
        for t in terms:
            if t in tf:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                score += idf * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * len(words) / avgdl))
        scores[name] = score
    return sorted(scores, key=lambda k: -scores[k])


async def linking(service: AnalyticsService, questions: list[dict[str, Any]]) -> None:
    async with service.db.connection() as conn:
        tables = await list_tables(conn, USER)
    docs = {
        f"{t.table_name}.{c['name']}": [*t.table_name.split("_"), *c["name"].split("_")]
        for t in tables
        for c in t.columns
    }
    ours, base = [], []
    for q in questions:
        hits = await service._search(USER, q["question"], q["database"], 60)
        top = [h["entity_full_name"] for h in hits if h["entity_type"] == "column"][:5]
        in_db = {
            k: v
            for k, v in docs.items()
            if any(k.startswith(t.table_name + ".") for t in tables if t.database_name == q["database"])
        }
        top_bm25 = bm25_rank(q["question"], in_db)[:5]
        needed = set(q["columns"])
        ours.append(len(needed & set(top)) / len(needed))
        base.append(len(needed & set(top_bm25)) / len(needed))
    print(
        f"schema linking Recall@5 over {len(questions)} questions: metadata search {statistics.mean(ours):.3f}"
        f" vs BM25 over column names {statistics.mean(base):.3f}"
    )


def rss_mb() -> float:
    """This process's resident set now (Linux /proc), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """The highest RSS seen while a block runs (sampled every 20 ms in a thread), minus the RSS before it."""

    def __init__(self) -> None:
        self.base = self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def grew(self) -> float:
        return self.peak - self.base


NAIVE = """
import csv, sys
def rss():
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS:", "VmHWM:")):
            yield int(line.split()[1]) / 1024
before = list(rss())[1]
rows = list(csv.reader(open(sys.argv[1])))
print(list(rss())[0] - before)
"""


async def big(service: AnalyticsService, files: FilesService, tmp: Path, rows: int, queries: int) -> None:
    path = tmp / "big.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "region", "product", "amount", "day"])
        for i in range(rows):
            writer.writerow(
                [i, ("north", "south", "east", "west")[i % 4], f"p{i % 1000}", (i % 997) / 10, day(i % 700)]
            )
    size_mb = path.stat().st_size / 1e6
    file_id = await store_path(files, "big.csv", path)
    with RssSampler() as sampler:
        t0 = time.perf_counter()
        out = await service.ingest(USER, file_id, None, "bigdb")
        ingest_s = time.perf_counter() - t0
    grew = sampler.grew
    t0 = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", NAIVE, str(path)], capture_output=True, text=True, check=True)
    naive_s = time.perf_counter() - t0
    naive = float(child.stdout.strip().splitlines()[-1])
    print(
        f"ingest {rows} rows ({size_mb:.0f} MB CSV): {ingest_s:.1f} s, peak RSS grew {grew:.0f} MB"
        f" (rows: {out['tables'][0]['rows']}); baseline csv.reader into a list: {naive_s:.1f} s,"
        f" {naive:.0f} MB"
    )
    sql = "SELECT region, SUM(amount) AS total, COUNT(*) AS n FROM big GROUP BY region ORDER BY total DESC"
    async with service.db.connection() as conn:
        table = {t.table_name: t for t in await list_tables(conn, USER, "bigdb")}
    checked = check_sql(sql, table)
    ours = []
    for _ in range(queries):
        t0 = time.perf_counter()
        await service._run(USER, checked, table)
        ours.append(time.perf_counter() - t0)
    local = await service._local_copy(table["big"])
    con = duckdb.connect()
    con.execute(f"CREATE VIEW big AS SELECT * FROM read_parquet('{local}')")
    plain = []
    for _ in range(queries):
        t0 = time.perf_counter()
        con.execute(sql).fetchall()
        plain.append(time.perf_counter() - t0)
    opening = []
    view = [f"CREATE VIEW big AS SELECT * FROM read_parquet('{local}')"]
    for _ in range(queries):
        t0 = time.perf_counter()
        with locked_connection([local], service.limits, view):
            pass
        opening.append(time.perf_counter() - t0)
    p50, base = statistics.median(ours) * 1000, statistics.median(plain) * 1000
    print(f"  of which opening a fresh locked DuckDB with the view, p50: {statistics.median(opening) * 1000:.1f} ms")
    print(
        f"query p50 over {rows} rows ({queries} runs): {p50:.1f} ms through the service vs {base:.1f} ms plain"
        f" DuckDB on the same Parquet (x{p50 / base:.2f})"
    )


def canonical(rows: list[tuple[Any, ...]]) -> list[tuple[str, ...]]:
    def cell(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    return sorted(tuple(cell(v) for v in r) for r in rows)


async def accuracy(service: AnalyticsService, questions: list[dict[str, Any]], url: str, model: str) -> None:
    key = os.environ.get("BENCH_KEY", "")
    right = 0
    async with httpx.AsyncClient(timeout=120) as http:
        for q in questions:
            async with service.db.connection() as conn:
                tables = {t.table_name: t for t in await list_tables(conn, USER, q["database"])}
            prompt = f"Tables:\n{service._schema_text(list(tables.values()))}\n\nQuestion: {q['question']}"
            body = {
                "model": model,
                "temperature": 0,
                "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
            }
            answer = await http.post(
                url.rstrip("/") + "/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            sql = extract_sql(answer.json()["choices"][0]["message"]["content"] or "")
            try:
                got = await service._run(USER, check_sql(sql, tables), tables)
                gold = await service._run(USER, check_sql(q["sql"], tables), tables)
                ok = canonical(got.rows) == canonical(gold.rows)
            except (UnsafeSql, Exception) as exc:  # a refused or failing query counts as wrong
                ok = False
                print(f"  {q['id']}: {type(exc).__name__}")
            right += ok
    print(f"text-to-SQL execution accuracy ({model}): {right}/{len(questions)} = {right / len(questions):.2f}")


async def run(args: argparse.Namespace) -> None:
    questions = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    settings = load_settings("all")
    with tempfile.TemporaryDirectory(prefix="isa-bench-analytics-") as name:
        tmp = Path(name)
        url = embedded_url(tmp)
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO users (user_id, email, name) VALUES (%s, %s, 'bench')", (USER, f"{USER}@x.test"))
        db = Database(url, settings)
        await db.open()
        try:
            storage = build_storage(StorageSettings(backend="local", local_dir=str(tmp / "files")), tmp)
            files = FilesService(db, storage, FilesSettings(max_upload_bytes=200 * 1024**2, quota_bytes=10 * 1024**3))
            cfg = AnalyticsSettings(max_source_bytes=200 * 1024**2, query_timeout_seconds=120, memory_limit="1GB")
            service = AnalyticsService(db, storage, files, LocalMiniLM(), cfg, None, tmp / "analytics")
            for database, tables in datasets().items():
                for table, rows in tables.items():
                    file_id = await store_file(files, f"{table}.csv", to_csv(rows))
                    await service.ingest(USER, file_id, None, database)
            await linking(service, questions)
            if args.provider:
                await accuracy(service, questions, args.provider, args.model)
            else:
                print("text-to-SQL accuracy: skipped (needs --provider URL --model NAME, key in $BENCH_KEY)")
            if args.rows:
                await big(service, files, tmp, args.rows, args.queries)
        finally:
            await db.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the big CSV (0: skip that part)")
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--provider", default="", help="an OpenAI-wire base URL (…/v1) for the text-to-SQL part")
    ap.add_argument("--model", default="gpt-4.1-mini")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
