"""Upstream MCP servers protected by OAuth 2.1, with isa as their OAuth client (docs/federation.md, --auth oauth).

The upstream is a second isa app on loopback: its own authorization server (RFC 8414, dynamic registration, PKCE
S256, rotating refresh tokens, revocation) in front of its protected /mcp. The test plays the browser: it opens
the authorization URL isa hands out, fills the upstream's consent form with an upstream API key and follows the
redirect back to isa's callback. Then calls go through isa's /mcp with the upstream token isa holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.fernet import Fernet

from isa.app import create_app
from isa.core.settings import Settings
from tests.catalog.test_catalog_import import run_isa
from tests.conftest import create_database, db_url_for, drop_database
from tests.support.auth import create_key
from tests.support.mcp_servers import mcp_client, serve_asgi, serve_isa, settings_with, sql
from tests.support.oauth import browser, mcp_status, oauth_settings
from tests.support.procs import wait_for

pytestmark = pytest.mark.anyio
KEY_ENV = "ISA_TEST_FEDERATION_OAUTH_KEY"
TOOL = "get_current_time"


@dataclass
class Upstream:
    url: str = ""
    authorizations: list[str] = field(default_factory=list)  # every Authorization header /mcp received


@dataclass(frozen=True)
class Nodes:
    upstream: Upstream
    gateway: str
    admin: str  # isa keys at the gateway
    alice: str
    bob: str
    up_admin: str  # keys the browser signs in with at the upstream's consent page
    up_alice: str
    up_bob: str


@pytest.fixture(scope="module")
def nodes(settings: Settings, db_url: str, pg_admin_url: str, template_db: str) -> Iterator[Nodes]:
    os.environ[KEY_ENV] = Fernet.generate_key().decode()
    quiet = {"federation_sync_seconds": 600.0, "federation_timeout_seconds": 10.0, "credentials_key_env": KEY_ENV}
    record = Upstream()
    up_name = create_database(pg_admin_url, template_db)  # the upstream is another isa: its own database
    up_db = db_url_for(pg_admin_url, up_name)
    inner = create_app(settings_with(oauth_settings(settings), catalog=quiet), "mcp", database_url=up_db)

    async def upstream_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            record.authorizations.append(headers.get("authorization", ""))
        await inner(scope, receive, send)

    try:
        with (
            serve_asgi(upstream_app) as up,
            serve_isa(settings_with(settings, catalog=quiet), db_url) as gateway,
        ):
            for url in (up, gateway):
                wait_for(lambda u=url: httpx.get(u + "/health/ready", timeout=5).status_code == 200, timeout=120)
            record.url = up + "/mcp"
            yield Nodes(
                record,
                gateway,
                admin=create_key(db_url, settings, "gw-root", "admin"),
                alice=create_key(db_url, settings, "gw-alice", "write"),
                bob=create_key(db_url, settings, "gw-bob", "write"),
                up_admin=create_key(up_db, settings, "up-root", "write"),
                up_alice=create_key(up_db, settings, "up-alice", "write"),
                up_bob=create_key(up_db, settings, "up-bob", "write"),
            )
    finally:
        os.environ.pop(KEY_ENV, None)
        drop_database(pg_admin_url, up_name)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _approve(authorization_url: str, upstream_key: str) -> str:
    """The user's browser: consent at the upstream; where it is sent back (isa's callback, not yet opened)."""
    with browser() as b:
        answer = b.consent(authorization_url, upstream_key)
    assert answer.status_code == 303, answer.text
    return str(answer.headers["location"])


def _back(location: str, key: str | None = None) -> httpx.Response:
    """The browser arriving at isa's callback (with an isa credential only when the test says so)."""
    return httpx.get(location, headers=_auth(key) if key else {}, timeout=60)


def _start(nodes: Nodes, server: str, key: str, **params: str) -> httpx.Response:
    url = f"{nodes.gateway}/catalog/servers/{server}/oauth/start"
    return httpx.post(url, params=params, headers=_auth(key), timeout=30)


async def _call(nodes: Nodes, key: str, server: str) -> dict[str, Any]:
    async with mcp_client(nodes.gateway, key) as client:
        result = await client.call_tool(f"{server}__{TOOL}", {"timezone": "UTC"})
    assert result.structured_content is not None, result
    return result.structured_content


def _grant_tokens(db_url: str, server: str, user_id: str | None) -> dict[str, Any]:
    [row] = sql(
        db_url,
        "SELECT tokens_sealed FROM catalog_upstream_oauth_grants WHERE server = %s AND user_id IS NOT DISTINCT FROM %s",
        (server, user_id),
    )
    sealed = row["tokens_sealed"]
    assert "access_token" not in sealed  # sealed at rest
    return json.loads(Fernet(os.environ[KEY_ENV].encode()).decrypt(sealed.encode()))  # type: ignore[no-any-return]


