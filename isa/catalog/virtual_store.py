"""SQL of virtual servers (catalog_virtual_servers): named endpoints exposing a chosen set of catalog items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from isa.catalog.models import CatalogItem
from isa.catalog.notify import CHANNEL
from isa.catalog.store import ITEM_COLUMNS, item_of
from isa.core.db import DictConnection

_COLUMNS = "name, description, tools, prompts, resources, created_by, created_at, updated_at"


async def upsert(
    conn: DictConnection,
    name: str,
    description: str,
    members: tuple[Sequence[str], Sequence[str], Sequence[str]],
    created_by: str,
) -> dict[str, Any]:
    tools, prompts, resources = (list(m) for m in members)
    cur = await conn.execute(
        f"INSERT INTO catalog_virtual_servers (name, description, tools, prompts, resources, created_by)"
        f" VALUES (%s, %s, %s, %s, %s, %s)"
        f" ON CONFLICT (name) DO UPDATE SET description = EXCLUDED.description, tools = EXCLUDED.tools,"
        f" prompts = EXCLUDED.prompts, resources = EXCLUDED.resources RETURNING {_COLUMNS}",
        (name, description, tools, prompts, resources, created_by),
    )
    row = await cur.fetchone()
    assert row is not None
    await notify(conn)
    return row


async def notify(conn: DictConnection) -> None:
    """Every process drops its cached copy (and tells its sessions to list again)."""
    await conn.execute(sql.SQL("NOTIFY {}").format(sql.Identifier(CHANNEL)))


async def get(conn: DictConnection, name: str) -> dict[str, Any] | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM catalog_virtual_servers WHERE name = %s", (name,))
    return await cur.fetchone()


async def list_all(conn: DictConnection) -> list[dict[str, Any]]:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM catalog_virtual_servers ORDER BY name")
    return await cur.fetchall()


async def delete(conn: DictConnection, name: str) -> bool:
    cur = await conn.execute("DELETE FROM catalog_virtual_servers WHERE name = %s", (name,))
    if cur.rowcount:
        await notify(conn)
    return cur.rowcount > 0


async def members(
    conn: DictConnection, tools: Sequence[str], prompts: Sequence[str], resources: Sequence[str]
) -> list[CatalogItem]:
    """The active catalog items named: tools and prompts by call name, resources by URI."""
    cur = await conn.execute(
        sql.SQL(
            "SELECT {} FROM mcp_unified_search_embeddings WHERE is_active AND ("
            " (item_type = 'tool' AND qualified_name = ANY(%s))"
            " OR (item_type = 'prompt' AND qualified_name = ANY(%s))"
            " OR (item_type = 'resource' AND item_name = ANY(%s))) ORDER BY item_type, server, qualified_name"
        ).format(sql.SQL(", ").join(sql.Identifier(c) for c in ITEM_COLUMNS)),
        (list(tools), list(prompts), list(resources)),
    )
    return [item_of(row) for row in await cur.fetchall()]
