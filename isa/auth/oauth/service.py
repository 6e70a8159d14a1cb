"""The authorization server's behaviour, as the `mcp` SDK's provider protocol: the SDK's handlers do the protocol.

One `OAuthProvider` per request: the issuer and resource may come from the request (no public URL configured),
and `authorize` keeps the validated request for the consent page instead of redirecting anywhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from mcp.server.auth.middleware.client_auth import AuthenticationError, ClientAuthenticator
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    RegistrationError,
    TokenError,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url
from pydantic import AnyUrl
from starlette.requests import Request

from isa.auth.oauth import store
from isa.auth.principal import SCOPES, Principal, expand_scopes
from isa.auth.service import AuthService
from isa.auth.settings import AuthSettings
from isa.auth.tokens import InvalidToken, mint_access_token
from isa.core.db import Database
from isa.core.logging import get_logger

log = get_logger(__name__)

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def digest(secret: str) -> str:
    """What is stored for a client secret, code or refresh token: its SHA-256 (they are 256-bit random)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def redirect_uri_problem(uri: str) -> str | None:
    """Why a redirect URI can't be registered, or None: https anywhere, plain http only to a loopback host."""
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        return "a redirect URI may not have a fragment"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS:
        return None
    return "redirect URIs must be https, or http to a loopback address (127.0.0.1, [::1], localhost)"


def for_our_mcp(our_resource: str, requested: str) -> bool:
    """RFC 8707: tokens are issued for this node's /mcp, for something above it (a token for the origin serves
    /mcp too), or for one of its virtual servers below it (/mcp/v/NAME; such a token serves only that one)."""
    return check_resource_allowed(requested_resource=our_resource, configured_resource=requested) or (
        check_resource_allowed(requested_resource=requested, configured_resource=our_resource)
        and canonical(requested).startswith(our_resource.rstrip("/") + "/v/")
    )


def canonical(resource: str) -> str:
    """A resource URL as tokens carry it: lower-case scheme and host, no fragment, no trailing slash."""
    return resource_url_from_server_url(resource).rstrip("/")


@dataclass(frozen=True)
class Endpoints:
    """Where this authorization server is, as this request sees it."""

    issuer: str  # e.g. http://127.0.0.1:8081 (RFC 8414 issuer; no trailing slash)
    resource: str  # the /mcp resource tokens are for, e.g. http://127.0.0.1:8081/mcp

    @classmethod
    def for_request(cls, settings: AuthSettings, request: Request, mcp_public_url: str) -> Endpoints:
        if settings.oauth.issuer_url:
            issuer = settings.oauth.issuer_url.rstrip("/")
        elif mcp_public_url:
            parts = urlsplit(mcp_public_url)
            issuer = f"{parts.scheme}://{parts.netloc}"
        else:
            issuer = str(request.base_url).rstrip("/")
        resource = mcp_public_url.rstrip("/") if mcp_public_url else issuer + "/mcp"
        return cls(issuer, canonical(resource))


class HashedSecretAuthenticator(ClientAuthenticator):
    """The SDK's client authentication, against the stored hash of the client secret (never the secret)."""

    def __init__(self, provider: OAuthProvider) -> None:
        super().__init__(provider)
        self.oauth = provider

    async def authenticate_request(self, request: Request) -> OAuthClientInformationFull:
        form = await request.form()
        client_id = form.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise AuthenticationError("Missing client_id")
        row = await self.oauth.client_row(client_id)
        if row is None:
            raise AuthenticationError("Invalid client_id")
        client = OAuthClientInformationFull.model_validate({**row.metadata, "client_id": client_id})
        presented: str | None = None
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            try:
                basic_id, _, presented = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError, binascii.Error):
                raise AuthenticationError("Invalid Basic authentication header") from None
            if unquote(basic_id) != client_id:
                raise AuthenticationError("Client ID mismatch in Basic auth")
            presented = unquote(presented)
        elif isinstance(form.get("client_secret"), str):
            presented = str(form.get("client_secret"))
        if row.secret_hash is None:
            return client  # a public client: PKCE is its proof
        if not presented or not hmac.compare_digest(digest(presented), row.secret_hash):
            raise AuthenticationError("Invalid client_secret")
        return client


