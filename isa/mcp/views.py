"""Virtual servers on the MCP side: which named set (if any) the MCP request being served is narrowed to.

The endpoint /mcp/v/{name} is the same SDK server and session manager as /mcp; the transport puts the virtual
server's definition (isa.catalog.virtual) into the ASGI scope and the server's middleware makes it current for
the request, so tools/list, prompts/list, resources/list, discovery and every call are narrowed in one place each
(docs/federation.md, "Virtual servers").
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

from mcp_types import Prompt, PromptArgument, Resource, ResourceTemplate

from isa.catalog.models import OWN_SERVER, CatalogItem
from isa.catalog.virtual import VirtualServer
from isa.mcp.envelope import ToolFailure

SCOPE_KEY = "isa.virtual_server"  # ASGI scope key the transport sets for /mcp/v/{name}
PATH_PARAM = "virtual"  # the route's path parameter naming the virtual server

# The virtual server the MCP request being served was sent to; None for /mcp itself.
current_view: ContextVar[VirtualServer | None] = ContextVar("isa_mcp_view", default=None)


def of_scope(scope: Any) -> VirtualServer | None:
    view = scope.get(SCOPE_KEY) if isinstance(scope, dict) else None
    return view if isinstance(view, VirtualServer) else None


def check_tool(name: str) -> None:
    """Refuse a tool outside the virtual server this request was sent to (also through call_tool)."""
    view = current_view.get()
    if view is not None and name not in view.tools:
        raise ToolFailure(
            "unknown_tool",
            "not_in_virtual_server",
            f"{name!r} is not part of the virtual server {view.name!r}; use discover_tools to find one that is",
        )


def resource_allowed(view: VirtualServer, uri: str) -> bool:
    """A URI the virtual server exposes: one of its resources, or an instance of one of its URI templates."""
    if uri in view.resources:
        return True
    for member in view.resources:
        if "{" in member:
            pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(member))
            if re.fullmatch(pattern, uri):
                return True
    return False


def upstream_prompt(item: CatalogItem) -> Prompt:
    arguments = [
        PromptArgument(name=a["name"], description=a.get("description") or None, required=bool(a.get("required")))
        for a in (item.input_schema or {}).get("arguments", [])
        if isinstance(a, dict) and a.get("name")
    ]
    return Prompt(
        name=item.qualified_name,
        description=item.description,
        arguments=arguments,
        _meta={"isa/server": item.server, "isa/untrusted": True},
    )


def upstream_resource(item: CatalogItem) -> Resource | ResourceTemplate:
    title = item.metadata.get("title")
    name = str(title) if title else item.qualified_name or item.name
    mime = item.metadata.get("mime_type")
    meta = {"isa/server": item.server, "isa/untrusted": True}
    if "{" in item.name:  # a URI template (RFC 6570)
        return ResourceTemplate(
            uri_template=item.name, name=name, description=item.description, mime_type=mime, _meta=meta
        )
    return Resource(uri=item.name, name=name, description=item.description, mime_type=mime, _meta=meta)


def upstream_items(items: list[CatalogItem], item_type: str) -> list[CatalogItem]:
    return [i for i in items if i.item_type == item_type and i.server != OWN_SERVER]
