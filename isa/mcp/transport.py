"""The HTTP side of /mcp: DNS-rebinding checks, bearer auth through isa.auth, session ids, RFC 9728 metadata.

Order matters: Host/Origin/Content-Type are checked before authentication (a rebinding page gets 403, not a
401 that leaks the auth scheme), then the bearer token is verified by `isa.auth` through the SDK's
`TokenVerifier` hook, then the SDK's session manager serves the request. The manager binds each session
to the principal that created it, so another user's token with that session id gets 404.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import psycopg
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.routes import build_resource_metadata_url
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.auth import ProtectedResourceMetadata
from mcp.shared.auth_utils import check_resource_allowed
from psycopg_pool import PoolTimeout
from pydantic import AnyHttpUrl
from starlette.authentication import AuthCredentials
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from isa.auth.principal import SCOPES, Principal
from isa.auth.service import KEY_PREFIX, AuthService
from isa.auth.settings import AuthSettings
from isa.catalog.virtual import VirtualServer
from isa.core.errors import ApiError, error_response, request_id_of
from isa.core.logging import get_logger
from isa.core.settings import Settings
from isa.core.sse import shutting_down
from isa.mcp import views
from isa.mcp.context import PRINCIPAL_CLAIM
from isa.mcp.settings import McpSettings, effective_hosts, effective_origins

log = get_logger(__name__)

DISCARD_SECONDS = 2.0  # bound on a session's clean-up when it ends
SESSION_ID_BYTES = 32  # 256 bits from the OS CSPRNG; the spec asks for secure, non-deterministic ids
_MAX_PASSED = 1024  # Host/Origin pairs remembered as allowed (then the set stops growing; checks still run)
_REJECTION_CODES = {400: "invalid_content_type", 403: "origin_not_allowed", 421: "host_not_allowed"}
# The last event of a server-push stream the node ends at shutdown (review item I6). The streamable-HTTP spec asks a
# server that closes an SSE stream to send a `retry` field first: the client waits that long, then reconnects (to
# another replica, or to this one restarted). No `data` line, so no client tries to parse a message out of it
# (MCP has no "server is going away" notification); the comment is for a human reading the wire.
SHUTDOWN_RETRY_MS = 3000
SHUTDOWN_EVENT = f": this node is shutting down; reconnect\r\nretry: {SHUTDOWN_RETRY_MS}\r\n\r\n".encode()


def new_session_id() -> str:
    return secrets.token_hex(SESSION_ID_BYTES)


class PrincipalTokenVerifier:
    """The SDK's TokenVerifier hook, answered by isa.auth: the Principal becomes the SDK's AccessToken.

    API keys found valid are remembered for `cache_seconds` (isa.auth's documented revocation bound,
    `auth.principal_cache_seconds`): an MCP client sends its key with every message, and two queries per
    message cost more than the SDK's whole request. JWTs are verified every time (their expiry counts).
    """

    def __init__(self, auth: AuthService, cache_seconds: float, max_entries: int = 10_000) -> None:
        self.auth = auth
        self.cache_seconds = cache_seconds
        self.max_entries = max_entries
        # sha256 of the key -> (valid until, the verified caller): built once, not per message
        self._keys: OrderedDict[str, tuple[float, AuthenticatedUser]] = OrderedDict()

    async def verify_token(self, token: str) -> AccessToken | None:
        user = await self.verify_user(token)
        return None if user is None else user.access_token

    async def verify_user(self, token: str) -> AuthenticatedUser | None:
        """The SDK's AuthenticatedUser for `token`, or None when it is unknown, expired or revoked."""
        cacheable = token.startswith(KEY_PREFIX) and self.cache_seconds > 0
        digest = hashlib.sha256(token.encode()).hexdigest() if cacheable else ""
        if cacheable:
            hit = self._keys.get(digest)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        try:
            principal = await self.auth.principal_for_bearer(token)
        except ApiError as exc:
            if exc.status in (401, 403):
                return None
            raise
        user = AuthenticatedUser(self._access_token(token, principal))
        if cacheable:
            self._keys[digest] = (time.monotonic() + self.cache_seconds, user)
            self._keys.move_to_end(digest)
            while len(self._keys) > self.max_entries:
                self._keys.popitem(last=False)
        return user

    @staticmethod
    def credentials(user: AuthenticatedUser) -> AuthCredentials:
        """What Starlette's authentication puts in scope["auth"] for this caller."""
        return AuthCredentials(user.scopes)

    @staticmethod
    def _access_token(token: str, principal: Principal) -> AccessToken:
        claims: dict[str, Any] = {"via": principal.via, PRINCIPAL_CLAIM: principal}
        if principal.key_id:
            claims["key_id"] = principal.key_id
        # client_id and subject are the user: the SDK binds each session to them.
        return AccessToken(
            token=token,
            client_id=principal.user_id,
            subject=principal.user_id,
            scopes=sorted(principal.scopes),
            resource=principal.resource,
            claims=claims,
        )


class IsaSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager with 256-bit session ids and a callback when a session ends."""

    on_discard: Callable[[str], Awaitable[None]] | None = None

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        # Same as the SDK's, but the SDK names sessions with uuid4 (122 random bits); we want >= 128.
        if self.max_sessions is not None and len(self._server_instances) >= self.max_sessions:
            return None
        session_id = new_session_id()
        transport = StreamableHTTPServerTransport(
            mcp_session_id=session_id,
            is_json_response_enabled=self.json_response,
            event_store=self.event_store,
            security_settings=self.security_settings,
            retry_interval=self.retry_interval,
            idle_timeout=self.session_idle_timeout,
        )
        if requestor is not None:
            self._session_owners[session_id] = requestor
        self._server_instances[session_id] = transport
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        await super()._discard_session(session_id, transport)
        if self.on_discard is not None:
            # Shielded like the SDK's own terminate(): at shutdown every session task is being cancelled, and an
            # unshielded clean-up query would be cut (psycopg: "query cancellation interrupted"). Bounded, so a
            # database that is gone cannot hold the shutdown.
            with anyio.move_on_after(DISCARD_SECONDS, shield=True):
                await self.on_discard(session_id)


def transport_security(settings: Settings, mcp: McpSettings) -> TransportSecuritySettings:
    """DNS-rebinding protection always on (also behind a proxy, where the SDK would leave it off)."""
    hosts: list[str] = []
    for host in effective_hosts(settings, mcp):
        hosts += [host, f"{host}:*"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=effective_origins(settings, mcp)
    )


def resource_url(mcp: McpSettings, request: Request) -> str:
    """This endpoint's public URL: the configured one, else what the client used to reach us; a virtual server's
    is below it (/mcp/v/NAME), so a token for /mcp serves it and a token for it serves nothing else."""
    base = mcp.public_url.rstrip("/") if mcp.public_url else str(request.base_url).rstrip("/") + "/mcp"
    virtual = request.path_params.get(views.PATH_PARAM)
    return f"{base}/v/{virtual}" if virtual else base


def metadata_url(mcp: McpSettings, request: Request) -> str:
    return str(build_resource_metadata_url(AnyHttpUrl(resource_url(mcp, request))))


def resource_metadata_endpoint(mcp: McpSettings, auth: AuthSettings) -> Callable[[Request], Any]:
    """RFC 9728 protected-resource metadata for /mcp: the authorization server is Auth0/Supabase when configured
    as such (auth.oauth.authorization_server), else this node's own (isa.auth.oauth)."""

    async def endpoint(request: Request) -> Response:
        resource = resource_url(mcp, request)
        virtual = request.path_params.get(views.PATH_PARAM)
        parts = urlsplit(resource)
        own = auth.oauth.issuer_url.rstrip("/") or f"{parts.scheme}://{parts.netloc}"
        servers = mcp.authorization_servers or [auth.external_authorization_server() or own]
        # Validated from plain strings so the model keeps URLs as configured (no trailing slash added).
        metadata = ProtectedResourceMetadata.model_validate(
            {
                "resource": resource,
                "authorization_servers": servers,
                "scopes_supported": list(SCOPES),
                "resource_name": f"isa MCP server {virtual}" if virtual else "isa MCP server",
            }
        )
        return JSONResponse(
            metadata.model_dump(mode="json", exclude_none=True), headers={"Cache-Control": "public, max-age=300"}
        )

    return endpoint


