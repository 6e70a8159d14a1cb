"""The MCP endpoint's own capabilities: meta-tools, human-in-the-loop tools, admin tools and a few utilities."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from isa.mcp import store
from isa.mcp.approvals import Approvals, GatedCall
from isa.mcp.context import current_call
from isa.mcp.discovery import Discovery
from isa.mcp.envelope import AUTHORIZATION_REQUESTED, HUMAN_INPUT_REQUESTED
from isa.mcp.registry import Capabilities
from isa.mcp.runner import Marker, ToolRunner
from isa.mcp.selection import ToolSelection

capabilities = Capabilities("isa.mcp")
tool = capabilities.tool


@tool(category="general", keywords=["time", "date", "clock", "timezone", "now"])
async def get_current_time(timezone: str = "UTC") -> dict[str, Any]:
    """Current date and time in an IANA time zone (e.g. Europe/Paris), ISO 8601 and Unix seconds."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(f"unknown time zone {timezone!r}; use an IANA name such as 'Europe/Paris'") from None
    now = datetime.now(UTC).astimezone(zone)
    return {"iso": now.isoformat(), "unix": now.timestamp(), "timezone": timezone, "weekday": now.strftime("%A")}


@tool(category="general", keywords=["json", "format", "pretty", "validate", "indent"])
async def format_json(
    content: str, indent: Annotated[int, Field(ge=0, le=8)] = 2, sort_keys: bool = False
) -> dict[str, Any]:
    """Validate a JSON text and return it pretty-printed (or compact with indent 0)."""
    try:
        value = json.loads(content)
    except json.JSONDecodeError as exc:
        raise ToolError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if indent == 0:
        text = json.dumps(value, separators=(",", ":"), sort_keys=sort_keys, ensure_ascii=False)
    else:
        text = json.dumps(value, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
    return {"formatted": text, "type": type(value).__name__, "characters": len(text)}


@tool(category="interaction", keywords=["human", "question", "clarify", "confirm", "user input"])
async def ask_human(question: str, context: str = "", options: list[str] | None = None) -> Marker:
    """Ask the user a question and wait for the answer (returns the human_input_requested marker)."""
    call = current_call()
    data = {"question": question, "context": context, "options": options or [], "user_id": call.principal.user_id}
    return Marker(HUMAN_INPUT_REQUESTED, data)


@tool(category="interaction", keywords=["approval", "authorization", "permission", "human", "confirm"])
async def request_authorization(tool_name: str, reason: str, tool_args: dict[str, Any] | None = None) -> Marker:
    """Ask the user to approve one call of a tool with these exact arguments (approve over HTTP, then call it)."""
    call = current_call()
    runner = call.service("mcp.runner", ToolRunner)
    target = await runner.resolve(tool_name)
    arguments = runner.normalize(target, tool_args or {})
    gated = GatedCall.of(tool_name, target.security.value, arguments)
    view = await call.service("mcp.approvals", Approvals).request(call.principal, gated, reason)
    return Marker(AUTHORIZATION_REQUESTED, view)


@tool(category="interaction", keywords=["approval", "authorization", "status", "pending"])
async def check_authorization(request_id: str) -> dict[str, Any]:
    """The state of one of your authorization requests: pending, approved, denied, used or expired."""
    call = current_call()
    return await call.service("mcp.approvals", Approvals).get(call.principal, request_id)


@tool(category="admin", keywords=["admin", "approvals", "pending", "authorization"], scope="admin")
async def admin_list_approvals(
    status: Literal["pending", "approved", "denied", "used"] | None = "pending",
    limit: Annotated[int, Field(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """Authorization requests of every user (pending ones by default). Admin only."""
    call = current_call()
    return await call.service("mcp.approvals", Approvals).list(
        call.principal, everyone=True, status=status, limit=limit
    )


@tool(category="admin", keywords=["admin", "audit", "log", "history", "security"], scope="admin")
async def admin_get_audit_log(
    limit: Annotated[int, Field(ge=1, le=1000)] = 50, user_id: str | None = None, tool_name: str | None = None
) -> list[dict[str, Any]]:
    """The newest tool-call audit rows, optionally for one user or tool. Admin only."""
    async with current_call().db.connection() as conn:
        return await store.list_audit(conn, user_id=user_id, tool_name=tool_name, limit=limit)


@tool(category="admin", keywords=["admin", "metrics", "monitoring", "stats", "health"], scope="admin")
async def admin_get_metrics(hours: Annotated[int, Field(ge=1, le=24 * 30)] = 24) -> dict[str, Any]:
    """Tool-call counts by outcome, busiest tools with latency, pending approvals, upstream breakers. Admin only."""
    call = current_call()
    async with call.db.connection() as conn:
        metrics = await store.metrics(conn, hours)
    metrics["upstream_breakers"] = call.service("mcp.runner", ToolRunner).upstream.breaker.snapshot()
    return metrics


@tool(category="meta", keywords=["discover", "search", "find", "tools", "capabilities"])
async def discover_tools(
    request: str,
    ctx: Context,
    limit: Annotated[int, Field(ge=1, le=50)] = 5,
    light: bool = False,
    select: bool = False,
) -> dict[str, Any]:
    """Find the tools that fit a task described in plain words; returns their names and input schemas.

    light: names, servers, one-line descriptions and security levels only (cheap to browse).
    select: also add them to this session's tools/list (as select_tools does).
    """
    call = current_call()
    tools = await call.service("mcp.discovery", Discovery).tools(request, limit, call.principal)
    if not tools:
        # Nothing above the relevance floor among the tools this caller may run: say so, don't pad the list.
        return {"request": request, "tools": [], "message": "no tool you may use fits this request; rephrase it"}
    out: dict[str, Any] = {"request": request, "how_to_call": "call a tool by its name, or through call_tool"}
    out["tools"] = [_light(t) for t in tools] if light else tools
    if select:
        out["selection"] = await _select(ctx, [t["name"] for t in tools])
    return out


def _light(hit: dict[str, Any]) -> dict[str, Any]:
    first = str(hit.get("description") or "").strip().split("\n")[0][:200]
    return {"name": hit["name"], "server": hit["server"], "description": first, "security_level": hit["security_level"]}


async def _select(ctx: Context, names: list[str]) -> dict[str, Any]:
    call = current_call()
    out = await call.service("mcp.selection", ToolSelection).select(call.principal, call.session_id, names)
    if out["added"]:
        await ctx.session.send_tool_list_changed()
    return out


@tool(category="meta", keywords=["select", "enable", "load", "tools", "add", "list"])
async def select_tools(names: Annotated[list[str], Field(min_length=1, max_length=50)], ctx: Context) -> dict[str, Any]:
    """Add tools (found with discover_tools) to this session's tools/list, with full schemas; names you may not
    use are refused with the reason. The client is told to list tools again."""
    return await _select(ctx, names)


@tool(category="meta", keywords=["deselect", "remove", "unload", "tools", "reset"])
async def deselect_tools(
    ctx: Context, names: Annotated[list[str], Field(max_length=1000)] | None = None
) -> dict[str, Any]:
    """Remove tools from this session's selection (no names: all of them, back to the default list)."""
    call = current_call()
    out = await call.service("mcp.selection", ToolSelection).deselect(call.principal, call.session_id, names)
    if out["removed"]:
        await ctx.session.send_tool_list_changed()
    return out


@tool(category="meta", keywords=["call", "run", "execute", "tool", "invoke"])
async def call_tool(name: str, ctx: Context, arguments: dict[str, Any] | None = None) -> CallToolResult:
    """Run any tool you may use by name (found with discover_tools), with its arguments."""
    if name in ("call_tool",):
        raise ToolError("call_tool can't call itself")
    call = current_call()
    return await call.service("mcp.runner", ToolRunner).execute(name, arguments or {}, ctx, call.principal)


@capabilities.prompt(category="security", keywords=["approval", "review", "authorization"])
def authorization_review_prompt(tool_name: str, arguments: str, reason: str = "") -> str:
    """Help a person decide whether to approve a pending tool call."""
    return (
        f"An AI agent asks to run the tool `{tool_name}` with these arguments:\n{arguments}\n"
        f"Its reason: {reason or '(none given)'}\n\n"
        "Explain in plain words what this call will do, what could go wrong, whether it can be undone, "
        "and whether the arguments match the stated reason. End with APPROVE or DENY and one sentence why."
    )


@capabilities.prompt(category="operations", keywords=["error", "failure", "triage", "debug"])
def tool_failure_triage_prompt(tool_name: str, error: str) -> str:
    """Work out why a tool call failed and what to try next."""
    return (
        f"The tool `{tool_name}` failed with:\n{error}\n\n"
        "Say whether the cause is the arguments, missing permission or credits, a rate limit (wait for "
        "retry_after), a paused upstream server, or the tool itself, and propose the next step."
    )


@capabilities.resource(
    "isa://security/levels", name="security_levels", category="security", keywords=["security", "levels"]
)
def security_levels() -> str:
    """What the tool security levels mean and which of them need a human's approval."""
    return json.dumps(
        {
            "LOW": {"needs_approval": False, "meaning": "reads or harmless computation"},
            "MEDIUM": {"needs_approval": False, "meaning": "changes the caller's own data in a reversible way"},
            "HIGH": {"needs_approval": True, "meaning": "destroys or exposes data; one approval per call"},
            "CRITICAL": {"needs_approval": True, "meaning": "affects other users or the platform"},
        }
    )


@capabilities.resource("isa://tools/{name}", name="tool_declaration", category="meta", keywords=["tool", "schema"])
def tool_declaration(name: str, ctx: Context) -> str:
    """The declaration of one of this server's own tools: description, schema, level, cost, rate limit."""
    server: Any = ctx.mcp_server
    decl = server.registry.tools.get(name)
    if decl is None:
        raise ValueError(f"no tool named {name!r}")
    return json.dumps(
        {
            "name": decl.name,
            "description": decl.description,
            "category": decl.category,
            "keywords": list(decl.keywords),
            "security_level": decl.security.value,
            "cost_credits": str(decl.cost_credits),
            "rate_limit_per_minute": decl.rate_limit_per_minute,
            "scope": decl.scope,
            "input_schema": decl.input_schema,
        }
    )
