"""isa as an OAuth 2.1 client of upstream MCP servers (`isa catalog add NAME URL --auth oauth`, docs/federation.md).

On add: the upstream's RFC 9728 resource metadata and its authorization server's RFC 8414 metadata are discovered,
and isa registers itself (RFC 7591) with this node's callback as redirect URI. A grant is then started by whoever
needs one (an admin for the server's own grant, each user for theirs on a per-user server): an authorization URL
with PKCE S256, a `state` bound to the caller and the server (single use, 10 minutes, stored hashed) and the
resource indicator (RFC 8707). The callback exchanges the code with the verifier; tokens are sealed at rest. Calls
carry the stored access token, refreshed (rotating refresh tokens stored, one refresher at a time) when it is about
to expire. The protocol pieces are the `mcp` SDK's client-side helpers (`mcp.client.auth`); isa keeps the state in
Postgres instead of one process's memory, because the callback may reach another replica, minutes later.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import httpx2
from mcp.client.auth import OAuthFlowError, OAuthRegistrationError, PKCEParameters, TokenStorage
from mcp.client.auth.oauth2 import OAuthContext, check_registration_usable
from mcp.client.auth.utils import (
    build_oauth_authorization_server_metadata_discovery_urls,
    build_protected_resource_metadata_discovery_urls,
    create_client_registration_request,
    create_oauth_metadata_request,
    extract_resource_metadata_from_www_auth,
    extract_scope_from_www_auth,
    get_client_metadata_scopes,
    handle_auth_metadata_response,
    handle_protected_resource_response,
    handle_registration_response,
    handle_token_response_scopes,
    validate_authorization_response_iss,
    validate_metadata_issuer,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthMetadata, OAuthToken
from mcp.shared.auth import ProtectedResourceMetadata as ResourceMetadata
from mcp.shared.auth_utils import check_resource_allowed, resource_url_from_server_url

from isa.catalog import federation_oauth_store as ostore
from isa.catalog.sealing import Sealer
from isa.catalog.settings import CatalogSettings
from isa.core.db import Database
from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.core.settings import Settings

log = get_logger(__name__)
CALLBACK_PATH = "/catalog/oauth/callback"
FLOW_SECONDS = 600  # how long an authorization URL may wait for its callback
REFRESH_AHEAD = timedelta(seconds=30)  # refresh an access token this long before it expires
_GRANT_TYPES = ["authorization_code", "refresh_token"]
_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "isa", "version": "1"}},
}


def callback_url(settings: Settings, catalog: CatalogSettings, request_base: str | None = None) -> str:
    """This node's callback: `catalog.oauth_redirect_url`, else `mcp.public_url`'s origin, else the request's."""
    if catalog.oauth_redirect_url:
        return catalog.oauth_redirect_url
    mcp = settings.raw.get("mcp", {})
    public = str(mcp.get("public_url") or "") if isinstance(mcp, dict) else ""
    if public:
        parts = urlsplit(public)
        return f"{parts.scheme}://{parts.netloc}{CALLBACK_PATH}"
    if request_base:
        return request_base.rstrip("/") + CALLBACK_PATH
    raise ApiError(
        422,
        "oauth_redirect_unknown",
        "isa can't tell the upstream where to send the user back: set catalog.oauth_redirect_url (or mcp.public_url)"
        " or add the server through POST /catalog/servers",
    )


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def _fail(what: str, cause: object) -> ApiError:
    return ApiError(502, "upstream_oauth_failed", f"{what}: {cause}")


@dataclass(frozen=True)
class Registration:
    """How isa reaches one upstream as an OAuth client (from catalog_upstream_oauth)."""

    server: str
    url: str
    per_user: bool
    redirect_uri: str
    resource: ResourceMetadata
    metadata: OAuthMetadata
    client: OAuthClientInformationFull

    def context(self) -> OAuthContext:
        """The SDK's flow context, for the request pieces it builds (client authentication, RFC 8707 resource).
        isa keeps tokens in Postgres, so the context's storage is never used."""
        ctx = OAuthContext(
            server_url=self.url,
            client_metadata=OAuthClientMetadata(redirect_uris=[self.redirect_uri]),
            storage=cast(TokenStorage, None),
            redirect_handler=None,
            callback_handler=None,
        )
        ctx.protected_resource_metadata = self.resource
        ctx.oauth_metadata = self.metadata
        ctx.client_info = self.client
        return ctx


