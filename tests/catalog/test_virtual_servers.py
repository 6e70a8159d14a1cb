"""Virtual servers: an admin composes /mcp/v/{name} from our tools and a live upstream's, and a real MCP client
connected there sees, discovers and calls only that set; the OAuth resource of the virtual endpoint is its own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import jwt
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from isa.core.settings import Settings
from tests.catalog.test_catalog_import import run_isa
from tests.catalog.test_federation_live import Upstream, live_upstream
from tests.support.auth import create_key
from tests.support.mcp_servers import settings_with
from tests.support.oauth import Client as OAuthClient
from tests.support.oauth import serve_oauth_node

pytestmark = pytest.mark.anyio
TEAM_TOOLS = ["discover_tools", "call_tool", "get_current_time", "vecho__echo"]


@dataclass(frozen=True)
class Node:
    url: str
    admin: str
    alice: str
    upstream: Upstream


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str) -> Iterator[Node]:
    configured = settings_with(settings, catalog={"federation_sync_seconds": 120.0, "federation_timeout_seconds": 5.0})
    with live_upstream("vecho") as upstream, serve_oauth_node(configured, db_url) as url:
        admin = create_key(db_url, settings, "virt-root", "admin")
        added = httpx.post(
            url + "/catalog/servers", json={"name": "vecho", "url": upstream.url}, headers=_auth(admin), timeout=60
        )
        assert added.status_code == 201, added.text
        team = {
            "name": "team",
            "description": "The team's echo kit.",
            "tools": TEAM_TOOLS,
            "prompts": ["vecho__haiku"],
            "resources": ["notes://vecho/readme", "isa://security/levels"],
        }
        created = httpx.post(url + "/catalog/virtual", json=team, headers=_auth(admin), timeout=10)
        assert created.status_code == 201, created.text
        yield Node(url, admin, create_key(db_url, settings, "virt-alice", "write"), upstream)


@asynccontextmanager
async def client_at(url: str, key: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers=_auth(key), timeout=httpx2.Timeout(30, read=120)) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client,
    ):
        yield client


def _initialize(url: str, token: str) -> httpx.Response:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {**_auth(token), "Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    return httpx.post(url, json=body, headers=headers, timeout=10)


async def test_a_client_at_a_virtual_server_lists_only_its_tools_prompts_and_resources(node: Node) -> None:
    async with client_at(node.url + "/mcp/v/team", node.alice) as client:
        assert client.server_info is not None and client.server_info.name == "isa/team"
        tools = {t.name for t in (await client.list_tools()).tools}
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        resources = {str(r.uri) for r in (await client.list_resources()).resources}
        templates = (await client.list_resource_templates()).resource_templates
    assert tools == set(TEAM_TOOLS)
    assert prompts == {"vecho__haiku"}
    assert resources == {"notes://vecho/readme", "isa://security/levels"}
    assert templates == []
    async with client_at(node.url + "/mcp", node.alice) as whole:  # /mcp itself is not narrowed
        assert "format_json" in {t.name for t in (await whole.list_tools()).tools}


async def test_members_answer_and_everything_else_is_refused_even_through_call_tool(node: Node) -> None:
    async with client_at(node.url + "/mcp/v/team", node.alice) as client:
        echoed = await client.call_tool("vecho__echo", {"text": "inside the set"})
        outside = await client.call_tool("format_json", {"content": "[1]"})
        indirect = await client.call_tool("call_tool", {"name": "format_json", "arguments": {"content": "[1]"}})
        via_meta = await client.call_tool("call_tool", {"name": "vecho__echo", "arguments": {"text": "via meta"}})
        prompt = await client.get_prompt("vecho__haiku", {"topic": "rivers"})
        readme = await client.read_resource("notes://vecho/readme")
        with pytest.raises(MCPError, match="not part of the virtual server"):
            await client.get_prompt("tool_failure_triage_prompt", {"tool_name": "x", "error": "y"})
        with pytest.raises(MCPError, match="not part of the virtual server"):
            await client.read_resource("isa://tools/format_json")
    assert echoed.structured_content and "inside the set" in str(echoed.structured_content["data"])
    for refused in (outside, indirect):
        assert refused.structured_content is not None, refused
        assert refused.structured_content["data"]["code"] == "not_in_virtual_server"
    assert via_meta.structured_content and "via meta" in str(via_meta.structured_content["data"])
    assert "haiku about rivers" in str(prompt.messages[0].content)
    assert readme.contents[0].text == "read me, from vecho"  # type: ignore[union-attr]


async def test_discovery_at_a_virtual_server_finds_only_its_members(node: Node) -> None:
    async with client_at(node.url + "/mcp/v/team", node.alice) as client:
        inside = await client.call_tool("discover_tools", {"request": "echo back the text I give you", "limit": 10})
        outside = await client.call_tool("discover_tools", {"request": "pretty-print and validate a JSON text"})
    assert inside.structured_content is not None and outside.structured_content is not None
    found = {t["name"] for t in inside.structured_content["data"]["tools"]}
    assert "vecho__echo" in found and found <= set(TEAM_TOOLS)
    assert "format_json" not in {t["name"] for t in outside.structured_content["data"]["tools"]}


async def test_an_unknown_virtual_server_is_404_and_an_anonymous_client_is_sent_to_its_own_metadata(
    node: Node,
) -> None:
    unknown = _initialize(node.url + "/mcp/v/nobody", node.alice)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_virtual_server"
    anonymous = httpx.post(node.url + "/mcp/v/team", json={}, headers={"Accept": "application/json"}, timeout=10)
    assert anonymous.status_code == 401
    metadata_url = node.url + "/.well-known/oauth-protected-resource/mcp/v/team"
    assert f'resource_metadata="{metadata_url}"' in anonymous.headers["www-authenticate"]
    metadata = httpx.get(metadata_url, timeout=10).json()
    assert metadata["resource"] == node.url + "/mcp/v/team" and metadata["authorization_servers"] == [node.url]


def test_a_token_for_a_virtual_server_serves_only_it_and_a_token_for_mcp_serves_it_too(node: Node) -> None:
    client = OAuthClient.register(node.url)
    narrow = client.sign_in(node.alice, resource=node.url + "/mcp/v/team")["access_token"]
    assert jwt.decode(narrow, options={"verify_signature": False})["aud"][0] == node.url + "/mcp/v/team"
    assert _initialize(node.url + "/mcp/v/team", narrow).status_code == 200
    assert _initialize(node.url + "/mcp", narrow).status_code == 401
    wide = client.sign_in(node.alice)["access_token"]  # resource: /mcp
    assert _initialize(node.url + "/mcp/v/team", wide).status_code == 200


def test_only_admins_compose_virtual_servers_and_unknown_members_are_refused_with_nothing_written(
    node: Node,
) -> None:
    body = {"name": "kit", "tools": ["get_current_time"]}
    denied = httpx.post(node.url + "/catalog/virtual", json=body, headers=_auth(node.alice), timeout=10)
    assert denied.status_code == 403
    typo = {"name": "kit", "tools": ["get_current_time", "vecho__ecoh"], "resources": ["notes://none"]}
    refused = httpx.post(node.url + "/catalog/virtual", json=typo, headers=_auth(node.admin), timeout=10)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "unknown_items"
    assert refused.json()["error"]["details"] == ["tool vecho__ecoh", "resource notes://none"]
    bad_name = httpx.post(
        node.url + "/catalog/virtual", json={**body, "name": "../x"}, headers=_auth(node.admin), timeout=10
    )
    assert bad_name.status_code == 422
    listed = httpx.get(node.url + "/catalog/virtual", headers=_auth(node.alice), timeout=10).json()
    assert [v["name"] for v in listed["virtual_servers"]] == ["team"]
    assert listed["virtual_servers"][0]["path"] == "/mcp/v/team"


async def test_a_removed_virtual_server_stops_answering(node: Node) -> None:
    body = {"name": "brief", "tools": ["get_current_time"]}
    assert httpx.post(node.url + "/catalog/virtual", json=body, headers=_auth(node.admin)).status_code == 201
    async with client_at(node.url + "/mcp/v/brief", node.alice) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["get_current_time"]
    removed = httpx.delete(node.url + "/catalog/virtual/brief", headers=_auth(node.admin), timeout=10)
    assert removed.status_code == 200
    assert _initialize(node.url + "/mcp/v/brief", node.alice).status_code == 404
    again = httpx.delete(node.url + "/catalog/virtual/brief", headers=_auth(node.admin), timeout=10)
    assert again.status_code == 404 and again.json()["error"]["code"] == "unknown_virtual_server"


def test_the_cli_creates_lists_and_removes_a_virtual_server(node: Node, db_url: str, data_dir: Path) -> None:
    created = run_isa(db_url, data_dir, "catalog", "virtual", "create", "ops", "--tool", "vecho__echo", "--json")
    assert created.returncode == 0, created.stderr
    out: dict[str, Any] = json.loads(created.stdout)
    assert out["tools"] == ["vecho__echo"] and out["path"] == "/mcp/v/ops"
    listed = run_isa(db_url, data_dir, "catalog", "virtual", "list")
    assert listed.returncode == 0 and "ops" in listed.stdout and "/mcp/v/ops" in listed.stdout
    typo = run_isa(db_url, data_dir, "catalog", "virtual", "create", "ops2", "--tool", "no_such_tool")
    assert typo.returncode == 1 and "tool no_such_tool" in typo.stderr
    removed = run_isa(db_url, data_dir, "catalog", "virtual", "remove", "ops")
    assert removed.returncode == 0, removed.stderr
    assert "ops" not in run_isa(db_url, data_dir, "catalog", "virtual", "list").stdout
