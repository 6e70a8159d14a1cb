"""Guardrails: find and redact sensitive data (PII, secrets, medical terms) per deployment or user policy."""

from __future__ import annotations

from isa.core.builder import AppBuilder
from isa.guardrails.service import GuardrailService, UnknownPolicy
from isa.guardrails.settings import GuardrailSettings

__all__ = ["GuardrailService", "GuardrailSettings", "UnknownPolicy", "register"]


def register(builder: AppBuilder) -> None:
    """Provide the guardrail service; the MCP registry finds `isa.guardrails.tools` by convention."""
    builder.provide("guardrails", GuardrailService(builder.settings.section("guardrails", GuardrailSettings)))
