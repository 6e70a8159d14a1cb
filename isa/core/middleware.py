"""The one ASGI middleware every role runs: request id, allowed hosts, body limit, metrics, access log, 500s.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses pass through untouched and context
variables set here are visible to the handler.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Sequence

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from isa.core.errors import error_body
from isa.core.logging import get_logger
from isa.core.metrics import Metrics

log = get_logger("isa.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Load balancers probe by IP address, so health checks skip the Host allow list.
HOST_CHECK_EXEMPT = ("/health", "/health/live", "/health/ready")
_CACHE_ENTRIES = 1024


class _BodyTooLarge(Exception):
    pass


def _headers(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """The request's X-Request-Id, Host and Content-Length (the first of each), in one pass over the headers."""
    request_id = host = length = None
    for key, value in scope.get("headers", ()):
        if key == b"host":
            host = host if host is not None else value.decode("latin-1")
        elif key == b"content-length":
            length = length if length is not None else value.decode("latin-1")
        elif key == b"x-request-id":
            request_id = request_id if request_id is not None else value.decode("latin-1")
    return request_id, host, length


def host_allowed(host_header: str | None, allowed: Sequence[str]) -> bool:
    """Compare the Host header (without port) to the allow list; '*' allows any, '*.x' a subdomain."""
    if "*" in allowed:
        return True
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    for pattern in allowed:
        pattern = pattern.lower()
        if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
            return True
    return False


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        route_of: Callable[[Scope], str],
        allowed_hosts: Sequence[str],
        max_body_bytes: int,
        body_limits: Sequence[tuple[str, int]] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.route_of = route_of
        self.allowed_hosts = list(allowed_hosts)
        self.max_body_bytes = max_body_bytes
        # Answers for Host headers and paths seen lately: the same few come with every request (bounded caches;
        # cleared when full, so a flood of distinct values costs the plain check, never memory).
        self._hosts: dict[str | None, bool] = {}
        self._limits: dict[str, int] = {}
        # Longest prefix first, so /api/v1/users/{user_id}/files can allow more than /api/v1.
        # A "{name}" segment in a prefix matches any one path segment.
        self.body_limits = [
            (re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(prefix))), limit)
            for prefix, limit in sorted(body_limits, key=lambda item: -len(item[0]))
        ]

    def _limit_for(self, path: str) -> int:
        limit = self._limits.get(path)
        if limit is None:
            limit = next((lim for prefix, lim in self.body_limits if prefix.match(path)), self.max_body_bytes)
            if len(self._limits) >= _CACHE_ENTRIES:
                self._limits.clear()
            self._limits[path] = limit
        return limit

    def _host_allowed(self, host: str | None) -> bool:
        allowed = self._hosts.get(host)
        if allowed is None:
            allowed = host_allowed(host, self.allowed_hosts)
            if len(self._hosts) >= _CACHE_ENTRIES:
                self._hosts.clear()
            self._hosts[host] = allowed
        return allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming, host, declared = _headers(scope)
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
        method: str = scope["method"]
        status = 500
        started = False
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        async def reject(code: int, error: str, message: str, extra: list[tuple[bytes, bytes]] = []) -> None:  # noqa: B006
            body = json.dumps(error_body(error, message, request_id)).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send_with_id({"type": "http.response.start", "status": code, "headers": headers + extra})
            await send_with_id({"type": "http.response.body", "body": body})

        limit = self._limit_for(path)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                if path not in HOST_CHECK_EXEMPT and not self._host_allowed(host):
                    await reject(421, "host_not_allowed", "this host name is not served here")
                    return
                if "\x00" in path:  # %00 in a path segment would reach the database as a key (a 500 there)
                    await reject(422, "invalid_request", "the path must not contain NUL characters")
                    return
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    await reject(413, "payload_too_large", f"request body is larger than {limit} bytes")
                    return
                await self.app(scope, limited_receive, send_with_id)
            except _BodyTooLarge:
                if not started:
                    await reject(413, "payload_too_large", f"request body is larger than {limit} bytes")
            except Exception:
                log.exception("unhandled_error", method=method, path=path)
                if not started:
                    await reject(500, "internal_error", "internal error; quote the request id when reporting it")
            finally:
                elapsed = time.perf_counter() - t0
                route = self.route_of(scope)
                self.metrics.observe(method, route, status, elapsed)
                log.info(
                    "request",
                    method=method,
                    path=path,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
