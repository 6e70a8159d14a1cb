"""The MCP server object: the SDK's MCPServer, with tools listed per caller and every call run by our runner."""

from __future__ import annotations

from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged
from mcp_types import INVALID_PARAMS, CallToolResult, GetPromptResult, InputRequiredResult
from mcp_types import Tool as MCPTool
from starlette.requests import Request

from isa.auth.principal import Principal
from isa.core.logging import get_logger
from isa.mcp.context import bind_request_state, request_principal
from isa.mcp.envelope import ENVELOPE_SCHEMA
from isa.mcp.registry import Registry, ToolDecl
from isa.mcp.runner import Target, ToolRunner
from isa.mcp.selection import ToolSelection, current_session
from isa.mcp.settings import McpSettings
from isa.mcp.transport import IsaSessionManager

log = get_logger(__name__)

META_TOOLS = ("discover_tools", "call_tool", "select_tools", "deselect_tools")
INSTRUCTIONS = (
    "isa hosts many tools. Call discover_tools with what you want to do to find the right ones, then call "
    "them by name (or through call_tool). Results are JSON envelopes {status, action, data, timestamp}; "
    "status 'authorization_requested' means a human must approve the call before it runs again, "
    "'human_input_requested' means ask the user."
)


class LiveSessions:
    """Stateful sessions seen on this node, so catalog changes reach them as tools/list_changed."""

    def __init__(self) -> None:
        self._sessions: dict[str, ServerSession] = {}

    def seen(self, session_id: str, session: ServerSession) -> None:
        self._sessions[session_id] = session

    def discard(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    async def tools_changed(self) -> int:
        """Notify every live session (best effort: a closed stream drops the notification)."""
        for session in list(self._sessions.values()):
            await session.send_tool_list_changed()
        return len(self._sessions)


def tool_meta(decl: ToolDecl) -> dict[str, Any]:
    return {
        "isa/category": decl.category,
        "isa/keywords": list(decl.keywords),
        "isa/security_level": decl.security.value,
        "isa/requires_approval": decl.security.needs_approval,
        "isa/cost_credits": str(decl.cost_credits),
    }


def _own_tool(decl: ToolDecl) -> MCPTool:
    return MCPTool(
        name=decl.name,
        title=decl.sdk.annotations.title if decl.sdk.annotations else None,
        description=decl.description,
        input_schema=decl.input_schema,
        output_schema=ENVELOPE_SCHEMA,
        annotations=decl.sdk.annotations,
        _meta=tool_meta(decl),
    )


def _selected_tool(target: Target) -> MCPTool:
    if target.own is not None:
        return _own_tool(target.own)
    assert target.imported is not None
    return MCPTool(
        name=target.name,
        description=target.imported.description,
        input_schema=target.imported.input_schema,
        output_schema=ENVELOPE_SCHEMA,
        _meta={
            "isa/server": target.server,
            "isa/security_level": target.security.value,
            "isa/requires_approval": target.security.needs_approval,
            "isa/cost_credits": str(target.cost),
        },
    )


class IsaMCPServer(MCPServer[Any]):
    """The SDK's MCPServer with our registry's capabilities; listing and calling go through our runner."""

    def __init__(self, registry: Registry, runner: ToolRunner, settings: McpSettings, sessions: LiveSessions) -> None:
        self.bus = InMemorySubscriptionBus()
        super().__init__(
            "isa",
            version="0.1.0",
            instructions=INSTRUCTIONS,
            tools=[decl.sdk for decl in registry.tools.values()],
            subscriptions=self.bus,
            middleware=[self._observe],
            warn_on_duplicate_tools=False,
        )
        self.registry = registry
        self.runner = runner
        self.mcp_settings = settings
        self.sessions = sessions
        self.selection: ToolSelection | None = None
        for prompt in registry.prompts.values():
            self.add_prompt(prompt.sdk)
        for res in registry.resources.values():
            self.resource(res.uri, name=res.name, description=res.description, mime_type=res.mime_type)(res.fn)

    def session_manager_for(self) -> IsaSessionManager:
        """Our session manager over this server (the SDK builds its own only inside streamable_http_app())."""
        manager = IsaSessionManager(
            app=self._lowlevel_server,
            json_response=self.mcp_settings.json_response,
            stateless=self.mcp_settings.stateless,
            session_idle_timeout=self.mcp_settings.session_idle_timeout_seconds,
            max_request_body_size=self.mcp_settings.max_body_bytes,
            max_sessions=self.mcp_settings.max_sessions,
        )
        manager.on_discard = self._session_ended
        return manager

    async def _session_ended(self, session_id: str) -> None:
        self.sessions.discard(session_id)
        if self.selection is not None:
            try:
                await self.selection.ended(session_id)
            except Exception as exc:  # the rows stay; they are keyed by a session id that never comes back
                log.warning("session_tools_not_dropped", error=type(exc).__name__)

    async def _observe(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        bind_request_state(self.runner.state)  # static resources reach the services through request_state()
        request = ctx.request
        session_id = request.headers.get("mcp-session-id") if isinstance(request, Request) else None
        token = current_session.set(session_id)
        try:
            result = await call_next(ctx)
        finally:
            current_session.reset(token)
        if session_id:
            self.sessions.seen(session_id, ctx.session)
        if ctx.method == "initialize" and isinstance(result, dict):
            # We do send tools/list_changed; the SDK's default capabilities don't say so.
            tools = result.setdefault("capabilities", {}).setdefault("tools", {})
            tools["listChanged"] = True
        return result

    def usable(self, principal: Principal) -> list[ToolDecl]:
        """Our tools this caller holds the scope for: what tools/list shows with disclosure "everything"."""
        return [decl for decl in self.registry.tools.values() if decl.scope in principal.scopes]

    def initial(self, principal: Principal) -> list[ToolDecl]:
        """What a fresh session lists (mcp.disclosure): everything usable, or the meta-tools plus default_tools
        ("meta"; "auto" when the usable tools number more than mcp.auto_threshold)."""
        usable = self.usable(principal)
        mode = self.mcp_settings.fresh_session
        if mode == "everything" or (mode == "auto" and len(usable) <= self.mcp_settings.auto_threshold):
            return usable
        keep = {*META_TOOLS, *self.mcp_settings.default_tools}
        return [decl for decl in usable if decl.name in keep]

    async def list_tools(self) -> list[MCPTool]:
        """The tools this caller sees (mcp.disclosure) plus what this session selected (select_tools)."""
        principal = request_principal()
        if principal is None:
            return []
        listed = [_own_tool(decl) for decl in self.initial(principal)]
        if self.selection is not None:  # still checked: the selected tools this caller may use now
            names = {t.name for t in listed}
            for target in await self.selection.selected(principal, current_session.get()):
                if target.name not in names:
                    listed.append(_selected_tool(target))
        return listed

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        """The SDK's prompts/get, with a caller's mistake (unknown prompt, missing or bad arguments) answered as
        invalid params and one INFO line: the SDK turns it into a ValueError its dispatcher logs as a crash."""
        try:
            return await super().get_prompt(name, arguments, context)
        except ValueError as exc:
            log.info("prompt_refused", prompt=name[:200], reason=str(exc)[:200])
            raise MCPError(code=INVALID_PARAMS, message=str(exc)) from None

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        principal = request_principal()
        if principal is None:
            raise ToolError("authentication required")
        if context is None:
            context = Context(mcp_server=self, subscriptions=self.bus)
        return await self.runner.execute(name, arguments, context, principal)

    async def notify_tools_changed(self) -> None:
        """Tell connected clients to list tools again (stateful sessions and 2026 subscription streams)."""
        await self.bus.publish(ToolsListChanged())
        count = await self.sessions.tools_changed()
        log.info("tools_list_changed_sent", sessions=count)
