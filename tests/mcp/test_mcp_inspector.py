"""A real third-party client: the MCP Inspector's CLI (Node) against an mcp node, with an API key header."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.mcp_servers import serve_isa

# Pinned: the newest Inspector (its CLI has --header); npx on Node 20 would otherwise resolve 0.15, which has none.
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"

pytestmark = pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) is not installed")


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str) -> Iterator[str]:
    with serve_isa(settings, db_url) as url:
        yield url


def inspector(url: str, key: str, *args: str) -> dict[str, object]:
    done = subprocess.run(
        ["npx", "-y", INSPECTOR, "--cli", url, "--header", f"Authorization: Bearer {key}", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout[done.stdout.index("{") :])  # type: ignore[no-any-return]


def test_the_inspector_cli_lists_and_calls_tools_with_an_api_key(node: str, settings: Settings, db_url: str) -> None:
    key = create_key(db_url, settings, "inspector-user", "write")
    listed = inspector(node + "/mcp", key, "--method", "tools/list")
    names = {tool["name"] for tool in listed["tools"]}  # type: ignore[attr-defined]
    assert {"get_current_time", "discover_tools", "call_tool", "ask_human"} <= names
    called = inspector(
        node + "/mcp",
        key,
        "--method",
        "tools/call",
        "--tool-name",
        "get_current_time",
        "--tool-arg",
        "timezone=UTC",
    )
    assert called["structuredContent"]["status"] == "success"  # type: ignore[index]


def test_the_inspector_without_a_key_is_refused(node: str) -> None:
    done = subprocess.run(
        ["npx", "-y", INSPECTOR, "--cli", node + "/mcp", "--method", "tools/list", "--stored-auth-only"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "auth_required" in done.stdout + done.stderr  # it saw our 401 challenge
    assert "get_current_time" not in done.stdout
