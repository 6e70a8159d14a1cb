"""Live MCP servers added by URL: discovered, called through isa's /mcp with their own (or the user's) credentials,
followed when their tools change, cut off by the breaker when they die."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from cryptography.fernet import Fernet
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from isa.core.settings import Settings
from tests.catalog.test_catalog_import import run_isa
from tests.support.auth import create_key
from tests.support.mcp_servers import mcp_client, serve_asgi, serve_isa, settings_with
from tests.support.procs import wait_for

pytestmark = pytest.mark.anyio
KEY_ENV = "ISA_TEST_FEDERATION_KEY"


@dataclass
class Upstream:
    server: MCPServer
    url: str = ""
    headers: list[dict[str, str]] = field(default_factory=list)
    sessions: list[Any] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)


@contextmanager
def live_upstream(name: str) -> Iterator[Upstream]:
    """A real MCP server on loopback: echo(text), whoami() (the Authorization it got), a prompt and a resource."""
    sessions: list[Any] = []

    async def remember_session(ctx: Any, call_next: Any) -> Any:
        sessions.append(ctx.session)
        record.methods.append(ctx.method)
        return await call_next(ctx)

    server = MCPServer(name, middleware=[remember_session])
    record = Upstream(server, sessions=sessions)

    @server.tool()
    async def echo(text: str) -> str:
        """Echo back the text it is given, unchanged."""
        return text

    @server.tool()
    async def whoami(ctx: Context) -> str:
        """Say which credential this request carried."""
        request = ctx.request_context.request
        return str(request.headers.get("authorization", "none")) if request is not None else "none"

    def reverse(text: str) -> str:
        """Reverse the characters of a text."""
        return text[::-1]

    @server.tool()
    async def change_my_tools() -> str:
        """Test hook: add reverse, drop whoami and tell every session, as a server whose tools change does."""
        server.add_tool(reverse)
        server.remove_tool("whoami")
        for session in dict.fromkeys(sessions):  # a closed session can't hear; don't wait on it
            with contextlib.suppress(Exception), anyio.move_on_after(2):
                await session.send_tool_list_changed()
        return "changed"

    @server.prompt()
    def haiku(topic: str) -> str:
        """Write a haiku about a topic."""
        return f"Write a haiku about {topic}."

    @server.resource(f"notes://{name}/readme", name="readme", description="The project's read-me notes.")
    def readme() -> str:
        return f"read me, from {name}"

    inner = server.streamable_http_app(
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            record.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await inner(scope, receive, send)

    with serve_asgi(app) as url:
        record.url = url + "/mcp/"
        yield record


@dataclass(frozen=True)
class Node:
    url: str
    admin: str
    alice: str
    bob: str


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str) -> Iterator[Node]:
    os.environ[KEY_ENV] = Fernet.generate_key().decode()
    # The schedule is long: a change is followed because the upstream says so (list_changed), not by polling.
    catalog = {"federation_sync_seconds": 120.0, "federation_timeout_seconds": 5.0, "credentials_key_env": KEY_ENV}
    configured = settings_with(settings, catalog=catalog)
    try:
        with serve_isa(configured, db_url, breaker_failure_threshold=2, breaker_cooldown_seconds=30) as url:
            wait_for(lambda: httpx.get(url + "/health/ready", timeout=5).status_code == 200, timeout=120)
            yield Node(
                url,
                admin=create_key(db_url, settings, "fed-root", "admin"),
                alice=create_key(db_url, settings, "fed-alice", "write"),
                bob=create_key(db_url, settings, "fed-bob", "write"),
            )
    finally:
        os.environ.pop(KEY_ENV, None)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _add(node: Node, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(node.url + "/catalog/servers", json=body, headers=_auth(node.admin), timeout=60)


def _server(node: Node, name: str) -> dict[str, Any]:
    listed = httpx.get(node.url + "/catalog/servers", headers=_auth(node.admin), timeout=10)
    assert listed.status_code == 200, listed.text
    return next(s for s in listed.json()["servers"] if s["name"] == name)


def _discovered(node: Node, request: str) -> list[dict[str, Any]]:
    found = httpx.post(
        node.url + "/discover",
        json={"request": request, "max_results": {"tools": 5, "prompts": 3, "resources": 3}},
        headers=_auth(node.alice),
        timeout=30,
    )
    assert found.status_code == 200, found.text
    caps = found.json()["capabilities"]
    return [*caps["tools"], *caps["prompts"], *caps["resources"]]


async def _call(node: Node, key: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async with mcp_client(node.url, key) as client:
        result = await client.call_tool(name, arguments)
    assert result.structured_content is not None, result
    return result.structured_content


async def test_a_server_added_by_url_is_discovered_and_its_tool_answers_through_isa_with_its_own_credentials(
    node: Node,
) -> None:
    with live_upstream("echoes") as upstream:
        added = _add(node, {"name": "echoes", "url": upstream.url, "headers": {"X-Api-Key": "server-secret"}})
        assert added.status_code == 201, added.text
        assert added.json()["added"] | {"tools": 3, "prompts": 1, "resources": 1} == added.json()["added"]

        hits = _discovered(node, "echo back the text I give you")
        names = {h["name"] for h in hits}
        assert "echoes__echo" in names, hits
        body = await _call(node, node.alice, "echoes__echo", {"text": "hello from alice"})
        assert body["status"] == "success" and body["untrusted"] is True
        assert "hello from alice" in str(body["data"])

        sent = upstream.headers
        assert any(h.get("x-api-key") == "server-secret" for h in sent)
        assert not any(node.alice in str(h) for h in sent)  # no token passthrough
        listed = _server(node, "echoes")
        assert listed["health"] == "ok" and listed["tools"] == 3 and listed["last_sync_at"]
        assert listed["prompts"] == 1 and listed["resources"] == 1
        assert "server-secret" not in str(listed)

        async with mcp_client(node.url, node.alice) as client:
            prompt = await client.get_prompt("echoes__haiku", {"topic": "rivers"})
            resource = await client.read_resource("notes://echoes/readme")
        assert "haiku about rivers" in str(prompt.messages[0].content)
        assert prompt.meta is not None and prompt.meta["isa/untrusted"] is True
        assert resource.contents[0].text == "read me, from echoes"  # type: ignore[union-attr]
        assert resource.contents[0].meta == {"isa/untrusted": True, "isa/server": "echoes"}


async def test_isa_follows_an_upstream_whose_tools_change_and_retires_the_removed_ones(node: Node) -> None:
    with live_upstream("changing") as upstream:
        assert _add(node, {"name": "changing", "url": upstream.url}).status_code == 201

        with anyio.fail_after(30):  # isa's watching session did its first listing (the add's was the first)
            while upstream.methods.count("tools/list") < 2:
                await anyio.sleep(0.1)
        async with (
            httpx2.AsyncClient() as http,
            Client(streamable_http_client(upstream.url, http_client=http), mode="legacy", cache=None) as direct,
        ):  # the upstream's own event loop sends the notification
            assert not (await direct.call_tool("change_my_tools", {})).is_error
        with anyio.fail_after(30):
            while True:
                listed = _server(node, "changing")
                if listed["tools"] == 3 and any(h["name"] == "changing__reverse" for h in _discovered(node, "reverse")):
                    break
                await anyio.sleep(0.2)
        body = await _call(node, node.alice, "changing__reverse", {"text": "abc"})
        assert body["status"] == "success" and "cba" in str(body["data"])
        gone = await _call(node, node.alice, "changing__whoami", {})
        assert gone["status"] == "error" and gone["data"]["code"] == "unknown_tool"


async def test_each_user_reaches_a_per_user_server_with_their_own_stored_credential_only(node: Node) -> None:
    with live_upstream("acting") as upstream:
        body = {"name": "acting", "url": upstream.url, "user_header": "Authorization: Bearer {credential}"}
        assert _add(node, body).status_code == 201

        missing = await _call(node, node.alice, "acting__whoami", {})
        assert missing["status"] == "error" and missing["data"]["code"] == "upstream_credential_required"
        assert "/catalog/servers/acting/credential" in missing["error"]

        for key, token in ((node.alice, "alice-github-token"), (node.bob, "bob-github-token")):
            stored = httpx.put(
                node.url + "/catalog/servers/acting/credential",
                json={"credential": token},
                headers=_auth(key),
                timeout=10,
            )
            assert stored.status_code == 200 and stored.json()["stored"] is True, stored.text
            assert token not in stored.text

        alice = await _call(node, node.alice, "acting__whoami", {})
        bob = await _call(node, node.bob, "acting__whoami", {})
        assert "Bearer alice-github-token" in str(alice["data"]) and "bob" not in str(alice["data"])
        assert "Bearer bob-github-token" in str(bob["data"]) and "alice" not in str(bob["data"])

        revoked = httpx.delete(node.url + "/catalog/servers/acting/credential", headers=_auth(node.alice), timeout=10)
        assert revoked.status_code == 200 and revoked.json()["stored"] is False
        again = await _call(node, node.alice, "acting__whoami", {})
        assert again["data"]["code"] == "upstream_credential_required"
        assert "Bearer bob-github-token" in str((await _call(node, node.bob, "acting__whoami", {}))["data"])


async def test_credentials_are_refused_when_no_encryption_key_is_configured(node: Node) -> None:
    with live_upstream("keyless") as upstream:
        saved = os.environ.pop(KEY_ENV)
        try:
            refused = _add(node, {"name": "keyless", "url": upstream.url, "headers": {"X-Api-Key": "s"}})
        finally:
            os.environ[KEY_ENV] = saved
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "credentials_key_missing"
    assert KEY_ENV in refused.text
    names = [s["name"] for s in httpx.get(node.url + "/catalog/servers", headers=_auth(node.admin)).json()["servers"]]
    assert "keyless" not in names  # nothing half-written


async def test_an_upstream_that_dies_opens_the_breaker_and_shows_as_unhealthy(node: Node) -> None:
    with live_upstream("mortal") as upstream:
        assert _add(node, {"name": "mortal", "url": upstream.url}).status_code == 201
        alive = await _call(node, node.alice, "mortal__echo", {"text": "still here"})
        assert alive["status"] == "success"
    codes = [(await _call(node, node.alice, "mortal__echo", {"text": "x"}))["data"]["code"] for _ in range(3)]
    assert codes[:2] == ["upstream_unavailable", "upstream_unavailable"]
    assert codes[2] == "upstream_circuit_open"
    synced = httpx.post(node.url + "/catalog/servers/mortal/sync", headers=_auth(node.admin), timeout=60)
    assert synced.status_code == 502 and synced.json()["error"]["code"] == "upstream_unreachable"
    listed = _server(node, "mortal")
    assert listed["health"] == "error" and listed["last_error"] and listed["tools"] == 3  # kept until it is back


async def test_isa_catalog_add_by_url_then_the_tool_is_discovered_and_called_through_isa(
    node: Node, db_url: str, data_dir: Path
) -> None:
    with live_upstream("echo-server") as upstream:
        added = run_isa(db_url, data_dir, "catalog", "add", "echoes-cli", upstream.url)
        assert added.returncode == 0, added.stderr
        assert "echoes-cli: 3 tools, 1 prompts, 1 resources" in added.stdout
        assert "items embedded in" in added.stderr and "items/s" in added.stderr  # not a TTY: plain lines
        listed = run_isa(db_url, data_dir, "catalog", "list")
        row = next(line for line in listed.stdout.splitlines() if line.startswith("echoes-cli"))
        assert " ok " in row and upstream.url in row

        with anyio.fail_after(30):  # the node learns of the CLI's change through NOTIFY
            while "echoes-cli__echo" not in {h["name"] for h in _discovered(node, "echo back the text I give you")}:
                await anyio.sleep(0.2)
        body = await _call(node, node.alice, "echoes-cli__echo", {"text": "the text I gave"})
        assert body["status"] == "success" and "the text I gave" in str(body["data"])

        removed = run_isa(db_url, data_dir, "catalog", "remove", "echoes-cli")
        assert removed.returncode == 0, removed.stderr
        names = [
            s["name"] for s in httpx.get(node.url + "/catalog/servers", headers=_auth(node.admin)).json()["servers"]
        ]
        assert "echoes-cli" not in names
