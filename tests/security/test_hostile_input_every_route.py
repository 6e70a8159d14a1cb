"""The review's black-box table as a test: every route a node of role "all" serves (each operation of both OpenAPI
documents and every route registered besides) gets the hostile cases — a NUL character in the path, the query
string and the body's fields, `%` and placeholder text, JSON nested 600 deep, a body past the default limit —
from an admin (so authentication is not what answers). Every answer is below 500, and every 4xx is the one JSON
error shape."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.routing import Route

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.mcp_servers import serve_asgi

# Routes whose wire format is not a JSON API: the MCP endpoint (JSON-RPC, attacked in test_a5_mcp), signed
# local-storage links, the chat page and its static files, and streams that would wait for a model.
SKIP = {"/mcp", "/api/v1/storage/local/{key:path}", "/", "/api/chat/static/{name}", "/api/chat/static/{name:path}"}
# Names the routes' bodies and query strings use for text; a NUL in any of them must be refused, not stored.
TEXT_FIELDS = [
    "query", "request", "text", "note", "event_type", "name", "message", "content", "title", "description",
    "reason", "filename", "prompt", "input", "model", "search", "task_type", "status", "user_id", "email",
    "session_id", "idempotency_key", "endpoint", "callback_url", "file_path", "tool_name", "service_type",
]  # fmt: skip
NUL = "a\u0000b"
PERCENT = "%(text)s 100% %s"


@dataclass(frozen=True)
class Node:
    url: str
    admin: str
    operations: list[tuple[str, str]]


def _concrete(path: str, value: str) -> str:
    """A template path with its parameters filled: uuid ones with a fresh uuid, the rest with `value`."""
    path = re.sub(r"\{[^}:]+:uuid\}", lambda _: str(uuid.uuid4()), path)
    return re.sub(r"\{[^}]+\}", value, path)


@pytest.fixture(scope="module")
def node(settings: Settings, db_url: str) -> Iterator[Node]:
    admin = create_key(db_url, settings, "hostile-admin", "admin")
    app = create_app(settings, "all", database_url=db_url)
    registered = {
        (r.path, m) for r in app.routes if isinstance(r, Route) for m in (r.methods or ()) if m not in ("HEAD",)
    }
    with serve_asgi(app) as url:
        documented: set[tuple[str, str]] = set()
        for doc in ("/openapi.json", "/v1/openapi.json"):
            spec = httpx.get(url + doc, timeout=30).json()
            documented |= {(p, m.upper()) for p, ops in spec["paths"].items() for m in ops if m != "parameters"}
        # Every documented operation is served (else the walk below would miss it).
        served = {(re.sub(r":[a-z]+\}", "}", p), m) for p, m in registered}
        assert documented <= served, sorted(documented - served)
        operations = sorted((p, m) for p, m in registered if p not in SKIP)
        yield Node(url, admin, operations)


def _problem(response: httpx.Response, case: str) -> str | None:
    """What is wrong with an answer to a hostile request: a 500, or an error outside the one JSON shape.

    A deliberate 502/503 with its own code (a node not configured for chat) is an answer, not a crash.
    """
    where = f"{case}: {response.request.method} {response.request.url.path} -> {response.status_code}"
    if response.status_code == 500:
        return f"{where} {response.text[:200]}"
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            assert error["code"] and error["code"] != "internal_error" and error["message"]
        except (ValueError, KeyError, TypeError, AssertionError):
            return f"{where} not the error shape: {response.text[:200]}"
    return None


def test_every_route_answers_nul_percent_deep_and_oversized_input_with_a_4xx_never_a_500(node: Node) -> None:
    headers = {"Authorization": f"Bearer {node.admin}", "Content-Type": "application/json"}
    nul_body = json.dumps({name: NUL for name in TEXT_FIELDS}).encode()
    percent_body = json.dumps({name: PERCENT for name in TEXT_FIELDS}).encode()
    deep_body = ('{"data":' + '{"a":' * 600 + "1" + "}" * 600 + "}").encode()
    huge_body = b'{"input": "' + b"x" * (2 * 1024 * 1024) + b'"}'  # past the 1 MiB default limit
    query = "&".join(f"{name}=a%00b" for name in TEXT_FIELDS) + "&limit=100%25"
    found: list[str | None] = []
    with httpx.Client(base_url=node.url, headers=headers, timeout=60) as http:
        for path, method in node.operations:
            found.append(_problem(http.request(method, _concrete(path, "a%00b")), "NUL in the path"))
            found.append(_problem(http.request(method, _concrete(path, "x") + "?" + query), "NUL in the query"))
            if method in ("POST", "PUT", "PATCH"):
                target = _concrete(path, "x")
                found.append(_problem(http.request(method, target, content=nul_body), "NUL in the body"))
                found.append(_problem(http.request(method, target, content=percent_body), "% in the body"))
                found.append(_problem(http.request(method, target, content=deep_body), "600 deep"))
                found.append(_problem(http.request(method, target, content=huge_body), "2 MiB"))
    assert [f for f in found if f] == []
    assert len(found) > 300  # the walk really covered the routes
