"""The original's five data-analytics tools plus list/drop, all for the calling user only (docs/analytics.md)."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from mcp_types import CallToolResult, ImageContent
from pydantic import Field

from isa.analytics.service import AnalyticsService, Answer
from isa.core.errors import ApiError
from isa.mcp.context import current_call
from isa.mcp.envelope import envelope, to_result
from isa.mcp.registry import Capabilities

capabilities = Capabilities("isa.analytics")

SourcePath = Annotated[str, Field(min_length=1, max_length=4000)]
SourceType = Annotated[str | None, Field(max_length=16)]
DatabaseName = Annotated[str | None, Field(max_length=63)]
Question = Annotated[str, Field(min_length=1, max_length=2000)]
KEYWORDS = ["data", "analytics", "sql", "table", "csv", "excel", "parquet", "json"]


def _ctx() -> tuple[str, AnalyticsService]:
    call = current_call()
    return call.principal.user_id, call.service("analytics", AnalyticsService)


def _with_chart(action: str, data: dict[str, Any], answer: Answer | None) -> CallToolResult:
    result = to_result(envelope("success", action, data))
    if answer is None or answer.png is None:
        return result
    image = ImageContent(type="image", data=base64.b64encode(answer.png).decode("ascii"), mime_type="image/png")
    return result.model_copy(update={"content": [*result.content, image]})


@capabilities.tool(category="data_analytics", scope="write", keywords=[*KEYWORDS, "ingest", "upload", "import"])
async def ingest_data_source(
    source_path: SourcePath,
    source_type: SourceType = None,
    database_name: DatabaseName = None,
    table_name: DatabaseName = None,
) -> dict[str, Any]:
    """Turn one of your files (its file id) or an http(s) URL into tables you can query: CSV, TSV, JSON, JSON
    Lines, Parquet or Excel. Returns the tables with row counts and columns."""
    user_id, service = _ctx()
    return await service.ingest(user_id, source_path, source_type, database_name, table_name)


@capabilities.tool(category="data_analytics", scope="write", keywords=[*KEYWORDS, "question", "query", "chart"])
async def query_with_language(natural_language_query: Question, database_name: DatabaseName = None) -> CallToolResult:
    """Answer a question about your tables in plain language: a checked read-only SQL query, its rows (capped,
    with the total) and a chart when the result suits one."""
    call = current_call()
    service = call.service("analytics", AnalyticsService)
    answer = await service.ask(call.principal, natural_language_query, database_name)
    return _with_chart("query_with_language", answer.data, answer)


@capabilities.tool(category="data_analytics", scope="write", keywords=[*KEYWORDS, "ingest", "question", "chart"])
async def process_data_source_and_query(
    source_path: SourcePath,
    natural_language_query: Question,
    source_type: SourceType = None,
    database_name: DatabaseName = None,
) -> CallToolResult:
    """Ingest a file (its file id) or an http(s) URL, then answer a question about it in plain language."""
    call = current_call()
    service = call.service("analytics", AnalyticsService)
    ingested = await service.ingest(call.principal.user_id, source_path, source_type, database_name)
    try:
        answer = await service.ask(call.principal, natural_language_query, ingested["database_name"])
    except ApiError as exc:  # the tables are there either way: say so next to why the question failed
        data = {"ingestion": ingested, "query": {"code": exc.code, "error": exc.message}}
        return to_result(envelope("partial", "process_data_source_and_query", data))
    return _with_chart("process_data_source_and_query", {"ingestion": ingested, "query": answer.data}, answer)


@capabilities.tool(category="data_analytics", keywords=[*KEYWORDS, "search", "find", "columns", "schema"])
async def search_available_data(
    search_query: Question,
    database_name: DatabaseName = None,
    limit: Annotated[int, Field(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    """Find which of your tables and columns match a description (meaning and words)."""
    user_id, service = _ctx()
    return await service.search(user_id, search_query, database_name, limit)


@capabilities.tool(category="data_analytics", keywords=[*KEYWORDS, "status", "health"])
async def get_analytics_status() -> dict[str, Any]:
    """What the analytics service can do now (is a model configured?) and how much data you have."""
    user_id, service = _ctx()
    return await service.status(user_id)


@capabilities.tool(category="data_analytics", keywords=[*KEYWORDS, "list", "datasets", "tables"])
async def list_data_sources(database_name: DatabaseName = None) -> dict[str, Any]:
    """Your ingested tables (optionally of one database) with row counts, columns and sources."""
    user_id, service = _ctx()
    return await service.list_datasets(user_id, database_name)


@capabilities.tool(category="data_analytics", scope="write", keywords=[*KEYWORDS, "drop", "delete", "remove"])
async def drop_data_source(
    database_name: Annotated[str, Field(min_length=1, max_length=63)], table_name: DatabaseName = None
) -> dict[str, Any]:
    """Delete one of your tables, or a whole database when table_name is omitted (data and metadata)."""
    user_id, service = _ctx()
    return await service.drop(user_id, database_name, table_name)
