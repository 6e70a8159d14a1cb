"""A5-44: a deeply nested or very long JSON body (under the size limit) gets a 4xx quickly, never a 500.

Every JSON POST route of role "all" gets the same two bodies from an admin, so authentication can't be what
answers: a 200 kB `[[[...]]]` (deep enough to exhaust the parser's or the validator's stack) and a
one-million-element array.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key

ROUTES = [
    "/api/v1/events",
    "/api/v1/events/batch",
    "/process_background_feedback",
    "/discover",
    "/search",
    "/catalog/import",
    "/api/v1/invoke",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/api/v1/tasks",
    # A fixed id that names no authorization: pytest-xdist workers must collect the same test names.
    "/api/v1/authorizations/00000000-0000-4000-8000-000000000001/approve",
    "/api/v1/auth/token",
    "/api/chat",
    "/api/v1/users/me/sessions",
]
DEEP = b"[" * 100_000 + b"]" * 100_000
LONG = b"[" + b"0," * 999_999 + b"0]"
# Mid-depth (review F4): deep enough to pass the parser yet exceed pydantic's serializer once a route dumps it.
MID = [b'{"data":' + b'{"a":' * d + b"1" + b"}" * d + b"}" for d in (200, 400, 800)]


@pytest.fixture(scope="module")
def client(settings: Settings, db_url: str) -> Iterator[tuple[TestClient, str]]:
    key = create_key(db_url, settings, "nested-admin", "admin")
    with TestClient(create_app(settings, "all", database_url=db_url), raise_server_exceptions=False) as c:
        yield c, key


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("body", [DEEP, LONG, *MID], ids=["deep", "long", "mid200", "mid400", "mid800"])
def test_a5_44_a_nested_or_huge_json_body_gets_a_4xx_within_a_second(
    client: tuple[TestClient, str], route: str, body: bytes
) -> None:
    c, key = client
    started = time.perf_counter()
    response = c.post(route, content=body, headers={"X-API-Key": key, "Content-Type": "application/json"})
    elapsed = time.perf_counter() - started
    assert 400 <= response.status_code < 500, (route, response.status_code, response.text[:200])
    code = response.json()["error"]["code"]
    assert isinstance(code, str) and code and code != "internal_error"
    assert elapsed < 1.0, (route, elapsed)
