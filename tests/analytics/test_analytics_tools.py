"""The data-analytics tools over a real MCP client: files from the files API become tables, the fake provider
writes the SQL (good, bad, hostile), and nothing crosses from one user to another or out of the sandbox."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.analytics.conftest import MODEL, Keys
from tests.analytics.helpers import call, ok, revenue_by_region, sales_csv, upload
from tests.support.fake_openai import FakeOpenAI, Reply
from tests.support.mcp_servers import mcp_client, sql

pytestmark = pytest.mark.anyio

TOOLS = {
    "ingest_data_source",
    "query_with_language",
    "process_data_source_and_query",
    "search_available_data",
    "get_analytics_status",
    "list_data_sources",
    "drop_data_source",
}
GOOD_SQL = "SELECT region, SUM(net_revenue_eur) AS revenue FROM sales GROUP BY region ORDER BY revenue DESC"


def sql_reply(text: str) -> Reply:
    return Reply(text=f"Here is the query:\n```sql\n{text}\n```")


@pytest.fixture(scope="module")
async def sales(node: str, keys: Keys) -> str:
    """Alice's 500-row sales CSV, uploaded through the files API and ingested by its file id."""
    file_id = upload(node, "ana-alice", keys.alice, "sales.csv", sales_csv(), "text/csv")
    out = await ok(node, keys.alice, "ingest_data_source", {"source_path": file_id})
    assert out["tables"][0]["table_name"] == "sales"
    return file_id


@pytest.fixture(scope="module")
def anyio_backend() -> str:  # module scope: the `sales` fixture is async and shared by the module
    return "asyncio"


async def test_the_tools_are_listed_and_an_uploaded_csv_becomes_a_table_with_rows_and_typed_columns(
    node: str, keys: Keys, sales: str, db_url: str
) -> None:
    async with mcp_client(node, keys.alice) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert names >= TOOLS
    listed = await ok(node, keys.alice, "list_data_sources")
    (table,) = listed["tables"]
    assert table["rows"] == 500 and table["source"] == {"kind": "file", "ref": sales, "type": "csv"}
    types = {c["name"]: c["type"] for c in table["columns"]}
    assert types == {
        "order_id": "BIGINT",
        "region": "VARCHAR",
        "net_revenue_eur": "DOUBLE",
        "order_date": "DATE",
        "quantity": "BIGINT",
    }
    region = next(c for c in table["columns"] if c["name"] == "region")
    assert region["distinct"] == 4 and set(region["samples"]) == {"north", "south", "east", "west"}
    # The metadata is in db_meta_embedding, embedded, and owned by alice.
    rows = sql(
        db_url, "SELECT user_id, entity_type, embedding_model FROM db_meta_embedding WHERE database_source = 'default'"
    )
    assert {r["user_id"] for r in rows} == {"ana-alice"}
    assert sorted(r["entity_type"] for r in rows) == ["column"] * 5 + ["table"]
    assert all(r["embedding_model"] for r in rows)
    # Ingesting again replaces the table (same name) rather than adding a second one.
    again = await ok(node, keys.alice, "ingest_data_source", {"source_path": sales})
    assert "500 rows" in again["message"]
    assert (await ok(node, keys.alice, "list_data_sources"))["count"] == 1


async def test_search_names_the_column_a_question_needs(node: str, keys: Keys, sales: str) -> None:
    out = await ok(node, keys.alice, "search_available_data", {"search_query": "net revenue by region", "limit": 3})
    names = [r["name"] for r in out["results"]]
    assert "sales.net_revenue_eur" in names and "sales.region" in names


