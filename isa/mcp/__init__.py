"""The MCP endpoint: /mcp over streamable HTTP, the capability registry, and safe tool execution."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.routing import Route

from isa.auth import AuthService
from isa.core.builder import AppBuilder
from isa.core.logging import get_logger
from isa.mcp import routes, settings, views
from isa.mcp.approvals import Approvals
from isa.mcp.audit import AuditWriter
from isa.mcp.billing import Billing
from isa.mcp.discovery import Discovery
from isa.mcp.registry import Registry
from isa.mcp.runner import ToolRunner
from isa.mcp.selection import ToolSelection
from isa.mcp.server import IsaMCPServer, LiveSessions
from isa.mcp.transport import McpEndpoint, resource_metadata_endpoint, transport_security
from isa.mcp.upstream import CircuitBreaker, Upstream
from isa.roles import domains_for

__all__ = ["register"]
log = get_logger(__name__)


def register(builder: AppBuilder) -> None:
    state = builder.state
    mcp = settings.load(builder.settings)
    registry = Registry.discover(domains_for(state.role))
    approvals = Approvals(state.db, mcp.approval_ttl_seconds, mcp.approval_valid_seconds)
    upstream = Upstream(mcp, CircuitBreaker(mcp.breaker_failure_threshold, mcp.breaker_cooldown_seconds))
    audit = AuditWriter(state.db, linger_seconds=mcp.audit_flush_seconds)
    runner = ToolRunner(state, mcp, registry, approvals, Billing(state.db), upstream, audit)
    discovery = Discovery(state, registry)
    runner.lookup_imported = discovery.imported
    upstream.credentials = discovery.upstream_headers
    server = IsaMCPServer(registry, runner, mcp, LiveSessions())
    selection = ToolSelection(state.db, runner, mcp.max_selected_tools)
    server.selection = selection
    server.upstream_lookup = discovery.upstream_entry
    server.view_items = discovery.view_items
    manager = server.session_manager_for()
    auth = state.get("auth", AuthService)
    endpoint = McpEndpoint(manager, transport_security(builder.settings, mcp), mcp, auth)
    endpoint.virtual = discovery.virtual

    builder.provide("mcp.server", server)
    builder.provide("mcp.runner", runner)
    builder.provide("mcp.approvals", approvals)
    builder.provide("mcp.discovery", discovery)
    builder.provide("mcp.selection", selection)
    builder.allow_body("/mcp", mcp.max_body_bytes)
    builder.add_ready_check("catalog", discovery.check_ready)
    metadata = resource_metadata_endpoint(mcp, auth.settings)
    builder.add_routes(
        Route("/mcp", endpoint=endpoint),
        # Virtual servers: the same server and sessions, narrowed to a named set (isa/mcp/views.py)
        Route(f"/mcp/v/{{{views.PATH_PARAM}}}", endpoint=endpoint),
        first=True,  # every tools/call comes here: matched before the role's ~100 other routes
    )
    builder.add_routes(
        Route("/.well-known/oauth-protected-resource/mcp", metadata, methods=["GET"]),
        Route(f"/.well-known/oauth-protected-resource/mcp/v/{{{views.PATH_PARAM}}}", metadata, methods=["GET"]),
        Route("/.well-known/oauth-protected-resource", metadata, methods=["GET"]),
        *routes.ROUTES,
    )

    async def catalog_changed() -> None:
        discovery.forget()
        await server.notify_tools_changed()

    async def sync_until_done() -> None:
        # In the background and retried: a node whose database is down still starts and reports not-ready.
        delay, primed = 1.0, False
        while True:
            try:
                await discovery.sync()
                return
            except Exception as exc:
                log.warning("own_capabilities_sync_failed", error=type(exc).__name__, retry_in=delay)
                if not primed:  # the database is away: embed now what the sync will need when it is back
                    primed = True
                    try:
                        await discovery.prime()
                    except Exception as failure:  # only a head start: the sync embeds what it lacks itself
                        log.warning("own_capabilities_prime_failed", error=type(failure).__name__)
                    continue
                await anyio.sleep(delay)
                # Short: /health/ready waits for this sync, so a node must not sit out a long back-off once its
                # database is back (a failed attempt while it is down costs a pool wait, not work).
                delay = min(delay * 2, 2.0)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        catalog = discovery.catalog()
        # Sessions close first, then the audit queue drains (the database pool closes after both).
        async with audit.running(), manager.run(), anyio.create_task_group() as tg:
            if catalog is not None:
                catalog.add_listener(catalog_changed)
                tg.start_soon(catalog.load_encoder)  # alongside the first sync, which may wait for the database
                tg.start_soon(sync_until_done)
            yield
            tg.cancel_scope.cancel()

    builder.add_lifespan(lifespan)
