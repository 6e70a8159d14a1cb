"""The planning tools of task orchestration. They run on the mcp node and ask the model node for the plan."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field
from starlette.requests import Request

from isa.agent import store
from isa.agent.events import AgentError
from isa.agent.planner import Planner
from isa.agent.store import plan_view
from isa.core.errors import request_id_of
from isa.mcp.context import ToolCall, current_call
from isa.mcp.envelope import ToolFailure
from isa.mcp.registry import Capabilities

capabilities = Capabilities("isa.agent")
tool = capabilities.tool


def _planner(ctx: Context[Any, Any]) -> tuple[ToolCall, Planner, str]:
    """The call, the planner and the id of the request the tool serves (empty outside HTTP)."""
    call = current_call()
    planner = call.service("agent.planner", Planner)
    try:
        request = ctx.request_context.request
    except ValueError:
        request = None
    if isinstance(request, Request):
        return call, planner, request_id_of(request)
    return call, planner, ""


@contextmanager
def _failures() -> Iterator[None]:
    """The planner's AgentError, as the tool's failure."""
    try:
        yield
    except AgentError as exc:
        raise ToolFailure("error", exc.code, exc.message) from None


def _no_plan() -> ToolFailure:
    return ToolFailure("error", "plan_not_found", "no such plan")


@tool(
    category="planning",
    keywords=["plan", "steps", "multi-step", "orchestrate", "task", "workflow"],
    scope="write",
)
async def create_execution_plan(
    request: Annotated[str, Field(min_length=1, max_length=20_000)],
    ctx: Context,
    context: Annotated[str, Field(max_length=20_000)] = "",
    session_id: str | None = None,
) -> dict[str, Any]:
    """Split a multi-step request into a plan of steps (with dependencies); the plan is stored and its id returned."""
    call, planner, request_id = _planner(ctx)
    with _failures():
        steps = await planner.plan(call.principal, request, context, request_id)
    async with call.db.transaction() as conn:
        plan = await store.insert_plan(conn, call.principal.user_id, session_id, request, steps)
    return {"plan_id": plan["plan_id"], "status": plan["status"], "steps": steps}


@tool(category="planning", keywords=["replan", "plan", "failed", "retry", "recover"], scope="write")
async def replan_execution(
    plan_id: str,
    failed_step_id: str,
    ctx: Context,
    error: Annotated[str, Field(max_length=10_000)] = "",
    session_id: str | None = None,
) -> dict[str, Any]:
    """Replace the remaining steps of one of your plans after a step failed; returns the new steps."""
    call, planner, request_id = _planner(ctx)
    user = call.principal.user_id
    async with call.db.connection() as conn:
        plan = await store.get_plan(conn, user, plan_id)
    if plan is None:
        raise _no_plan()
    with _failures():
        steps = await planner.replan(call.principal, plan, failed_step_id, error, request_id)
    async with call.db.transaction() as conn:
        locked = await store.get_plan(conn, user, plan_id, lock=True)
        if locked is None:
            raise _no_plan()
        position = await store.supersede_pending(conn, user, plan_id)
        await store.insert_steps(conn, user, plan_id, steps, position)
    return {"plan_id": plan_id, "replaced_after": failed_step_id, "steps": steps}


@tool(category="planning", keywords=["plan", "status", "progress", "autonomous", "task"])
async def get_autonomous_status(plan_id: str) -> dict[str, Any]:
    """The stored state of one of your plans: status, each step's status and result, progress."""
    call = current_call()
    async with call.db.connection() as conn:
        plan = await store.get_plan(conn, call.principal.user_id, plan_id)
    if plan is None:
        raise _no_plan()
    return plan_view(plan)
