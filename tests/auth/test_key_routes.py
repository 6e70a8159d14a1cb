"""API keys and users over HTTP: a user makes, lists and revokes their own keys; only an admin manages users."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key


@pytest.fixture(scope="module")
def http(settings: Settings, db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings, "all", database_url=db_url)) as client:
        yield client


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _user() -> str:
    return f"keys-{uuid.uuid4().hex[:10]}"


def test_a_user_creates_a_named_key_sees_the_secret_once_and_a_revoked_key_gets_401(
    http: TestClient, settings: Settings, db_url: str
) -> None:
    key = create_key(db_url, settings, _user(), "write")
    made = http.post("/api/v1/auth/keys", json={"name": "laptop", "scope": "read"}, headers=_h(key))
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    new = made.json()
    assert new["key"].startswith("isa_") and new["scopes"] == ["read"] and new["name"] == "laptop"
    assert http.get("/api/v1/users/me", headers=_h(new["key"])).status_code == 200

    listed = http.get("/api/v1/auth/keys", headers=_h(key)).json()
    mine = {k["id"]: k for k in listed["keys"]}
    assert mine[new["id"]]["name"] == "laptop" and mine[new["id"]]["revoked_at"] is None
    assert new["key"] not in str(listed) and listed["current_key_id"] != new["id"]

    assert http.delete(f"/api/v1/auth/keys/{new['id']}", headers=_h(key)).json() == {"id": new["id"], "revoked": True}
    assert http.get("/api/v1/users/me", headers=_h(new["key"])).status_code == 401
    again = http.delete(f"/api/v1/auth/keys/{new['id']}", headers=_h(key))
    assert again.status_code == 404


def test_a_key_cannot_mint_more_scope_than_it_has_nor_revoke_another_users_key(
    http: TestClient, settings: Settings, db_url: str
) -> None:
    reader = create_key(db_url, settings, _user(), "read")
    writer = create_key(db_url, settings, _user(), "write")
    assert http.post("/api/v1/auth/keys", json={"scope": "read"}, headers=_h(reader)).status_code == 403
    escalate = http.post("/api/v1/auth/keys", json={"scope": "admin"}, headers=_h(writer))
    assert escalate.status_code == 403 and escalate.json()["error"]["code"] == "insufficient_scope"
    bad = http.post("/api/v1/auth/keys", json={"scope": "root"}, headers=_h(writer))
    assert bad.status_code == 422

    other = http.post("/api/v1/auth/keys", json={"name": "x"}, headers=_h(writer)).json()
    stranger = create_key(db_url, settings, _user(), "write")
    assert http.delete(f"/api/v1/auth/keys/{other['id']}", headers=_h(stranger)).status_code == 404
    assert http.delete("/api/v1/auth/keys/not-a-uuid", headers=_h(stranger)).status_code == 404
    assert http.get("/api/v1/users/me", headers=_h(other["key"])).status_code == 200
    assert http.get("/api/v1/auth/keys").status_code == 401


def test_an_admin_creates_disables_and_enables_a_user_and_a_non_admin_is_refused(
    http: TestClient, settings: Settings, db_url: str
) -> None:
    admin = create_key(db_url, settings, _user(), "admin")
    writer = create_key(db_url, settings, _user(), "write")
    target = _user()
    assert http.post("/api/v1/admin/users", json={"user_id": target}, headers=_h(writer)).status_code == 403
    made = http.post("/api/v1/admin/users", json={"user_id": target, "email": "t@example.test"}, headers=_h(admin))
    assert made.status_code == 201 and made.json() == {"user_id": target, "created": True}
    assert http.post("/api/v1/admin/users", json={"user_id": target}, headers=_h(admin)).json()["created"] is False

    target_key = create_key(db_url, settings, target, "read")
    assert http.post(f"/api/v1/admin/users/{target}/disable", headers=_h(writer)).status_code == 403
    assert http.post(f"/api/v1/admin/users/{target}/disable", headers=_h(admin)).json()["is_active"] is False
    assert http.get("/api/v1/users/me", headers=_h(target_key)).status_code == 401
    assert http.post(f"/api/v1/admin/users/{target}/enable", headers=_h(admin)).json()["is_active"] is True
    assert http.get("/api/v1/users/me", headers=_h(target_key)).status_code == 200
    assert http.post("/api/v1/admin/users/nobody-here/disable", headers=_h(admin)).status_code == 404
