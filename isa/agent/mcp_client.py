"""The MCP node as the agent uses it: `/discover` over HTTP, tools and prompts over MCP streamable HTTP.

One MCP session per run, opened on first use (a run that calls no tool never opens one) with the SDK's own
client, authenticated by the user's short agent token. Failures become AgentErrors with stable codes:
`mcp_unavailable` (can't reach or talk to the node), `tool_timeout` (a call past `tool_timeout_seconds`).
"""

from __future__ import annotations

import json
import re
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import mcp_types as types
from anyio.abc import TaskGroup, TaskStatus
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from isa.agent.events import AgentError
from isa.agent.upstream import Upstreams
from isa.core.logging import get_logger

log = get_logger(__name__)

HIL_MARKERS = ("authorization_requested", "human_input_requested")
_SCHEMA_TTL_SECONDS = 300.0
# The page gets a tool's images inline in one SSE event: bounded so a huge picture can't swamp the stream.
MAX_IMAGE_BYTES = 4_000_000
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def _images(content: list[Any]) -> list[dict[str, str]]:
    """The tool result's raster images (no SVG: it can carry script), within MAX_IMAGE_BYTES in all."""
    out, budget = [], MAX_IMAGE_BYTES
    for item in content:
        if isinstance(item, types.ImageContent) and item.mime_type in IMAGE_TYPES and len(item.data) <= budget:
            budget -= len(item.data)
            out.append({"mime_type": item.mime_type, "data": item.data})
    return out


MAX_FILES = 10
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def _file_ids(envelope: dict[str, Any] | None) -> list[str]:
    """Ids of files a tool says it stored (`file_id` / `file_ids` anywhere in its data: analytics charts, generated
    images): the page fetches them with the user's own credential, so at worst it shows one of the user's files."""
    found: list[str] = []

    def walk(value: Any, depth: int) -> None:
        if depth > 6 or len(found) >= MAX_FILES:
            return
        if isinstance(value, dict):
            for key, item in value.items():
                ids = [item] if key == "file_id" else item if key == "file_ids" and isinstance(item, list) else []
                found.extend(i for i in ids if isinstance(i, str) and _UUID.match(i) and i not in found)
                walk(item, depth + 1)
        elif isinstance(value, list):
            for item in value[:100]:
                walk(item, depth + 1)

    walk((envelope or {}).get("data"), 0)
    return found[:MAX_FILES]


@dataclass
class ToolOutcome:
    text: str
    envelope: dict[str, Any] | None
    is_error: bool
    # MCP image content ({mime_type, data} base64), shown by the chat page; the model still sees the text only.
    images: list[dict[str, str]] = field(default_factory=list)
    # Ids of the caller's files the result names (the page shows the images among them).
    files: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str((self.envelope or {}).get("status", "error" if self.is_error else "success"))


