"""/discover, /search, /capabilities, /stats, /security/levels and the admin import route, over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.procs import wait_for

SERVERS = [
    {
        "name": "github",
        "url": "http://127.0.0.1:9/mcp",
        "category": "code",
        "tools": [
            {
                "name": "create_issue",
                "description": "Open a new issue in a GitHub repository with a title and body",
                "inputSchema": {"type": "object", "properties": {"title": {"type": "string"}}},
            },
            {"name": "merge_pull_request", "description": "Merge an open pull request", "securityLevel": "HIGH"},
        ],
    },
    {
        "name": "weather-co",
        "category": "weather",
        "tools": [
            {
                "name": "forecast",
                "description": "Seven day weather forecast for a city",
                "examples": ["do I need an umbrella in London tomorrow?"],
            }
        ],
    },
]


@pytest.fixture(scope="module")
def client(db_url: str, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, "mcp", database_url=db_url)) as c:
        yield c


@pytest.fixture(scope="module")
def keys(db_url: str, settings: Settings, client: TestClient) -> dict[str, dict[str, str]]:
    admin = {"Authorization": f"Bearer {create_key(db_url, settings, 'cat-admin', 'admin')}"}
    reader = {"Authorization": f"Bearer {create_key(db_url, settings, 'cat-reader', 'read')}"}
    r = client.post("/catalog/import", json=SERVERS, headers=admin)
    assert r.status_code == 201, r.text
    return {"admin": admin, "read": reader}


def test_discover_returns_call_names_schemas_and_scores_per_kind(client: TestClient, keys: Any) -> None:
    r = client.post("/discover", json={"request": "file a bug report on github"}, headers=keys["read"])
    assert r.status_code == 200, r.text
    caps = r.json()["capabilities"]
    assert set(caps) == {"tools", "prompts", "resources"}
    top = caps["tools"][0]
    assert top["name"] == "github__create_issue" and top["tool"] == "create_issue" and top["server"] == "github"
    assert top["input_schema"]["properties"]["title"] == {"type": "string"}
    assert isinstance(top["score"], float) and top["description"].startswith("Open a new issue")
    assert [t["score"] for t in caps["tools"]] == sorted((t["score"] for t in caps["tools"]), reverse=True)
    r = client.post(
        "/discover", json={"request": "weather", "max_results": {"tools": 1, "prompts": 0}}, headers=keys["read"]
    )
    assert [t["tool"] for t in r.json()["capabilities"]["tools"]] == ["forecast"]


def test_every_discovery_is_logged_with_query_results_scores_latency_and_user(
    client: TestClient, keys: Any, db_url: str
) -> None:
    query = "merge the pull request for logging test"
    client.post("/discover", json={"request": query}, headers=keys["admin"])

    def logged() -> list[tuple[Any, ...]]:
        with psycopg.connect(db_url) as conn:
            return conn.execute(
                "SELECT user_id, item_name, rank, score, latency_ms FROM selection_history WHERE user_query = %s"
                " ORDER BY rank",
                (query,),
            ).fetchall()

    rows = wait_for(logged, timeout=10)
    assert rows[0][0] == "cat-admin" and rows[0][1] == "github__merge_pull_request" and rows[0][2] == 1
    assert rows[0][4] > 0
    stats = client.get("/stats", headers=keys["admin"]).json()
    assert stats["calls"]["discover"]["total"] >= 1
    assert any(t["name"] == "github__merge_pull_request" for t in stats["usage"]["tools"])


def test_search_filters_by_server_security_level_type_and_min_score(client: TestClient, keys: Any) -> None:
    def search(**body: Any) -> list[dict[str, Any]]:
        query = "github issue or pull request, and the weather forecast"  # two clauses: each clears the floor
        r = client.post("/search", json={"query": query, **body}, headers=keys["admin"])
        assert r.status_code == 200, r.text
        return r.json()["results"]  # type: ignore[no-any-return]

    assert {r["server"] for r in search(filters={"servers": ["weather-co"]})} == {"weather-co"}
    assert [r["item"] for r in search(filters={"security_levels": ["HIGH"]})] == ["merge_pull_request"]
    assert {r["category"] for r in search(filters={"categories": ["code"]})} == {"code"}
    assert search(filters={"types": ["prompt"]}) == [] or all(
        r["type"] == "prompt" for r in search(filters={"types": ["prompt"]})
    )
    assert len(search(max_results=1)) == 1
    assert search(filters={"min_score": 9.9}) == []
    lexical = search(mode="lexical")
    assert lexical and all(r["score"] > 0 for r in lexical)
    first = search()[0]
    assert {"name", "type", "server", "item", "score", "description", "security_level", "input_schema"} <= set(first)


def test_capabilities_and_security_levels_describe_the_catalog(client: TestClient, keys: Any) -> None:
    caps = client.get("/capabilities", headers=keys["admin"]).json()["capabilities"]
    assert caps["tools"]["count"] >= 3 and "github__create_issue" in caps["tools"]["available"]
    levels = client.get("/security/levels", headers=keys["admin"]).json()
    assert levels["summary"]["HIGH"] >= 1
    merge = next(t for t in levels["tools"] if t["name"] == "github__merge_pull_request")
    assert merge["requires_authorization"] is True


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/discover", {}),
        ("/discover", {"request": "   "}),
        ("/discover", {"request": "x", "max_results": {"tools": 500}}),
        ("/discover", {"request": "x", "unknown": 1}),
        ("/search", {"query": ""}),
        ("/search", {"query": "x", "filters": {"types": ["widget"]}}),
        ("/search", {"query": "x", "mode": "magic"}),
    ],
)
def test_bad_input_is_a_422_with_a_code(client: TestClient, keys: Any, path: str, body: dict[str, Any]) -> None:
    r = client.post(path, json=body, headers=keys["read"])
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"


def test_a_body_that_is_not_json_is_a_422(client: TestClient, keys: Any) -> None:
    r = client.post("/discover", content=b"{not json", headers=keys["read"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/discover"),
        ("POST", "/search"),
        ("GET", "/capabilities"),
        ("GET", "/stats"),
        ("GET", "/security/levels"),
        ("GET", "/catalog/servers"),
        ("POST", "/catalog/import"),
    ],
)
def test_every_route_needs_a_principal(client: TestClient, method: str, path: str) -> None:
    r = client.request(method, path, json={"request": "x", "query": "x"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_only_an_admin_may_import_or_remove_servers(client: TestClient, keys: Any) -> None:
    r = client.post("/catalog/import", json=SERVERS, headers=keys["read"])
    assert r.status_code == 403
    r = client.delete("/catalog/servers/github", headers=keys["read"])
    assert r.status_code == 403
    r = client.delete("/catalog/servers/nope", headers=keys["admin"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_server"
    r = client.post("/catalog/import", json=[{"name": "isa", "tools": []}], headers=keys["admin"])
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_import"
    listed = client.get("/catalog/servers", headers=keys["read"]).json()["servers"]
    assert {"github", "weather-co"} <= {s["name"] for s in listed}
