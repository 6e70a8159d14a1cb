"""Whether the agent's chat model can answer: asked of the model node (in-process or over HTTP) as the user.

The chat page shows the answer at sign-in, so a machine with no model says so once, with the fix, instead of
failing every message. Listing models costs nothing (no provider call, no credits).
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from isa.agent.settings import AgentSettings
from isa.agent.upstream import Upstreams
from isa.auth.principal import Principal
from isa.core.errors import ApiError
from isa.model.local import NO_CHAT_MODEL_FIX


async def chat_model_status(upstreams: Upstreams, settings: AgentSettings, principal: Principal) -> dict[str, Any]:
    """{"available", "model", "serves", "reason", "fix"} for the agent's model (an alias such as "default")."""
    wanted = settings.model
    out: dict[str, Any] = {"available": False, "model": wanted, "serves": None, "reason": None, "fix": None}
    try:
        token = upstreams.token_for(principal)
        with anyio.fail_after(settings.connect_timeout_seconds + 2):
            async with upstreams.client("model", token, read_timeout=settings.connect_timeout_seconds) as client:
                response = await client.get("/v1/models")
        listed = response.json().get("data") or [] if response.status_code == 200 else []
    except ApiError as exc:
        return {**out, "reason": exc.message, "fix": "set ISA_AUTH__TOKEN_SECRET (or run in development)"}
    except (httpx.HTTPError, TimeoutError, ValueError, AttributeError):
        return {
            **out,
            "reason": "the model node does not answer",
            "fix": "start the model node (isa serve --role model)",
        }
    for item in listed:
        if isinstance(item, dict) and item.get("id") == wanted and item.get("mode", "chat") == "chat":
            return {**out, "available": True, "serves": item.get("alias_of") or wanted}
    return {**out, "reason": f"no chat model answers to {wanted!r}", "fix": NO_CHAT_MODEL_FIX}
