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
from isa.llm.transport import local_node

__all__ = ["EventService", "EventsSettings", "Worker", "register"]


def register(builder: AppBuilder) -> None:
    settings = builder.settings.section("events", EventsSettings)
    if settings.inprocess_worker == "auto":
        auto = builder.settings.env == "development" or builder.state.role == "all"
        settings = settings.model_copy(update={"inprocess_worker": auto})
    # No agent URL but the agent's chat is served by this very process (role all): hand events to it in-process.
    # (isa.agent registers before isa.events in every role that has both, so its service is visible here.)
    local = None
    if not settings.agent_url and "agent" in builder.state.services:
        local = local_node(builder)
    service = EventService(builder.state.db, settings, agent_in_process=local is not None)
    worker = Worker(builder.state.db, settings, auth_settings(builder.settings), agent_local=local)
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
