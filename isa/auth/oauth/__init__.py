"""This node as an OAuth 2.1 authorization server for its own /mcp (docs/oauth.md).

Served where /mcp is (isa/roles.py), only when this node is the authorization server: with Auth0 or Supabase
as the authorization server, the protected-resource metadata points there and this node stays a resource server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from isa.core.builder import AppBuilder
from isa.core.logging import get_logger

__all__ = ["register"]
log = get_logger(__name__)
PURGE_SECONDS = 3600.0


def register(builder: AppBuilder) -> None:
    # Imported here: isa.auth.service imports this package's store for the grant check.
    from isa.auth.oauth import store
    from isa.auth.oauth.routes import OAuthRoutes
    from isa.auth.settings import auth_settings

    settings = auth_settings(builder.settings)
    if settings.authorization_server != "isa":
        return
    mcp = builder.settings.raw.get("mcp", {})
    public_url = str(mcp.get("public_url") or "") if isinstance(mcp, dict) else ""
    builder.add_routes(*OAuthRoutes(public_url).routes())
    db = builder.state.db

    @asynccontextmanager
    async def purger() -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await anyio.sleep(PURGE_SECONDS)
                try:
                    async with db.transaction() as conn:
                        await store.purge_expired(conn)
                except Exception as exc:  # the database may be down; try again next round
                    log.warning("oauth_purge_failed", error=type(exc).__name__)

        async with anyio.create_task_group() as tg:
            tg.start_soon(loop)
            yield
            tg.cancel_scope.cancel()

    builder.add_lifespan(purger)
