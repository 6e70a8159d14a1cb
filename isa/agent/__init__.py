"""The agent: streamed chat that plans and calls tools, durable sessions, human approval, and a chat page.

Served by the agent role (and "all"). The mcp role includes this domain only for its planning tools
(`tools.py`, run by the MCP endpoint) and the planner they use; it serves none of the chat routes.
"""

from __future__ import annotations

import httpx

from isa.agent import page, routes, settings
from isa.agent.memory import McpMemory
from isa.agent.planner import Planner
from isa.agent.service import AgentService
from isa.agent.sessions import AgentSessions
from isa.agent.settings import AgentMemorySettings
from isa.agent.upstream import Upstreams
from isa.auth.firstrun import first_run_hint
from isa.auth.settings import auth_settings
from isa.core.builder import AppBuilder
from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.llm.transport import local_node
from isa.roles import serves_chat

__all__ = ["AgentService", "register"]

log = get_logger(__name__)


def register(builder: AppBuilder) -> None:
    state = builder.state
    agent = settings.load(builder.settings)
    upstreams = Upstreams(builder.settings, agent, auth_settings(builder.settings), state.role, local_node(builder))
    builder.provide("agent.upstreams", upstreams)
    builder.provide("agent.planner", Planner(upstreams, agent))
    if not serves_chat(state.role):
        return  # planning tools only (their capabilities are in tools.py)
    remember = builder.settings.section("memory", AgentMemorySettings)
    memory = McpMemory(upstreams, remember) if remember.agent_memory and upstreams.mcp is not None else None
    service = AgentService(state.db, agent, upstreams, memory)
    builder.provide("agent", service)

    async def settle_runs() -> None:
        # Before the database pool closes: runs the server cancelled at its graceful bound still record
        # their turn (messages, usage, charge) in a shielded scope and need the pool for that.
        left = await service.settle(agent.shutdown_record_seconds)
        if left:
            log.warning("agent_runs_unrecorded", runs=left)

    builder.on_shutdown(settle_runs)
    builder.provide("agent.sessions", AgentSessions(state.db))
    builder.add_lifespan(first_run_hint(builder))
    builder.add_routes(*routes.ROUTES, *page.routes(agent))

    if upstreams.model is not None and not upstreams.model.local:
        model_url = upstreams.model.base_url

        async def model_live() -> None:
            # Liveness of the gateway, not its readiness: one slow dependency must not drain every agent.
            # /v1/health is routed to model nodes by a path-routing balancer; /health/* is per node.
            async with httpx.AsyncClient(timeout=builder.settings.health.ready_timeout_seconds) as http:
                response = await http.get(model_url + "/v1/health")
            if response.status_code != 200:
                raise ApiError(503, "model_unreachable", "the model node does not answer")

        builder.add_ready_check("model_node", model_live)