def required(server: str, per_user: bool) -> ApiError:
    """What a call without a grant answers: what to do, and where (never an authorization URL: it is a secret)."""
    if per_user:
        todo = (
            f"the server {server!r} acts as you through OAuth and you have not authorized isa with it yet: "
            f"POST /catalog/servers/{server}/oauth/start (as yourself), open the authorization_url it returns in a "
            "browser and approve, then call again"
        )
    else:
        todo = (
            f"the server {server!r} needs an OAuth grant that isa does not hold (never given, revoked or expired): "
            f"an admin runs `isa catalog authorize {server}` (or POST /catalog/servers/{server}/oauth/start) and "
            "approves in a browser"
        )
    return ApiError(403, "upstream_authorization_required", todo)


class UpstreamOAuth:
    def __init__(self, db: Database, sealer: Sealer, timeout: float) -> None:
        self.db = db
        self.sealer = sealer
        self.timeout = timeout

    def _http(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(timeout=self.timeout, follow_redirects=False)

    # --- registration ---------------------------------------------------------------------------------------------

    async def register(self, server: str, url: str, per_user: bool, redirect_uri: str) -> None:
        """Discover the upstream's authorization server and register isa with it (re-adding registers anew)."""
        self.sealer.seal("")  # tokens will need the key: say so before talking to anyone
        try:
            async with self._http() as http:
                resource, metadata, scope = await self._discover(http, url)
                wanted = OAuthClientMetadata(
                    redirect_uris=[redirect_uri],
                    client_name="isa MCP gateway",
                    grant_types=_GRANT_TYPES,
                    response_types=["code"],
                    token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method's name
                    scope=scope,
                )
                origin = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
                answer = await http.send(create_client_registration_request(metadata, wanted, origin))
                client = await handle_registration_response(answer)
                check_registration_usable(client)
        except (OAuthFlowError, OAuthRegistrationError) as exc:
            raise _fail(f"registering isa with the authorization server of {url}", exc) from None
        except httpx2.HTTPError as exc:
            raise _fail(f"the OAuth discovery of {url} failed", type(exc).__name__) from None
        discovery = {"resource": resource.model_dump(mode="json"), "server": metadata.model_dump(mode="json")}
        sealed = self.sealer.seal(client.model_dump_json())
        async with self.db.transaction() as conn:
            await ostore.upsert_client(conn, server, url, per_user, redirect_uri, discovery, sealed)
        log.info("upstream_oauth_registered", server=server, client_id=client.client_id)

    async def _discover(self, http: httpx2.AsyncClient, url: str) -> tuple[ResourceMetadata, OAuthMetadata, str | None]:
        probe = await http.post(url, json=_INITIALIZE, headers={"Accept": "application/json, text/event-stream"})
        if probe.status_code != 401:
            raise ApiError(
                422,
                "upstream_not_oauth",
                f"{url} answered {probe.status_code} without credentials, not 401: it does not ask for OAuth",
            )
        resource: ResourceMetadata | None = None
        for candidate in build_protected_resource_metadata_discovery_urls(
            extract_resource_metadata_from_www_auth(probe), url
        ):
            answer = await http.send(create_oauth_metadata_request(candidate))
            resource = await handle_protected_resource_response(answer)
            if resource is not None:
                break
        if resource is None or not resource.authorization_servers:
            raise _fail(f"discovering {url}", "no protected-resource metadata (RFC 9728) names an authorization server")
        if not check_resource_allowed(resource_url_from_server_url(url), str(resource.resource)):
            raise _fail(f"discovering {url}", f"its metadata is for another resource ({resource.resource})")
        issuer = str(resource.authorization_servers[0])
        metadata: OAuthMetadata | None = None
        for candidate in build_oauth_authorization_server_metadata_discovery_urls(issuer, url):
            answer = await http.send(create_oauth_metadata_request(candidate))
            ok, metadata = await handle_auth_metadata_response(answer)
            if metadata is not None or not ok:
                break
        if metadata is None:
            raise _fail(f"discovering {issuer}", "no authorization server metadata (RFC 8414)")
        validate_metadata_issuer(metadata, issuer)
        if "S256" not in (metadata.code_challenge_methods_supported or []):
            raise _fail(f"discovering {issuer}", "it does not offer PKCE S256")
        if metadata.registration_endpoint is None:
            raise _fail(f"discovering {issuer}", "it offers no dynamic client registration (RFC 7591)")
        scope = get_client_metadata_scopes(extract_scope_from_www_auth(probe), resource, metadata, _GRANT_TYPES)
        return resource, metadata, scope

    async def registration(self, server: str) -> Registration | None:
        async with self.db.connection() as conn:
            row = await ostore.get_client(conn, server)
        if row is None:
            return None
        return Registration(
            server=row["server"],
            url=row["url"],
            per_user=row["per_user"],
            redirect_uri=row["redirect_uri"],
            resource=ResourceMetadata.model_validate(row["discovery"]["resource"]),
            metadata=OAuthMetadata.model_validate(row["discovery"]["server"]),
            client=OAuthClientInformationFull.model_validate_json(self.sealer.open(row["client_sealed"])),
        )

    async def registered(self, server: str) -> Registration:
        reg = await self.registration(server)
        if reg is None:
            raise ApiError(404, "unknown_server", f"no server named {server!r} was added with --auth oauth")
        return reg

    # --- the grant --------------------------------------------------------------------------------------------------

    async def start(self, server: str, started_by: str, for_user: bool) -> dict[str, Any]:
        """An authorization URL for `started_by` (their own grant, or the server's); valid FLOW_SECONDS, once."""
        reg = await self.registered(server)
        if for_user and not reg.per_user:
            raise ApiError(409, "not_per_user", f"{server!r} uses one grant for everyone; an admin authorizes it")
        pkce = PKCEParameters.generate()
        state = secrets.token_urlsafe(32)
        ctx = reg.context()
        params = {
            "response_type": "code",
            "client_id": reg.client.client_id,
            "redirect_uri": reg.redirect_uri,
            "state": state,
            "code_challenge": pkce.code_challenge,
            "code_challenge_method": "S256",
            "resource": ctx.get_resource_url(),  # RFC 8707
            **({"scope": reg.client.scope} if reg.client.scope else {}),
        }
        sealed = self.sealer.seal(pkce.code_verifier)
        async with self.db.transaction() as conn:
            await ostore.add_flow(conn, _hash(state), server, started_by, for_user, sealed, FLOW_SECONDS)
        log.info("upstream_oauth_started", server=server, user_id=started_by, for_user=for_user)
        url = f"{reg.metadata.authorization_endpoint}?{urlencode(params)}"
        grant = "user" if for_user else "server"
        return {"server": server, "grant": grant, "per_user": reg.per_user, "authorization_url": url,
                "expires_in": FLOW_SECONDS}  # fmt: skip

    async def complete(
        self, state: str, code: str | None, iss: str | None, error: str | None, caller: str | None
    ) -> dict[str, Any]:
        """The callback: consume the state (whatever happens next), check it is the caller's, exchange the code."""
        async with self.db.transaction() as conn:
            flow = await ostore.take_flow(conn, _hash(state))
        if flow is None:
            raise ApiError(400, "invalid_oauth_state", "this authorization is unknown, expired or already used")
        if caller is not None and caller != flow["started_by"]:
            log.warning("upstream_oauth_state_of_another", server=flow["server"], caller=caller)
            raise ApiError(403, "oauth_state_not_yours", "this authorization was started by someone else")
        server = flow["server"]
        if error is not None:
            code_only = "".join(c for c in error[:64] if c.isalnum() or c == "_")  # the upstream's text: its code only
            raise ApiError(400, "upstream_oauth_denied", f"{server!r} did not authorize isa: {code_only}")
        if not code:
            raise ApiError(400, "invalid_request", "the callback carries no code")
        reg = await self.registered(server)
        try:
            validate_authorization_response_iss(iss, reg.metadata)  # RFC 9207: the answer is from that server
        except OAuthFlowError:
            raise ApiError(
                400, "upstream_oauth_wrong_issuer", "the answer did not come from the server isa asked"
            ) from None
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": reg.redirect_uri,
            "client_id": reg.client.client_id,
            "code_verifier": self.sealer.open(flow["verifier_sealed"]),
            "resource": reg.context().get_resource_url(),
        }
        tokens = await self._token_request(reg, form)
        user_id = flow["started_by"] if flow["for_user"] else None
        async with self.db.transaction() as conn:
            await ostore.save_grant(conn, server, user_id, self.sealer.seal(tokens.model_dump_json()), _expiry(tokens))
        log.info("upstream_oauth_granted", server=server, user_id=user_id)
        return {"server": server, "grant": "user" if flow["for_user"] else "server", "authorized": True}

    async def _token_request(self, reg: Registration, form: dict[str, str]) -> OAuthToken:
        data, headers = reg.context().prepare_token_auth(form, {"Content-Type": "application/x-www-form-urlencoded"})
        try:
            async with self._http() as http:
                answer = await http.post(str(reg.metadata.token_endpoint), data=data, headers=headers)
                if answer.status_code != 200:
                    raise ApiError(
                        502,
                        "upstream_oauth_token_refused",
                        f"{reg.server!r} refused the token request: {_oauth_error(answer)}",
                    )
                return await handle_token_response_scopes(answer)
        except httpx2.HTTPError as exc:
            raise _fail(f"the token endpoint of {reg.server!r}", type(exc).__name__) from None

    # --- using, refreshing, revoking ----------------------------------------------------------------------------------

    async def bearer(self, server: str, user_id: str | None) -> str:
        """The access token for `user_id`'s calls (None: the server's own grant), refreshed when about to expire."""
        async with self.db.connection() as conn:
            row = await ostore.get_grant(conn, server, user_id)
        if row is not None and not _expiring(row["expires_at"]):
            return OAuthToken.model_validate_json(self.sealer.open(row["tokens_sealed"])).access_token
        reg = await self.registered(server)
        if row is None:
            raise required(server, user_id is not None)
        dropped = False
        async with self.db.transaction() as conn:  # one refresher at a time: a rotated refresh token is single-use
            row = await ostore.get_grant(conn, server, user_id, lock=True)
            if row is None:
                raise required(server, user_id is not None)
            tokens = OAuthToken.model_validate_json(self.sealer.open(row["tokens_sealed"]))
            if not _expiring(row["expires_at"]):  # another request refreshed it while this one waited
                return tokens.access_token
            fresh = await self._refresh(reg, tokens) if tokens.refresh_token else None
            if fresh is None:
                await ostore.delete_grant(conn, server, user_id)
                dropped = True
            else:
                fresh.refresh_token = fresh.refresh_token or tokens.refresh_token
                fresh.scope = fresh.scope or tokens.scope
                sealed = self.sealer.seal(fresh.model_dump_json())
                await ostore.save_grant(conn, server, user_id, sealed, _expiry(fresh))
        if dropped or fresh is None:
            log.info("upstream_oauth_grant_ended", server=server, user_id=user_id)
            raise required(server, user_id is not None)
        log.info("upstream_oauth_refreshed", server=server, user_id=user_id)
        return fresh.access_token

    async def _refresh(self, reg: Registration, tokens: OAuthToken) -> OAuthToken | None:
        """New tokens, or None when the upstream refuses the refresh token (the grant is over)."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": str(tokens.refresh_token),
            "client_id": reg.client.client_id,
            "resource": reg.context().get_resource_url(),
        }
        try:
            return await self._token_request(reg, form)
        except ApiError as exc:
            if exc.code != "upstream_oauth_token_refused":
                raise
            return None

    async def revoke(self, server: str, user_id: str | None) -> None:
        """Forget the grant and tell the upstream (RFC 7009, best effort: the grant is gone here either way)."""
        reg = await self.registered(server)
        async with self.db.transaction() as conn:
            sealed = await ostore.delete_grant(conn, server, user_id)
        if sealed is None:
            raise ApiError(404, "no_grant", f"isa holds no OAuth grant for {server!r} here")
        log.info("upstream_oauth_revoked", server=server, user_id=user_id)
        endpoint = reg.metadata.revocation_endpoint
        if endpoint is None:
            return
        tokens = OAuthToken.model_validate_json(self.sealer.open(sealed))
        form = {"token": tokens.refresh_token or tokens.access_token, "client_id": reg.client.client_id}
        data, headers = reg.context().prepare_token_auth(form, {"Content-Type": "application/x-www-form-urlencoded"})
        try:
            async with self._http() as http:
                await http.post(str(endpoint), data=data, headers=headers)
        except httpx2.HTTPError as exc:
            log.warning("upstream_oauth_revocation_failed", server=server, error=type(exc).__name__)

    async def status(self, server: str, user_id: str | None) -> dict[str, Any]:
        reg = await self.registered(server)
        async with self.db.connection() as conn:
            row = await ostore.get_grant(conn, server, user_id)
        return {
            "server": server,
            "grant": "server" if user_id is None else "user",
            "per_user": reg.per_user,
            "authorized": row is not None,
            "expires_at": row["expires_at"] if row else None,
        }


def _oauth_error(answer: httpx2.Response) -> str:
    """The RFC 6749 error code of a refused token request (never its description: it is the upstream's text)."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    code = body.get("error") if isinstance(body, dict) else None
    return str(code)[:64] if code else f"HTTP {answer.status_code}"


def _expiry(tokens: OAuthToken) -> datetime | None:
    return datetime.now(UTC) + timedelta(seconds=int(tokens.expires_in)) if tokens.expires_in else None


def _expiring(expires_at: datetime | None) -> bool:
    return expires_at is not None and expires_at - REFRESH_AHEAD <= datetime.now(UTC)
