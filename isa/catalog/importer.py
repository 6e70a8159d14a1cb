"""Turn an import file (a list of servers with their `tools/list` result) into catalog items."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter, ValidationError

from isa.catalog.models import CatalogItem
from isa.catalog.schemas import ImportedServerSpec, ImportedTool
from isa.core.errors import ApiError

MAX_SERVERS = 1_000
_SERVERS = TypeAdapter(list[ImportedServerSpec])
_KNOWN_FIELDS = {
    "name",
    "description",
    "inputSchema",
    "input_schema",
    "category",
    "keywords",
    "securityLevel",
    "examples",
}


def parse_import(data: Any) -> list[ImportedServerSpec]:
    """Validate an import document: a JSON list of servers (422 `invalid_import` with the errors otherwise)."""
    if isinstance(data, dict) and "servers" in data:
        data = data["servers"]
    if not isinstance(data, list) or not data:
        raise ApiError(422, "invalid_import", "the import file must be a non-empty JSON list of servers")
    if len(data) > MAX_SERVERS:
        raise ApiError(422, "invalid_import", f"at most {MAX_SERVERS} servers per import")
    try:
        servers = _SERVERS.validate_python(data)
    except ValidationError as exc:
        details = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()[:50]]
        raise ApiError(422, "invalid_import", "the import file is not valid", details=details) from None
    seen: set[str] = set()
    for server in servers:
        if server.name in seen:
            raise ApiError(422, "invalid_import", f"server {server.name!r} appears twice")
        seen.add(server.name)
        names = [t.name for t in server.tools]
        if len(set(names)) != len(names):
            raise ApiError(422, "invalid_import", f"server {server.name!r} lists a tool name twice")
    return servers


def tool_item(server: ImportedServerSpec, tool: ImportedTool, qualified: str) -> CatalogItem:
    extra = {k: v for k, v in (tool.model_extra or {}).items() if k not in _KNOWN_FIELDS}
    return CatalogItem(
        item_type="tool",
        server=server.name,
        name=tool.name,
        qualified_name=qualified,
        description=tool.description,
        category=tool.category or server.category,
        keywords=tuple(tool.keywords),
        input_schema=tool.input_schema,
        security_level=tool.security_level,
        metadata={"imported": True, **extra},
    )


def server_items(server: ImportedServerSpec, name_for: Callable[[str], str]) -> list[CatalogItem]:
    """The server's tools as catalog items; `name_for(tool_name)` assigns each its call name."""
    return [tool_item(server, tool, name_for(tool.name)) for tool in server.tools]
