"""Guardrail tools (check_guardrails, format_response) and the guardrail:// resources: the policy in force."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from isa.guardrails.detect import NATIONAL_ID_PATTERNS, SECRET_PATTERNS
from isa.guardrails.service import GuardrailService, UnknownPolicy
from isa.mcp.context import current_call
from isa.mcp.registry import Capabilities
from isa.mcp.resources import resource_service

capabilities = Capabilities("isa.guardrails")
Content = Annotated[str, Field(min_length=1, max_length=1_000_000)]
PolicyName = Annotated[str, Field(min_length=1, max_length=60)]


def _ctx() -> tuple[str, GuardrailService]:
    call = current_call()
    return call.principal.user_id, call.service("guardrails", GuardrailService)


@capabilities.tool(
    category="guardrails",
    keywords=["guardrail", "pii", "redact", "sensitive", "privacy", "secrets", "credit card", "email", "phone"],
)
async def check_guardrails(
    content: Content,
    policies: Annotated[list[PolicyName], Field(max_length=20)] | None = None,
    mode: Literal["check", "redact"] = "check",
) -> dict[str, Any]:
    """Find sensitive data in text: e-mail, phone, payment cards, IBAN, national ids, secrets, medical terms.

    Returns each finding's type, span (start, end), confidence and the policy that claimed it; mode "redact" also
    returns the text with findings replaced. policies: names of policies (default: the ones in force for you).
    """
    user_id, service = _ctx()
    try:
        return await service.check(user_id, content, policies, mode)
    except (UnknownPolicy, ValueError) as exc:
        raise ToolError(str(exc)) from None


@capabilities.tool(category="guardrails", keywords=["format", "response", "guardrail", "redact", "safe"])
async def format_response(
    content: Content, format_type: Literal["text", "markdown", "json"] = "text"
) -> dict[str, Any]:
    """Format a response for display after screening it with your guardrail policies (redacts what they require)."""
    user_id, service = _ctx()
    return await service.format_response(user_id, content, format_type)


def _resource_ctx() -> tuple[str, GuardrailService]:
    return resource_service("guardrails", GuardrailService)


@capabilities.resource(
    "guardrail://config/pii", name="guardrail_config_pii", category="guardrails", keywords=["pii", "config"]
)
async def config_pii() -> str:
    """The personal-data detectors in force: types, region, national identifiers, secret patterns, thresholds."""
    user_id, service = _resource_ctx()
    s = service.settings
    pii = {n: p.model_dump() for n, p in s.policies.items() if set(p.types) - {"medical"}}
    return json.dumps(
        {
            "detectors": {
                "email": "address pattern",
                "phone": f"phonenumbers (leniency VALID), default region {s.phone_region}",
                "credit_card": "13-19 digits, Luhn (python-stdnum) and a known issuer prefix",
                "iban": "python-stdnum iban (country format, mod-97)",
                "national_id": {n: f"python-stdnum {n}" for n in s.national_ids},
                "secret": [name for name, _, _ in SECRET_PATTERNS] + ["entropy (>= 4 bits/char, 24+ chars)"],
            },
            "national_ids_available": sorted(NATIONAL_ID_PATTERNS),
            "policies": pii,
            "min_confidence": s.min_confidence,
            "applied_to_you": service.applied(user_id),
        }
    )


@capabilities.resource(
    "guardrail://config/medical", name="guardrail_config_medical", category="guardrails", keywords=["medical"]
)
async def config_medical() -> str:
    """The medical-term policy in force: the term list and the policies that use it."""
    user_id, service = _resource_ctx()
    s = service.settings
    medical = {n: p.model_dump() for n, p in s.policies.items() if "medical" in p.types}
    return json.dumps({"terms": s.medical_terms, "policies": medical, "applied_to_you": service.applied(user_id)})


@capabilities.resource(
    "guardrail://policies/compliance",
    name="guardrail_policies_compliance",
    category="guardrails",
    keywords=["policy", "compliance"],
)
async def policies_compliance() -> str:
    """Every guardrail policy of this deployment, and which ones apply to you by default."""
    user_id, service = _resource_ctx()
    return json.dumps(service.policies_for(user_id))


@capabilities.resource(
    "guardrail://check/sample", name="guardrail_check_sample", category="guardrails", keywords=["sample", "check"]
)
async def check_sample() -> str:
    """The configured sample text checked and redacted under your policies: what the guardrails do right now."""
    user_id, service = _resource_ctx()
    result = await service.check(user_id, service.settings.sample, None, "redact")
    return json.dumps({"sample": service.settings.sample, **result})
