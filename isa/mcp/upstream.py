"""Imported tools run on their own MCP server: we forward the call over streamable HTTP, behind a breaker.

The upstream gets only the credentials configured for that server (`mcp.upstream_headers.<server>`, and for a
server added by URL its sealed headers or the calling user's own stored credential, through `credentials`), never
the caller's token: the MCP spec forbids token passthrough. A server that keeps failing is cut off for a
cooldown, then one probe decides whether it is back.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, GetPromptResult, ReadResourceResult

from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.mcp.envelope import ToolFailure
from isa.mcp.settings import McpSettings

log = get_logger(__name__)
T = TypeVar("T")
# (server, user id) -> headers for that user's call; raises ApiError when the user must act first.
CredentialLookup = Callable[[str, str], Awaitable[dict[str, str]]]


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


class CircuitBreaker:
    """Per upstream: `threshold` consecutive failures open it; after `cooldown` one probe may pass."""

    def __init__(self, threshold: int, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def before(self, key: str) -> None:
        """Raise ToolFailure(circuit_open) unless a call to `key` may go out now."""
        circuit = self._circuits.get(key)
        if circuit is None or circuit.opened_at is None:
            return
        waited = self.clock() - circuit.opened_at
        if waited >= self.cooldown and not circuit.probing:
            circuit.probing = True  # this caller is the probe; the others still fail fast
            return
        retry_after = max(1, int(self.cooldown - waited + 0.999)) if waited < self.cooldown else 1
        raise ToolFailure(
            "circuit_open",
            "upstream_circuit_open",
            f"the server {key!r} failed repeatedly; calls are paused",
            retry_after=retry_after,
        )

    def success(self, key: str) -> None:
        self._circuits.pop(key, None)

    def failure(self, key: str) -> None:
        circuit = self._circuits.setdefault(key, _Circuit())
        circuit.failures += 1
        if circuit.probing or circuit.failures >= self.threshold:
            if circuit.opened_at is None or circuit.probing:
                log.warning("upstream_circuit_opened", server=key, failures=circuit.failures)
            circuit.opened_at = self.clock()
            circuit.probing = False

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {
            key: {"failures": c.failures, "open": c.opened_at is not None, "probing": c.probing}
            for key, c in self._circuits.items()
        }


class Upstream:
    def __init__(self, settings: McpSettings, breaker: CircuitBreaker) -> None:
        self.settings = settings
        self.breaker = breaker
        # Server names come back lower-cased from the settings loader; match them case-insensitively.
        self.headers = {name.lower(): dict(h) for name, h in settings.upstream_headers.items()}
        self.credentials: CredentialLookup | None = None

    async def _headers(self, server: str, user_id: str | None) -> dict[str, str]:
        headers = dict(self.headers.get(server.lower(), {}))
        if self.credentials is not None and user_id is not None:
            try:
                headers.update(await self.credentials(server, user_id))
            except ApiError as exc:  # e.g. upstream_credential_required: the user has to store theirs first
                raise ToolFailure("denied", exc.code, exc.message) from None
        return headers

    async def session_call(
        self, server: str, url: str | None, user_id: str | None, what: str, op: Callable[[Client], Awaitable[T]]
    ) -> T:
        """Run `op` in a session with `server` (its credentials, its breaker); `what` names it in errors."""
        if not url:
            raise ToolFailure(
                "upstream_error",
                "no_upstream_url",
                f"{what} belongs to the imported server {server!r}, which has no URL; "
                "import its catalog entry again with a url to call it",
            )
        headers = await self._headers(server, user_id)  # before the breaker: a missing credential is not a failure
        self.breaker.before(server)
        timeout = self.settings.upstream_timeout_seconds
        try:
            with anyio.fail_after(timeout):
                async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(timeout)) as http:
                    transport = streamable_http_client(url, http_client=http)
                    async with Client(transport, mode="legacy", read_timeout_seconds=timeout, cache=None) as client:
                        return await op(client)
        except Exception as exc:
            self.breaker.failure(server)
            log.warning("upstream_call_failed", server=server, what=what, error=type(exc).__name__)
            raise ToolFailure(
                "upstream_error", "upstream_unavailable", f"the server {server!r} did not answer the call of {what}"
            ) from None

    async def call(
        self, server: str, url: str | None, tool: str, arguments: dict[str, Any], user_id: str | None = None
    ) -> CallToolResult:
        """Call `tool` on `server` at `url` with the server's own credentials (or `user_id`'s own)."""
        result = await self.session_call(server, url, user_id, repr(tool), lambda c: c.call_tool(tool, arguments))
        if result.is_error:
            self.breaker.failure(server)
        else:
            self.breaker.success(server)
        return result

    async def get_prompt(
        self, server: str, url: str | None, prompt: str, arguments: dict[str, str] | None, user_id: str
    ) -> GetPromptResult:
        result = await self.session_call(
            server, url, user_id, f"the prompt {prompt!r}", lambda c: c.get_prompt(prompt, arguments)
        )
        self.breaker.success(server)
        return result

    async def read_resource(self, server: str, url: str | None, uri: str, user_id: str) -> ReadResourceResult:
        result = await self.session_call(server, url, user_id, f"the resource {uri!r}", lambda c: c.read_resource(uri))
        self.breaker.success(server)
        return result
