"""Virtual servers: an admin names a set of the catalog's tools, prompts and resources (ours and other servers'),
and MCP clients connected to /mcp/v/{name} see and use only that set (docs/federation.md, "Virtual servers").

This module keeps the definitions (catalog_virtual_servers, through virtual_store) and a per-process cache of
them; narrowing the MCP endpoint is isa.mcp's job. Every process drops its cache on the catalog's NOTIFY, and
entries also expire after CACHE_SECONDS so a NOTIFY lost during a reconnect is not lost for long.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from isa.catalog import virtual_store as store
from isa.catalog.models import CatalogItem
from isa.core.db import Database
from isa.core.errors import ApiError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
CACHE_SECONDS = 30.0
MAX_MEMBERS = 5000


@dataclass(frozen=True)
class VirtualServer:
    name: str
    description: str
    tools: frozenset[str]
    prompts: frozenset[str]
    resources: frozenset[str]

    @classmethod
    def of(cls, row: dict[str, Any]) -> VirtualServer:
        members = (frozenset(row["tools"]), frozenset(row["prompts"]), frozenset(row["resources"]))
        return cls(row["name"], row["description"], *members)


def _view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "description": row["description"],
        "path": f"/mcp/v/{row['name']}",
        "tools": sorted(row["tools"]),
        "prompts": sorted(row["prompts"]),
        "resources": sorted(row["resources"]),
        "created_by": row["created_by"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ApiError(
            422,
            "invalid_request",
            "a virtual server's name is 1-63 lower-case letters, digits, '-' or '_' (it becomes /mcp/v/NAME)",
        )
    return name


class VirtualServers:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[float, VirtualServer | None]] = {}

    async def create(
        self,
        name: str,
        tools: Sequence[str],
        prompts: Sequence[str],
        resources: Sequence[str],
        created_by: str,
        description: str = "",
    ) -> dict[str, Any]:
        """Create or replace `name`. Every member must be in the catalog now (a typo is refused, not kept)."""
        check_name(name)
        wanted = [list(dict.fromkeys(m)) for m in (tools, prompts, resources)]
        total = sum(len(m) for m in wanted)
        if not 1 <= total <= MAX_MEMBERS:
            raise ApiError(422, "invalid_request", f"a virtual server has 1 to {MAX_MEMBERS} tools, prompts, resources")
        async with self.db.transaction() as conn:
            found = await store.members(conn, *wanted)
            missing = _missing(found, *wanted)
            if missing:
                raise ApiError(
                    422,
                    "unknown_items",
                    f"{len(missing)} item(s) are not in the catalog (add or sync their server first)",
                    details=missing,
                )
            row = await store.upsert(conn, name, description, (wanted[0], wanted[1], wanted[2]), created_by)
        self.forget()
        return _view(row)

    async def list_all(self) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            return [_view(row) for row in await store.list_all(conn)]

    async def describe(self, name: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await store.get(conn, name)
        if row is None:
            raise ApiError(404, "unknown_virtual_server", f"no virtual server named {name!r}")
        return _view(row)

    async def remove(self, name: str) -> None:
        async with self.db.transaction() as conn:
            removed = await store.delete(conn, name)
        self.forget()
        if not removed:
            raise ApiError(404, "unknown_virtual_server", f"no virtual server named {name!r}")

    async def get(self, name: str) -> VirtualServer | None:
        """The definition an MCP request at /mcp/v/{name} is served with (cached), or None."""
        if not NAME.match(name):
            return None
        hit = self._cache.get(name)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        async with self.db.connection() as conn:
            row = await store.get(conn, name)
        found = VirtualServer.of(row) if row is not None else None
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[name] = (time.monotonic() + CACHE_SECONDS, found)
        return found

    async def items(self, server: VirtualServer) -> list[CatalogItem]:
        """The members that are in the catalog now (a retired upstream tool is simply not there)."""
        async with self.db.connection() as conn:
            return await store.members(conn, sorted(server.tools), sorted(server.prompts), sorted(server.resources))

    def forget(self) -> None:
        self._cache.clear()


def _missing(found: list[CatalogItem], tools: list[str], prompts: list[str], resources: list[str]) -> list[str]:
    have = {(i.item_type, i.name if i.item_type == "resource" else i.qualified_name) for i in found}
    return [
        f"{kind} {name}"
        for kind, names in (("tool", tools), ("prompt", prompts), ("resource", resources))
        for name in names
        if (kind, name) not in have
    ]
