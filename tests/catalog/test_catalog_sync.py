"""Syncing our own items: content-hash keyed, re-embedding only what changed, safe for replicas starting together."""

from __future__ import annotations

from dataclasses import replace

import anyio
import psycopg
import pytest

from isa.catalog.importer import parse_import
from isa.catalog.notify import listen
from isa.core.settings import Settings
from tests.catalog.conftest import OWN, CountingEmbedder, catalog

pytestmark = pytest.mark.anyio


def index_rows(db_url: str) -> dict[tuple[str, str, str], tuple[str, object]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT item_type, server, item_name, embedded_hash, updated_at FROM mcp_unified_search_embeddings"
        ).fetchall()
    return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}


async def test_a_changed_description_is_re_embedded_and_an_unchanged_one_is_not(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    async with catalog(db_url, settings, embedder) as service:
        first = await service.sync_own(OWN)
        assert first.embedded == len(OWN) and len(embedder.texts) == len(OWN)
        before = index_rows(db_url)

        embedder.texts.clear()
        again = await service.sync_own(OWN)
        assert (again.embedded, again.upserted, again.unchanged) == (0, 0, len(OWN))
        assert embedder.texts == []
        assert index_rows(db_url) == before  # not even rewritten

        changed = [replace(OWN[0], description="Search the internet and return the top pages"), *OWN[1:]]
        report = await service.sync_own(changed)
        assert report.embedded == 1 and len(embedder.texts) == 1
        assert "Search the internet" in embedder.texts[0]
        after = index_rows(db_url)
        assert after[("tool", "isa", "web_search")][0] != before[("tool", "isa", "web_search")][0]
        assert after[("tool", "isa", "get_weather")] == before[("tool", "isa", "get_weather")]

        # A security-level change rewrites the row but the embedded text is the same: no embedding.
        embedder.texts.clear()
        report = await service.sync_own([*changed[:2], replace(changed[2], security_level="CRITICAL"), *changed[3:]])
        assert (report.upserted, report.embedded) == (1, 0)
        item = await service.get_item("tool", "delete_memory")
        assert item is not None and item.security_level == "CRITICAL"


async def test_an_item_that_disappeared_from_code_is_removed_but_imported_tools_stay(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    async with catalog(db_url, settings, embedder) as service:
        await service.import_servers(parse_import([{"name": "github", "tools": [{"name": "create_issue"}]}]))
        await service.sync_own(OWN)
        report = await service.sync_own(OWN[1:])
        assert report.removed == 1
        assert await service.get_item("tool", "web_search") is None
        assert await service.get_item("tool", "get_weather") is not None
        assert await service.get_item("tool", "github__create_issue") is not None
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT count(*) FROM mcp_tools WHERE name = 'web_search'").fetchone() == (0,)
        await service.remove_server("github")


async def test_replicas_syncing_at_the_same_moment_never_delete_each_others_rows(
    db_url: str, settings: Settings
) -> None:
    replicas = [CountingEmbedder() for _ in range(4)]
    async with (
        catalog(db_url, settings, replicas[0]) as a,
        catalog(db_url, settings, replicas[1]) as b,
        catalog(db_url, settings, replicas[2]) as c,
        catalog(db_url, settings, replicas[3]) as d,
    ):
        for _ in range(3):
            async with anyio.create_task_group() as tg:
                for service in (a, b, c, d):
                    tg.start_soon(service.sync_own, OWN)
            rows = index_rows(db_url)
            assert {k for k in rows if k[1] == "isa"} == {(i.item_type, "isa", i.name) for i in OWN}
        for item in OWN:
            assert await a.get_item(item.item_type, item.qualified_name) == item


async def test_sync_refuses_items_that_are_not_ours_or_badly_named(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    async with catalog(db_url, settings, embedder) as service:
        with pytest.raises(ValueError, match="server"):
            await service.sync_own([replace(OWN[0], server="github")])
        with pytest.raises(ValueError, match="call name"):
            await service.sync_own([replace(OWN[0], qualified_name="has space")])
        with pytest.raises(ValueError, match="duplicate"):
            await service.sync_own([OWN[0], replace(OWN[1], qualified_name=OWN[0].qualified_name)])


async def test_listeners_hear_about_changes_made_by_another_process(
    db_url: str, settings: Settings, embedder: CountingEmbedder
) -> None:
    heard = anyio.Event()

    async def on_change() -> None:
        heard.set()

    async with catalog(db_url, settings, embedder) as listener, catalog(db_url, settings, embedder) as writer:
        listener.add_listener(on_change)
        async with anyio.create_task_group() as tg:
            # What listener.running() starts: the LISTEN loop relaying NOTIFYs to the listeners.
            tg.start_soon(listen, db_url, listener._changed)
            with anyio.fail_after(10):
                while not heard.is_set():
                    await writer.import_servers(parse_import([{"name": "notify", "tools": [{"name": "t"}]}]))
                    with anyio.move_on_after(0.5):
                        await heard.wait()
            tg.cancel_scope.cancel()
        await writer.remove_server("notify")
