"""create_app(settings, role): the composition root. Builds one Starlette app from the role's domains."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Scope

from isa.core import health
from isa.core.builder import AppBuilder, AppState
from isa.core.db import Database, migration_url, resolve_url
from isa.core.errors import EXCEPTION_HANDLERS
from isa.core.logging import get_logger
from isa.core.metrics import Metrics
from isa.core.middleware import RequestContextMiddleware
from isa.core.migrations import migrate
from isa.core.settings import Settings
from isa.roles import domains_for

log = get_logger("isa.app")


def _route_templates(routes: list[BaseRoute], prefix: str = "") -> dict[int, str]:
    """Map each endpoint to its path template, so metrics get bounded labels (no raw ids)."""
    templates: dict[int, str] = {}
    for route in routes:
        if isinstance(route, Route):
            templates.setdefault(id(route.endpoint), prefix + route.path)
        elif isinstance(route, Mount):
            templates.setdefault(id(route.app), prefix + route.path + "/*")
            templates.update(_route_templates(list(route.routes), prefix + route.path))
    return templates


def _route_of(templates: dict[int, str]) -> Callable[[Scope], str]:
    def route_of(scope: Scope) -> str:
        endpoint = scope.get("endpoint")
        return templates.get(id(endpoint), "unmatched") if endpoint is not None else "unmatched"

    return route_of


def create_app(settings: Settings, role: str | None = None, *, database_url: str | None = None) -> Starlette:
    """One app for `role` (default: settings.role). `database_url` overrides the settings (tests)."""
    role = role or settings.role
    url = database_url or resolve_url(settings)
    state = AppState(settings=settings, role=role, db=Database(url, settings), metrics=Metrics())
    builder = AppBuilder(state)
    health.register(builder)
    for module_name in domains_for(role):
        module: Any = importlib.import_module(module_name)
        module.register(builder)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if settings.database.auto_migrate:
            target = database_url or migration_url(settings)
            await anyio.to_thread.run_sync(
                lambda: migrate(
                    target,
                    lock_timeout_ms=settings.migrations.lock_timeout_ms,
                    statement_timeout_ms=settings.migrations.statement_timeout_ms,
                )
            )
        await state.db.open()
        try:
            async with AsyncExitStack() as stack:
                for enter in builder.lifespans:
                    await stack.enter_async_context(enter())
                log.info("started", role=role)
                yield
        finally:
            state.shutting_down = True
            await state.db.close()

    http = settings.http
    middleware = [
        Middleware(
            RequestContextMiddleware,
            metrics=state.metrics,
            route_of=_route_of(_route_templates(builder.routes)),
            allowed_hosts=http.allowed_hosts,
            max_body_bytes=settings.server.max_body_bytes,
            body_limits=builder.body_limits,
        ),
    ]
    if http.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=http.cors_origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=[
                    "authorization",
                    "content-type",
                    "x-api-key",
                    "x-request-id",
                    "mcp-session-id",
                ],
                expose_headers=["x-request-id", "mcp-session-id", "retry-after"],
            )
        )
    app = Starlette(
        routes=builder.routes,
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.isa = state
    state.app = app
    return app
