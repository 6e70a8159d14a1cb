"""The `[agent]` settings section (`ISA_AGENT__*` in the environment), and the agent's keys of `[memory]`."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from isa.core.floors import configured_floor
from isa.core.settings import Section, Settings


def _words(value: Any) -> Any:
    """ "a b" or "a,b" -> ["a", "b"]: a string in settings.toml, so the environment replaces it whole."""
    if isinstance(value, str):
        return [w for w in re.split(r"[\s,]+", value.strip()) if w]
    return value


class AgentSettings(Section):
    # The model group (or alias) the agent reasons with, and the one plans are made with.
    model: str = "default"
    planner_model: str = "default"
    # SSE comment lines keep an idle stream open behind a load balancer (ALB idle timeout: 60 s).
    heartbeat_seconds: float = Field(default=15.0, gt=0, lt=60)
    # Bounds of one request: model calls, tokens (prompt + completion, all calls), wall-clock seconds.
    max_iterations: int = Field(default=12, ge=1, le=100)
    max_tokens: int = Field(default=200_000, ge=1)
    time_budget_seconds: float = Field(default=300.0, gt=0)
    # At shutdown, how long runs cut by the server may take to record their turn before the database closes.
    shutdown_record_seconds: float = Field(default=10.0, ge=0, le=60)
    # Upstream timeouts: connecting, silence inside a model stream, one tool call.
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    model_idle_timeout_seconds: float = Field(default=60.0, gt=0)
    tool_timeout_seconds: float = Field(default=120.0, gt=0)
    # Tools offered per turn: what discovery finds for the message, plus these (by name) every time.
    discover_tools: int = Field(default=6, ge=0, le=50)
    # Their relevance floor: unset, the catalog's floor for its encoder less discover_floor_margin (0.18 with the
    # stock encoders, 0.22 with the tuned one); a two-intent request is less similar to each tool (docs/agent.md).
    discover_min_similarity: float | None = Field(default=None, ge=0, le=1)
    discover_floor_margin: float = Field(default=0.02, ge=0, le=1)
    core_tools: Annotated[list[str], BeforeValidator(_words)] = Field(
        default_factory=lambda: ["create_execution_plan", "ask_human"]
    )
    history_messages: int = Field(default=20, ge=0, le=500)
    max_tool_result_chars: int = Field(default=16_000, ge=200)
    # Lifetime of the short token the agent holds for the user towards the model and MCP nodes.
    token_minutes: int = Field(default=10, ge=1, le=60)
    # Plans: steps per plan, steps run at once, model calls per step, replans after failures.
    plan_max_steps: int = Field(default=8, ge=1, le=50)
    plan_concurrency: int = Field(default=3, ge=1, le=16)
    step_max_iterations: int = Field(default=4, ge=1, le=20)
    max_replans: int = Field(default=2, ge=0, le=10)
    # Chat requests per user and minute (all replicas together); 0 turns the limit off.
    chat_rate_limit_per_minute: int = Field(default=60, ge=0)
    # Where the chat page sends file uploads and approvals (the mcp node); empty: the page's own origin.
    public_mcp_url: str = ""


def load(settings: Settings) -> AgentSettings:
    """The agent section, checked; a bad value is a start-up error naming the setting."""
    agent = settings.section("agent", AgentSettings)
    if agent.discover_min_similarity is None:  # follows the catalog's floor, which depends on its encoder
        floor = configured_floor(settings.raw.get("catalog", {}))
        agent = agent.model_copy(
            update={"discover_min_similarity": round(max(floor - agent.discover_floor_margin, 0.0), 6)}
        )
    return agent


class AgentMemorySettings(Section):
    """The agent's side of memory, read from `[memory]` (keys agent_memory, recall_*)."""

    agent_memory: bool = True  # recall/store through the mcp node's memory tools
    recall_limit: int = Field(5, ge=0, le=20)
    recall_max_chars: int = Field(240, ge=40, le=2000)
    recall_min_similarity: float = Field(0.3, ge=-1, le=1)
    memory_timeout_seconds: float = Field(10.0, gt=0)
