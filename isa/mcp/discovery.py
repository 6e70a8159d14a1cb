"""The link to the catalog (isa.catalog): our declarations go in, discovery and imported tools come out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from isa.auth.principal import Principal
from isa.catalog.federation import Federation
from isa.catalog.models import OWN_SERVER, CatalogItem, ItemType
from isa.catalog.service import CatalogService
from isa.catalog.virtual import VirtualServer, VirtualServers
from isa.core.builder import AppState, NotReady
from isa.core.logging import get_logger
from isa.mcp.envelope import ToolFailure
from isa.mcp.registry import Declared, Registry, SecurityLevel
from isa.mcp.runner import ImportedTool
from isa.mcp.views import current_view

log = get_logger(__name__)


def catalog_items(registry: Registry) -> list[CatalogItem]:
    """Every capability of this process as catalog rows (server "isa"; the call name is the declared name)."""
    items: list[CatalogItem] = []
    for tool in registry.tools.values():
        metadata = {
            "cost_credits": str(tool.cost_credits),
            "rate_limit_per_minute": tool.rate_limit_per_minute,
            "scope": tool.scope,
            "requires_authorization": tool.security.needs_approval,
            "domain": tool.domain,
        }
        security = tool.security.value
        items.append(
            _own("tool", tool, tool.name, input_schema=tool.input_schema, security_level=security, metadata=metadata)
        )
    for prompt in registry.prompts.values():
        arguments = [
            {"name": a.name, "description": a.description, "required": bool(a.required)}
            for a in prompt.sdk.arguments or []
        ]
        schema = {"arguments": arguments}
        items.append(_own("prompt", prompt, prompt.name, input_schema=schema, metadata={"domain": prompt.domain}))
    for resource in registry.resources.values():
        metadata = {"mime_type": resource.mime_type, "is_template": resource.is_template}
        items.append(_own("resource", resource, resource.uri, qualified_name=resource.name, metadata=metadata))
    return items


def _own(item_type: ItemType, decl: Declared, name: str, **fields: Any) -> CatalogItem:
    """A row of our own server: `decl`'s description, category and keywords; the call name is `name` unless given."""
    fields.setdefault("qualified_name", name)
    return CatalogItem(
        item_type=item_type,
        server=OWN_SERVER,
        name=name,
        description=decl.description,
        category=decl.category,
        keywords=decl.keywords,
        **fields,
    )


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

    async def prime(self) -> None:
        """Embed our own declarations ahead of a sync that is waiting for the database."""
        catalog = self.catalog()
        if catalog is not None:
            await catalog.prime_own(catalog_items(self.registry))

    async def check_ready(self) -> None:
        """Ready check: 503 catalog_syncing until the first sync and the encoder's warm-up are done."""
        if self.catalog() is not None and not self.synced:
            raise NotReady("catalog_syncing", "the tool catalog is still being synced; discovery would be empty")

    async def upstream_headers(self, server: str, user_id: str) -> dict[str, str]:
        """What a call to a server added by URL carries for this user (its sealed headers or the user's own)."""
        federation = self.state.services.get("catalog.federation")
        return await federation.headers_for(server, user_id) if isinstance(federation, Federation) else {}

    async def upstream_entry(self, item_type: str, name: str) -> tuple[str, str, str | None] | None:
        """(server, its own name, its URL) of another server's prompt (by call name) or resource (by URI)."""
        catalog = self.catalog()
        if catalog is None:
            return None
        if item_type == "prompt":
            item = await catalog.get_item("prompt", name)
            item = item if item is not None and item.server != OWN_SERVER else None
        else:
            item = await catalog.upstream_item("resource", name)
        if item is None:
            return None
        return item.server, item.name, await catalog.server_url(item.server)

    def forget(self) -> None:
        """The catalog changed: look imported tools up again."""
        self._imported.clear()

    async def tools(self, request: str, limit: int, principal: Principal) -> list[dict[str, Any]]:
        """The tools that fit `request` and that this caller may use, best first, with their input schemas."""
        catalog = self.catalog()
        if catalog is None:
            raise ToolFailure("error", "discovery_unavailable", "tool discovery is not served by this node")
        # The catalog leaves out what this caller may not run (in SQL, before the limit), what is off-topic, and
        # on a virtual server everything outside it.
        view = current_view.get()
        only = view.tools if view is not None else None
        found = await catalog.discover(request, {"tools": limit, "prompts": 0, "resources": 0}, principal, only=only)
        return found["tools"]

    def _virtual_servers(self) -> VirtualServers | None:
        service = self.state.services.get("catalog.virtual")
        return service if isinstance(service, VirtualServers) else None

    async def virtual(self, name: str) -> VirtualServer | None:
        """A virtual server's definition by name (None when unknown or this node serves no catalog)."""
        servers = self._virtual_servers()
        return await servers.get(name) if servers is not None else None

    async def view_items(self, view: VirtualServer) -> list[CatalogItem]:
        """The catalog items a virtual server exposes that exist now (ours and other servers')."""
        servers = self._virtual_servers()
        return await servers.items(view) if servers is not None else []

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
