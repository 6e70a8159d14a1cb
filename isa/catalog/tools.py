"""MCP tools of the catalog: a user stores or revokes their own credential for a server that acts as them.

The credential goes to the sealed store (isa/catalog/federation.py) and is used only for this user's calls of that
server; the audit log masks the argument (its name says credential). Same as PUT/DELETE
/catalog/servers/{name}/credential.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from isa.catalog.federation import Federation
from isa.mcp.context import current_call
from isa.mcp.registry import Capabilities

capabilities = Capabilities("isa.catalog")
ServerName = Annotated[str, Field(min_length=1, max_length=200)]
KEYWORDS = ["credential", "token", "upstream", "server", "connect", "account"]


def _ctx() -> tuple[str, Federation]:
    call = current_call()
    return call.principal.user_id, call.service("catalog.federation", Federation)


@capabilities.tool(category="catalog", scope="read", keywords=KEYWORDS)
async def set_upstream_credential(
    server: ServerName, credential: Annotated[str, Field(min_length=1, max_length=10_000)]
) -> dict[str, Any]:
    """Store your own credential (e.g. a personal access token) for a connected MCP server that acts as you; it is
    encrypted at rest and used only for your calls of that server's tools."""
    user_id, federation = _ctx()
    await federation.store_credential(server, user_id, credential)
    return await federation.credential_status(server, user_id)


@capabilities.tool(category="catalog", scope="read", keywords=KEYWORDS)
async def revoke_upstream_credential(server: ServerName) -> dict[str, Any]:
    """Delete the credential you stored for a connected MCP server; its tools stop working for you until you store
    one again."""
    user_id, federation = _ctx()
    await federation.revoke_credential(server, user_id)
    return await federation.credential_status(server, user_id)
