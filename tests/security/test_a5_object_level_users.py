"""A5 object-level attacks on the user service (items 24, 26-30): user A against B's sessions, usage and credits."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key

SESSIONS = "/api/v1/users/me/sessions"


@dataclass
class Account:
    user_id: str
    headers: dict[str, str]
    session_id: str = ""
    usage_id: str = ""


def _sql(db_url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(query, args).fetchall()


@pytest.fixture(scope="module")
def client(settings: Settings, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings, "mcp", database_url=db_url)) as c:
        yield c


def _account(client: TestClient, settings: Settings, db_url: str, name: str, scope: str = "write") -> Account:
    user_id = f"{name}-{uuid.uuid4().hex[:8]}"
    account = Account(user_id, {"X-API-Key": create_key(db_url, settings, user_id, scope)})
    assert client.post("/api/v1/users/ensure", json={}, headers=account.headers).status_code == 200
    session = client.post(SESSIONS, json={"title": f"{name}'s"}, headers=account.headers).json()["data"]
    account.session_id = session["session_id"]
    client.post(
        f"{SESSIONS}/{account.session_id}/messages", json={"role": "user", "content": "secret"}, headers=account.headers
    )
    usage = client.post(
        "/api/v1/users/me/usage",
        json={"event_type": "model_call", "credits_charged": 3, "session_id": account.session_id},
        headers=account.headers,
    ).json()["data"]
    account.usage_id = usage["id"]
    return account


@pytest.fixture(scope="module")
def alice(client: TestClient, settings: Settings, db_url: str) -> Account:
    return _account(client, settings, db_url, "alice")


@pytest.fixture(scope="module")
def bob(client: TestClient, settings: Settings, db_url: str) -> Account:
    return _account(client, settings, db_url, "bob")


def test_a5_24_user_a_cannot_read_user_b_session_messages_usage_or_credits(
    client: TestClient, alice: Account, bob: Account
) -> None:
    for path in (f"{SESSIONS}/{bob.session_id}", f"{SESSIONS}/{bob.session_id}/messages"):
        response = client.get(path, headers=alice.headers)
        assert response.status_code == 404 and response.json()["error"]["code"] == "session_not_found"
        assert "secret" not in response.text
    # A 404 for B's session looks exactly like one for a session that never existed.
    missing = client.get(f"{SESSIONS}/{uuid.uuid4()}", headers=alice.headers)
    assert missing.json()["error"]["code"] == "session_not_found"
    # Linking B's objects into A's records is refused the same way.
    linked = client.post(
        "/api/v1/users/me/usage", json={"event_type": "x", "session_id": bob.session_id}, headers=alice.headers
    )
    assert linked.status_code == 404
    spent = client.post(
        "/api/v1/users/me/credits/consume", json={"amount": 1, "usage_record_id": bob.usage_id}, headers=alice.headers
    )
    assert spent.status_code == 404
    for admin_path in (f"/api/v1/admin/users/{bob.user_id}", f"/api/v1/admin/users/{bob.user_id}/usage"):
        assert client.get(admin_path, headers=alice.headers).status_code == 403


def test_a5_26_owner_filters_in_the_query_are_ignored(client: TestClient, alice: Account, bob: Account) -> None:
    attack = f"?user_id={bob.user_id}&owner={bob.user_id}&owner_id={bob.user_id}"
    sessions = client.get(f"{SESSIONS}{attack}", headers=alice.headers).json()["data"]["sessions"]
    usage = client.get(f"/api/v1/users/me/usage{attack}", headers=alice.headers).json()["data"]["records"]
    history = client.get(f"/api/v1/users/me/credits/transactions{attack}", headers=alice.headers).json()["data"]
    stats = client.get(f"/api/v1/users/me/usage/stats{attack}", headers=alice.headers).json()["data"]
    me = client.get(f"/api/v1/users/me{attack}", headers=alice.headers).json()["data"]
    assert {s["session_id"] for s in sessions} == {alice.session_id}
    assert {u["id"] for u in usage} == {alice.usage_id}
    assert history["total"] == 2 and stats["totals"]["requests"] == 1 and me["user_id"] == alice.user_id


def test_a5_27_user_a_cannot_change_or_delete_user_b_session_and_the_row_is_unchanged(
    client: TestClient, alice: Account, bob: Account, db_url: str
) -> None:
    query = "SELECT title, status, message_count, metadata, updated_at FROM sessions WHERE id = %s"
    before = _sql(db_url, query, bob.session_id)
    messages_before = _sql(db_url, "SELECT count(*) FROM session_messages WHERE session_id = %s", bob.session_id)
    url = f"{SESSIONS}/{bob.session_id}"
    attempts = (
        client.put(url, json={"title": "pwned", "status": "archived", "metadata": {"x": 1}}, headers=alice.headers),
        client.delete(url, headers=alice.headers),
        client.post(f"{url}/messages", json={"role": "user", "content": "injected"}, headers=alice.headers),
    )
    assert [a.status_code for a in attempts] == [404, 404, 404]
    assert _sql(db_url, query, bob.session_id) == before and before
    assert (
        _sql(db_url, "SELECT count(*) FROM session_messages WHERE session_id = %s", bob.session_id) == messages_before
    )
    # B's credits and usage are untouched by everything A did.
    assert _sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = %s", bob.user_id) == [(997,)]
    assert client.get(url, headers=bob.headers).json()["data"]["title"] == "bob's"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/api/v1/users/me", {"name": "x", "user_id": "{bob}"}),
        ("PUT", "/api/v1/users/me", {"credits": 1_000_000}),
        ("PUT", "/api/v1/users/me", {"credits_remaining": 1_000_000}),
        ("PUT", "/api/v1/users/me", {"role": "admin"}),
        ("PUT", "/api/v1/users/me", {"is_active": True, "scopes": ["admin"]}),
        ("PUT", "/api/v1/users/me", {"created_at": "2000-01-01T00:00:00Z"}),
        ("POST", "/api/v1/users/ensure", {"user_id": "{bob}"}),
        ("POST", "/api/v1/users/ensure", {"credits": 1_000_000}),
        ("POST", SESSIONS, {"title": "t", "user_id": "{bob}"}),
        ("POST", "/api/v1/users/me/usage", {"event_type": "x", "user_id": "{bob}"}),
        ("POST", "/api/v1/users/me/credits/consume", {"amount": 1, "user_id": "{bob}"}),
    ],
)
def test_a5_28_mass_assignment_of_owner_credits_role_or_timestamps_is_refused(
    client: TestClient, alice: Account, bob: Account, db_url: str, method: str, path: str, body: dict[str, Any]
) -> None:
    body = {k: (v.format(bob=bob.user_id) if isinstance(v, str) else v) for k, v in body.items()}
    snapshot = "SELECT user_id, name, credits_remaining, created_at, is_active FROM users WHERE user_id IN (%s, %s)"
    before = sorted(_sql(db_url, snapshot, alice.user_id, bob.user_id))
    counts = "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM user_usage_records)"
    counts_before = _sql(db_url, counts)
    response = client.request(method, path, json=body, headers=alice.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert sorted(_sql(db_url, snapshot, alice.user_id, bob.user_id)) == before
    assert _sql(db_url, counts) == counts_before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/admin/users"),
        ("GET", "/api/v1/admin/users/{bob}"),
        ("POST", "/api/v1/admin/users/{bob}/credits/recharge"),
        ("POST", "/api/v1/admin/users/{alice}/credits/recharge"),
        ("GET", "/api/v1/admin/users/{bob}/credits/transactions"),
        ("GET", "/api/v1/admin/users/{bob}/usage"),
    ],
)
def test_a5_29_a_non_admin_on_an_admin_route_is_403(
    client: TestClient, alice: Account, bob: Account, db_url: str, method: str, path: str
) -> None:
    url = path.format(alice=alice.user_id, bob=bob.user_id)
    before = _sql(db_url, "SELECT user_id, credits_remaining FROM users ORDER BY user_id")
    response = client.request(method, url, json={"amount": 1000}, headers=alice.headers)
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
    assert _sql(db_url, "SELECT user_id, credits_remaining FROM users ORDER BY user_id") == before


def test_a5_30_object_ids_are_random_uuids_not_sequences(
    client: TestClient, alice: Account, settings: Settings, db_url: str
) -> None:
    ids = [client.post(SESSIONS, json={}, headers=alice.headers).json()["data"]["session_id"] for _ in range(5)]
    ids += [
        client.post("/api/v1/users/me/usage", json={"event_type": "x"}, headers=alice.headers).json()["data"]["id"]
        for _ in range(5)
    ]
    ids += [
        client.post(
            f"{SESSIONS}/{alice.session_id}/messages", json={"role": "user", "content": "c"}, headers=alice.headers
        ).json()["data"]["id"]
        for _ in range(5)
    ]
    ids += [
        t["id"]
        for t in client.get("/api/v1/users/me/credits/transactions", headers=alice.headers).json()["data"][
            "transactions"
        ]
    ]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 4 for u in parsed) and len(set(parsed)) == len(parsed) == 17
    # Consecutive ids share no long common prefix (a sequence or time-ordered id would).
    as_ints = [u.int for u in parsed[:5]]
    assert min(abs(b - a) for a, b in itertools.pairwise(as_ints)) > 2**64
