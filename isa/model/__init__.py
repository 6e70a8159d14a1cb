"""The model gateway: one OpenAI-compatible front for chat, embeddings, vision, audio and images.

litellm (heavy: seconds to import, ~200 MB) is imported at start-up of a process that serves
this domain, never at import of this package, so mcp and agent processes don't pay for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from starlette.routing import Route

from isa.core import health
from isa.core.builder import AppBuilder
from isa.core.errors import ApiError
from isa.model import invoke, openapi, routes
from isa.model.service import ModelService
from isa.model.settings import ModelSettings

__all__ = ["ModelService", "ModelSettings", "register"]


def model_settings(builder: AppBuilder) -> ModelSettings:
    return builder.settings.section("model", ModelSettings)


def register(builder: AppBuilder) -> None:
    settings = model_settings(builder)
    service = ModelService(settings, builder.state.db)
    builder.provide("model", service)
    builder.add_routes(*routes.routes(), *invoke.routes())
    builder.add_routes(
        Route("/v1/openapi.json", openapi.openapi_json, methods=["GET"]),
        Route("/v1/docs", openapi.docs, methods=["GET"]),
        Route("/docs", openapi.docs, methods=["GET"]),
        # Liveness under the gateway's own prefix, so a caller behind a path-routing balancer can probe it.
        Route("/v1/health", health.live, methods=["GET"]),
    )
    # Vision content parts carry base64 images; audio uploads are bigger still.
    builder.allow_body("/v1/chat/completions", settings.max_request_bytes)
    builder.allow_body("/v1/images/generations", settings.max_request_bytes)  # input images for image-to-image
    builder.allow_body("/api/v1/invoke", settings.max_audio_bytes)
    builder.allow_body("/v1/audio/", settings.max_audio_bytes)

    @asynccontextmanager
    async def start() -> AsyncIterator[None]:
        await service.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(service.usage_writer.run)
            try:
                yield
            finally:
                # Runs before the database closes (the app closes it after every lifespan).
                await service.stop()
                tg.cancel_scope.cancel()  # a writer still stuck past the drain bound

    async def ready() -> None:
        if not service.started:
            raise ApiError(503, "starting", "the model gateway is still starting")

    builder.add_lifespan(start)
    builder.add_ready_check("model_gateway", ready)
