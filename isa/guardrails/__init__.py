"""Guardrails: find and redact sensitive data (PII, secrets, medical terms) per deployment or user policy."""

from __future__ import annotations

from isa.core.builder import AppBuilder
from isa.guardrails.service import GuardrailService, UnknownPolicy
from isa.guardrails.settings import GuardrailSettings
from isa.mcp.screen import OUTPUT_SCREEN

__all__ = ["GuardrailService", "GuardrailSettings", "UnknownPolicy", "register"]


def register(builder: AppBuilder) -> None:
    """Provide the guardrail service; the MCP registry finds `isa.guardrails.tools` by convention."""
    service = GuardrailService(builder.settings.section("guardrails", GuardrailSettings))
    builder.provide("guardrails", service)
    if service.settings.screen_untrusted:
        builder.provide(OUTPUT_SCREEN, service)  # isa.mcp's runner screens untrusted tool output through it
