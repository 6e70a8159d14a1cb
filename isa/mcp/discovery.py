"""The link to the catalog (isa.catalog): our declarations go in, discovery and imported tools come out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from isa.auth.principal import Principal
from isa.catalog.models import OWN_SERVER, CatalogItem
from isa.catalog.service import CatalogService
from isa.core.builder import AppState, NotReady
from isa.core.logging import get_logger
from isa.mcp.envelope import ToolFailure
from isa.mcp.registry import Registry, SecurityLevel
from isa.mcp.runner import ImportedTool

log = get_logger(__name__)


def catalog_items(registry: Registry) -> list[CatalogItem]:
    """Every capability of this process as catalog rows (server "isa"; the call name is the declared name)."""
    items: list[CatalogItem] = []
    for tool in registry.tools.values():
        items.append(
            CatalogItem(
                item_type="tool",
                server=OWN_SERVER,
                name=tool.name,
                qualified_name=tool.name,
                description=tool.description,
                category=tool.category,
                keywords=tool.keywords,
                input_schema=tool.input_schema,
                security_level=tool.security.value,
                metadata={
                    "cost_credits": str(tool.cost_credits),
                    "rate_limit_per_minute": tool.rate_limit_per_minute,
                    "scope": tool.scope,
                    "requires_authorization": tool.security.needs_approval,
                    "domain": tool.domain,
                },
            )
        )
    for prompt in registry.prompts.values():
        arguments = [
            {"name": a.name, "description": a.description, "required": bool(a.required)}
            for a in prompt.sdk.arguments or []
        ]
        items.append(
            CatalogItem(
                item_type="prompt",
                server=OWN_SERVER,
                name=prompt.name,
                qualified_name=prompt.name,
                description=prompt.description,
                category=prompt.category,
                keywords=prompt.keywords,
                input_schema={"arguments": arguments},
                metadata={"domain": prompt.domain},
            )
        )
    for resource in registry.resources.values():
        items.append(
            CatalogItem(
                item_type="resource",
                server=OWN_SERVER,
                name=resource.uri,
                qualified_name=resource.name,
                description=resource.description,
                category=resource.category,
                keywords=resource.keywords,
                metadata={"mime_type": resource.mime_type, "is_template": resource.is_template},
            )
        )
    return items


class Discovery:
    """Discovery and imported tools through the catalog service (None when this role serves no catalog)."""

    def __init__(self, state: AppState, registry: Registry) -> None:
        self.state = state
        self.registry = registry
        self._imported: dict[str, ImportedTool | None] = {}
        # Set once our own capabilities are in the catalog and the encoder has answered a query:
        # /health/ready waits for it, so a load balancer never routes to a node whose discovery is empty.
        self.synced = False

    def catalog(self) -> CatalogService | None:
        service = self.state.services.get("catalog")
        return service if isinstance(service, CatalogService) else None

    async def sync(self) -> None:
        """Put our own declarations into the catalog (unchanged ones are not re-embedded)."""
        catalog = self.catalog()
        if catalog is not None:
            report = await catalog.sync_own(catalog_items(self.registry))
            log.info("own_capabilities_synced", upserted=report.upserted, removed=report.removed)
            await catalog.warm_up()
        self.synced = True

    async def check_ready(self) -> None:
        """Ready check: 503 catalog_syncing until the first sync and the encoder's warm-up are done."""
        if self.catalog() is not None and not self.synced:
            raise NotReady("catalog_syncing", "the tool catalog is still being synced; discovery would be empty")

    def forget(self) -> None:
        """The catalog changed: look imported tools up again."""
        self._imported.clear()

    async def tools(self, request: str, limit: int, principal: Principal) -> list[dict[str, Any]]:
        """The tools that fit `request` and that this caller may use, best first, with their input schemas."""
        catalog = self.catalog()
        if catalog is None:
            raise ToolFailure("error", "discovery_unavailable", "tool discovery is not served by this node")
        # The catalog leaves out what this caller may not run (in SQL, before the limit) and what is off-topic.
        found = await catalog.discover(request, {"tools": limit, "prompts": 0, "resources": 0}, principal)
        return found["tools"]

    async def imported(self, name: str) -> ImportedTool | None:
        """An imported (other server's) tool by the name it is called here, with its server's URL."""
        if name in self._imported:
            return self._imported[name]
        catalog = self.catalog()
        if catalog is None:
            return None
        item = await catalog.get_item("tool", name)
        tool = None
        if item is not None and item.server != OWN_SERVER:
            tool = ImportedTool(
                name=item.qualified_name,
                server=item.server,
                tool=item.name,
                description=item.description,
                input_schema=item.input_schema or {"type": "object"},
                url=await catalog.server_url(item.server),
                security=SecurityLevel(item.security_level),
                cost_credits=Decimal(str(item.metadata.get("cost_credits", 0))),
            )
        if len(self._imported) > 10_000:
            self._imported.clear()
        self._imported[name] = tool
        return tool
