"""JWT access tokens: isa's own (exchanged for an API key), Auth0 via JWKS, Supabase; users on first sight."""

from __future__ import annotations

import time
import uuid

import jwt
import psycopg
import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.auth import AuthService
from isa.auth.tokens import user_id_for
from isa.core.settings import ConfigError, Settings
from tests.support.auth import create_key
from tests.support.jwt_keys import (
    AUTH0_AUDIENCE,
    AUTH0_ISSUER,
    SUPABASE_ISSUER,
    SUPABASE_SECRET,
    TOKEN_SECRET,
    JwksServer,
    SigningKey,
    app_with_whoami,
    claims,
    connection_counter,
    hs256,
    jwt_settings,
    with_auth,
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def exchange(client: TestClient, key: str, scope: str | None = None) -> dict[str, object]:
    response = client.post("/api/v1/auth/token", headers=bearer(key), json={"scope": scope} if scope else None)
    assert response.status_code == 200, response.text
    return dict(response.json())


def user_row(db_url: str, user_id: str) -> tuple[object, ...] | None:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT user_id, email, is_active FROM users WHERE user_id = %s", (user_id,)).fetchone()


def test_an_api_key_exchanges_for_a_short_lived_access_token_carrying_its_scopes(
    settings: Settings, db_url: str, client: TestClient
) -> None:
    key = create_key(db_url, settings, "xavier", "write")
    response = client.post("/api/v1/auth/token", headers={"X-API-Key": key})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60 and body["scope"] == "write"
    decoded = jwt.decode(body["access_token"], TOKEN_SECRET, algorithms=["HS256"], audience="isa", issuer="isa")
    assert decoded["sub"] == "xavier" and decoded["token_use"] == "access"
    assert decoded["exp"] - decoded["iat"] == 15 * 60 and decoded["key_id"]
    me = client.get("/whoami?scope=write", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json() == {"user_id": "xavier", "via": "isa", "scopes": ["read", "write"], "key_id": decoded["key_id"]}


def test_an_exchanged_token_can_be_narrowed_but_never_wider_than_its_key(
    settings: Settings, db_url: str, client: TestClient
) -> None:
    reader = create_key(db_url, settings, "yolanda", "read")
    wider = client.post("/api/v1/auth/token", headers=bearer(reader), json={"scope": "write"})
    assert wider.status_code == 403 and wider.json()["error"]["code"] == "insufficient_scope"
    unknown = client.post("/api/v1/auth/token", headers=bearer(reader), json={"scope": "root"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "invalid_request"
    writer = create_key(db_url, settings, "yolanda", "admin")
    narrowed = str(exchange(client, writer, "read")["access_token"])
    assert client.get("/whoami?scope=read", headers=bearer(narrowed)).status_code == 200
    assert client.get("/whoami?scope=write", headers=bearer(narrowed)).status_code == 403


def test_only_an_api_key_can_be_exchanged_not_a_token_or_nothing(
    settings: Settings, db_url: str, client: TestClient
) -> None:
    token = str(exchange(client, create_key(db_url, settings, "zeno", "write"))["access_token"])
    again = client.post("/api/v1/auth/token", headers=bearer(token))
    assert again.status_code == 401 and again.headers["www-authenticate"].startswith("Bearer")
    nothing = client.post("/api/v1/auth/token")
    assert nothing.status_code == 401
    bad_key = client.post("/api/v1/auth/token", headers=bearer("isa_" + "q" * 43))
    assert bad_key.status_code == 401 and 'error="invalid_token"' in bad_key.headers["www-authenticate"]


def test_revoking_the_api_key_stops_the_access_tokens_it_issued(
    settings: Settings, db_url: str, client: TestClient
) -> None:
    key = create_key(db_url, settings, "walter", "write")
    token = str(exchange(client, key)["access_token"])
    assert client.get("/whoami", headers=bearer(token)).status_code == 200
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE api_keys SET revoked_at = now() WHERE user_id = 'walter'")
    refused = client.get("/whoami", headers=bearer(token))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"


def test_an_auth0_access_token_is_accepted_and_its_user_created_on_first_sight(
    db_url: str, client: TestClient, signing_key: SigningKey
) -> None:
    sub = f"google-oauth2|{uuid.uuid4().hex}"
    assert user_row(db_url, sub) is None
    token = signing_key.sign(claims(AUTH0_ISSUER, [AUTH0_AUDIENCE, AUTH0_ISSUER + "userinfo"], sub))
    me = client.get("/whoami?scope=write", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["user_id"] == sub and me.json()["via"] == "auth0"
    assert me.json()["scopes"] == ["read", "write"]  # default_scopes: no admin from a plain login
    assert user_row(db_url, sub) == (sub, None, True)
    read_only = signing_key.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE, sub, scope="openid read"))
    assert client.get("/whoami?scope=write", headers=bearer(read_only)).status_code == 403
    admin = signing_key.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE, sub, permissions=["admin"]))
    assert client.get("/whoami?scope=admin", headers=bearer(admin)).status_code == 200


def test_a_supabase_user_token_is_accepted_with_the_configured_scopes_and_email(
    db_url: str, client: TestClient
) -> None:
    sub = str(uuid.uuid4())
    token = hs256(
        claims(SUPABASE_ISSUER, "authenticated", sub, role="authenticated", email="sam@example.test"), SUPABASE_SECRET
    )
    me = client.get("/whoami?scope=write", headers=bearer(token))
    assert me.status_code == 200 and me.json()["via"] == "supabase" and me.json()["user_id"] == sub
    assert client.get("/whoami?scope=admin", headers=bearer(token)).status_code == 403
    assert user_row(db_url, sub) == (sub, "sam@example.test", True)
    anonymous = hs256(
        claims(SUPABASE_ISSUER, "authenticated", str(uuid.uuid4()), role="authenticated", is_anonymous=True),
        SUPABASE_SECRET,
    )
    assert client.get("/whoami", headers=bearer(anonymous)).status_code == 401


def test_user_ids_from_different_issuers_can_never_collide() -> None:
    uid = str(uuid.uuid4())
    assert user_id_for("auth0", "auth0|abc") == "auth0|abc"
    assert user_id_for("auth0", "client-id@clients") == "auth0:client-id@clients"
    assert user_id_for("auth0", uid) == f"auth0:{uid}"
    assert user_id_for("supabase", uid) == uid
    assert user_id_for("supabase", "auth0|abc") == "supabase:auth0|abc"
    assert user_id_for("supabase", "auth0:abc") == "supabase:auth0:abc"
    assert user_id_for("isa", "alice") == "alice"


def test_a_rotated_auth0_key_is_fetched_once_when_its_kid_is_first_seen(settings: Settings, db_url: str) -> None:
    old, new = SigningKey.generate("old"), SigningKey.generate("new")
    with JwksServer([old]) as server:
        app = app_with_whoami(jwt_settings(settings, server.url, auth0={"jwks_min_refresh_seconds": 0}), db_url)
        with TestClient(app) as c:
            assert c.get("/whoami", headers=bearer(old.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE)))).status_code == 200
            assert c.get("/whoami", headers=bearer(old.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE)))).status_code == 200
            assert server.fetches == 1  # cached
            server.keys = [new]
            assert c.get("/whoami", headers=bearer(new.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE)))).status_code == 200
            assert server.fetches == 2  # exactly one refetch for the unknown kid
            stranger = SigningKey.generate("stranger")
            refused = c.get("/whoami", headers=bearer(stranger.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE))))
            assert refused.status_code == 401 and "unknown key" in refused.json()["error"]["message"]
            assert server.fetches == 3


