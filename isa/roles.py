"""ROLE -> the domains it serves. The only place that knows which role serves what."""

from __future__ import annotations

ROLE_DOMAINS: dict[str, tuple[str, ...]] = {
    # The user service and the event service ran on the MCP host in the original; they still do.
    "mcp": (
        "isa.auth",
        "isa.auth.oauth",  # the OAuth authorization server for /mcp
        "isa.catalog",
        "isa.users",
        "isa.files",
        "isa.mcp",
        "isa.prompts",
        "isa.agent",
        "isa.events",
        "isa.web",
        "isa.memory",
        "isa.knowledge",
        "isa.analytics",
        "isa.commerce",
        "isa.media",
        "isa.graph",
        "isa.guardrails",
        "isa.portal",
    ),
    "model": ("isa.auth", "isa.model"),
    "agent": ("isa.auth", "isa.agent"),
}
# Each domain once, in the order the single roles list them.
ROLE_DOMAINS["all"] = tuple(dict.fromkeys(d for role in ("mcp", "model", "agent") for d in ROLE_DOMAINS[role]))

DEFAULT_PORTS = {"mcp": 8081, "model": 8082, "agent": 8080, "all": 8080}


def domains_for(role: str) -> tuple[str, ...]:
    try:
        return ROLE_DOMAINS[role]
    except KeyError:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLE_DOMAINS)}") from None


# `isa.agent` is on the mcp role for its planning tools only; its chat (routes, the page, the run engine)
# is served where the agent role is. Domains ask here instead of comparing role names themselves.
CHAT_ROLES = ("agent", "all")


def serves_chat(role: str) -> bool:
    return role in CHAT_ROLES


# The user service (accounts, keys, credits) is served where the mcp role is; `isa.auth` is on every role for
# identity, but its key and user management routes only here.
USER_SERVICE_ROLES = ("mcp", "all")


def serves_user_service(role: str) -> bool:
    return role in USER_SERVICE_ROLES
