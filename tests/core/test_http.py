"""Health semantics, the one error shape, request ids, body limits, allowed hosts, metrics."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.procs import wait_for


@pytest.fixture(scope="module")
def client(db_url: str, settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, "all", database_url=db_url)) as c:
        yield c


def test_liveness_answers_without_touching_the_database(settings: Settings, tmp_path: Path) -> None:
    dead = f"postgresql://postgres@/nope?host={tmp_path}&connect_timeout=1"
    app = create_app(
        settings.model_copy(
            update={
                "database": settings.database.model_copy(update={"auto_migrate": False, "connect_timeout_seconds": 0.5})
            }
        ),
        "all",
        database_url=dead,
    )
    with TestClient(app) as c:
        live = c.get("/health")
        assert live.status_code == 200 and live.json()["status"] == "ok"
        ready = c.get("/health/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["error"]["code"] == "not_ready"
        assert "database" in body["error"]["message"]
        assert body["checks"]["database"] != "ok"
        assert "postgres" not in json.dumps(body)  # no connection details leak


def test_readiness_is_200_when_the_database_answers_and_the_catalog_is_synced(client: TestClient) -> None:
    def answer() -> Any:
        response = client.get("/health/ready")
        if response.status_code == 503:  # only while the node's first catalog sync runs
            assert response.json()["error"]["code"] == "catalog_syncing", response.text
            return None
        return response

    ready = wait_for(answer, timeout=60)
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok" and ready.json()["checks"]["catalog"] == "ok"


def test_unknown_route_gets_the_json_error_shape_with_the_request_id(client: TestClient) -> None:
    rid = f"test-{uuid.uuid4().hex}"
    response = client.get("/no/such/route", headers={"X-Request-ID": rid})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == rid
    assert response.json() == {
        "error": {"code": "not_found", "message": "no such route on this node", "request_id": rid}
    }


def test_a_malformed_request_id_is_replaced_by_a_generated_one(client: TestClient) -> None:
    response = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32


def test_wrong_method_is_405_in_the_error_shape(client: TestClient) -> None:
    response = client.post("/health")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_host_outside_the_allow_list_is_rejected_but_health_still_answers(client: TestClient) -> None:
    evil = client.get("/metrics", headers={"Host": "evil.example"})
    assert evil.status_code == 421
    assert evil.json()["error"]["code"] == "host_not_allowed"
    assert client.get("/health", headers={"Host": "10.0.1.17:8080"}).status_code == 200


def test_metrics_count_requests_by_route_template_and_status(client: TestClient) -> None:
    client.get("/health")
    client.get("/definitely/missing/123")
    text = client.get("/metrics").text
    assert 'isa_http_requests_total{method="GET",route="/health",status="200"}' in text
    assert 'route="unmatched",status="404"' in text
    routes = set(re.findall(r'route="([^"]*)"', text))
    assert "/definitely/missing/123" not in routes and "unmatched" in routes
    assert "isa_http_request_duration_seconds_bucket" in text


def _app_with_route(handler: object, settings: Settings, db_url: str, max_body: int = 100) -> TestClient:
    """The real app of role "all" plus one extra route, to drive the shared middleware."""

    async def endpoint(request: Request) -> JSONResponse:
        return await handler(request)  # type: ignore[operator, no-any-return]

    server = settings.server.model_copy(update={"max_body_bytes": max_body})
    app = create_app(settings.model_copy(update={"server": server}), "all", database_url=db_url)
    app.router.routes.append(Route("/x", endpoint, methods=["POST", "GET"]))
    return TestClient(app, raise_server_exceptions=False)


def test_an_unhandled_exception_is_a_generic_500_without_a_stack_trace(settings: Settings, db_url: str) -> None:
    async def handler(request: Request) -> JSONResponse:
        raise RuntimeError("secret internals: password=hunter2")

    response = _app_with_route(handler, settings, db_url).get("/x")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    assert "hunter2" not in response.text and "Traceback" not in response.text


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(settings: Settings, db_url: str) -> None:
    async def handler(request: Request) -> JSONResponse:
        return JSONResponse({"size": len(await request.body())})

    client = _app_with_route(handler, settings, db_url, max_body=100)
    assert client.post("/x", content=b"a" * 50).json() == {"size": 50}
    declared = client.post("/x", content=b"a" * 101)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield b"a" * 60
        yield b"a" * 60

    streamed = client.post("/x", content=chunks())
    assert streamed.status_code == 413