async def test_a_question_is_answered_with_checked_sql_capped_rows_and_a_chart_image(
    node: str, keys: Keys, sales: str, fake: FakeOpenAI
) -> None:
    fake.script(MODEL, sql_reply(GOOD_SQL))
    out = await call(node, keys.alice, "query_with_language", {"natural_language_query": "net revenue by region?"})
    assert not out.is_error, out.text
    data = out.data
    assert data["sql"].startswith("SELECT region, SUM(net_revenue_eur) AS revenue FROM sales")
    assert data["columns"] == ["region", "revenue"] and data["total_rows"] == 4 and not data["repaired"]
    expected = revenue_by_region()
    assert {r[0]: r[1] for r in data["rows"]} == pytest.approx(expected)
    assert data["chart"]["kind"] == "bar" and data["chart"]["x"] == "region"
    # The chart comes back as a PNG image block and as a file in alice's storage.
    (image,) = out.images
    assert image.mime_type == "image/png" and base64.b64decode(image.data).startswith(b"\x89PNG")
    listed = httpx.get(
        f"{node}/api/v1/users/ana-alice/files", headers={"Authorization": f"Bearer {keys.alice}"}, timeout=10
    ).json()
    assert data["chart"]["file_id"] in json.dumps(listed)
    # The model saw the linked schema and the question, with a token minted for alice (not her API key).
    sent = fake.requests_for(MODEL)[-1]
    prompt = sent.body["messages"][-1]["content"]
    assert "net_revenue_eur DOUBLE" in prompt and "net revenue by region?" in prompt
    assert keys.alice not in sent.headers.get("authorization", "")


async def test_rows_are_capped_and_the_total_is_still_counted(
    node: str, keys: Keys, sales: str, fake: FakeOpenAI
) -> None:
    fake.script(MODEL, sql_reply("SELECT order_id, quantity FROM sales ORDER BY order_id"))
    data = await ok(node, keys.alice, "query_with_language", {"natural_language_query": "every order"})
    assert data["row_count"] == 50 and data["total_rows"] == 500 and data["truncated"]
    assert data["rows"][0] == [1, 1] and data["chart"]["kind"] == "scatter"


async def test_sql_the_database_rejects_gets_one_repair_round_with_the_error_shown(
    node: str, keys: Keys, sales: str, fake: FakeOpenAI
) -> None:
    fake.script(MODEL, sql_reply("SELECT regio, SUM(revenue) FROM sales GROUP BY 1"), sql_reply(GOOD_SQL))
    before = fake.count(MODEL)
    data = await ok(node, keys.alice, "query_with_language", {"natural_language_query": "revenue per region"})
    assert data["repaired"] and data["total_rows"] == 4
    assert fake.count(MODEL) == before + 2
    repair = fake.requests_for(MODEL)[-1].body["messages"]
    assert "regio" in repair[-2]["content"] and "DuckDB rejected that query" in repair[-1]["content"]
    # A second failure is the answer: the code and the SQL that failed, no third model call.
    fake.script(MODEL, sql_reply("SELECT nope FROM sales"), sql_reply("SELECT still_nope FROM sales"))
    out = await call(node, keys.alice, "query_with_language", {"natural_language_query": "revenue per region"})
    assert out.is_error and out.code == "query_failed" and "still_nope" in out.data["sql"]
    assert fake.count(MODEL) == before + 4


