"""What a resource function asks first: who reads it (authenticated, or ResourceError) and which service answers."""

from __future__ import annotations

from typing import TypeVar

from mcp.server.mcpserver.exceptions import ResourceError

from isa.core.builder import AppState
from isa.mcp.context import request_principal, request_state

T = TypeVar("T")


def resource_reader() -> tuple[str, AppState]:
    """The user reading the resource (from the verified token) and the process's services."""
    principal = request_principal()
    if principal is None:
        raise ResourceError("authentication required")
    return principal.user_id, request_state()


def resource_service(name: str, kind: type[T]) -> tuple[str, T]:
    """The user reading the resource and the service `name` (of type `kind`) that answers it."""
    user_id, state = resource_reader()
    return user_id, state.get(name, kind)
