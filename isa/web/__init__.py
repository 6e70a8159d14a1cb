"""Web tools: search, crawl and screenshots, with every outbound URL through the SSRF guard (isa.core.egress)."""

from __future__ import annotations

from isa.core.builder import AppBuilder
from isa.llm.client import model_client
from isa.web.analysis import ModelAnalyst
from isa.web.service import WebError, WebService
from isa.web.settings import WebSettings

__all__ = ["WebError", "WebService", "WebSettings", "register"]


def register(builder: AppBuilder) -> None:
    settings = builder.settings
    web = settings.section("web", WebSettings)
    client = model_client(builder, web.analysis_timeout_seconds, user_agent="isa-web")
    analyst = ModelAnalyst(client, web.analysis_model) if client else None
    service = WebService(web, analyst=analyst)
    builder.provide("web", service)
    builder.on_shutdown(service.close)  # the browser starts on first use; stop it with the node
