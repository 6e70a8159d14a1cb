"""Web tools: search, crawl and screenshots, with every outbound URL through the SSRF guard (isa.core.egress)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from isa.auth.settings import auth_settings
from isa.core.builder import AppBuilder
from isa.web.analysis import ModelAnalyst
from isa.web.service import WebError, WebService
from isa.web.settings import WebSettings

__all__ = ["WebError", "WebService", "WebSettings", "register"]


def register(builder: AppBuilder) -> None:
    settings = builder.settings
    web = settings.section("web", WebSettings)
    auth = auth_settings(settings)
    analyst = None
    if settings.services.model_url and auth.isa_tokens_enabled:
        analyst = ModelAnalyst(settings.services.model_url, auth, web.analysis_model, web.analysis_timeout_seconds)
    service = WebService(web, analyst=analyst)
    builder.provide("web", service)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.close()  # the browser starts on first use; stop it with the node

    builder.add_lifespan(lifespan)