def function_spec(name: str, description: str, schema: dict[str, Any] | None) -> dict[str, Any]:
    """An OpenAI `tools` entry for an MCP tool."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description[:1024],
            "parameters": schema or {"type": "object", "properties": {}},
        },
    }


class SchemaCache:
    """Specs of the core tools, listed once per process every few minutes (not per run)."""

    def __init__(self) -> None:
        self.specs: dict[str, dict[str, Any]] = {}
        self.loaded_at = 0.0

    def fresh(self, names: list[str]) -> bool:
        return time.monotonic() - self.loaded_at < _SCHEMA_TTL_SECONDS and all(n in self.specs for n in names)


class McpLink:
    """The run's connection to the MCP node (HTTP for /discover, an MCP session for tools and prompts)."""

    def __init__(self, upstreams: Upstreams, token: str, request_id: str, cache: SchemaCache) -> None:
        self.upstreams = upstreams
        self.token = token
        self.request_id = request_id
        self.cache = cache
        self._client: Client | None = None
        self._lock = anyio.Lock()
        self._closing = anyio.Event()
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> McpLink:
        # The session lives in a task of this group, so whichever task opens it (a plan step, say), its
        # cancel scopes nest properly and it closes when the run ends.
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        await self._stack.aclose()

    async def discover(self, request: str, limit: int, min_similarity: float | None = None) -> list[dict[str, Any]]:
        """The tools that fit `request` (name to call, description, input schema), best first."""
        if limit <= 0:
            return []
        body: dict[str, Any] = {
            "request": request[:4000],
            "max_results": {"tools": limit, "prompts": 0, "resources": 0},
        }
        if min_similarity is not None:
            body["min_similarity"] = min_similarity
        try:
            async with self.upstreams.client("mcp", self.token, self.request_id, read_timeout=30) as http:
                response = await http.post("/discover", json=body)
        except httpx.HTTPError as exc:
            raise AgentError("mcp_unavailable", f"the MCP node can't be reached ({type(exc).__name__})") from None
        if response.status_code != 200:
            # Discovery down is not the end of the chat: the turn goes on with the core tools.
            log.warning("discovery_failed", status=response.status_code)
            return []
        tools = response.json().get("capabilities", {}).get("tools", [])
        return [t for t in tools if isinstance(t, dict) and t.get("name")]

    async def _hold(self, *, task_status: TaskStatus[Client | Exception]) -> None:
        """Open the session, hand it over, keep it open until the run ends (errors go to the opener)."""
        started = False
        http, url = self.upstreams.mcp_client2(self.token, self.request_id)
        limit = self.upstreams.agent.connect_timeout_seconds + 10  # bounds the handshake (per request)
        try:
            async with (
                http,
                Client(
                    streamable_http_client(url, http_client=http), mode="legacy", cache=None, read_timeout_seconds=limit
                ) as client,
            ):
                started = True
                task_status.started(client)
                await self._closing.wait()
        except Exception as exc:
            if not started:
                task_status.started(exc)
            else:  # closing a dead session must not hide the run's own outcome
                log.info("mcp_close_failed", error=type(exc).__name__)

    async def session(self) -> Client:
        async with self._lock:
            if self._client is None:
                assert self._tg is not None, "use McpLink as an async context manager"
                opened = await self._tg.start(self._hold)
                if isinstance(opened, Exception):
                    raise AgentError("mcp_unavailable", f"no MCP session ({type(opened).__name__})")
                self._client = opened
            return self._client

    async def core_specs(self, names: list[str]) -> list[dict[str, Any]]:
        """OpenAI specs of the core tools the node offers, from a process-wide cache."""
        if not names:
            return []
        if not self.cache.fresh(names):
            client = await self.session()
            specs = await self._listed(client)
            missing = [n for n in names if n not in specs]
            # A node with mcp.disclosure "meta"/"auto" lists only its meta-tools to a fresh session: select the
            # core tools (progressive disclosure) and list again. Refused or stateless: they stay left out.
            if missing and "select_tools" in specs and await self._select(client, missing):
                specs = await self._listed(client)
            self.cache.specs = specs
            self.cache.loaded_at = time.monotonic()
        return [self.cache.specs[n] for n in names if n in self.cache.specs]

    @staticmethod
    async def _listed(client: Client) -> dict[str, dict[str, Any]]:
        try:
            listed = await client.list_tools()
        except Exception as exc:
            raise AgentError("mcp_unavailable", f"tools/list failed ({type(exc).__name__})") from None
        return {t.name: function_spec(t.name, t.description or "", dict(t.input_schema)) for t in listed.tools}

    @staticmethod
    async def _select(client: Client, names: list[str]) -> bool:
        """Whether any of `names` is now in this session's selection (so tools/list shows it)."""
        try:
            result = await client.call_tool("select_tools", {"names": names})
        except Exception as exc:
            raise AgentError("mcp_unavailable", f"select_tools failed ({type(exc).__name__})") from None
        data = result.structured_content.get("data") if isinstance(result.structured_content, dict) else None
        if result.is_error or not isinstance(data, dict) or not set(names) & set(data.get("selected") or []):
            log.info("core_tools_not_selected", tools=names[:20])
            return False
        return True

    async def call_tool(
        self, name: str, arguments: dict[str, Any], limit_seconds: float, progress: Any = None
    ) -> ToolOutcome:
        client = await self.session()
        request = types.CallToolRequest(params=types.CallToolRequestParams(name=name, arguments=arguments))
        try:
            with anyio.fail_after(limit_seconds):
                result = await client.session.send_request(
                    request,
                    types.CallToolResult,
                    request_read_timeout_seconds=limit_seconds + 1,
                    progress_callback=progress,
                )
        except TimeoutError:
            raise AgentError("tool_timeout", f"the tool {name} did not finish within {limit_seconds:g} s") from None
        except Exception as exc:
            raise AgentError("mcp_unavailable", f"the call of {name} failed ({type(exc).__name__})") from None
        text = "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
        envelope = result.structured_content if isinstance(result.structured_content, dict) else None
        if envelope is None and text.startswith("{"):
            try:
                parsed = json.loads(text)
                envelope = parsed if isinstance(parsed, dict) else None
            except ValueError:
                envelope = None
        return ToolOutcome(
            text or json.dumps(envelope or {}),
            envelope,
            bool(result.is_error),
            _images(result.content),
            [] if result.is_error else _file_ids(envelope),
        )

    async def prompt_messages(self, name: str, arguments: dict[str, str]) -> list[dict[str, Any]]:
        """An MCP prompt as chat messages (text parts only)."""
        client = await self.session()
        try:
            result = await client.get_prompt(name, arguments)
        except Exception as exc:
            raise AgentError(
                "prompt_unavailable", f"the prompt {name!r} can't be used ({type(exc).__name__})"
            ) from None
        out = []
        for message in result.messages:
            content = message.content
            if isinstance(content, types.TextContent):
                out.append({"role": message.role, "content": content.text})
        return out
