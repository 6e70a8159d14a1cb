"""This node as an OAuth 2.1 authorization server, over real HTTP against a running node.

First the whole flow with the `mcp` SDK's own OAuth client (the test plays the user's browser: it opens the
authorization URL, reads the consent form with its CSRF token, fills in an API key, follows the redirect back).
Then what must be refused: unregistered redirects, missing or plain PKCE, replayed codes and refresh tokens,
tokens for another resource, expired and revoked tokens, forged consent; and Auth0 as the authorization server.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import anyio
import httpx
import httpx2
import jwt
import pytest
from mcp.client import Client as McpClient
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.jwt_keys import AUTH0_ISSUER, TOKEN_SECRET, jwt_settings
from tests.support.oauth import (
    REDIRECT_URI,
    Client,
    browser,
    mcp_status,
    pkce,
    query_of,
    read_form,
    revoke_key,
    serve_oauth_node,
)


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str) -> Iterator[str]:
    with serve_oauth_node(settings, db_url) as url:
        yield url


@pytest.fixture(scope="module")
def key(settings: Settings, db_url: str) -> str:
    return create_key(db_url, settings, "oauth-bob", "write")


@pytest.fixture(scope="module")
def registered(node: str) -> Client:
    return Client.register(node)


def _error(response: httpx.Response) -> str:
    return str(response.json()["error"])


# -- the whole flow, with the SDK's own client -------------------------------------------------------------------


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class UserAtBrowser:
    """The redirect and callback handlers of a desktop client, with a user who signs in with an API key."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.pages: list[httpx.Response] = []
        self.result: AuthorizationCodeResult | None = None

    async def redirect(self, authorization_url: str) -> None:
        def sign_in() -> None:
            with browser() as b:
                self.pages.append(b.http.get(authorization_url))
                answer = b.consent(authorization_url, self.api_key)
            assert answer.status_code == 303, answer.text
            location = answer.headers["location"]
            assert location.startswith(REDIRECT_URI + "?")
            q = query_of(location)
            self.result = AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))

        await anyio.to_thread.run_sync(sign_in)

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