def _add_oauth(nodes: Nodes, name: str, per_user: bool = False) -> dict[str, Any]:
    body = {"name": name, "url": nodes.upstream.url, "auth": "oauth", "per_user": per_user}
    added = httpx.post(nodes.gateway + "/catalog/servers", json=body, headers=_auth(nodes.admin), timeout=60)
    assert added.status_code == 201, added.text
    out: dict[str, Any] = added.json()["added"]
    return out


def _connect_server(nodes: Nodes, name: str, per_user: bool = False) -> dict[str, Any]:
    """Add with OAuth and complete the server's own grant as the admin: the tools are then listed."""
    added = _add_oauth(nodes, name, per_user)
    done = _back(_approve(added["authorization_url"], nodes.up_admin))
    assert done.status_code == 200, done.text
    return done.json()  # type: ignore[no-any-return]


async def test_added_with_oauth_the_server_grant_lists_tools_calls_carry_its_token_refresh_rotates_and_revoke_ends_it(
    nodes: Nodes, db_url: str
) -> None:
    added = _add_oauth(nodes, "guarded")
    query = {k: v[0] for k, v in parse_qs(urlsplit(added["authorization_url"]).query).items()}
    assert added["authorization_url"].startswith(nodes.upstream.url.removesuffix("/mcp") + "/oauth/authorize?")
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) >= 43
    assert query["resource"] == nodes.upstream.url  # RFC 8707: the token is for the upstream's /mcp
    assert query["redirect_uri"] == nodes.gateway + "/catalog/oauth/callback"
    assert "code_verifier" not in added["authorization_url"]

    location = _approve(added["authorization_url"], nodes.up_admin)
    assert location.startswith(nodes.gateway + "/catalog/oauth/callback?")
    done = _back(location)
    assert done.status_code == 200, done.text
    assert done.json()["grant"] == "server" and done.json()["synced"]["tools"] > 5
    assert _back(location).json()["error"]["code"] == "invalid_oauth_state"  # the state is single-use
    wrong = httpx.get(nodes.gateway + "/catalog/oauth/callback", params={"state": "made-up", "code": "x"}, timeout=10)
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "invalid_oauth_state"

    listed = httpx.get(nodes.gateway + "/catalog/servers", headers=_auth(nodes.admin), timeout=10).json()["servers"]
    row = next(s for s in listed if s["name"] == "guarded")
    assert row["auth"] == "oauth" and row["health"] == "ok" and row["per_user"] is False

    nodes.upstream.authorizations.clear()
    body = await _call(nodes, nodes.alice, "guarded")
    assert body["status"] == "success", body
    first = _grant_tokens(db_url, "guarded", None)
    assert f"Bearer {first['access_token']}" in nodes.upstream.authorizations
    assert not any(nodes.alice in a for a in nodes.upstream.authorizations)  # the caller's own key stays in isa

    # The access token is spent (its expiry moved into the past, no sleep): the next call refreshes it first.
    sql(db_url, "UPDATE catalog_upstream_oauth_grants SET expires_at = now() - interval '1 minute' WHERE server = %s",
        ("guarded",))  # fmt: skip
    assert (await _call(nodes, nodes.alice, "guarded"))["status"] == "success"
    second = _grant_tokens(db_url, "guarded", None)
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] and second["refresh_token"] != first["refresh_token"]  # rotated, and stored
    assert f"Bearer {second['access_token']}" in nodes.upstream.authorizations
    assert mcp_status(nodes.upstream.url.removesuffix("/mcp"), second["access_token"]) == 200

    revoked = httpx.delete(nodes.gateway + "/catalog/servers/guarded/oauth", headers=_auth(nodes.admin), timeout=30)
    assert revoked.status_code == 200 and revoked.json()["authorized"] is False, revoked.text
    refused = await _call(nodes, nodes.alice, "guarded")
    assert refused["status"] == "error" and refused["data"]["code"] == "upstream_authorization_required"
    assert "isa catalog authorize guarded" in refused["error"]
    # Revoked at the upstream too (RFC 7009): the token isa held no longer opens its /mcp.
    assert mcp_status(nodes.upstream.url.removesuffix("/mcp"), second["access_token"]) == 401


