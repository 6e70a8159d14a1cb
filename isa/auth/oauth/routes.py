"""HTTP of the authorization server: RFC 8414 metadata, authorize + consent, token, register, revoke.

The protocol is the `mcp` SDK's handlers (validation, PKCE S256, redirect-URI match, error shapes); these routes
add what the SDK leaves to the server: a provider bound to the request, the consent page, rate limits, CORS.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.revoke import RevocationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.provider import construct_redirect_uri
from mcp.server.auth.settings import ClientRegistrationOptions
from mcp.shared.auth import InvalidRedirectUriError, OAuthMetadata
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp

from isa.auth.oauth import consent
from isa.auth.oauth.service import Endpoints, HashedSecretAuthenticator, OAuthProvider, Pending, for_our_mcp
from isa.auth.principal import SCOPES
from isa.auth.ratelimit import check_rate, client_ip
from isa.auth.service import KEY_PREFIX, AuthService
from isa.core.errors import ApiError
from isa.core.logging import get_logger

log = get_logger(__name__)

METADATA_PATH = "/.well-known/oauth-authorization-server"
AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path)
REGISTER_PATH = "/oauth/register"
REVOKE_PATH = "/oauth/revoke"
_AUTH_METHODS = ["client_secret_post", "client_secret_basic", "none"]
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

Handler = Callable[[Request], Awaitable[Response]]


class OAuthRoutes:
    def __init__(self, mcp_public_url: str) -> None:
        self.mcp_public_url = mcp_public_url

    def _auth(self, request: Request) -> AuthService:
        return request.app.state.isa.get("auth", AuthService)  # type: ignore[no-any-return]

    def provider(self, request: Request) -> OAuthProvider:
        auth = self._auth(request)
        if not auth.settings.isa_tokens_enabled:
            # The routes exist wherever /mcp is; without a token secret they can't issue anything.
            raise ApiError(503, "not_configured", "the OAuth server needs isa access tokens (AUTH.TOKEN_SECRET)")
        return OAuthProvider(auth, Endpoints.for_request(auth.settings, request, self.mcp_public_url))

    async def _ip_budget(self, request: Request) -> None:
        auth = self._auth(request)
        ip = client_ip(request, auth.settings.trusted_proxy_hops)
        await check_rate(auth.db, f"oauth-ip:{ip}", auth.settings.oauth.ip_limit, 60)

    # -- metadata ------------------------------------------------------------------------------------------------

    async def metadata(self, request: Request) -> Response:
        issuer = self.provider(request).endpoints.issuer
        metadata = OAuthMetadata.model_validate(
            {
                "issuer": issuer,
                "authorization_endpoint": issuer + AUTHORIZE_PATH,
                "token_endpoint": issuer + TOKEN_PATH,
                "registration_endpoint": issuer + REGISTER_PATH,
                "revocation_endpoint": issuer + REVOKE_PATH,
                "scopes_supported": list(SCOPES),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": _AUTH_METHODS,
                "revocation_endpoint_auth_methods_supported": _AUTH_METHODS,
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": True,
            }
        )
        body = metadata.model_dump(mode="json", exclude_none=True)
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})

    # -- authorize and consent -----------------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        """The SDK validates the request; a valid one gets the consent page here, not a redirect."""
        provider = self.provider(request)
        response = await AuthorizationHandler(provider).handle(request)
        pending = provider.pending
        if pending is not None:
            return self._consent_page(request, provider, pending)
        if response.status_code in (302, 303):
            return response  # an error the SDK may send back: the client and its redirect URI are registered
        try:
            error = json.loads(bytes(response.body))
        except ValueError:
            error = {}
        return consent.error_page(
            response.status_code,
            str(error.get("error", "invalid_request")),
            str(error.get("error_description") or "the authorization request is not valid"),
        )

    def _consent_page(
        self, request: Request, provider: OAuthProvider, pending: Pending, error: str | None = None, status: int = 200
    ) -> Response:
        settings = provider.settings
        sealed = consent.seal(
            settings.token_secret.get_secret_value(),
            pending.client.client_id,
            pending.params,
            pending.resource,
            settings.oauth.consent_seconds,
        )
        asked = pending.params.scopes or (pending.client.scope.split() if pending.client.scope else list(SCOPES))
        return consent.consent_page(
            client_id=pending.client.client_id,
            client_name=pending.client.client_name,
            redirect_uri=str(pending.params.redirect_uri),
            scopes=asked,
            resource=pending.resource,
            sealed=sealed,
            request=request,
            error=error,
            status=status,
        )

    async def consent_submit(self, request: Request) -> Response:
        provider = self.provider(request)
        form = await request.form()
        origin = request.headers.get("origin")
        if origin is not None and origin != provider.endpoints.issuer:
            return consent.error_page(403, "invalid_request", "the form was sent from another site")
        if not consent.csrf_matches(request, str(form.get("csrf") or "")):
            return consent.error_page(403, "invalid_request", "the form expired or came from another site")
        opened = consent.unseal(provider.settings.token_secret.get_secret_value(), str(form.get("request") or ""))
        if opened is None:
            return consent.error_page(400, "invalid_request", "the sign-in request expired or was altered")
        client_id, params, resource = opened
        client = await provider.get_client(client_id)
        if client is None:
            return consent.error_page(400, "invalid_request", "the application is not registered")
        try:
            client.validate_redirect_uri(params.redirect_uri)
        except InvalidRedirectUriError as exc:
            return consent.error_page(400, "invalid_request", exc.message)
        pending = Pending(client, params, resource)
        issuer = provider.endpoints.issuer
        if form.get("decision") != "allow":
            log.info("oauth_consent_denied", client_id=client_id)
            return self._back(params.redirect_uri, error="access_denied", state=params.state, iss=issuer)
        api_key = str(form.get("api_key") or "").strip()
        auth = provider.auth
        await auth.check_auth_attempt(request, api_key or None)
        try:
            if not api_key.startswith(KEY_PREFIX):
                raise ApiError(401, "unauthorized", "not an isa API key")
            principal = await auth.principal_for_api_key(api_key)
        except ApiError as exc:
            if exc.status != 401:
                raise
            message = "That API key is unknown, revoked or expired."
            return self._consent_page(request, provider, pending, error=message, status=401)
        scopes = provider.granted_scopes(params.scopes, client, principal)
        code = await provider.issue_code(pending, principal, scopes)
        return self._back(params.redirect_uri, code=code, state=params.state, iss=issuer)

    @staticmethod
    def _back(redirect_uri: object, **params: str | None) -> Response:
        # 303: the browser follows a POST's answer with a GET.
        url = construct_redirect_uri(str(redirect_uri), **params)
        return RedirectResponse(url, status_code=303, headers=_NO_STORE)

    # -- token, registration, revocation (machine endpoints) -----------------------------------------------------

    async def token(self, request: Request) -> Response:
        await self._ip_budget(request)
        provider = self.provider(request)
        # RFC 8707 at the token endpoint too (the SDK's handler doesn't look): only this node's /mcp. The form is
        # cached on the request, so the SDK's handler reads the same one.
        resource = (await request.form()).get("resource")
        if isinstance(resource, str) and not for_our_mcp(provider.endpoints.resource, resource):
            body = {"error": "invalid_target", "error_description": "this server issues tokens only for its own /mcp"}
            return JSONResponse(body, status_code=400, headers=_NO_STORE)
        response: Response = await TokenHandler(provider, HashedSecretAuthenticator(provider)).handle(request)
        return response

    async def register(self, request: Request) -> Response:
        await self._ip_budget(request)
        options = ClientRegistrationOptions(enabled=True, valid_scopes=list(SCOPES), default_scopes=list(SCOPES))
        return await RegistrationHandler(self.provider(request), options).handle(request)

    async def revoke(self, request: Request) -> Response:
        await self._ip_budget(request)
        provider = self.provider(request)
        return await RevocationHandler(provider, HashedSecretAuthenticator(provider)).handle(request)

    def routes(self) -> list[Route]:
        return [
            Route(METADATA_PATH, _cors(self.metadata, ["GET", "OPTIONS"]), methods=["GET", "OPTIONS"]),
            Route(AUTHORIZE_PATH, self.authorize, methods=["GET", "POST"]),
            Route(consent.CONSENT_PATH, self.consent_submit, methods=["POST"]),
            Route(TOKEN_PATH, _cors(self.token, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
            Route(REGISTER_PATH, _cors(self.register, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
            Route(REVOKE_PATH, _cors(self.revoke, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
        ]


def _cors(handler: Handler, methods: list[str]) -> ASGIApp:
    """Browser-based MCP clients (the Inspector) call these from their own origin; no cookies are involved."""
    return CORSMiddleware(
        request_response(handler), allow_origins=["*"], allow_methods=methods, allow_headers=["mcp-protocol-version"]
    )
