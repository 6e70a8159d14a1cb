"""In-process HTTP: an httpx transport that calls this process's own ASGI app and streams the response.

One `LocalNode` per app (`local_node(builder)`): every cross-role client of the process (the agent's model and
MCP calls, `ModelClient` for tools, the worker's hand-off to the agent) uses it when the other role is served
here and no URL is set, so the same code runs over the network or in-process without knowing which.

httpx's ASGITransport runs the app to completion before it returns a response, so a token stream from
the model route would arrive in one piece and an MCP GET stream would never return. Here the app runs in
a task of the agent's lifespan task group and the response body flows through a bounded channel: the
same wire as over the network (headers, status, SSE frames, auth), without a socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import httpx
import httpx2
from anyio.abc import TaskGroup
from starlette.types import ASGIApp

from isa.core.builder import AppBuilder, AppState
from isa.core.settings import Settings
from isa.roles import domains_for

_BUFFERED_CHUNKS = 16
_GRACE_SECONDS = 5.0


class _Call:
    """One request through the app: the app runs in a task, the body comes out of a channel."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any], body: AsyncIterator[bytes]) -> None:
        self.app = app
        self.scope = scope
        self.body = body
        self.started = anyio.Event()
        self.finished = anyio.Event()
        self.disconnected = anyio.Event()
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.error: BaseException | None = None
        self.send_chunk, self.chunks = anyio.create_memory_object_stream[bytes](_BUFFERED_CHUNKS)
        self.scope_cancel = anyio.CancelScope()
        self.body_done = False

    async def receive(self) -> dict[str, Any]:
        if not self.body_done:
            try:
                chunk = await self.body.__anext__()
            except StopAsyncIteration:
                self.body_done = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.headers = list(message.get("headers", []))
            self.started.set()
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            if body and not self.disconnected.is_set():
                try:
                    await self.send_chunk.send(body)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self.disconnected.set()
            if not message.get("more_body", False):
                await self.send_chunk.aclose()

    async def run(self) -> None:
        with self.scope_cancel:
            try:
                await self.app(self.scope, self.receive, self.send)
            except Exception as exc:
                self.error = exc
        await self.send_chunk.aclose()
        self.finished.set()
        self.started.set()

    async def iterate(self) -> AsyncIterator[bytes]:
        async with self.chunks:
            async for chunk in self.chunks:
                yield chunk

    async def close(self, tg: TaskGroup | None) -> None:
        """The client is done with the response: the app sees a disconnect, and is stopped if it lingers."""
        self.disconnected.set()
        self.chunks.close()
        if not self.finished.is_set() and tg is not None:
            tg.start_soon(self._reap)

    async def _reap(self) -> None:
        # A streaming app stops when it sees the disconnect; one that doesn't is cancelled after a grace period
        # (cancelling at once could cut work the app does after its last byte, like an MCP session's set-up).
        with anyio.move_on_after(_GRACE_SECONDS):
            await self.finished.wait()
        self.scope_cancel.cancel()


class InProcess:
    """This process's app (handed over once by create_app through AppState) plus the task group calls run in."""

    def __init__(self, state: AppState | None = None) -> None:
        self.state = state
        self.tg: TaskGroup | None = None

    @property
    def app(self) -> ASGIApp | None:
        return self.state.app if self.state is not None else None

    async def open(self, request: httpx.Request | httpx2.Request, body: AsyncIterator[bytes]) -> _Call:
        app = self.app
        if app is None or self.tg is None:
            raise ConnectionError("the in-process app is not running")
        url = request.url
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": url.scheme,
            "path": url.path,
            "raw_path": url.raw_path.split(b"?")[0],
            "query_string": url.query,
            "server": (url.host, url.port or 80),
            "client": ("127.0.0.1", 0),
            "root_path": "",
        }
        call = _Call(app, scope, body)
        self.tg.start_soon(call.run)
        await call.started.wait()
        if call.error is not None and call.status == 500 and not call.headers:
            raise ConnectionError(f"the in-process app failed: {type(call.error).__name__}")
        return call


class _Stream(httpx.AsyncByteStream, httpx2.AsyncByteStream):
    """The response body for either library: both byte-stream bases ask for the same two methods."""

    def __init__(self, call: _Call, inproc: InProcess) -> None:
        self.call = call
        self.inproc = inproc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.call.iterate():
            yield chunk

    async def aclose(self) -> None:
        await self.call.close(self.inproc.tg)


async def _request_body(stream: Any) -> AsyncIterator[bytes]:
    async for chunk in stream:
        yield chunk


class _InProcessTransport:
    """What the httpx and httpx2 transports share; each subclass only builds its own library's types."""

    def __init__(self, inproc: InProcess) -> None:
        self.inproc = inproc

    async def _open(
        self, request: httpx.Request | httpx2.Request, connect_error: Callable[..., Exception]
    ) -> tuple[_Call, _Stream]:
        """The call into the app and its body; `connect_error` (the library's ConnectError) when it isn't running."""
        try:
            call = await self.inproc.open(request, _request_body(request.stream))
        except ConnectionError as exc:
            raise connect_error(str(exc), request=request) from None
        return call, _Stream(call, self.inproc)


class StreamingASGITransport(_InProcessTransport, httpx.AsyncBaseTransport):
    """httpx transport into the in-process app."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call, stream = await self._open(request, httpx.ConnectError)
        return httpx.Response(call.status, headers=call.headers, stream=stream)


class StreamingASGITransport2(_InProcessTransport, httpx2.AsyncBaseTransport):
    """The same for httpx2, which the MCP SDK's client is built on."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        call, stream = await self._open(request, httpx2.ConnectError)
        return httpx2.Response(call.status, headers=call.headers, stream=stream)


@dataclass(frozen=True)
class NodeTarget:
    """Where another role's node is: a base URL over HTTP, or this process (`local`: the in-process transport)."""

    name: str
    base_url: str
    local: bool


def node_target(settings: Settings, name: Literal["model", "mcp"], role: str | None) -> NodeTarget | None:
    """The one rule every cross-role client follows, decided once at start-up: `services.<name>_url` when set,
    else this process when it serves that role (`role`; None: don't look), else None (not reachable)."""
    url = settings.services.model_url if name == "model" else settings.services.mcp_url
    if url:
        return NodeTarget(name, url.rstrip("/"), False)
    if role is not None and f"isa.{name}" in domains_for(role):
        preferred = list(settings.raw.get("mcp", {}).get("allowed_hosts") or []) if name == "mcp" else None
        return NodeTarget(name, f"http://{local_host(settings, preferred)}", True)
    return None


def local_host(settings: Settings, preferred: list[str] | None = None) -> str:
    """A Host header the in-process app accepts (its allow list), so in-process calls pass the same checks."""
    for host in [*(preferred or []), *settings.http.allowed_hosts]:
        if host and "*" not in host:
            return host
    return "127.0.0.1"


def local_node(builder: AppBuilder) -> InProcess:
    """The process's one in-process transport hub; its task group lives as long as the app."""
    existing = builder.state.services.get("llm.local")
    if isinstance(existing, InProcess):
        return existing
    node = InProcess(builder.state)
    builder.provide("llm.local", node)

    @asynccontextmanager
    async def running() -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            node.tg = tg
            try:
                yield
            finally:
                node.tg = None
                tg.cancel_scope.cancel()

    builder.add_lifespan(running)
    return node