@dataclass
class Pending:
    """An authorization request the SDK validated, waiting for the user's sign-in and consent."""

    client: OAuthClientInformationFull
    params: AuthorizationParams
    resource: str


class OAuthProvider:
    """`OAuthAuthorizationServerProvider` for isa: Postgres-backed, API-key sign-in, JWT access tokens."""

    def __init__(self, auth: AuthService, endpoints: Endpoints) -> None:
        self.auth = auth
        self.db: Database = auth.db
        self.settings = auth.settings
        self.endpoints = endpoints
        self.pending: Pending | None = None

    # -- clients (RFC 7591) --------------------------------------------------------------------------------------

    async def client_row(self, client_id: str) -> store.ClientRow | None:
        if len(client_id) > 200:
            return None
        async with self.db.connection() as conn:
            return await store.get_client(conn, client_id)

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        row = await self.client_row(client_id)
        if row is None:
            return None
        return OAuthClientInformationFull.model_validate({**row.metadata, "client_id": client_id})

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        uris = [str(u) for u in client_info.redirect_uris or []]
        if len(uris) > self.settings.oauth.max_redirect_uris:
            raise RegistrationError("invalid_redirect_uri", f"at most {self.settings.oauth.max_redirect_uris} URIs")
        for uri in uris:
            problem = redirect_uri_problem(uri)
            if problem:
                raise RegistrationError("invalid_redirect_uri", f"{problem}: {uri[:200]}")
        metadata = client_info.model_dump(mode="json", exclude_none=True, exclude={"client_secret", "client_id"})
        secret = client_info.client_secret
        async with self.db.transaction() as conn:
            await store.insert_client(conn, client_info.client_id, digest(secret) if secret else None, metadata)
        log.info("oauth_client_registered", client_id=client_info.client_id, public=secret is None)

    # -- authorization -------------------------------------------------------------------------------------------

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        """Keep the validated request for the consent page; the route renders it instead of redirecting."""
        resource = self.endpoints.resource
        if params.resource is not None:
            if not for_our_mcp(resource, params.resource):
                raise AuthorizeError("invalid_target", "this server issues tokens only for its own /mcp")
            resource = canonical(params.resource)
        self.pending = Pending(client, params, resource)
        return self.endpoints.issuer + "/oauth/consent"

    def granted_scopes(
        self, requested: list[str] | None, client: OAuthClientInformationFull, key: Principal
    ) -> list[str]:
        """What the token may do: the scopes asked for (else the client's), never more than the API key holds."""
        asked = requested or (client.scope.split() if client.scope else list(SCOPES))
        return sorted(expand_scopes(asked) & key.scopes)

    async def issue_code(self, pending: Pending, key: Principal, scopes: list[str]) -> str:
        code = secrets.token_urlsafe(32)
        params = pending.params
        async with self.db.transaction() as conn:
            await store.insert_code(
                conn,
                digest(code),
                client_id=pending.client.client_id,
                user_id=key.user_id,
                key_id=key.key_id,
                scopes=scopes,
                resource=pending.resource,
                code_challenge=params.code_challenge,
                redirect_uri=str(params.redirect_uri),
                redirect_uri_explicit=params.redirect_uri_provided_explicitly,
                seconds=self.settings.oauth.code_seconds,
            )
        log.info("oauth_consent_given", client_id=pending.client.client_id, user_id=key.user_id, scope=" ".join(scopes))
        return code

    # -- codes and tokens ----------------------------------------------------------------------------------------

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        async with self.db.connection() as conn:
            row = await store.get_code(conn, digest(authorization_code))
        if row is None or row.client_id != client.client_id:
            return None
        return AuthorizationCode(
            code=authorization_code,
            scopes=row.scopes,
            expires_at=row.expires_at.timestamp(),
            client_id=row.client_id,
            code_challenge=row.code_challenge,
            redirect_uri=AnyUrl(row.redirect_uri),
            redirect_uri_provided_explicitly=row.redirect_uri_explicit,
            resource=row.resource,
            subject=row.user_id,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        code_hash = digest(authorization_code.code)
        # The revocation of a replayed code's grant must commit, so errors are raised after the transaction.
        tokens: OAuthToken | None = None
        async with self.db.transaction() as conn:
            row = await store.get_code(conn, code_hash)
            if row is not None and await store.claim_code(conn, code_hash):
                grant = await store.insert_grant(conn, row.client_id, row.user_id, row.key_id, row.scopes, row.resource)
                await store.set_code_grant(conn, code_hash, grant.id)
                tokens = await self._tokens(conn, grant, row.scopes)
            elif row is not None and row.used and row.grant_id:
                # A code used twice was likely stolen: end everything issued from it (RFC 6749 §4.1.2).
                await store.revoke_grant(conn, row.grant_id)
        if tokens is None:
            if row is not None:
                self.auth.live.forget_user(row.user_id)
            log.warning("oauth_code_refused", client_id=client.client_id, reused=bool(row and row.used))
            raise TokenError("invalid_grant", "authorization code was already used or has expired")
        return tokens

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> RefreshToken | None:
        async with self.db.connection() as conn:
            row = await store.get_refresh_token(conn, digest(refresh_token))
        if row is None or row.grant.client_id != client.client_id:
            return None
        return RefreshToken(
            token=refresh_token,
            client_id=row.grant.client_id,
            scopes=row.grant.scopes,
            expires_at=int(row.expires_at.timestamp()),
            resource=row.grant.resource,
            subject=row.grant.user_id,
        )

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        token_hash = digest(refresh_token.token)
        tokens: OAuthToken | None = None
        async with self.db.transaction() as conn:
            row = await store.get_refresh_token(conn, token_hash)
            if row is not None and await store.claim_refresh_token(conn, token_hash):
                granted = sorted(expand_scopes(scopes) & set(row.grant.scopes))
                tokens = await self._tokens(conn, row.grant, granted)
            elif row is not None and row.used:
                # Rotation: an old refresh token presented again means two parties hold it; end the grant.
                await store.revoke_grant(conn, row.grant.id)
        if tokens is None:
            if row is not None:
                self.auth.live.forget_user(row.grant.user_id)
                log.warning("oauth_refresh_refused", client_id=client.client_id, reused=row.used)
            raise TokenError("invalid_grant", "refresh token was already used, revoked or has expired")
        return tokens

    async def _tokens(self, conn: Any, grant: store.GrantRow, scopes: list[str]) -> OAuthToken:
        refresh = secrets.token_urlsafe(32)
        await store.insert_refresh_token(conn, digest(refresh), grant.id, self.settings.oauth.refresh_token_days)
        token, lifetime = mint_access_token(
            self.settings,
            grant.user_id,
            scopes,
            grant.key_id,
            seconds=self.settings.oauth.access_token_seconds,
            resource=grant.resource,
            oauth={"client_id": grant.client_id, "grant_id": grant.id},
        )
        return OAuthToken(access_token=token, expires_in=lifetime, scope=" ".join(scopes), refresh_token=refresh)

    async def load_access_token(self, token: str) -> AccessToken | None:
        """An access token this server issued (for revocation); None for anything else."""
        try:
            verified = await self.auth.verifier.verify(token)
        except InvalidToken:
            return None
        if verified.grant_id is None:
            return None
        async with self.db.connection() as conn:
            grant = await store.grant_of(conn, verified.grant_id)
        if grant is None:
            return None
        return AccessToken(
            token=token,
            client_id=grant.client_id,
            scopes=sorted(verified.scopes),
            resource=verified.resource,
            subject=verified.user_id,
            claims={"grant_id": grant.id},
        )

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        """Revoking either token ends the grant: its access and refresh tokens stop working together."""
        token_hash = digest(token.token)
        async with self.db.transaction() as conn:
            if isinstance(token, AccessToken):
                grant_id = (token.claims or {}).get("grant_id")
            else:
                row = await store.get_refresh_token(conn, token_hash)
                grant_id = row.grant.id if row else None
            if isinstance(grant_id, str):
                await store.revoke_grant(conn, grant_id)
        if token.subject:
            self.auth.live.forget_user(token.subject)
        log.info("oauth_grant_revoked", client_id=token.client_id, grant_id=grant_id)

    async def exchange_identity_assertion(self, client: OAuthClientInformationFull, params: Any) -> OAuthToken:
        raise TokenError("unsupported_grant_type", "the JWT bearer grant is not supported")
