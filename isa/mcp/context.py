"""Who is calling, inside a tool: the verified principal travels in the request context, never in arguments."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken

from isa.auth.principal import Principal
from isa.core.builder import AppState
from isa.core.db import Database

T = TypeVar("T")


PRINCIPAL_CLAIM = "isa/principal"


def principal_from_token(token: AccessToken) -> Principal:
    """The Principal our TokenVerifier packed into the SDK's AccessToken."""
    claims = token.claims or {}
    packed = claims.get(PRINCIPAL_CLAIM)
    if isinstance(packed, Principal):
        return packed
    key_id = claims.get("key_id")
    return Principal(
        user_id=token.client_id,
        scopes=frozenset(token.scopes),
        via=str(claims.get("via", "unknown")),
        key_id=str(key_id) if key_id else None,
    )


def request_principal() -> Principal | None:
    """The caller of the MCP request being served (set by the SDK's auth middleware), if any."""
    token = get_access_token()
    return None if token is None else principal_from_token(token)


_request_state: ContextVar[AppState | None] = ContextVar("isa_mcp_request_state", default=None)


def request_state() -> AppState:
    """The process's services while an MCP request is served (static resources get no Context to find them)."""
    return _required(_request_state, "request_state() is only available while an MCP request is served")


def bind_request_state(state: AppState) -> Any:
    return _request_state.set(state)


@dataclass(frozen=True)
class ToolCall:
    """What a tool function may know about its call: the caller and the process's services."""

    principal: Principal
    state: AppState
    tool_name: str
    request_id: str = ""
    session_id: str | None = None

    @property
    def db(self) -> Database:
        return self.state.db

    def service(self, name: str, kind: type[T]) -> T:
        return self.state.get(name, kind)


_current: ContextVar[ToolCall | None] = ContextVar("isa_mcp_tool_call", default=None)
# (request id, MCP session id) of the HTTP request carrying the MCP message being served; set by the server's
# middleware (isa/mcp/server.py), read by the runner for the audit row and ToolCall.
_message: ContextVar[tuple[str, str | None] | None] = ContextVar("isa_mcp_message", default=None)


def bind_message(request_id: str, session_id: str | None) -> Any:
    """Make these the ids of the message being served; returns the token for `unbind_message`."""
    return _message.set((request_id, session_id))


def unbind_message(token: Any) -> None:
    _message.reset(token)


def message_ids() -> tuple[str, str | None] | None:
    """(request id, session id) of the MCP message being served over HTTP, or None outside one."""
    return _message.get()


def current_call() -> ToolCall:
    """The call being executed; only valid inside a tool run by the MCP runner."""
    return _required(_current, "current_call() is only available inside a tool call")


def bind(call: ToolCall) -> Any:
    """Make `call` current; returns the token for `unbind`."""
    return _current.set(call)


def _required(var: ContextVar[T | None], outside: str) -> T:
    """`var`'s value; RuntimeError(`outside`) where nothing set it (a programming error, not the caller's)."""
    value = var.get()
    if value is None:
        raise RuntimeError(outside)
    return value


def unbind(token: Any) -> None:
    _current.reset(token)