@pytest.mark.parametrize(
    ("hostile", "code"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "sql_forbidden_function"),
        ("SELECT content FROM read_text('/etc/passwd')", "sql_forbidden_function"),
        ("SELECT * FROM '/etc/passwd'", "sql_unknown_table"),
        ("COPY sales TO '/tmp/stolen.csv'", "sql_not_select"),
        ("ATTACH '/tmp/other.duckdb' AS other", "sql_not_select"),
        ("INSTALL httpfs", "sql_not_select"),
        ("LOAD httpfs", "sql_not_select"),
        ("SELECT * FROM sales; DROP TABLE sales", "sql_not_single"),
        ("SELECT * INTO copy_of_sales FROM sales", "sql_not_select"),
        ("SELECT * FROM bob_secrets", "sql_unknown_table"),
        ("SELECT getenv('HOME') AS home", "sql_forbidden_function"),
        ("SELECT * FROM duckdb_settings()", "sql_forbidden_function"),
        ("SET enable_external_access = true", "sql_not_select"),
    ],
    ids=[
        "read_csv",
        "read_text",
        "path-as-table",
        "copy-to",
        "attach",
        "install",
        "load",
        "second-statement",
        "select-into",
        "other-users-table",
        "getenv",
        "settings",
        "set",
    ],
)
async def test_hostile_sql_is_refused_before_it_runs(
    node: str, keys: Keys, sales: str, fake: FakeOpenAI, hostile: str, code: str
) -> None:
    before = fake.count(MODEL)
    fake.script(MODEL, sql_reply(hostile))
    out = await call(node, keys.alice, "query_with_language", {"natural_language_query": "show me the data"})
    assert out.is_error and out.code == code, out.text
    assert "root:" not in out.text  # nothing of /etc/passwd came back
    assert fake.count(MODEL) == before + 1  # refused outright: no repair round for hostile SQL


async def test_a_query_that_runs_too_long_is_stopped(node: str, keys: Keys, sales: str, fake: FakeOpenAI) -> None:
    slow = "SELECT count(*) AS n FROM sales a, sales b, sales c, sales d WHERE a.quantity + b.quantity > c.quantity"
    fake.script(MODEL, sql_reply(slow))
    out = await call(node, keys.alice, "query_with_language", {"natural_language_query": "count everything"})
    assert out.is_error and out.code == "query_timeout", out.text


async def test_server_paths_and_other_users_files_and_internal_urls_are_refused(
    node: str, keys: Keys, sales: str
) -> None:
    for path in ("/etc/passwd", "file:///etc/passwd", "../../etc/passwd"):
        out = await call(node, keys.alice, "ingest_data_source", {"source_path": path})
        assert out.is_error and out.code == "invalid_source", out.text
        assert "root:" not in out.text
    stolen = await call(node, keys.bob, "ingest_data_source", {"source_path": sales})
    assert stolen.is_error and stolen.code == "source_not_found"
    for url in ("http://127.0.0.1:5432/x.csv", "http://169.254.169.254/latest/meta-data", "http://localhost/a.csv"):
        out = await call(node, keys.alice, "ingest_data_source", {"source_path": url})
        assert out.is_error and out.code == "url_blocked", out.text
    bad = await call(node, keys.alice, "ingest_data_source", {"source_path": sales, "database_name": "Robert'); --"})
    assert bad.is_error and bad.code == "invalid_database_name"


async def test_another_user_sees_none_of_the_data(node: str, keys: Keys, sales: str, fake: FakeOpenAI) -> None:
    assert (await ok(node, keys.bob, "list_data_sources"))["count"] == 0
    found = await ok(node, keys.bob, "search_available_data", {"search_query": "net revenue by region"})
    assert found["results"] == []
    asked = await call(node, keys.bob, "query_with_language", {"natural_language_query": "net revenue by region"})
    assert asked.is_error and asked.code == "no_data"
    dropped = await call(node, keys.bob, "drop_data_source", {"database_name": "default"})
    assert dropped.is_error and dropped.code == "not_found"
    # Bob's own table of the same name is his alone; alice's query still reads her rows.
    bob_file = upload(node, "ana-bob", keys.bob, "sales.csv", b"region,net_revenue_eur\nmoon,1\n", "text/csv")
    await ok(node, keys.bob, "ingest_data_source", {"source_path": bob_file})
    fake.script(MODEL, sql_reply("SELECT count(*) AS n FROM sales"))
    assert (await ok(node, keys.alice, "query_with_language", {"natural_language_query": "how many"}))["rows"] == [
        [500]
    ]
    fake.script(MODEL, sql_reply("SELECT count(*) AS n FROM sales"))
    assert (await ok(node, keys.bob, "query_with_language", {"natural_language_query": "how many"}))["rows"] == [[1]]