class McpEndpoint:
    """ASGI app for /mcp: transport checks, bearer auth, JSON-RPC batch refusal, then the SDK.

    One layer on the raw ASGI headers (issue #22 item 5): no Starlette Request, no SDK auth middlewares. The checks
    are the SDK's (TransportSecurityMiddleware's Host/Origin/Content-Type rules, BearerAuthBackend's bearer parsing
    and expiry, AuthContextMiddleware's context variable), done once per request in that order; a Request is built
    only to answer a refusal that needs this endpoint's URL.
    """

    def __init__(
        self,
        manager: StreamableHTTPSessionManager,
        security: TransportSecuritySettings,
        mcp: McpSettings,
        auth: AuthService,
    ) -> None:
        self.manager = manager
        self.mcp = mcp
        self.guard = TransportSecurityMiddleware(security)
        # Host/Origin pairs found allowed (the SDK's checks scan the allowed lists; a client sends the same pair with
        # every message). Only passes are remembered: a refusal is checked, and logged, each time.
        self._passed: set[tuple[bytes | None, bytes | None]] = set()
        self.verifier = PrincipalTokenVerifier(auth, auth.settings.principal_cache_seconds)
        # The definition of a virtual server by name (isa.catalog through isa.mcp.discovery); None: not served.
        self.virtual: Callable[[str], Awaitable[VirtualServer | None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._serve(scope, receive, send)
        except ApiError as exc:
            await error_response(request_id_of(scope), exc)(scope, receive, send)
        except (psycopg.Error, PoolTimeout) as exc:  # the database is down: verifying the caller is impossible
            log.warning("mcp_auth_unavailable", error=type(exc).__name__)
            message = "the identity store is unavailable; retry shortly"
            unavailable = ApiError(503, "unavailable", message, headers={"Retry-After": "5"})
            await error_response(request_id_of(scope), unavailable)(scope, receive, send)

    def _checked(self, method: str, headers: dict[bytes, bytes]) -> None:
        """Content-Type (POST), then Host and Origin (DNS rebinding): the SDK's rules, on raw headers."""
        guard = self.guard
        if method == "POST":
            content_type = headers.get(b"content-type")
            if not guard._validate_content_type(content_type.decode("latin-1") if content_type is not None else None):
                raise ApiError(400, _REJECTION_CODES[400], "Invalid Content-Type header")
        if not guard.settings.enable_dns_rebinding_protection:
            return
        host, origin = headers.get(b"host"), headers.get(b"origin")
        if (host, origin) in self._passed:
            return
        if not guard._validate_host(host.decode("latin-1") if host is not None else None):
            raise ApiError(421, _REJECTION_CODES[421], "Invalid Host header")
        if not guard._validate_origin(origin.decode("latin-1") if origin is not None else None):
            raise ApiError(403, _REJECTION_CODES[403], "Invalid Origin header")
        if len(self._passed) < _MAX_PASSED:
            self._passed.add((host, origin))

    async def _authenticated(self, headers: dict[bytes, bytes]) -> AuthenticatedUser | None:
        """BearerAuthBackend.authenticate on the raw header: the verified caller, or None (then 401)."""
        raw = headers.get(b"authorization")
        if raw is None:
            return None
        header = raw.decode("latin-1")
        if not header.lower().startswith("bearer "):
            return None
        user = await self.verifier.verify_user(header[7:])
        if user is None:
            return None
        expires_at = user.access_token.expires_at
        if expires_at and expires_at < int(time.time()):
            return None
        return user

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        headers: dict[bytes, bytes] = {}
        for key, value in scope["headers"]:
            headers.setdefault(key, value)  # the first of a repeated header, as Starlette's Headers.get
        self._checked(method, headers)
        user = await self._authenticated(headers)
        if user is None:
            raise self._unauthorized(Request(scope), bool(headers.get(b"authorization")))
        if self.mcp.required_scope not in user.scopes:
            raise ApiError(
                403,
                "insufficient_scope",
                f"/mcp needs the {self.mcp.required_scope!r} scope",
                headers={
                    "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{self.mcp.required_scope}", '
                    f'resource_metadata="{metadata_url(self.mcp, Request(scope))}"'
                },
            )
        token_resource = user.access_token.resource
        if token_resource and not check_resource_allowed(resource_url(self.mcp, Request(scope)), token_resource):
            # RFC 8707: an OAuth token bound to another resource is not for this endpoint.
            raise self._unauthorized(Request(scope), True)
        virtual = scope.get("path_params", {}).get(views.PATH_PARAM)
        if virtual is not None:
            view = await self.virtual(virtual) if self.virtual is not None else None
            if view is None:
                raise ApiError(404, "unknown_virtual_server", f"no virtual server named {virtual!r}")
            scope[views.SCOPE_KEY] = view
        if method == "POST":
            body = await self._read_body(receive)
            if body.lstrip()[:1] == b"[":
                await self._jsonrpc_error(scope, receive, send, 400, -32600, "JSON-RPC batches are not supported")
                return
            receive = _replay(body, receive)
        scope["user"] = user
        scope["auth"] = self.verifier.credentials(user)
        if method == "GET":
            if b"last-event-id" in headers and getattr(self.manager, "event_store", None) is None:
                # No event store, so nothing to replay: the SDK would answer a Last-Event-ID with no response at
                # all (a bare 500). Resumption is optional in the protocol; the client gets a fresh stream instead.
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"last-event-id"]
            send = _last_words_on_shutdown(scope, send)
        # What the SDK's AuthContextMiddleware does: the caller in its context variable while the SDK serves.
        token = auth_context_var.set(user)
        try:
            await self.manager.handle_request(scope, receive, send)
        finally:
            auth_context_var.reset(token)

    def _unauthorized(self, request: Request, sent: bool) -> ApiError:
        challenge = f'Bearer resource_metadata="{metadata_url(self.mcp, request)}", scope="{self.mcp.required_scope}"'
        if sent:
            challenge += ', error="invalid_token", error_description="unknown, expired or revoked token"'
        message = "invalid bearer token" if sent else "authentication required (Authorization: Bearer)"
        return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": challenge})

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.mcp.max_body_bytes:
                raise ApiError(413, "payload_too_large", f"request body is larger than {self.mcp.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    async def _jsonrpc_error(scope: Scope, receive: Receive, send: Send, status: int, code: int, text: str) -> None:
        body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": text}}
        await Response(json.dumps(body), status_code=status, media_type="application/json")(scope, receive, send)


def _last_words_on_shutdown(scope: Scope, send: Send) -> Send:
    """`send` for a GET stream: when the node is shutting down, its closing body carries SHUTDOWN_EVENT first.

    The SDK's SSE response (sse-starlette) already ends the stream cleanly when uvicorn starts exiting (it stops
    the writer and sends the closing empty body); it has a farewell hook, but the SDK's transport doesn't expose
    it, so the event is added here, at the ASGI boundary, to that closing body and only to an open event stream.
    """
    streaming = False

    async def wrapped(message: Message) -> None:
        nonlocal streaming
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            streaming = message["status"] == 200 and content_type.startswith(b"text/event-stream")
        elif (
            streaming
            and message["type"] == "http.response.body"
            and not message.get("more_body", False)
            and shutting_down(scope)
        ):
            message = {**message, "body": SHUTDOWN_EVENT + message.get("body", b"")}
        await send(message)

    return wrapped


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