@pytest.mark.anyio
async def test_the_sdk_oauth_client_signs_in_lists_tools_refreshes_and_revocation_ends_access(
    node: str, key: str
) -> None:
    user = UserAtBrowser(key)
    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=node + "/mcp",
        client_metadata=OAuthClientMetadata(
            redirect_uris=[REDIRECT_URI],  # type: ignore[list-item]
            client_name="SDK test client",
            grant_types=["authorization_code", "refresh_token"],
        ),
        storage=storage,
        redirect_handler=user.redirect,
        callback_handler=user.callback,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with McpClient(streamable_http_client(node + "/mcp", http_client=http), mode="legacy", cache=None) as mcp:
            names = {t.name for t in (await mcp.list_tools()).tools}
            called = await mcp.call_tool("get_current_time", {"timezone": "UTC"})
        assert "get_current_time" in names
        assert not called.is_error and called.structured_content is not None
        assert called.structured_content["status"] == "success"
        first = storage.tokens
        assert first is not None and first.refresh_token and first.scope
        assert storage.client is not None and storage.client.client_id

        # The consent page the user saw: a form naming the client, locked against framing and scripts.
        page = user.pages[0]
        assert page.status_code == 200
        assert "SDK test client" in page.text and REDIRECT_URI in page.text
        csp = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src" not in csp
        assert page.headers["x-frame-options"] == "DENY"

        # The client's clock says the access token is spent (time passes without a sleep): it refreshes by itself.
        provider.context.token_expiry_time = 1.0
        async with McpClient(streamable_http_client(node + "/mcp", http_client=http), mode="legacy", cache=None) as mcp:
            assert (await mcp.list_tools()).tools
    second = storage.tokens
    assert second is not None and second.refresh_token
    assert second.refresh_token != first.refresh_token and second.access_token != first.access_token
    assert mcp_status(node, second.access_token) == 200

    # Revocation (RFC 7009) of the refresh token ends the grant: the access token stops working too.
    client = Client(node, storage.client.client_id, storage.client.client_secret)
    assert client.revoke(second.refresh_token).status_code == 200
    assert mcp_status(node, second.access_token) == 401
    refused = client.refresh(second.refresh_token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_an_oauth_access_token_is_accepted_by_the_http_api_as_the_signed_in_user(node: str, key: str) -> None:
    client = Client.register(node)
    tokens = client.sign_in(key)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 600
    assert set(tokens["scope"].split()) == {"read", "write"}
    me = httpx.get(node + "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status_code == 200, me.text
    assert me.json()["data"]["user_id"] == "oauth-bob"


# -- discovery and registration (the issue's Check) -------------------------------------------------------------


def test_the_resource_metadata_names_an_authorization_server_with_registration_and_pkce_s256(node: str) -> None:
    unauthenticated = httpx.post(node + "/mcp", json={})
    assert unauthenticated.status_code == 401
    assert "resource_metadata=" in unauthenticated.headers["www-authenticate"]
    prm = httpx.get(node + "/.well-known/oauth-protected-resource/mcp").json()
    assert prm["resource"] == node + "/mcp"
    (server,) = prm["authorization_servers"]
    metadata = httpx.get(server + "/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == server == node
    assert metadata["registration_endpoint"] == node + "/oauth/register"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert "none" in metadata["token_endpoint_auth_methods_supported"]


def test_registering_a_loopback_redirect_returns_a_client_id_and_the_authorize_page_has_a_form(node: str) -> None:
    answer = httpx.post(
        node + "/oauth/register",
        json={"redirect_uris": ["http://127.0.0.1:8976/cb"], "token_endpoint_auth_method": "none"},
    )
    assert answer.status_code == 201, answer.text
    info = answer.json()
    assert info["client_id"] and "client_secret" not in info
    _, challenge = pkce()
    page = httpx.get(Client(node, info["client_id"], None, "http://127.0.0.1:8976/cb").authorize_url(challenge))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/oauth/consent">' in page.text and 'name="csrf"' in page.text
    assert "http://127.0.0.1:8976/cb" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and "isa_oauth_csrf=" in page.headers["set-cookie"]


@pytest.mark.parametrize(
    "uri", ["http://evil.example/cb", "custom-app://cb", "https://ok.example/cb#frag", "javascript:alert(1)"]
)
def test_registration_refuses_redirect_uris_that_are_not_https_or_loopback(node: str, uri: str) -> None:
    response = httpx.post(node + "/oauth/register", json={"redirect_uris": [uri]})
    assert response.status_code == 400
    assert _error(response) in ("invalid_redirect_uri", "invalid_client_metadata")


def test_an_unregistered_redirect_uri_gets_an_error_page_and_is_never_redirected_to(
    node: str, registered: Client
) -> None:
    _, challenge = pkce()
    for uri in ("http://127.0.0.1:53682/other", "https://attacker.example/cb", REDIRECT_URI + "/"):
        page = httpx.get(registered.authorize_url(challenge, redirect_uri=uri))
        assert page.status_code == 400 and "location" not in page.headers
        assert page.headers["content-type"].startswith("text/html") and "<form" not in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_an_unknown_client_gets_an_error_page(node: str) -> None:
    _, challenge = pkce()
    page = httpx.get(Client(node, "no-such-client", None).authorize_url(challenge))
    assert page.status_code == 400 and "location" not in page.headers


# -- PKCE, codes ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [{}, {"code_challenge": "x" * 43, "code_challenge_method": "plain"}])
def test_missing_or_plain_pkce_is_refused_back_to_the_client_without_a_code(
    registered: Client, extra: dict[str, str]
) -> None:
    answer = httpx.get(registered.authorize_url(None, **extra))
    assert answer.status_code == 302
    location = answer.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    q = query_of(location)
    assert q["error"] == "invalid_request" and "code" not in q and q["state"].startswith("st-")


def test_a_wrong_code_verifier_is_invalid_grant(registered: Client, key: str) -> None:
    _, challenge = pkce()
    code = registered.code(key, challenge)
    other_verifier, _ = pkce()
    refused = registered.exchange(code, other_verifier)
    assert refused.status_code == 400 and _error(refused) == "invalid_grant"


def test_a_code_used_twice_is_refused_and_ends_the_grant_it_gave(node: str, registered: Client, key: str) -> None:
    verifier, challenge = pkce()
    code = registered.code(key, challenge)
    first = registered.exchange(code, verifier)
    assert first.status_code == 200
    access = first.json()["access_token"]
    assert mcp_status(node, access) == 200
    again = registered.exchange(code, verifier)
    assert again.status_code == 400 and _error(again) == "invalid_grant"
    assert mcp_status(node, access) == 401
    assert _error(registered.refresh(first.json()["refresh_token"])) == "invalid_grant"


def test_a_code_is_bound_to_its_client(node: str, registered: Client, key: str) -> None:
    verifier, challenge = pkce()
    code = registered.code(key, challenge)
    thief = Client.register(node)
    refused = thief.exchange(code, verifier)
    assert refused.status_code == 400 and _error(refused) == "invalid_grant"


def test_a_confidential_client_with_a_wrong_secret_is_invalid_client(registered: Client, key: str) -> None:
    assert registered.client_secret
    verifier, challenge = pkce()
    code = registered.code(key, challenge)
    forged = Client(registered.base_url, registered.client_id, "not-the-secret")
    refused = forged.exchange(code, verifier)
    assert refused.status_code == 401 and _error(refused) == "invalid_client"


# -- resource indicators, expiry, refresh rotation, revocation -----------------------------------------------------


def test_a_token_for_another_resource_is_not_issued_nor_accepted(node: str, registered: Client, key: str) -> None:
    _, challenge = pkce()
    answer = httpx.get(registered.authorize_url(challenge, resource="https://elsewhere.example/mcp"))
    assert answer.status_code == 302 and query_of(answer.headers["location"])["error"] == "invalid_target"

    verifier, challenge = pkce()
    at_token = registered.exchange(registered.code(key, challenge), verifier, resource="https://elsewhere.example/mcp")
    assert at_token.status_code == 400 and _error(at_token) == "invalid_target"

    real = jwt.decode(registered.sign_in(key)["access_token"], options={"verify_signature": False})
    assert real["aud"] == [node + "/mcp", "isa"]
    for audience in (["https://elsewhere.example/mcp", "isa"], ["https://elsewhere.example/mcp"]):
        forged = jwt.encode({**real, "aud": audience}, TOKEN_SECRET, algorithm="HS256", headers={"typ": "at+jwt"})
        assert mcp_status(node, forged) == 401


def test_an_expired_access_token_is_refused(node: str, registered: Client, key: str) -> None:
    token = registered.sign_in(key)["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    past = int(time.time()) - 3600
    expired = jwt.encode({**claims, "iat": past - 600, "nbf": past - 600, "exp": past}, TOKEN_SECRET, algorithm="HS256")
    assert mcp_status(node, token) == 200
    assert mcp_status(node, expired) == 401


def test_refresh_rotates_and_an_old_refresh_token_presented_again_ends_the_grant(
    node: str, registered: Client, key: str
) -> None:
    tokens = registered.sign_in(key)
    rotated = registered.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert mcp_status(node, new["access_token"]) == 200
    replay = registered.refresh(tokens["refresh_token"])
    assert replay.status_code == 400 and _error(replay) == "invalid_grant"
    assert mcp_status(node, new["access_token"]) == 401
    assert _error(registered.refresh(new["refresh_token"])) == "invalid_grant"


def test_a_revoked_access_token_is_refused_and_its_refresh_token_too(node: str, registered: Client, key: str) -> None:
    tokens = registered.sign_in(key)
    assert mcp_status(node, tokens["access_token"]) == 200
    assert registered.revoke(tokens["access_token"]).status_code == 200
    assert mcp_status(node, tokens["access_token"]) == 401
    assert _error(registered.refresh(tokens["refresh_token"])) == "invalid_grant"


def test_revoking_the_api_key_used_to_sign_in_ends_the_grant(
    node: str, registered: Client, settings: Settings, db_url: str
) -> None:
    own = create_key(db_url, settings, "oauth-carol", "write")
    tokens = registered.sign_in(own)
    rotated = registered.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200
    revoke_key(db_url, settings, own)  # as `isa keys revoke` does
    assert _error(registered.refresh(rotated.json()["refresh_token"])) == "invalid_grant"


# -- the consent form -------------------------------------------------------------------------------------------------


def test_a_wrong_api_key_shows_the_form_again_and_sends_nothing_to_the_client(registered: Client) -> None:
    _, challenge = pkce()
    with browser() as b:
        answer = b.consent(registered.authorize_url(challenge), "isa_not-a-real-key")
    assert answer.status_code == 401 and "location" not in answer.headers
    assert "unknown, revoked or expired" in answer.text and "<form" in answer.text


def test_consent_without_the_csrf_cookie_or_from_another_origin_is_refused(registered: Client, key: str) -> None:
    _, challenge = pkce()
    with browser() as b:
        page = b.http.get(registered.authorize_url(challenge))
        action, fields = read_form(page.text)
        form = {**fields, "api_key": key, "decision": "allow"}
        url = registered.base_url + action
        no_cookie = httpx.post(url, data=form)
        cross_site = b.http.post(url, data=form, headers={"Origin": "https://attacker.example"})
        tampered = b.http.post(url, data={**form, "request": fields["request"][:-4] + "AAAA"})
        same_site = b.http.post(url, data=form, headers={"Origin": registered.base_url})
    for refused in (no_cookie, cross_site):
        assert refused.status_code == 403 and "location" not in refused.headers
    assert tampered.status_code == 400 and "location" not in tampered.headers
    assert same_site.status_code == 303 and "code" in query_of(same_site.headers["location"])
    assert page.headers["referrer-policy"] == "same-origin"  # with no-referrer, browsers would send Origin: null


def test_deny_sends_access_denied_to_the_client(registered: Client, key: str) -> None:
    _, challenge = pkce()
    with browser() as b:
        answer = b.consent(registered.authorize_url(challenge), key, decision="deny")
    assert answer.status_code == 303
    q = query_of(answer.headers["location"])
    assert q["error"] == "access_denied" and "code" not in q


# -- an external authorization server ---------------------------------------------------------------------------------


def test_with_auth0_as_the_authorization_server_metadata_points_there_and_no_local_server_is_served(
    settings: Settings, db_url: str
) -> None:
    # Accepting Auth0 tokens makes Auth0 the authorization server ("auto"). Never started: these need no database.
    app = create_app(jwt_settings(settings, "http://127.0.0.1:9/jwks.json"), "mcp", database_url=db_url)
    http = TestClient(app)
    prm = http.get("/.well-known/oauth-protected-resource/mcp").json()
    assert prm["authorization_servers"] == [AUTH0_ISSUER]
    assert http.get("/.well-known/oauth-authorization-server").status_code == 404
    assert http.post("/oauth/register", json={"redirect_uris": [REDIRECT_URI]}).status_code == 404
