"""API keys: created by the CLI, shown once, stored hashed, scoped, revocable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from isa.app import create_app
from isa.auth import require_principal
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.jwt_keys import with_auth
from tests.support.procs import wait_for


async def whoami(request: Request) -> JSONResponse:
    principal = await require_principal(request, request.query_params.get("scope", "read"))
    return JSONResponse({"user_id": principal.user_id, "via": principal.via})


def _client(settings: Settings, db_url: str) -> TestClient:
    app = create_app(settings, "all", database_url=db_url)
    app.router.routes.append(Route("/whoami", whoami))
    return TestClient(app)


def test_cli_creates_a_key_printed_once_as_json_and_stored_only_as_a_hash(db_url: str) -> None:
    env = {**os.environ, "ISA_DATABASE__URL": db_url}
    result = subprocess.run(
        [sys.executable, "-m", "isa", "keys", "create", "--user", "ops-bob", "--scope", "admin", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["key"].startswith("isa_") and created["scopes"] == ["admin"]
    with psycopg.connect(db_url) as conn:
        stored = conn.execute("SELECT key_hash, prefix FROM api_keys WHERE id = %s", (created["id"],)).fetchone()
    assert stored is not None and created["key"] not in stored
    listing = subprocess.run(
        [sys.executable, "-m", "isa", "keys", "list", "--user", "ops-bob"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created["id"] in listing.stdout and created["key"] not in listing.stdout


def test_a_key_authenticates_by_bearer_or_header_but_never_by_query_string(settings: Settings, db_url: str) -> None:
    key = create_key(db_url, settings, "alice", "read")
    with _client(settings, db_url) as client:
        assert client.get("/whoami", headers={"Authorization": f"Bearer {key}"}).json()["user_id"] == "alice"
        assert client.get("/whoami", headers={"X-API-Key": key}).json()["via"] == "api_key"
        by_query = client.get(f"/whoami?api_key={key}&access_token={key}")
        assert by_query.status_code == 401
        assert by_query.headers["www-authenticate"].startswith("Bearer")


def test_a_missing_scope_is_403_and_an_unknown_key_is_401(settings: Settings, db_url: str) -> None:
    key = create_key(db_url, settings, "reader", "read")
    with _client(settings, db_url) as client:
        denied = client.get("/whoami?scope=write", headers={"X-API-Key": key})
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "insufficient_scope"
        assert 'scope="write"' in denied.headers["www-authenticate"]
        unknown = client.get("/whoami", headers={"X-API-Key": "isa_" + "x" * 43})
        assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "unauthorized"


def test_with_the_principal_cache_off_revoking_a_key_or_disabling_its_user_stops_it_on_the_next_request(
    settings: Settings, db_url: str
) -> None:
    key = create_key(db_url, settings, "carol", "write")
    second = create_key(db_url, settings, "carol", "write")
    env = {**os.environ, "ISA_DATABASE__URL": db_url}
    with _client(with_auth(settings, principal_cache_seconds=0), db_url) as client:
        assert client.get("/whoami", headers={"X-API-Key": key}).status_code == 200
        with psycopg.connect(db_url) as conn:
            key_id = conn.execute(
                "SELECT id FROM api_keys WHERE user_id = 'carol' ORDER BY created_at LIMIT 1"
            ).fetchone()
        assert key_id is not None
        revoke = subprocess.run(
            [sys.executable, "-m", "isa", "keys", "revoke", str(key_id[0])],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert revoke.returncode == 0, revoke.stderr
        assert client.get("/whoami", headers={"X-API-Key": key}).status_code == 401
        assert client.get("/whoami", headers={"X-API-Key": second}).status_code == 200
        disable = subprocess.run(
            [sys.executable, "-m", "isa", "users", "disable", "carol"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert disable.returncode == 0
        assert client.get("/whoami", headers={"X-API-Key": second}).status_code == 401


def test_a_keys_last_use_is_recorded_at_most_once_a_minute(settings: Settings, db_url: str) -> None:
    key = create_key(db_url, settings, "dora", "read")

    def last_used() -> Any:
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT last_used_at FROM api_keys WHERE user_id = 'dora'").fetchone()
        assert row is not None
        return row[0]

    assert last_used() is None
    # Read on every request (a remembered key is not touched until the node reads it again).
    with _client(with_auth(settings, principal_cache_seconds=0), db_url) as client:
        assert client.get("/whoami", headers={"X-API-Key": key}).status_code == 200
        first = last_used()
        assert first is not None
        assert client.get("/whoami", headers={"X-API-Key": key}).status_code == 200
        assert last_used() == first  # within the minute: no write
        with psycopg.connect(db_url) as conn:
            conn.execute("UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE user_id = 'dora'")
        assert client.get("/whoami", headers={"X-API-Key": key}).status_code == 200
        assert last_used() > first  # older than a minute: touched again


def test_a_key_remembered_by_a_node_is_refused_within_the_revocation_bound(settings: Settings, db_url: str) -> None:
    key = create_key(db_url, settings, "dave", "write")
    bound = 1.0
    with _client(with_auth(settings, principal_cache_seconds=bound), db_url) as client:
        assert client.get("/whoami", headers={"X-API-Key": key}).status_code == 200  # now remembered
        with psycopg.connect(db_url) as conn:  # revoked by another node (no message reaches this one)
            conn.execute("UPDATE api_keys SET revoked_at = now() WHERE user_id = 'dave'")
        revoked_at = time.monotonic()
        wait_for(lambda: client.get("/whoami", headers={"X-API-Key": key}).status_code == 401, timeout=bound + 5)
        assert time.monotonic() - revoked_at <= bound + 2