def test_random_kids_cannot_make_a_node_hammer_the_jwks_endpoint(settings: Settings, db_url: str) -> None:
    key = SigningKey.generate("real")
    with JwksServer([key]) as server:
        with TestClient(app_with_whoami(jwt_settings(settings, server.url), db_url)) as c:
            assert c.get("/whoami", headers=bearer(key.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE)))).status_code == 200
            for _ in range(15):
                forged = SigningKey(uuid.uuid4().hex, key.private).sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE))
                assert c.get("/whoami", headers=bearer(forged)).status_code == 401
        assert server.fetches == 1  # jwks_min_refresh_seconds (30 s) throttles refetches


def test_a_hanging_jwks_endpoint_fails_within_its_timeout_with_503(settings: Settings, db_url: str) -> None:
    key = SigningKey.generate("k")
    with connection_counter(hold=True) as silent:
        auth0 = {"jwks_url": silent.url("/jwks.json"), "jwks_timeout_seconds": 0.5}
        with TestClient(app_with_whoami(jwt_settings(settings, "", auth0=auth0), db_url)) as c:
            started = time.monotonic()
            response = c.get("/whoami", headers=bearer(key.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE))))
            elapsed = time.monotonic() - started
    assert response.status_code == 503 and response.json()["error"]["code"] == "auth_unavailable"
    assert silent.connections == 1 and elapsed < 3


def test_a_disabled_user_keeps_a_cached_pass_only_until_the_cache_ttl(
    settings: Settings, db_url: str, jwks: JwksServer, signing_key: SigningKey
) -> None:
    sub = f"auth0|{uuid.uuid4().hex}"
    token = signing_key.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE, sub))
    with TestClient(app_with_whoami(jwt_settings(settings, jwks.url, principal_cache_seconds=30), db_url)) as c:
        service = c.app.state.isa.get("auth", AuthService)  # type: ignore[attr-defined]
        now = [1000.0]
        service.live.clock = lambda: now[0]
        assert c.get("/whoami", headers=bearer(token)).status_code == 200
        with psycopg.connect(db_url) as conn:  # disabled elsewhere (another node, the CLI)
            conn.execute("UPDATE users SET is_active = false WHERE user_id = %s", (sub,))
        now[0] += 29
        assert c.get("/whoami", headers=bearer(token)).status_code == 200  # within the documented bound
        now[0] += 1
        assert c.get("/whoami", headers=bearer(token)).status_code == 401  # bound reached: re-read, refused


