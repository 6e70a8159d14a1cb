"""/openapi.json on the mcp role: generated from the registered routes, and fuzzed with schemathesis (no 500s)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.fake_stripe import FakeStripe
from tests.support.fuzz import run_schemathesis
from tests.support.procs import IsaProcess, isa_serve

# The user service's own routes (the Files routes under /users/{user_id}/files belong to another suite).
USER_ROUTES = r"^/api/v1/(users/(ensure|me)|admin/users|billing|subscriptions|webhooks)"
EXAMPLES = 10
# Seconds schemathesis may spend fuzzing (it stops generating when this runs out).
TIME_BUDGET = 25


async def yaml_described(request: Request) -> JSONResponse:
    """A route another domain might add.
    ---
    summary: Count widgets
    responses:
      "200":
        description: the count
    """
    return JSONResponse({"count": 1})


async def undocumented(request: Request) -> JSONResponse:
    """Frobnicate one widget."""
    return JSONResponse({})


def test_openapi_describes_the_user_routes_with_their_schemas(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path, method in (
        ("/api/v1/users/ensure", "post"),
        ("/api/v1/users/me", "put"),
        ("/api/v1/users/me/credits/consume", "post"),
        ("/api/v1/users/me/sessions/{session_id}/messages", "post"),
        ("/api/v1/admin/users/{user_id}/credits/recharge", "post"),
        ("/api/v1/billing/webhook", "post"),
    ):
        assert method in paths[path], path
    consume = paths["/api/v1/users/me/credits/consume"]["post"]
    assert consume["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Consume"}
    assert {"200", "401", "402", "403", "422"} <= consume["responses"].keys()
    assert doc["components"]["schemas"]["Consume"]["additionalProperties"] is False
    params = paths["/api/v1/users/me/sessions/{session_id}"]["get"]["parameters"]
    assert {
        "name": "session_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
    } in params


def test_openapi_includes_routes_other_domains_register(app_settings: Settings, db_url: str) -> None:
    app = create_app(app_settings, "mcp", database_url=db_url)
    app.router.routes.append(Route("/api/v1/widgets/count", yaml_described, methods=["GET"]))
    app.router.routes.append(Route("/api/v1/widgets/{widget_id}/frob", undocumented, methods=["POST"]))
    with TestClient(app) as other:
        paths = other.get("/openapi.json").json()["paths"]
    assert paths["/api/v1/widgets/count"]["get"]["summary"] == "Count widgets"
    frob = paths["/api/v1/widgets/{widget_id}/frob"]["post"]
    assert frob["summary"] == "Frobnicate one widget." and frob["parameters"][0]["name"] == "widget_id"


@pytest.fixture(scope="module")
def fuzz_target(
    settings: Settings, db_url: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory, fake_stripe: FakeStripe
) -> Iterator[tuple[IsaProcess, str, str, list[str]]]:
    """A real `isa serve --role mcp`, an admin key whose user has signed up, and one session of theirs."""
    user_id = f"fuzzer-{uuid.uuid4().hex[:6]}"
    key = create_key(db_url, settings, user_id, "admin")
    env = {
        "ISA_DATABASE__URL": db_url,
        "ISA_AUTH__RATE_LIMIT__PRINCIPAL_LIMIT": "0",
        "ISA_BILLING__STRIPE__API_BASE": fake_stripe.api_base,
        "ISA_BILLING__STRIPE__SECRET_KEY": fake_stripe.secret_key,
        "ISA_BILLING__STRIPE__WEBHOOK_SECRET": fake_stripe.webhook_secret,
    }
    with isa_serve("mcp", data_dir, env=env, log_dir=tmp_path_factory.mktemp("fuzz")) as server:
        server.wait_ready()
        headers = {"X-API-Key": key}
        assert httpx.post(f"{server.url}/api/v1/users/ensure", headers=headers).status_code == 200
        sessions = [
            httpx.post(f"{server.url}/api/v1/users/me/sessions", json={}, headers=headers).json()["data"]["session_id"]
            for _ in range(2)
        ]
        yield server, key, user_id, sessions


def test_schemathesis_finds_no_500_on_the_user_routes(
    fuzz_target: tuple[IsaProcess, str, str, list[str]], tmp_path: Path
) -> None:
    server, key, user_id, sessions = fuzz_target
    # Real ids for the path parameters, so the fuzzer reaches the handlers behind the ownership 404s;
    # DELETE gets a session of its own so the other operations keep theirs.
    tested, report = run_schemathesis(
        server.url,
        key,
        tmp_path,
        paths=USER_ROUTES,
        config=(
            f'[parameters]\n"path.session_id" = "{sessions[0]}"\n"path.user_id" = "{user_id}"\n\n'
            f'[[operations]]\ninclude-method = "DELETE"\nparameters = {{ "path.session_id" = "{sessions[1]}" }}\n'
        ),
        max_examples=EXAMPLES,
        time_budget=TIME_BUDGET,
    )
    assert tested >= 26, report
