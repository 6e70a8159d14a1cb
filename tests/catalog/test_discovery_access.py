"""Discovery offers only what the caller may run, nothing for nonsense, and answers as soon as the node says ready.

One `isa serve --role mcp` on a fresh database (its first catalog sync is real), reached over HTTP and with the
MCP SDK client, with a write key and an admin key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from isa.catalog.settings import CatalogSettings
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.mcp_servers import mcp_client
from tests.support.procs import IsaProcess, isa_serve, wait_for

ADMIN_QUERIES = ["show me the audit log and the server metrics and pending approvals", "server metrics"]
NONSENSE = "qwzx plimf vorbtang"
IMPORTED = [
    {
        "name": "vault",
        "tools": [
            # An import file can't make a HIGH tool readable: the catalog decides its scope, not the file.
            {
                "name": "wipe_secrets",
                "description": "Delete every secret in the vault",
                "securityLevel": "HIGH",
                "scope": "read",
            },
            {"name": "list_secrets", "description": "List the names of the secrets in the vault"},
        ],
    }
]


class Node:
    def __init__(self, proc: IsaProcess, keys: dict[str, str], first_ready: list[httpx.Response]) -> None:
        self.proc = proc
        self.keys = keys
        self.url = proc.url
        self.first_ready = first_ready

    def post(self, who: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(self.url + path, json=body, headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=30)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def get(self, who: str, path: str) -> dict[str, Any]:
        r = httpx.get(self.url + path, headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=30)
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def tools(self, who: str, request: str, **body: Any) -> list[str]:
        found = self.post(who, "/discover", {"request": request, **body})["capabilities"]["tools"]
        return [t["name"] for t in found]


@pytest.fixture(scope="module")
def node(db_url: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    keys = {
        "read": create_key(db_url, settings, "disc-reader", "read"),
        "write": create_key(db_url, settings, "disc-writer", "write"),
        "admin": create_key(db_url, settings, "disc-admin", "admin"),
    }
    data_dir = tmp_path_factory.mktemp("disc")
    with isa_serve("mcp", data_dir, env={"ISA_DATABASE__URL": db_url}, log_dir=Path(data_dir)) as proc:
        answers: list[httpx.Response] = []

        def ready() -> httpx.Response | None:
            if proc.proc.poll() is not None:
                raise RuntimeError(proc.log())
            try:
                r = proc.get("/health/ready")
            except httpx.TransportError:
                return None
            answers.append(r)
            return r if r.status_code == 200 else None

        wait_for(ready, timeout=120)
        # The very first thing after the first 200: discovery must already answer.
        first = httpx.post(
            proc.url + "/discover",
            json={"request": "what time is it?"},
            headers={"Authorization": f"Bearer {keys['write']}"},
            timeout=30,
        )
        yield Node(proc, keys, [*answers, first])
        proc.stop()


def test_the_first_discover_after_ready_finds_tools_and_not_ready_says_catalog_syncing(node: Node) -> None:
    *probes, first = node.first_ready
    assert first.status_code == 200, first.text
    assert "get_current_time" in [t["name"] for t in first.json()["capabilities"]["tools"]]
    for r in probes[:-1]:  # every 503 before the 200 names the reason
        assert r.status_code == 503 and r.json()["error"]["code"] in ("catalog_syncing", "not_ready"), r.text
    assert probes[-1].json()["checks"]["catalog"] == "ok"


@pytest.mark.parametrize("request_text", [*ADMIN_QUERIES, "what time is it?"])
def test_discover_offers_a_write_key_no_admin_tool_and_an_admin_key_the_admin_tools(
    node: Node, request_text: str
) -> None:
    written = node.tools("write", request_text, max_results={"tools": 10})
    assert written and not [n for n in written if n.startswith("admin_")]
    if request_text in ADMIN_QUERIES:
        assert any(n.startswith("admin_") for n in node.tools("admin", request_text, max_results={"tools": 10}))


def test_search_capabilities_and_security_levels_show_a_write_key_no_admin_tool(node: Node) -> None:
    def names(who: str) -> list[str]:
        body = {"query": ADMIN_QUERIES[0], "max_results": 20, "filters": {"types": ["tool"]}}
        return [r["name"] for r in node.post(who, "/search", body)["results"]]

    assert names("write") and not [n for n in names("write") if n.startswith("admin_")]
    assert "admin_get_audit_log" in names("admin")
    caps = {who: node.get(who, "/capabilities")["capabilities"]["tools"] for who in ("write", "admin")}
    assert not [n for n in caps["write"]["available"] if n.startswith("admin_")]
    assert "admin_get_metrics" in caps["admin"]["available"]
    assert caps["admin"]["count"] - caps["write"]["count"] == 3  # the three admin tools
    levels = node.get("write", "/security/levels")
    assert not [t for t in levels["tools"] if t["name"].startswith("admin_")]


def test_an_imported_high_tool_is_offered_to_a_writer_but_never_to_a_reader(node: Node) -> None:
    r = httpx.post(
        node.url + "/catalog/import",
        json=IMPORTED,
        headers={"Authorization": f"Bearer {node.keys['admin']}"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    request = "delete all the secrets in the vault"
    assert "vault__wipe_secrets" in node.tools("write", request, max_results={"tools": 10})
    read = node.tools("read", request, max_results={"tools": 10})
    assert "vault__list_secrets" in read and "vault__wipe_secrets" not in read
    assert "delete_my_memories" not in read  # our own write-scope tool, too


def test_nonsense_gets_nothing_and_the_answer_says_why(node: Node) -> None:
    for who in ("write", "admin"):
        out = node.post(who, "/discover", {"request": NONSENSE})
        assert out["capabilities"] == {"tools": [], "prompts": [], "resources": []}
        assert "relevant" in out["message"]
        searched = node.post(who, "/search", {"query": NONSENSE})
        assert searched["results"] == [] and searched["result_count"] == 0
    # The floor, not the ranking, is what keeps them out: without it the top k comes back whatever the score.
    unfloored = node.post("write", "/discover", {"request": NONSENSE, "min_similarity": 0})
    assert len(unfloored["capabilities"]["tools"]) == 5


def test_every_hit_is_above_the_floor_and_high_risk_tools_above_the_higher_one(node: Node, settings: Settings) -> None:
    configured = settings.section("catalog", CatalogSettings)  # the node's: same settings file and environment
    floor, high = configured.similarity_floor(), configured.similarity_floor() + configured.high_risk_margin
    assert floor > 0
    for request in ("forget everything you remember about me", "what time is it in Tokyo", "pretty print json"):
        hits = node.post("write", "/discover", {"request": request, "max_results": {"tools": 20}})["capabilities"]
        for hit in hits["tools"]:
            assert hit["similarity"] >= (high if hit["security_level"] in ("HIGH", "CRITICAL") else floor), hit
    # A direct request still reaches the HIGH tool over its higher floor.
    assert "delete_my_memories" in node.tools("write", "delete all my stored memories")


@pytest.mark.anyio
async def test_discover_tools_over_mcp_hides_admin_tools_from_a_write_key_and_says_when_nothing_fits(
    node: Node,
) -> None:
    async def discover(who: str, request: str) -> dict[str, Any]:
        async with mcp_client(node.url, node.keys[who]) as client:
            result = await client.call_tool("discover_tools", {"request": request, "limit": 10})
        assert not result.is_error
        data: dict[str, Any] = json.loads(result.content[0].text)["data"]  # type: ignore[union-attr]
        return data

    written = [t["name"] for t in (await discover("write", ADMIN_QUERIES[0]))["tools"]]
    assert written and not [n for n in written if n.startswith("admin_")]
    assert "admin_get_audit_log" in [t["name"] for t in (await discover("admin", ADMIN_QUERIES[0]))["tools"]]
    nothing = await discover("write", NONSENSE)
    assert nothing["tools"] == [] and "rephrase" in nothing["message"]
