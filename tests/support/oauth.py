"""OAuth tests play the browser and the client over real HTTP: register, open the consent page, fill its form."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import anyio
import httpx

from isa.auth import store
from isa.auth.service import AuthService
from isa.core.db import Database
from isa.core.settings import Settings
from tests.support.jwt_keys import TOKEN_SECRET, with_auth
from tests.support.mcp_servers import serve_isa
from tests.support.procs import wait_for

REDIRECT_URI = "http://127.0.0.1:53682/callback"


def oauth_settings(settings: Settings, **oauth: Any) -> Settings:
    """isa tokens on (so this node is the authorization server); rate limits out of the tests' way."""
    return with_auth(
        settings,
        token_secret=TOKEN_SECRET,
        rate_limit={"auth_ip_limit": 10_000, "auth_key_limit": 10_000},
        oauth={"ip_limit": 0, **oauth},
    )


@contextmanager
def serve_oauth_node(settings: Settings, db_url: str, **mcp: Any) -> Iterator[str]:
    with serve_isa(oauth_settings(settings), db_url, **mcp) as url:
        wait_for(lambda: httpx.get(url + "/health/ready", timeout=5).status_code == 200, timeout=60)
        yield url


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")


def read_form(html: str) -> tuple[str, dict[str, str]]:
    """The consent form's action and hidden fields (request, csrf), as a browser would submit them."""
    parser = _Forms()
    parser.feed(html)
    assert parser.action is not None, "the page has no form"
    return parser.action, parser.fields


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Browser:
    """A user's browser: keeps cookies, never follows redirects (the test looks at where they go)."""

    http: httpx.Client

    def consent(self, authorize_url: str, api_key: str, decision: str = "allow") -> httpx.Response:
        page = self.http.get(authorize_url)
        assert page.status_code == 200, page.text
        action, fields = read_form(page.text)
        return self.http.post(urljoin(authorize_url, action), data={**fields, "api_key": api_key, "decision": decision})


@contextmanager
def browser() -> Iterator[Browser]:
    with httpx.Client(timeout=10, follow_redirects=False) as http:
        yield Browser(http)


@dataclass
class Client:
    """A registered OAuth client, driving the protocol by hand (for the attacks the SDK client won't make)."""

    base_url: str
    client_id: str
    client_secret: str | None
    redirect_uri: str = REDIRECT_URI

    @classmethod
    def register(cls, base_url: str, redirect_uri: str = REDIRECT_URI, **metadata: Any) -> Client:
        body = {"redirect_uris": [redirect_uri], "client_name": "Attack test", **metadata}
        response = httpx.post(base_url + "/oauth/register", json=body, timeout=10)
        assert response.status_code == 201, response.text
        info = response.json()
        return cls(base_url, info["client_id"], info.get("client_secret"), redirect_uri)

    def authorize_url(self, challenge: str | None, **params: str) -> str:
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": "st-" + secrets.token_hex(4),
            "scope": "write",
            "resource": self.base_url + "/mcp",
            **({"code_challenge": challenge, "code_challenge_method": "S256"} if challenge else {}),
            **params,
        }
        return f"{self.base_url}/oauth/authorize?{urlencode(query)}"

    def code(self, api_key: str, challenge: str, **params: str) -> str:
        """Sign in and consent; the code the browser is sent back with."""
        with browser() as b:
            answer = b.consent(self.authorize_url(challenge, **params), api_key)
        assert answer.status_code == 303, answer.text
        location = answer.headers["location"]
        assert location.startswith(self.redirect_uri + "?")
        return query_of(location)["code"]

    def token(self, **form: str) -> httpx.Response:
        data = {"client_id": self.client_id, **form}
        if self.client_secret:
            data["client_secret"] = self.client_secret
        return httpx.post(self.base_url + "/oauth/token", data=data, timeout=10)

    def exchange(self, code: str, verifier: str, **extra: str) -> httpx.Response:
        return self.token(
            grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=self.redirect_uri, **extra
        )

    def sign_in(self, api_key: str, **params: str) -> dict[str, Any]:
        verifier, challenge = pkce()
        response = self.exchange(self.code(api_key, challenge, **params), verifier)
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    def refresh(self, refresh_token: str) -> httpx.Response:
        return self.token(grant_type="refresh_token", refresh_token=refresh_token)

    def revoke(self, token: str) -> httpx.Response:
        data = {"client_id": self.client_id, "token": token}
        if self.client_secret:
            data["client_secret"] = self.client_secret
        return httpx.post(self.base_url + "/oauth/revoke", data=data, timeout=10)


def mcp_status(base_url: str, token: str) -> int:
    """The status /mcp answers an initialize with this bearer token (200: accepted)."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    return httpx.post(base_url + "/mcp", json=body, headers=headers, timeout=10).status_code


def revoke_key(db_url: str, settings: Settings, api_key: str) -> None:
    """Revoke an API key the way `isa keys revoke` does (through the auth store)."""

    async def main() -> None:
        db = Database(db_url, settings)
        await db.open()
        try:
            key_id = (await AuthService(db).principal_for_api_key(api_key)).key_id
            assert key_id is not None
            async with db.transaction() as conn:
                assert await store.revoke_api_key(conn, key_id, None)
        finally:
            await db.close()

    anyio.run(main)