def test_disabling_a_user_through_the_service_takes_effect_at_once_on_that_node(
    settings: Settings, db_url: str, jwks: JwksServer, signing_key: SigningKey
) -> None:
    sub = f"auth0|{uuid.uuid4().hex}"
    token = signing_key.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE, sub))
    with TestClient(app_with_whoami(jwt_settings(settings, jwks.url, principal_cache_seconds=30), db_url)) as c:
        assert c.get("/whoami", headers=bearer(token)).status_code == 200
        service = c.app.state.isa.get("auth", AuthService)  # type: ignore[attr-defined]
        assert c.portal.call(service.set_user_active, sub, False)
        assert c.get("/whoami", headers=bearer(token)).status_code == 401


def test_the_dev_token_route_does_not_exist_outside_development(settings: Settings, db_url: str) -> None:
    admin = create_key(db_url, settings, "ops-dev", "admin")
    for env, enabled in (("test", True), ("production", True), ("development", False)):
        app_settings = with_auth(settings, env=env, dev_token_endpoint=enabled, token_secret=TOKEN_SECRET)
        with TestClient(create_app(app_settings, "all", database_url=db_url)) as c:
            response = c.post("/api/v1/auth/dev-token", headers=bearer(admin), json={"user_id": "anyone"})
            assert response.status_code == 404, (env, enabled)


def test_the_dev_token_route_in_development_needs_an_admin_api_key(settings: Settings, db_url: str) -> None:
    admin = create_key(db_url, settings, "ops-dev2", "admin")
    writer = create_key(db_url, settings, "not-admin", "write")
    dev = with_auth(settings, env="development", dev_token_endpoint=True, token_secret=TOKEN_SECRET)
    with TestClient(app_with_whoami(dev, db_url)) as c:
        anonymous = c.post("/api/v1/auth/dev-token", json={"user_id": "victim"})
        assert anonymous.status_code == 401
        assert c.post("/api/v1/auth/dev-token", headers=bearer(writer), json={"user_id": "victim"}).status_code == 403
        minted = c.post("/api/v1/auth/dev-token", headers=bearer(admin), json={"user_id": "dev-user", "scope": "read"})
        assert minted.status_code == 200
        me = c.get("/whoami", headers=bearer(minted.json()["access_token"]))
        assert me.json()["user_id"] == "dev-user" and me.json()["scopes"] == ["read"]
    assert user_row(db_url, "victim") is None


def test_without_a_token_secret_isa_tokens_are_neither_issued_nor_accepted(settings: Settings, db_url: str) -> None:
    key = create_key(db_url, settings, "nosecret", "write")
    forged = hs256(claims("isa", "isa", "nosecret", token_use="access", scope="admin"), TOKEN_SECRET)
    with TestClient(app_with_whoami(with_auth(settings, token_secret=""), db_url)) as c:
        response = c.post("/api/v1/auth/token", headers=bearer(key))
        assert response.status_code == 503 and response.json()["error"]["code"] == "not_configured"
        assert c.get("/whoami", headers=bearer(forged)).status_code == 401


@pytest.mark.parametrize(
    ("auth", "names"),
    [
        ({"token_secret": "short"}, "TOKEN_SECRET"),
        ({"issuers": ["auth0"], "auth0": {"domain": "t.example", "audience": "a"}, "rate_limit": {}}, None),
        (
            {"issuers": ["auth0"], "auth0": {"domain": "t.example", "audience": "a", "jwks_url": "http://t.example/k"}},
            "JWKS_URL",
        ),
        ({"issuers": ["auth0"]}, "AUTH0.DOMAIN"),
        (
            {
                "issuers": ["supabase"],
                "supabase_jwt_secret": SUPABASE_SECRET,
                "supabase": {"issuer": "x", "scopes": ["admin"]},
            },
            "SUPABASE.SCOPES",
        ),
        (
            {
                "issuers": ["supabase"],
                "supabase_jwt_secret": TOKEN_SECRET,
                "token_secret": TOKEN_SECRET,
                "supabase": {"issuer": "x"},
            },
            "differ",
        ),
        ({"issuers": ["okta"]}, "ISSUERS"),
    ],
)
def test_unsafe_auth_settings_are_a_start_up_error_naming_the_setting(
    settings: Settings, db_url: str, auth: dict[str, object], names: str | None
) -> None:
    if names is None:  # the control: a sound configuration builds
        create_app(with_auth(settings, **auth), "all", database_url=db_url)
        return
    with pytest.raises(ConfigError, match=names):
        create_app(with_auth(settings, **auth), "all", database_url=db_url)


def test_a_subject_that_cannot_be_a_user_id_is_refused_before_any_row_is_written(
    db_url: str, client: TestClient, signing_key: SigningKey
) -> None:
    for sub in ("auth0|line\nbreak", "x" * 250, "auth0|" + "y" * 250):
        response = client.get("/whoami", headers=bearer(signing_key.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE, sub))))
        assert response.status_code == 401, sub
        assert user_row(db_url, user_id_for("auth0", sub)) is None
    fits = "z" * 249  # "auth0:" + 249 = 255 characters, the longest user id
    ok = client.get("/whoami", headers=bearer(signing_key.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE, fits))))
    assert ok.status_code == 200 and ok.json()["user_id"] == f"auth0:{fits}"
