"""Importing other servers' tools: validation, unique call names within 64 characters, re-import, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from isa.catalog.importer import parse_import
from isa.catalog.service import ANALYZE_AFTER_ROWS
from isa.catalog.store import RANKED_TABLES
from isa.catalog.text import MAX_NAME, qualified_name, words
from isa.core.errors import ApiError
from isa.core.settings import Settings
from tests.catalog.conftest import CountingEmbedder, catalog

NAME = r"^[A-Za-z0-9_-]{1,64}$"


def test_call_names_are_safe_unique_and_at_most_64_characters() -> None:
    assert qualified_name("github", "create_issue") == "github__create_issue"
    assert qualified_name("My Server!", "get.weather/v2") == "My_Server__get_weather_v2"
    long = qualified_name("a-very-long-server-name-" * 3, "and_an_even_longer_tool_name_" * 3)
    assert len(long) <= MAX_NAME
    taken = {"x__y"}
    other = qualified_name("x", "y", taken)
    assert other != "x__y" and len(other) <= MAX_NAME
    assert qualified_name("x", "y", taken) == other  # the same tool gets the same name
    assert words("getWeatherForecast_v2") == "get Weather Forecast v2"
    assert words("memory://factual/{user_id}") == "memory factual user id"


def test_a_bad_import_file_is_refused_with_the_reasons() -> None:
    for bad in (
        [],
        {"name": "x"},
        [{"tools": []}],
        [{"name": "isa", "tools": []}],
        [{"name": "s", "tools": [{"name": "a"}, {"name": "a"}]}],
        [{"name": "s"}, {"name": "s"}],
        [{"name": "s", "url": "ftp://x", "tools": []}],
        [{"name": "s", "tools": [{"name": "a", "inputSchema": {"type": "string"}}]}],
    ):
        with pytest.raises(ApiError) as err:
            parse_import(bad)
        assert err.value.status == 422 and err.value.code == "invalid_import"


@pytest.mark.anyio
async def test_colliding_names_are_made_unique_and_survive_a_re_import(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    long_tool = "t" * 80
    servers = [
        {"name": "my.server", "url": "http://127.0.0.1:9/mcp", "tools": [{"name": "x"}, {"name": long_tool}]},
        {"name": "my_server", "tools": [{"name": "x", "description": "another x"}]},
    ]
    async with catalog(db_url, settings, embedder) as service:
        await service.import_servers(parse_import(servers))
        with psycopg.connect(db_url) as conn:
            names = dict(
                conn.execute(
                    "SELECT server || '/' || item_name, qualified_name FROM mcp_unified_search_embeddings"
                    " WHERE server IN ('my.server', 'my_server')"
                ).fetchall()
            )
        assert len(set(names.values())) == 3
        assert all(len(n) <= 64 for n in names.values())
        assert names["my.server/x"] == "my_server__x"
        assert names["my_server/x"].startswith("my_server__x_")
        assert await service.server_url("my.server") == "http://127.0.0.1:9/mcp"
        assert await service.server_url("my_server") is None

        embedder.texts.clear()
        out = await service.import_servers(parse_import(list(reversed(servers))))
        assert [r["embedded"] for r in out] == [0, 0]  # nothing changed, nothing embedded
        with psycopg.connect(db_url) as conn:
            again = dict(
                conn.execute(
                    "SELECT server || '/' || item_name, qualified_name FROM mcp_unified_search_embeddings"
                    " WHERE server IN ('my.server', 'my_server')"
                ).fetchall()
            )
        assert again == names

        # A tool that left the server's list leaves the catalog.
        out = await service.import_servers(parse_import([{**servers[0], "tools": [{"name": "x"}]}]))
        assert out[0]["removed"] == 1 and out[0]["tools"] == 1
        assert await service.remove_server("my.server") == 1
        assert await service.remove_server("my_server") == 1
        with pytest.raises(ApiError) as err:
            await service.remove_server("my_server")
        assert err.value.status == 404


def run_isa(db_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ISA_DATA_DIR": str(data_dir),
        "ISA_ENV": "test",
        "ISA_DATABASE__URL": db_url,
        "ISA_DATABASE__AUTO_MIGRATE": "false",  # the fixture database is migrated already
    }
    return subprocess.run(
        [sys.executable, "-m", "isa", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_isa_catalog_import_list_and_remove(db_url: str, data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "servers.json"
    path.write_text(
        json.dumps(
            [
                {
                    "name": "weather-co",
                    "description": "Weather data",
                    "url": "http://127.0.0.1:9/mcp",
                    "tools": [
                        {
                            "name": "forecast",
                            "description": "7-day forecast for a city",
                            "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}},
                            "examples": ["will it rain in Paris tomorrow?"],
                        }
                    ],
                },
            ]
        )
    )
    done = run_isa(db_url, data_dir, "catalog", "import", str(path), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {
            "server": "weather-co",
            "tools": 1,
            "embedded": 1,
            "removed": 0,
            "examples": 1,
            "url": "http://127.0.0.1:9/mcp",
        }
    ]
    listed = json.loads(run_isa(db_url, data_dir, "catalog", "list", "--json").stdout)
    assert {"name": "weather-co", "tools": 1}.items() <= next(r for r in listed if r["name"] == "weather-co").items()
    removed = run_isa(db_url, data_dir, "catalog", "remove", "weather-co")
    assert removed.returncode == 0 and "removed (1 items)" in removed.stdout
    listed = json.loads(run_isa(db_url, data_dir, "catalog", "list", "--json").stdout)
    assert "weather-co" not in {r["name"] for r in listed}


@pytest.mark.anyio
async def test_re_importing_examples_embeds_and_rewrites_only_what_changed(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    def server(examples: list[str]) -> list[dict[str, object]]:
        return [{"name": "ex", "tools": [{"name": "forecast", "description": "Weather", "examples": examples}]}]

    def stored() -> dict[str, str]:
        with psycopg.connect(db_url) as conn:
            return dict(conn.execute("SELECT query, id::text FROM mcp_query_examples WHERE source = 'import'"))

    async with catalog(db_url, settings, embedder) as service:
        await service.import_servers(parse_import(server(["rain tomorrow?", "is it sunny"])))
        first = stored()
        assert set(first) == {"rain tomorrow?", "is it sunny"}
        embedder.texts.clear()
        await service.import_servers(parse_import(server(["rain tomorrow?", "is it sunny"])))
        assert embedder.texts == [] and stored() == first
        await service.import_servers(parse_import(server(["rain tomorrow?", "snow at the weekend"])))
        assert embedder.texts == ["snow at the weekend"]
        after = stored()
        assert set(after) == {"rain tomorrow?", "snow at the weekend"}
        assert after["rain tomorrow?"] == first["rain tomorrow?"]
        await service.remove_server("ex")
        assert stored() == {}


@pytest.mark.anyio
async def test_a_bulk_import_vacuums_and_analyzes_the_ranked_tables_and_a_small_one_leaves_them_to_autovacuum(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    # Plans made on a much smaller catalog's statistics made a freshly imported 10,000-tool catalog rank 3x slower
    # until autovacuum came by (docs/benchmarks.md); a bulk import brings the ranked tables to that state itself.
    def maintained() -> dict[str, tuple[object, object]]:
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "SELECT relname, last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relname = ANY(%s)",
                (list(RANKED_TABLES),),
            ).fetchall()
        return {name: (vacuumed, analyzed) for name, vacuumed, analyzed in rows}

    def server(name: str, count: int) -> list[dict[str, object]]:
        return [{"name": name, "tools": [{"name": f"t{i}", "description": f"tool {i}"} for i in range(count)]}]

    async with catalog(db_url, settings, embedder) as service:
        before = maintained()
        await service.import_servers(parse_import(server("bulk", ANALYZE_AFTER_ROWS)))
        after = maintained()
        assert set(after) == set(RANKED_TABLES)
        for table in RANKED_TABLES:
            vacuumed, analyzed = after[table]
            assert vacuumed is not None and vacuumed != before.get(table, (None, None))[0]
            assert analyzed is not None and analyzed != before.get(table, (None, None))[1]
        await service.import_servers(parse_import(server("small", ANALYZE_AFTER_ROWS - 1)))
        assert maintained() == after
        for name in ("bulk", "small"):
            await service.remove_server(name)


@pytest.mark.anyio
async def test_a_tool_with_a_long_description_keeps_its_vector_in_the_row(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    # Out of line, every vector the ranking statement compares costs a visit to the TOAST table (migration 0045).
    description = " ".join(f"Looks up record {i} in the archive and reports its status." for i in range(30))
    schema = {"type": "object", "properties": {f"field_{i}": {"type": "string"} for i in range(30)}}
    tools = [{"name": "lookup", "description": description, "inputSchema": schema}]
    async with catalog(db_url, settings, embedder) as service:
        await service.import_servers(parse_import([{"name": "archive", "tools": tools}]))
        with psycopg.connect(db_url) as conn:
            storage, options = conn.execute(
                "SELECT a.attstorage, c.reloptions FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
                " WHERE c.relname = 'mcp_unified_search_embeddings' AND a.attname = 'embedding'"
            ).fetchone() or (None, None)
            row = conn.execute(
                "SELECT pg_column_size(e.*) FROM mcp_unified_search_embeddings e WHERE server = 'archive'"
            ).fetchone()
            in_toast = (
                conn.execute(
                    "SELECT pg_column_toast_chunk_id(embedding) IS NOT NULL FROM mcp_unified_search_embeddings"
                    " WHERE server = 'archive'"
                ).fetchone()
                if conn.info.server_version >= 170000  # the function is new in Postgres 17
                else (False,)
            )
        assert storage == "m" and "toast_tuple_target=4080" in (options or [])
        assert row is not None and row[0] > 2048  # a row Postgres would have toasted
        assert in_toast == (False,)  # the vector is in the row, not in the TOAST table
        await service.remove_server("archive")
