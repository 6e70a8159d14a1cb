"""Every source format, URLs through the egress guard, dropping data, and a node without a model."""

from __future__ import annotations

import copy
import io
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from openpyxl import Workbook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from isa.app import create_app
from isa.core.settings import Settings
from tests.analytics.conftest import Keys
from tests.analytics.helpers import call, ok, sales_csv, upload
from tests.support.mcp_servers import mcp_client, serve_asgi, sql

pytestmark = pytest.mark.anyio


def parquet_bytes(tmp: Path) -> bytes:
    target = tmp / "cities.parquet"
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT * FROM (VALUES ('Lyon', 522000, 47.9), ('Nantes', 320000, 65.2), ('Lille', 236000, 34.8))"
        f" AS t(city, population, area_km2)) TO '{target}' (FORMAT parquet)"
    )
    con.close()
    return target.read_bytes()


def workbook() -> bytes:
    book = Workbook()
    first = book.active
    assert first is not None
    first.title = "Stock"
    first.append(["SKU", "Units on hand"])
    for i in range(1, 6):
        first.append([f"sku-{i}", i * 10])
    second = book.create_sheet("Suppliers")
    second.append(["Supplier", "Country"])
    second.append(["Acme", "FR"])
    second.append(["Globex", "DE"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def data_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A web server on loopback with a Parquet file and a JSON Lines file to ingest by URL."""
    files = {
        "/cities.parquet": (parquet_bytes(tmp_path_factory.mktemp("pq")), "application/octet-stream"),
        "/events.jsonl": (b'{"kind": "click", "n": 3}\n{"kind": "view", "n": 5}\n', "application/x-ndjson"),
        "/redirect": (b"", ""),
    }

    async def serve(request: Request) -> Response:
        if request.url.path == "/redirect":
            return Response(status_code=302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
        body, ctype = files.get(request.url.path, (b"", ""))
        return Response(body, media_type=ctype) if body else Response(status_code=404)

    app = Starlette(routes=[Route("/{path:path}", serve)])
    with serve_asgi(app) as url:
        yield url


@pytest.fixture(scope="module")
def plain_node(settings: Settings, db_url: str, keys: Keys) -> Iterator[str]:
    """An mcp node without a model; URLs on 127.0.0.1 are opened on purpose (analytics.allow_hosts)."""
    raw = copy.deepcopy(settings.raw)
    raw["analytics"] = {**raw.get("analytics", {}), "allow_hosts": ["127.0.0.1"]}
    with serve_asgi(create_app(settings.model_copy(update={"raw": raw}), "mcp", database_url=db_url)) as url:
        yield url


async def test_tsv_json_lines_parquet_and_every_excel_sheet_become_tables(
    plain_node: str, keys: Keys, tmp_path: Path
) -> None:
    pq = upload(
        plain_node, "ana-alice", keys.alice, "cities.parquet", parquet_bytes(tmp_path), "application/octet-stream"
    )
    out = await ok(plain_node, keys.alice, "ingest_data_source", {"source_path": pq, "database_name": "formats"})
    assert out["source"]["type"] == "parquet" and out["tables"][0]["rows"] == 3
    tsv = upload(plain_node, "ana-alice", keys.alice, "orders.tsv", b"id\tqty\n1\t4\n2\t6\n", "text/plain")
    out = await ok(plain_node, keys.alice, "ingest_data_source", {"source_path": tsv, "database_name": "formats"})
    assert [(t["table_name"], t["rows"], [c["name"] for c in t["columns"]]) for t in out["tables"]] == [
        ("orders", 2, ["id", "qty"])
    ]
    lines = upload(plain_node, "ana-alice", keys.alice, "log.jsonl", b'{"a": 1}\n{"a": 2}\n{"a": 3}\n', "text/plain")
    out = await ok(plain_node, keys.alice, "ingest_data_source", {"source_path": lines, "database_name": "formats"})
    assert out["source"]["type"] == "jsonl" and out["tables"][0]["rows"] == 3
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = upload(plain_node, "ana-alice", keys.alice, "inventory.xlsx", workbook(), xlsx)
    out = await ok(plain_node, keys.alice, "ingest_data_source", {"source_path": book, "database_name": "formats"})
    tables = {t["table_name"]: t for t in out["tables"]}
    assert set(tables) == {"inventory_stock", "inventory_suppliers"}
    assert tables["inventory_stock"]["rows"] == 5
    assert [c["name"] for c in tables["inventory_stock"]["columns"]] == ["sku", "units_on_hand"]
    assert out["source"]["type"] == "excel"


async def test_a_url_is_fetched_through_the_egress_guard(plain_node: str, keys: Keys, data_server: str) -> None:
    out = await ok(
        plain_node,
        keys.alice,
        "ingest_data_source",
        {"source_path": f"{data_server}/cities.parquet", "database_name": "web"},
    )
    (table,) = out["tables"]
    assert table["table_name"] == "cities" and table["rows"] == 3 and out["source"]["type"] == "parquet"
    out = await ok(
        plain_node,
        keys.alice,
        "ingest_data_source",
        {"source_path": f"{data_server}/events.jsonl", "database_name": "web"},
    )
    assert out["tables"][0]["rows"] == 2
    # A redirect to an internal address is vetted again and refused.
    hop = await call(plain_node, keys.alice, "ingest_data_source", {"source_path": f"{data_server}/redirect"})
    assert hop.is_error and hop.code == "url_blocked", hop.text
    missing = await call(plain_node, keys.alice, "ingest_data_source", {"source_path": f"{data_server}/nothing.csv"})
    assert missing.is_error and missing.code == "url_fetch_failed"


async def test_without_a_model_ingestion_and_search_work_and_questions_say_a_model_is_needed(
    plain_node: str, keys: Keys
) -> None:
    file_id = upload(plain_node, "ana-bob", keys.bob, "sales.csv", sales_csv(40), "text/csv")
    both = await ok(
        plain_node,
        keys.bob,
        "process_data_source_and_query",
        {"source_path": file_id, "natural_language_query": "revenue by region", "database_name": "nomodel"},
    )
    assert both["ingestion"]["tables"][0]["rows"] == 40
    assert both["query"]["code"] == "model_not_configured"
    found = await ok(plain_node, keys.bob, "search_available_data", {"search_query": "net revenue", "limit": 2})
    assert found["results"][0]["name"] == "sales.net_revenue_eur"
    asked = await call(plain_node, keys.bob, "query_with_language", {"natural_language_query": "revenue by region"})
    assert asked.is_error and asked.code == "model_not_configured" and "language model" in asked.body["error"]
    status = await ok(plain_node, keys.bob, "get_analytics_status")
    assert status["model_configured"] is False and status["can"]["query_with_language"] is False
    assert "nomodel" in status["databases"] and status["tables"] >= 1


async def test_unreadable_sources_fail_clearly_and_store_nothing(plain_node: str, keys: Keys, db_url: str) -> None:
    before = sql(db_url, "SELECT count(*) AS n FROM analytics_tables WHERE user_id = 'ana-bob'")[0]["n"]
    empty = upload(plain_node, "ana-bob", keys.bob, "empty.csv", b"only,a,header\n", "text/csv")
    out = await call(plain_node, keys.bob, "ingest_data_source", {"source_path": empty})
    assert out.is_error and out.code == "unreadable_source", out.text
    broken = upload(plain_node, "ana-bob", keys.bob, "broken.json", b'{"a": [1, 2', "text/plain")
    out = await call(plain_node, keys.bob, "ingest_data_source", {"source_path": broken, "source_type": "json"})
    assert out.is_error and out.code == "unreadable_source", out.text
    wrong = await call(plain_node, keys.bob, "ingest_data_source", {"source_path": broken, "source_type": "sqlite"})
    assert wrong.is_error and wrong.code == "invalid_source"
    assert sql(db_url, "SELECT count(*) AS n FROM analytics_tables WHERE user_id = 'ana-bob'")[0]["n"] == before


async def test_dropping_a_table_removes_its_rows_metadata_and_stored_data(
    plain_node: str, keys: Keys, db_url: str, settings: Settings
) -> None:
    file_id = upload(plain_node, "ana-bob", keys.bob, "scratch.csv", b"x,y\n1,2\n3,4\n", "text/csv")
    await ok(plain_node, keys.bob, "ingest_data_source", {"source_path": file_id, "database_name": "scratch"})
    (row,) = sql(
        db_url, "SELECT storage_key FROM analytics_tables WHERE user_id = 'ana-bob' AND database_name = 'scratch'"
    )
    stored = settings.data_dir / "files" / "objects" / row["storage_key"]
    assert stored.exists()
    out = await ok(plain_node, keys.bob, "drop_data_source", {"database_name": "scratch", "table_name": "scratch"})
    assert out["dropped_tables"] == 1
    assert not stored.exists()
    assert (
        sql(
            db_url,
            "SELECT count(*) AS n FROM db_meta_embedding WHERE user_id = 'ana-bob' AND database_source = 'scratch'",
        )[0]["n"]
        == 0
    )
    again = await call(plain_node, keys.bob, "drop_data_source", {"database_name": "scratch"})
    assert again.is_error and again.code == "not_found"


async def test_the_csv_analyze_prompt_sends_the_agent_to_the_analytics_tools(plain_node: str, keys: Keys) -> None:
    async with mcp_client(plain_node, keys.alice) as client:
        prompt = await client.get_prompt("csv_analyze_prompt", {"prompt": "find trends", "csv_url": "file-123"})
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert "file-123" in text
    assert all(tool in text for tool in ("ingest_data_source", "search_available_data", "query_with_language"))
