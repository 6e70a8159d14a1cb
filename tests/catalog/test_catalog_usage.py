"""Learning from usage: a discovered tool the same user then called successfully makes the query an example."""

from __future__ import annotations

import psycopg
import pytest

from isa.auth.principal import Principal
from isa.catalog.importer import parse_import
from isa.catalog.models import SearchFilters
from isa.core.settings import Settings
from tests.catalog.conftest import READER, CountingEmbedder, catalog, eventually

pytestmark = pytest.mark.anyio

SERVERS = [
    {
        "name": "helpers",
        "tools": [
            {"name": "forecast", "description": "Seven day weather forecast for a city"},
            {"name": "packing_list", "description": "Suggest what to pack for a trip"},
            {"name": "umbrella_shop", "description": "Buy an umbrella online"},
        ],
    }
]


def called(db_url: str, user: str, tool: str, outcome: str = "ok") -> None:
    """What the MCP endpoint writes for every tool call."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO audit_log (user_id, tool_name, server, security_level, outcome, duration_ms)"
            " VALUES (%s, %s, 'helpers', 'LOW', %s, 3)",
            (user, tool, outcome),
        )


async def test_a_query_followed_by_a_successful_call_teaches_the_ranking(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("INSERT INTO users (user_id) VALUES ('usage-user') ON CONFLICT DO NOTHING")
    query = "do I need a brolly in Leeds on Saturday"
    async with catalog(db_url, settings, embedder) as service:
        await service.import_servers(parse_import(SERVERS))
        # "brolly" is far from "weather forecast" (cosine 0.17, under the relevance floor): without the floor it
        # still comes back, and once learned the example carries it over the floor.
        before = await service.discover(
            query, {"tools": 3}, Principal("usage-user", frozenset({"read"}), "api_key", None), min_similarity=0
        )
        assert any(t["tool"] == "forecast" for t in before["tools"])

        def logged() -> bool:
            with psycopg.connect(db_url) as conn:
                row = conn.execute("SELECT count(*) FROM selection_history WHERE user_query = %s", (query,)).fetchone()
            return bool(row and row[0])

        await eventually(logged)
        called(db_url, "usage-user", "helpers__umbrella_shop", outcome="error")  # a failed call teaches nothing
        called(db_url, "someone-else", "helpers__forecast")  # nor does another user's call
        assert await service.learn_from_usage() == 0

        called(db_url, "usage-user", "helpers__forecast")
        assert await service.learn_from_usage() == 1
        assert await service.learn_from_usage() == 0  # learned once
        with psycopg.connect(db_url) as conn:
            rows = conn.execute("SELECT query, source FROM mcp_query_examples").fetchall()
        assert rows == [(query, "usage")]

        after = await service.search("will I need a brolly in Leeds this weekend", SearchFilters(("tool",)), READER)
        assert after[0]["item"] == "forecast"
        lift = after[0]["score"] - next(t["score"] for t in before["tools"] if t["tool"] == "forecast")
        assert lift > 0.2  # the example's vote, on top of the text match
        await service.remove_server("helpers")
