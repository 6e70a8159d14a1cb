"""The MCP server object: the SDK's MCPServer, with tools listed per caller and every call run by our runner."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    BlobResourceContents,
    CallToolResult,
    GetPromptResult,
    InputRequiredResult,
    TextResourceContents,
)
from mcp_types import Prompt as MCPPrompt
from mcp_types import Resource as MCPResource
from mcp_types import ResourceTemplate as MCPResourceTemplate
from mcp_types import Tool as MCPTool
from pydantic.networks import AnyUrl
from starlette.requests import Request

from isa.auth.principal import Principal
from isa.catalog.models import CatalogItem
from isa.catalog.virtual import VirtualServer
from isa.core.errors import request_id_of
from isa.core.logging import get_logger
from isa.mcp.context import bind_message, bind_request_state, request_principal, unbind_message
from isa.mcp.envelope import ENVELOPE_SCHEMA, ToolFailure
from isa.mcp.registry import Registry, ToolDecl
from isa.mcp.runner import Target, ToolRunner
from isa.mcp.selection import ToolSelection, current_session
from isa.mcp.settings import McpSettings
from isa.mcp.transport import IsaSessionManager
from isa.mcp.views import (
    current_view,
    of_scope,
    resource_allowed,
    upstream_items,
    upstream_prompt,
    upstream_resource,
)

log = get_logger(__name__)
Item = TypeVar("Item", MCPPrompt, MCPResource, MCPResourceTemplate)  # what a virtual server narrows
UpstreamLookup = Callable[[str, str], Awaitable[tuple[str, str, str | None] | None]]
ViewItems = Callable[[VirtualServer], Awaitable[list[CatalogItem]]]

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
        # (item type, name) -> (server, its own name, URL) of another server's prompt/resource (isa/mcp/discovery.py)
        self.upstream_lookup: UpstreamLookup | None = None
        # The catalog items a virtual server exposes (isa/mcp/discovery.py), for its prompts/list and resources/list
        self.view_items: ViewItems | None = None
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
        if isinstance(request, Request):
            session_id = request.headers.get("mcp-session-id")
            view = of_scope(request.scope)
            message_token = bind_message(request_id_of(request), session_id)
        else:
            session_id, view, message_token = None, None, None
        token = current_session.set(session_id)
        view_token = current_view.set(view)  # /mcp/v/{name}: this request sees only that virtual server
        try:
            result = await call_next(ctx)
        finally:
            current_view.reset(view_token)
            current_session.reset(token)
            if message_token is not None:
                unbind_message(message_token)
        if session_id:
            self.sessions.seen(session_id, ctx.session)
        if ctx.method == "initialize" and isinstance(result, dict):
            # We do send tools/list_changed; the SDK's default capabilities don't say so.
            tools = result.setdefault("capabilities", {}).setdefault("tools", {})
            tools["listChanged"] = True
            if view is not None:
                result.setdefault("serverInfo", {})["name"] = f"isa/{view.name}"
                if view.description:
                    result["instructions"] = view.description
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

    async def _view_tools(self, principal: Principal, view: VirtualServer) -> list[MCPTool]:
        """A virtual server's tools this caller may use. mcp.disclosure applies only when the set includes
        discover_tools (otherwise nothing could reach the tools it would hide)."""
        if self.selection is None:
            return []
        targets, _ = await self.selection.usable(principal, sorted(view.tools))  # unknown and out-of-scope dropped
        mode = self.mcp_settings.fresh_session
        hide = "discover_tools" in view.tools and (
            mode == "meta" or (mode == "auto" and len(targets) > self.mcp_settings.auto_threshold)
        )
        if hide:
            keep = {*META_TOOLS, *self.mcp_settings.default_tools}
            targets = [t for t in targets if t.name in keep]
        return [_selected_tool(t) for t in targets]

    async def list_tools(self) -> list[MCPTool]:
        """The tools this caller sees (mcp.disclosure) plus what this session selected (select_tools); on a
        virtual server, only its own set."""
        principal = request_principal()
        if principal is None:
            return []
        view = current_view.get()
        if view is not None:
            listed = await self._view_tools(principal, view)
        else:
            listed = [_own_tool(decl) for decl in self.initial(principal)]
        if self.selection is not None:  # still checked: the selected tools this caller may use now
            names = {t.name for t in listed}
            for target in await self.selection.selected(principal, current_session.get()):
                if target.name not in names:
                    listed.append(_selected_tool(target))
        return listed

    async def _view_upstream(self, item_type: str) -> list[CatalogItem]:
        view = current_view.get()
        if view is None or self.view_items is None or request_principal() is None:
            return []
        return upstream_items(await self.view_items(view), item_type)

    async def _in_view(
        self, ours: list[Item], key: Callable[[Item], str], item_type: str, kind: type[Item]
    ) -> list[Item]:
        """On a virtual server, its own set of one kind: ours in it and other servers' in it; else all of ours."""
        view = current_view.get()
        if view is None:
            return ours
        members = view.prompts if item_type == "prompt" else view.resources
        convert = upstream_prompt if item_type == "prompt" else upstream_resource
        upstream = [convert(item) for item in await self._view_upstream(item_type)]
        return [x for x in ours if key(x) in members] + [u for u in upstream if isinstance(u, kind)]

    async def list_prompts(self) -> list[MCPPrompt]:
        """Ours; on a virtual server, its own set: ours in it and other servers' in it."""
        return await self._in_view(await super().list_prompts(), lambda p: p.name, "prompt", MCPPrompt)

    async def list_resources(self) -> list[MCPResource]:
        return await self._in_view(await super().list_resources(), lambda r: str(r.uri), "resource", MCPResource)

    async def list_resource_templates(self) -> list[MCPResourceTemplate]:
        templates = await super().list_resource_templates()
        return await self._in_view(templates, lambda t: t.uri_template, "resource", MCPResourceTemplate)

    @staticmethod
    def _check_view(item_type: str, name: str) -> None:
        """Refuse a prompt or resource outside the virtual server this request was sent to."""
        view = current_view.get()
        if view is None:
            return
        allowed = name in view.prompts if item_type == "prompt" else resource_allowed(view, name)
        if not allowed:
            raise MCPError(code=INVALID_PARAMS, message=f"{name!r} is not part of the virtual server {view.name!r}")

    async def _upstream_entry(self, item_type: str, name: str) -> tuple[Principal, str, str, str | None] | None:
        """Who asks and where another server's prompt/resource lives, or None (then it is ours, or unknown)."""
        lookup = self.upstream_lookup
        principal = request_principal()
        if lookup is None or principal is None:
            return None
        found = await lookup(item_type, name)
        if found is None:
            return None
        if "read" not in principal.scopes:
            raise MCPError(code=INVALID_PARAMS, message=f"reading {name!r} needs the 'read' scope")
        return (principal, *found)

    async def read_resource(
        self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
    ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        """Ours from the registry; another server's (by its URI, from the catalog) read there with its credentials,
        every content tagged untrusted (outside content)."""
        self._check_view("resource", str(uri))
        found = None if str(uri) in self.registry.resources else await self._upstream_entry("resource", str(uri))
        if found is None:
            return await super().read_resource(uri, context)
        principal, server, own, url = found
        try:
            result = await self.runner.upstream.read_resource(server, url, own, principal.user_id)
        except ToolFailure as failure:
            raise MCPError(code=INTERNAL_ERROR, message=failure.message) from None
        meta = {"isa/untrusted": True, "isa/server": server}
        out: list[ReadResourceContents] = []
        for item in result.contents:
            if isinstance(item, TextResourceContents):
                out.append(ReadResourceContents(content=item.text, mime_type=item.mime_type, meta=meta))
            elif isinstance(item, BlobResourceContents):
                content = base64.b64decode(item.blob)
                out.append(ReadResourceContents(content=content, mime_type=item.mime_type, meta=meta))
        return out

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[Any, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        """The SDK's prompts/get, with a caller's mistake (unknown prompt, missing or bad arguments) answered as
        invalid params and one INFO line: the SDK turns it into a ValueError its dispatcher logs as a crash.
        Another server's prompt (by its call name here) is got there and tagged untrusted."""
        self._check_view("prompt", name)
        found = None if name in self.registry.prompts else await self._upstream_entry("prompt", name)
        if found is not None:
            principal, server, own, url = found
            args = {k: str(v) for k, v in (arguments or {}).items()}
            try:
                result = await self.runner.upstream.get_prompt(server, url, own, args, principal.user_id)
            except ToolFailure as failure:
                raise MCPError(code=INTERNAL_ERROR, message=failure.message) from None
            return result.model_copy(
                update={"meta": {**(result.meta or {}), "isa/untrusted": True, "isa/server": server}}
            )
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
