"""The event service: idempotent event ingestion, durable background tasks and their worker (on the mcp node)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from isa.auth.settings import auth_settings
from isa.core.builder import AppBuilder
from isa.events import routes, task_routes
from isa.events.service import EventService
from isa.events.settings import EventsSettings
from isa.events.worker import Worker

__all__ = ["EventService", "EventsSettings", "Worker", "register"]


def register(builder: AppBuilder) -> None:
    settings = builder.settings.section("events", EventsSettings)
    service = EventService(builder.state.db, settings)
    worker = Worker(builder.state.db, settings, auth_settings(builder.settings))
    builder.provide("events", service)
    builder.provide("events.worker", worker)
    builder.add_routes(*routes.ROUTES, *task_routes.ROUTES)
    if settings.inprocess_worker:
        builder.add_lifespan(lambda: _inprocess(worker))


@asynccontextmanager
async def _inprocess(worker: Worker) -> AsyncIterator[None]:
    """Run the worker inside the serving process (embedded default); safe next to `isa worker` processes."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run_forever)
        yield
        tg.cancel_scope.cancel()
