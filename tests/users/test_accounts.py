"""Accounts over HTTP: ensure, me, profile updates; the original's {success, data, timestamp} envelope."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import anyio
from starlette.testclient import TestClient

from isa.core.db import Database
from isa.core.settings import Settings
from isa.users.accounts.schemas import EnsureUser
from isa.users.accounts.service import UsersService
from isa.users.settings import billing_settings
from tests.support.users import sql

Maker = Callable[..., tuple[str, dict[str, str]]]


def test_ensure_creates_the_callers_user_with_the_free_plans_credits_once(
    client: TestClient, new_user: Maker, db_url: str
) -> None:
    user_id, headers = new_user()
    first = client.post("/api/v1/users/ensure", json={"email": "ann@example.test", "name": "Ann"}, headers=headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["success"] is True and datetime.fromisoformat(body["timestamp"])
    data = body["data"]
    assert data["user_id"] == user_id and data["plan"] == "free" and data["credits"] == 1000
    again = client.post("/api/v1/users/ensure", json={}, headers=headers).json()["data"]
    assert again["credits"] == 1000 and again["created"] is False
    grants = sql(
        db_url,
        "SELECT credits_amount, credits_before, credits_after FROM user_credit_transactions "
        "WHERE user_id = %s AND transaction_type = 'grant'",
        user_id,
    )
    assert [tuple(int(v) for v in g) for g in grants] == [(1000, 0, 1000)]


def test_ensure_for_a_principal_without_a_row_creates_it(settings: Settings, db_url: str) -> None:
    # A JWT principal (Auth0, Supabase) has no row until it calls ensure; API keys always have one.
    async def main() -> tuple[bool, bool, float]:
        db = Database(db_url, settings)
        await db.open()
        try:
            service = UsersService(db, billing_settings(settings))
            first = await service.ensure("auth0|fresh-subject", EnsureUser(email="f@example.test"))
            second = await service.ensure("auth0|fresh-subject", EnsureUser())
            return first.created, second.created, second.credits
        finally:
            await db.close()

    assert anyio.run(main) == (True, False, 1000)
    assert sql(db_url, "SELECT email FROM users WHERE user_id = 'auth0|fresh-subject'") == [("f@example.test",)]


def test_ensure_refuses_another_subject_in_the_body(client: TestClient, new_user: Maker, db_url: str) -> None:
    user_id, headers = new_user()
    refused = client.post("/api/v1/users/ensure", json={"auth0_id": "auth0|someone-else"}, headers=headers)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "identity_mismatch"
    assert sql(db_url, "SELECT count(*) FROM users WHERE user_id = 'auth0|someone-else'") == [(0,)]
    mine = client.post("/api/v1/users/ensure", json={"auth0_id": user_id}, headers=headers)
    assert mine.status_code == 200


def test_me_returns_the_callers_account(client: TestClient, signed_up: Maker) -> None:
    user_id, headers = signed_up()
    me = client.get("/api/v1/users/me", headers=headers)
    assert me.status_code == 200
    data = me.json()["data"]
    assert {"user_id", "email", "name", "credits", "plan"} <= data.keys()
    assert data["user_id"] == user_id and data["credits"] == 1000 and data["plan"] == "free"


def test_me_without_credentials_is_401(client: TestClient) -> None:
    response = client.get("/api/v1/users/me")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_profile_update_changes_only_profile_fields(client: TestClient, signed_up: Maker, db_url: str) -> None:
    user_id, headers = signed_up()
    response = client.put(
        "/api/v1/users/me",
        json={"name": "New Name", "phone": "+44 20 7946 0000", "preferences": {"theme": "dark"}},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["name"] == "New Name" and data["preferences"] == {"theme": "dark"} and data["credits"] == 1000
    assert sql(db_url, "SELECT name, phone FROM users WHERE user_id = %s", user_id) == [
        ("New Name", "+44 20 7946 0000")
    ]


def test_profile_update_with_bad_values_is_422_without_echoing_them(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    for body in ({"email": "not-an-email"}, {"name": "x" * 500}, {"name": "nul\u0000byte"}, {"preferences": []}):
        response = client.put("/api/v1/users/me", json=body, headers=headers)
        assert response.status_code == 422, body
        assert "nul\u0000byte" not in response.text and "not-an-email" not in response.text
    broken = client.put(
        "/api/v1/users/me", content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_request"


def test_a_read_scoped_key_can_read_but_not_update(client: TestClient, new_user: Maker) -> None:
    _, headers = new_user("read")
    assert client.post("/api/v1/users/ensure", json={}, headers=headers).status_code == 403
    denied = client.put("/api/v1/users/me", json={"name": "x"}, headers=headers)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_scope"


def test_admin_lists_and_reads_users_and_others_cannot(client: TestClient, signed_up: Maker) -> None:
    target, _ = signed_up()
    _, admin = signed_up("admin", "admin")
    _, plain = signed_up()
    listing = client.get("/api/v1/admin/users?limit=500", headers=admin)
    assert listing.status_code == 200
    assert target in {u["user_id"] for u in listing.json()["data"]["users"]}
    assert client.get(f"/api/v1/admin/users/{target}", headers=admin).json()["data"]["credits"] == 1000
    assert client.get(f"/api/v1/admin/users/{target}", headers=plain).status_code == 403
    assert client.get("/api/v1/admin/users/nobody-here", headers=admin).status_code == 404
