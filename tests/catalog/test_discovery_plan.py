"""What keeps /discover fast at 10,000 tools: the planner's view of the access condition, and the bounded head."""

from __future__ import annotations

import re

import psycopg
import pytest

from isa.auth.principal import Principal
from isa.catalog.access import access_sql
from isa.catalog.schemas import DISCOVER_RANKED_CHARS
from isa.core.settings import Settings
from tests.catalog.conftest import READER, CountingEmbedder, catalog, tool

WRITER = Principal("catalog-writer", frozenset({"read", "write"}), "api_key")


def test_the_access_condition_is_estimated_as_what_it_is_not_as_a_rare_filter(db_url: str) -> None:
    # Without migration 0038's statistics Postgres guessed 0.5 % of the rows pass REQUIRED_SCOPE, and at 10,000
    # tools preferred an exact scan of every vector to the HNSW index (docs/benchmarks.md).
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO mcp_unified_search_embeddings (item_type, item_name, server, qualified_name, description,"
            " content_hash, security_level)"
            " SELECT 'tool', 'plan' || g, 'plan-server', 'plan_server__' || g, 'tool ' || g, 'h',"
            " CASE WHEN g % 10 = 0 THEN 'HIGH' ELSE 'LOW' END FROM generate_series(1, 2000) AS s(g)"
        )
        conn.execute("ANALYZE mcp_unified_search_embeddings")
        for principal in (READER, WRITER):
            where = access_sql(principal).as_string(conn)
            query = f"SELECT 1 FROM mcp_unified_search_embeddings e WHERE {where}"
            [[actual]] = conn.execute(f"SELECT count(*) FROM ({query}) x").fetchall()
            plan = conn.execute("EXPLAIN " + query).fetchall()[0][0]
            estimated = int(re.search(r"rows=(\d+)", plan).group(1))  # type: ignore[union-attr]
            assert 0.5 * actual <= estimated <= 2 * actual, (principal.scopes, estimated, actual, plan)


@pytest.mark.anyio
async def test_a_very_long_request_is_ranked_on_its_head_by_every_caller(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    head = ("please read the attached quarterly notes " * 200)[:DISCOVER_RANKED_CHARS]
    tail = " weather forecast rain umbrella temperature" * 500
    items = [
        tool("weather_forecast", "Weather forecast, rain and temperature for a city."),
        tool("read_notes", "Read the notes attached to a quarterly report."),
        tool("send_invoice", "Send an invoice to a customer."),
    ]
    async with catalog(db_url, settings, embedder) as service:
        await service.sync_own(items)
        limits = {"tools": 3, "prompts": 0, "resources": 0}
        embedder.texts.clear()
        long = await service.discover(head + tail, limits, READER, min_similarity=0)
        assert all(len(t) <= DISCOVER_RANKED_CHARS for t in embedder.texts)  # the tail is never embedded
        short = await service.discover(head, limits, READER, min_similarity=0)
        assert [(h["name"], h["score"]) for h in long["tools"]] == [(h["name"], h["score"]) for h in short["tools"]]
