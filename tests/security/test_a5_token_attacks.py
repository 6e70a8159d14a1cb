"""Quality checklist §A5 items 1-14 against the HTTP API: each token attack is refused, with the right status.

Auth0 keys come from a real JWKS server on 127.0.0.1; Supabase and isa tokens are HS256 with their secrets.
Every attack has a control: the same request made honestly succeeds, so a test can only pass because the
attack itself was refused. (Items 1 and 9 for the MCP endpoint, and 12, token passthrough during a tool
call, belong to the MCP suite.)
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from httpx import Response
from starlette.testclient import TestClient

from isa.app import create_app
from isa.auth import AuthService
from isa.auth.settings import auth_settings
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.jwt_keys import (
    AUTH0_AUDIENCE,
    AUTH0_CLIENT_ID,
    AUTH0_ISSUER,
    SUPABASE_ISSUER,
    SUPABASE_SECRET,
    TOKEN_SECRET,
    JwksServer,
    SigningKey,
    app_with_whoami,
    claims,
    connection_counter,
    forge_hs256_with,
    hs256,
    jwt_settings,
    unsigned,
)
from tests.support.procs import wait_for


@pytest.fixture(scope="module")
def tenant_key() -> SigningKey:
    return SigningKey.generate("tenant-key")


@pytest.fixture(scope="module")
def jwks(tenant_key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer([tenant_key]) as server:
        yield server


@pytest.fixture(scope="module")
def client(settings: Settings, db_url: str, jwks: JwksServer) -> Iterator[TestClient]:
    with TestClient(app_with_whoami(jwt_settings(settings, jwks.url), db_url)) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def auth0_claims(**extra: Any) -> dict[str, Any]:
    """Valid Auth0 access-token claims; `extra` overrides (None drops a claim)."""
    return _with(claims(AUTH0_ISSUER, AUTH0_AUDIENCE, "auth0|attack-target"), extra)


def isa_claims(**extra: Any) -> dict[str, Any]:
    return _with(claims("isa", "isa", "isa-target", token_use="access", scope="write"), extra)


def supabase_claims(**extra: Any) -> dict[str, Any]:
    base = claims(SUPABASE_ISSUER, "authenticated", "0b6f4b8e-58a4-4a55-8d0f-6d1f0e1f7a11", role="authenticated")
    return _with(base, extra)


def _with(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in {**base, **extra}.items() if v is not None}


@pytest.fixture(scope="module", autouse=True)
def isa_target(settings: Settings, db_url: str) -> None:
    create_key(db_url, settings, "isa-target", "write")  # isa tokens are only for users that exist


def assert_invalid_token(response: Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


def test_a5_01_no_authorization_header_is_401_with_a_bearer_challenge(client: TestClient) -> None:
    for response in (client.get("/whoami"), client.post("/api/v1/auth/token")):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith('Bearer realm="isa"')
        assert response.json()["error"]["code"] == "unauthorized" and response.json()["error"]["request_id"]


def test_a5_02_a_token_in_the_query_string_is_ignored(
    settings: Settings, db_url: str, client: TestClient, tenant_key: SigningKey
) -> None:
    token = tenant_key.sign(auth0_claims())
    key = create_key(db_url, settings, "query-user", "read")
    assert client.get("/whoami", headers=bearer(token)).status_code == 200  # control
    for query in (f"access_token={token}", f"token={token}", f"api_key={key}", f"access_token={key}"):
        response = client.get(f"/whoami?{query}")
        assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_a5_03_an_alg_none_token_is_rejected(client: TestClient, tenant_key: SigningKey, alg: str) -> None:
    assert client.get("/whoami", headers=bearer(tenant_key.sign(auth0_claims()))).status_code == 200  # control
    for payload in (auth0_claims(), isa_claims(), supabase_claims()):
        assert_invalid_token(client.get("/whoami", headers=bearer(unsigned(payload, alg))))


def test_a5_04_hs256_signed_with_the_rsa_public_key_is_rejected(client: TestClient, tenant_key: SigningKey) -> None:
    public_pem = tenant_key.public_pem()
    header = {"kid": tenant_key.kid}
    for payload in (auth0_claims(), isa_claims(), supabase_claims()):
        assert_invalid_token(client.get("/whoami", headers=bearer(forge_hs256_with(payload, public_pem, header))))
    # The same forgery with the right secret would pass for isa: the MAC key is what is refused, not the shape.
    assert client.get("/whoami", headers=bearer(forge_hs256_with(isa_claims(), TOKEN_SECRET.encode(), {}))).is_success


def test_a5_05_unknown_key_or_a_jku_x5u_jwk_header_is_rejected_without_any_outbound_request(
    client: TestClient, tenant_key: SigningKey, jwks: JwksServer
) -> None:
    attacker = SigningKey.generate("attacker-key")
    with connection_counter() as listener:
        with socket.create_connection(("127.0.0.1", listener.port)):  # the listener does count (control)
            pass
        wait_for(lambda: listener.connections == 1, timeout=5)
        fetches = jwks.fetches
        tokens = [
            attacker.sign(auth0_claims()),  # unknown kid
            SigningKey(tenant_key.kid, attacker.private).sign(auth0_claims()),  # known kid, wrong key
            attacker.sign(auth0_claims(), {"jku": listener.url("/jwks.json")}),
            attacker.sign(auth0_claims(), {"x5u": listener.url("/cert.pem")}),
            attacker.sign(auth0_claims(), {"jwk": attacker.jwk()}),
            tenant_key.sign(auth0_claims(), {"jku": listener.url("/jwks.json")}),  # even with the real key
            tenant_key.sign(auth0_claims(), {"x5u": listener.url("/x5u")}),
            hs256(isa_claims(), TOKEN_SECRET, {"jku": listener.url("/isa")}),
        ]
        for token in tokens:
            assert_invalid_token(client.get("/whoami", headers=bearer(token)))
        # Connections are accepted in order: once a second control is counted, any fetch would have been too.
        with socket.create_connection(("127.0.0.1", listener.port)):
            pass
        wait_for(lambda: listener.connections >= 2, timeout=5)
        assert listener.connections == 2  # only the two controls: no token made the node connect anywhere
    assert jwks.fetches <= fetches + 1  # at most one throttled refetch of the configured JWKS, never more


def test_a5_06_expired_future_nbf_or_missing_exp_is_rejected(client: TestClient, tenant_key: SigningKey) -> None:
    now = int(time.time())
    assert client.get("/whoami", headers=bearer(tenant_key.sign(auth0_claims(nbf=now - 5)))).status_code == 200
    cases = [
        {"exp": now - 120, "iat": now - 600},  # past the 30 s leeway
        {"nbf": now + 600},
        {"exp": None},
    ]
    for case in cases:
        assert_invalid_token(client.get("/whoami", headers=bearer(tenant_key.sign(auth0_claims(**case)))))
        assert_invalid_token(client.get("/whoami", headers=bearer(hs256(isa_claims(**case), TOKEN_SECRET))))
        assert_invalid_token(client.get("/whoami", headers=bearer(hs256(supabase_claims(**case), SUPABASE_SECRET))))


def test_a5_07_wrong_or_missing_audience_is_rejected(client: TestClient, tenant_key: SigningKey) -> None:
    for aud in ("https://another-service.example", "anon", ["authenticated"], "isa", None):
        payload = claims(AUTH0_ISSUER, aud, "auth0|attack-target")
        assert_invalid_token(client.get("/whoami", headers=bearer(tenant_key.sign(payload))))
    for aud in ("another-deployment", AUTH0_AUDIENCE, None):
        payload = claims("isa", aud, "isa-target", token_use="access", scope="write")
        assert_invalid_token(client.get("/whoami", headers=bearer(hs256(payload, TOKEN_SECRET))))
    for aud in ("anon", "isa", None):
        payload = claims(SUPABASE_ISSUER, aud, str(uuid.uuid4()), role="authenticated")
        assert_invalid_token(client.get("/whoami", headers=bearer(hs256(payload, SUPABASE_SECRET))))


def test_a5_08_wrong_issuer_is_rejected(client: TestClient, tenant_key: SigningKey) -> None:
    for iss in ("https://evil.example/", "https://tenant.example.test", "isa", None):
        payload = claims(iss, AUTH0_AUDIENCE, "auth0|attack-target")
        assert_invalid_token(client.get("/whoami", headers=bearer(tenant_key.sign(payload))))
    for iss in ("https://other-project.supabase.co/auth/v1", AUTH0_ISSUER, "supabase"):
        payload = claims(iss, "authenticated", str(uuid.uuid4()), role="authenticated")
        assert_invalid_token(client.get("/whoami", headers=bearer(hs256(payload, SUPABASE_SECRET))))
    assert_invalid_token(client.get("/whoami", headers=bearer(hs256(isa_claims(iss="isa-other"), TOKEN_SECRET))))


def test_a5_09_a_valid_token_without_the_required_scope_is_403_insufficient_scope(
    client: TestClient, tenant_key: SigningKey
) -> None:
    token = tenant_key.sign(auth0_claims(scope="openid read"))
    assert client.get("/whoami?scope=read", headers=bearer(token)).status_code == 200
    for needed in ("write", "admin"):
        response = client.get(f"/whoami?scope={needed}", headers=bearer(token))
        assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
        challenge = response.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and f'scope="{needed}"' in challenge


def test_a5_10_an_id_token_or_refresh_token_is_not_an_access_token(client: TestClient, tenant_key: SigningKey) -> None:
    id_token = claims(AUTH0_ISSUER, AUTH0_CLIENT_ID, "auth0|attack-target", nonce="n-0S6", email="a@example.test")
    attacks = [
        tenant_key.sign(id_token),  # an Auth0 ID token: aud is the client, not this API
        tenant_key.sign(auth0_claims(nonce="n-0S6", at_hash="x")),  # ID-token claims even with our aud
        tenant_key.sign(auth0_claims(), {"typ": "id+jwt"}),
        tenant_key.sign(auth0_claims(typ="Refresh")),  # Keycloak-style refresh token
        tenant_key.sign(auth0_claims(token_use="id")),  # Cognito-style
        hs256(isa_claims(token_use="refresh"), TOKEN_SECRET),
        hs256({**isa_claims(), "token_use": None}, TOKEN_SECRET),
        hs256(supabase_claims(nonce="abc"), SUPABASE_SECRET),
    ]
    for token in attacks:
        assert_invalid_token(client.get("/whoami", headers=bearer(token)))
    assert client.get("/whoami", headers=bearer(hs256(isa_claims(), TOKEN_SECRET))).status_code == 200  # control


def test_a5_11_a_supabase_anon_or_service_role_key_is_not_a_user_token(client: TestClient) -> None:
    now = int(time.time())
    api_keys = [
        {"iss": "supabase", "ref": "project", "role": "anon", "iat": now, "exp": now + 10**8},
        {"iss": "supabase", "ref": "project", "role": "service_role", "iat": now, "exp": now + 10**8},
        {"iss": SUPABASE_ISSUER, "role": "anon", "iat": now, "exp": now + 3600},
        {"iss": SUPABASE_ISSUER, "role": "service_role", "iat": now, "exp": now + 3600},
        supabase_claims(role="anon"),
        supabase_claims(role="service_role"),
        supabase_claims(role=None),
    ]
    for payload in api_keys:
        token = hs256({k: v for k, v in payload.items() if v is not None}, SUPABASE_SECRET)
        assert_invalid_token(client.get("/whoami", headers=bearer(token)))
    assert client.get("/whoami", headers=bearer(hs256(supabase_claims(), SUPABASE_SECRET))).status_code == 200


def test_a5_13_a_disabled_user_with_a_still_valid_jwt_is_denied_within_the_documented_bound(
    settings: Settings, db_url: str, jwks: JwksServer, tenant_key: SigningKey, client: TestClient
) -> None:
    def disable(user_id: str) -> None:
        with psycopg.connect(db_url) as conn:
            conn.execute("UPDATE users SET is_active = false WHERE user_id = %s", (user_id,))

    # With the cache off, the next request is refused (also for isa tokens and their API key).
    sub = f"auth0|{uuid.uuid4().hex}"
    token = tenant_key.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE, sub))
    assert client.get("/whoami", headers=bearer(token)).status_code == 200
    disable(sub)
    assert_invalid_token(client.get("/whoami", headers=bearer(token)))
    isa_user = f"isa-{uuid.uuid4().hex[:8]}"
    create_key(db_url, settings, isa_user, "write")
    isa_token = hs256(isa_claims(sub=isa_user), TOKEN_SECRET)
    assert client.get("/whoami", headers=bearer(isa_token)).status_code == 200
    disable(isa_user)
    assert_invalid_token(client.get("/whoami", headers=bearer(isa_token)))

    # With the shipped default cache (30 s), a warm cache still refuses once the bound has passed.
    bound = auth_settings(settings).principal_cache_seconds
    assert 0 < bound <= 30
    cached = jwt_settings(settings, jwks.url, principal_cache_seconds=bound)
    sub = f"auth0|{uuid.uuid4().hex}"
    token = tenant_key.sign(claims(AUTH0_ISSUER, AUTH0_AUDIENCE, sub))
    with TestClient(app_with_whoami(cached, db_url)) as warm:
        now = [0.0]
        warm.app.state.isa.get("auth", AuthService).live.clock = lambda: now[0]  # type: ignore[attr-defined]
        assert warm.get("/whoami", headers=bearer(token)).status_code == 200
        disable(sub)
        now[0] += bound
        assert_invalid_token(warm.get("/whoami", headers=bearer(token)))


def test_a5_14_brute_force_on_the_token_endpoint_gets_429_with_retry_after_under_a_stricter_limit(
    settings: Settings, db_url: str
) -> None:
    shipped = auth_settings(settings).rate_limit
    assert shipped.auth_ip_limit < shipped.principal_limit
    assert shipped.auth_window_seconds >= shipped.principal_window_seconds
    with TestClient(create_app(settings, "all", database_url=db_url), client=("203.0.113.50", 4000)) as c:
        statuses = []
        for _ in range(shipped.auth_ip_limit + 1):
            response = c.post("/api/v1/auth/token", headers={"X-API-Key": "isa_" + uuid.uuid4().hex + "x" * 11})
            statuses.append(response.status_code)
        assert statuses == [401] * shipped.auth_ip_limit + [429]
        assert response.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(response.headers["retry-after"]) <= shipped.auth_window_seconds
        # A real key from the same address is refused too until the window moves: stuffing can't hide a hit.
        key = create_key(db_url, settings, "stuffing-victim", "read")
        assert c.post("/api/v1/auth/token", headers={"X-API-Key": key}).status_code == 429