async def test_per_user_grants_are_each_users_own_and_a_state_is_bound_to_whoever_started_it(
    nodes: Nodes, db_url: str
) -> None:
    _connect_server(nodes, "acting", per_user=True)
    missing = await _call(nodes, nodes.alice, "acting")
    assert missing["status"] == "error" and missing["data"]["code"] == "upstream_authorization_required"
    assert "POST /catalog/servers/acting/oauth/start" in missing["error"]

    started = _start(nodes, "acting", nodes.alice)
    assert started.status_code == 201 and started.json()["grant"] == "user", started.text
    alices_way_back = _approve(started.json()["authorization_url"], nodes.up_alice)

    # Bob presents Alice's callback as himself: refused, and her state is burnt (she starts again).
    stolen = _back(alices_way_back, nodes.bob)
    assert stolen.status_code == 403 and stolen.json()["error"]["code"] == "oauth_state_not_yours"
    assert _back(alices_way_back).json()["error"]["code"] == "invalid_oauth_state"
    assert (
        sql(db_url, "SELECT 1 FROM catalog_upstream_oauth_grants WHERE server = 'acting' AND user_id IS NOT NULL") == []
    )

    again = _start(nodes, "acting", nodes.alice).json()["authorization_url"]
    done = _back(_approve(again, nodes.up_alice), nodes.alice)  # her own credential on the callback is fine
    assert done.status_code == 200 and done.json() | {"grant": "user", "authorized": True} == done.json()

    assert (await _call(nodes, nodes.alice, "acting"))["status"] == "success"
    bob = await _call(nodes, nodes.bob, "acting")
    assert bob["data"]["code"] == "upstream_authorization_required"  # Alice's grant is hers only
    assert (
        _back(_approve(_start(nodes, "acting", nodes.bob).json()["authorization_url"], nodes.up_bob)).status_code == 200
    )
    nodes.upstream.authorizations.clear()
    assert (await _call(nodes, nodes.bob, "acting"))["status"] == "success"

    alice_token = _grant_tokens(db_url, "acting", "gw-alice")["access_token"]
    bob_token = _grant_tokens(db_url, "acting", "gw-bob")["access_token"]
    claims = {t: jwt.decode(t, options={"verify_signature": False})["sub"] for t in (alice_token, bob_token)}
    assert claims == {alice_token: "up-alice", bob_token: "up-bob"}
    assert f"Bearer {bob_token}" in nodes.upstream.authorizations
    assert f"Bearer {alice_token}" not in nodes.upstream.authorizations  # Bob's call carried only Bob's grant

    mine = httpx.get(nodes.gateway + "/catalog/servers/acting/oauth", headers=_auth(nodes.alice), timeout=10)
    assert mine.json()["authorized"] is True and "token" not in json.dumps(mine.json()).replace("authorized", "")
    assert httpx.delete(nodes.gateway + "/catalog/servers/acting/oauth", headers=_auth(nodes.alice)).status_code == 200
    assert (await _call(nodes, nodes.alice, "acting"))["data"]["code"] == "upstream_authorization_required"
    assert (await _call(nodes, nodes.bob, "acting"))["status"] == "success"

    # Only an admin starts (or revokes) the server's own grant.
    assert _start(nodes, "acting", nodes.alice, grant="server").status_code == 403


def test_a_server_that_does_not_ask_for_oauth_or_a_refused_consent_is_said_clearly(nodes: Nodes) -> None:
    body = {"name": "open-one", "url": nodes.gateway + "/health/ready", "auth": "oauth"}
    plain = httpx.post(nodes.gateway + "/catalog/servers", json=body, headers=_auth(nodes.admin), timeout=60)
    assert plain.status_code == 422 and plain.json()["error"]["code"] == "upstream_not_oauth", plain.text

    added = _add_oauth(nodes, "denied")
    with browser() as b:
        answer = b.consent(added["authorization_url"], nodes.up_admin, decision="deny")
    assert answer.status_code == 303
    denied = _back(answer.headers["location"])
    assert denied.status_code == 400 and denied.json()["error"]["code"] == "upstream_oauth_denied"


def test_the_cli_adds_with_oauth_prints_the_url_and_revokes(
    nodes: Nodes, db_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ISA_CATALOG__CREDENTIALS_KEY_ENV", KEY_ENV)
    without = run_isa(db_url, data_dir, "catalog", "add", "from-cli", nodes.upstream.url, "--auth", "oauth")
    assert without.returncode == 1 and "oauth_redirect_url" in without.stderr  # where to send the user back?

    monkeypatch.setenv("ISA_CATALOG__OAUTH_REDIRECT_URL", nodes.gateway + "/catalog/oauth/callback")
    added = run_isa(db_url, data_dir, "catalog", "add", "from-cli", nodes.upstream.url, "--auth", "oauth")
    assert added.returncode == 0, added.stderr
    url = added.stdout.strip().splitlines()[-1]
    assert url.startswith(nodes.upstream.url.removesuffix("/mcp") + "/oauth/authorize?")
    assert _back(_approve(url, nodes.up_admin)).json()["synced"]["tools"] > 5

    listed = run_isa(db_url, data_dir, "catalog", "list", "--json")
    assert next(s for s in json.loads(listed.stdout) if s["name"] == "from-cli")["auth"] == "oauth"
    revoked = run_isa(db_url, data_dir, "catalog", "authorize", "from-cli", "--revoke")
    assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
    assert sql(db_url, "SELECT 1 FROM catalog_upstream_oauth_grants WHERE server = 'from-cli'") == []
    removed = run_isa(db_url, data_dir, "catalog", "remove", "from-cli")
    assert (
        removed.returncode == 0 and sql(db_url, "SELECT 1 FROM catalog_upstream_oauth WHERE server = 'from-cli'") == []
    )
