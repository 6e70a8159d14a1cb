"""Rate limits in Postgres: one budget per key shared by every replica, 429 with Retry-After past it."""

from __future__ import annotations

import uuid

import anyio
import psycopg
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from isa.auth import check_rate, rate_limit, require_principal
from isa.auth.ratelimit import client_ip
from isa.auth.store import purge_rate_limits
from isa.core.db import Database
from isa.core.errors import ApiError
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.jwt_keys import app_with_whoami, with_auth


async def _hits(db: Database, key: str, n: int, limit: int, window_s: int) -> list[ApiError | None]:
    out: list[ApiError | None] = []
    for _ in range(n):
        try:
            await check_rate(db, key, limit, window_s)
            out.append(None)
        except ApiError as exc:
            out.append(exc)
    return out


@pytest.mark.anyio
async def test_the_limit_passes_then_429_with_a_retry_after_until_the_budget_refills(
    settings: Settings, db_url: str
) -> None:
    db = Database(db_url, settings)
    await db.open()
    try:
        key = f"test:{uuid.uuid4().hex}"
        results = await _hits(db, key, 6, limit=5, window_s=60)
        assert results[:5] == [None] * 5
        denied = results[5]
        assert denied is not None and denied.status == 429 and denied.code == "rate_limited"
        assert 1 <= int(denied.headers["Retry-After"]) <= 12  # one emission interval: 60 s / 5
        async with db.connection() as conn:  # let 12 s pass on the database's clock
            await conn.execute("UPDATE rate_limits SET tat = tat - interval '12 seconds' WHERE key = %s", (key,))
        again = await _hits(db, key, 2, limit=5, window_s=60)
        assert again[0] is None and again[1] is not None
    finally:
        await db.close()


@pytest.mark.anyio
async def test_concurrent_requests_through_two_pools_never_exceed_one_shared_budget(
    settings: Settings, db_url: str
) -> None:
    replicas = [Database(db_url, settings), Database(db_url, settings)]
    for db in replicas:
        await db.open()
    key = f"test:{uuid.uuid4().hex}"
    allowed = denied = 0

    async def one(db: Database) -> None:
        nonlocal allowed, denied
        try:
            await check_rate(db, key, 7, 3600)
            allowed += 1
        except ApiError:
            denied += 1

    try:
        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(one, replicas[i % 2])
    finally:
        for db in replicas:
            await db.close()
    assert (allowed, denied) == (7, 33)


def test_two_app_replicas_share_each_principals_budget(settings: Settings, db_url: str) -> None:
    limited = with_auth(settings, rate_limit={"principal_limit": 6, "principal_window_seconds": 3600})
    alice = create_key(db_url, settings, "rl-alice", "read")
    bob = create_key(db_url, settings, "rl-bob", "read")
    with (
        TestClient(app_with_whoami(limited, db_url)) as one,
        TestClient(app_with_whoami(limited, db_url)) as two,
    ):
        statuses = [c.get("/whoami", headers={"X-API-Key": alice}).status_code for c in [one, two] * 5]
        assert statuses == [200] * 6 + [429] * 4
        refused = two.get("/whoami", headers={"X-API-Key": alice})
        assert refused.json()["error"]["code"] == "rate_limited" and int(refused.headers["retry-after"]) >= 1
        assert one.get("/whoami", headers={"X-API-Key": bob}).status_code == 200  # another user is unaffected


async def bucketed(request: Request) -> JSONResponse:
    principal = await require_principal(request, "read")
    await rate_limit(request, principal, request.path_params["bucket"], 2, 3600)
    return JSONResponse({"ok": True})


def test_a_domain_can_add_its_own_per_principal_bucket(settings: Settings, db_url: str) -> None:
    key = create_key(db_url, settings, "rl-carol", "read")
    app = app_with_whoami(settings, db_url)
    app.router.routes.append(Route("/limited/{bucket}", bucketed))
    with TestClient(app) as c:
        statuses = [c.get("/limited/chat", headers={"X-API-Key": key}).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert c.get("/limited/tools", headers={"X-API-Key": key}).status_code == 200


def test_the_token_endpoint_limits_each_key_prefix_and_each_client_ip(settings: Settings, db_url: str) -> None:
    first = create_key(db_url, settings, "rl-dave", "read")
    second = create_key(db_url, settings, "rl-dave", "read")
    per_key = with_auth(settings, token_secret="s" * 40, rate_limit={"auth_key_limit": 3, "auth_ip_limit": 1000})
    with TestClient(app_with_whoami(per_key, db_url)) as c:
        statuses = [c.post("/api/v1/auth/token", headers={"X-API-Key": first}).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert c.post("/api/v1/auth/token", headers={"X-API-Key": second}).status_code == 200
    per_ip = with_auth(settings, token_secret="s" * 40, rate_limit={"auth_key_limit": 1000, "auth_ip_limit": 3})
    guesses = ["isa_" + uuid.uuid4().hex for _ in range(4)]
    with TestClient(app_with_whoami(per_ip, db_url), client=("198.51.100.7", 5000)) as c:
        statuses = [
            c.post("/api/v1/auth/token", headers={"X-API-Key": g, "X-Forwarded-For": f"10.0.0.{i}"}).status_code
            for i, g in enumerate(guesses)
        ]
        assert statuses == [401, 401, 401, 429]  # a forged X-Forwarded-For doesn't buy a fresh budget


def _request(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers, "client": (peer, 1)})


def test_the_client_ip_trusts_only_as_many_forwarded_hops_as_configured() -> None:
    assert client_ip(_request("10.0.0.5", "6.6.6.6, 203.0.113.9"), 0) == "10.0.0.5"
    assert client_ip(_request("10.0.0.5", "6.6.6.6, 203.0.113.9"), 1) == "203.0.113.9"
    assert client_ip(_request("10.0.0.5", "6.6.6.6, 203.0.113.9, 10.0.0.2"), 2) == "203.0.113.9"
    assert client_ip(_request("10.0.0.5", None), 1) == "10.0.0.5"


def test_expired_rate_limit_rows_are_purged_and_live_ones_kept(settings: Settings, db_url: str) -> None:
    old, live = f"test:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}"

    async def main() -> int:
        db = Database(db_url, settings)
        await db.open()
        try:
            await check_rate(db, old, 10, 60)
            await check_rate(db, live, 10, 60)
            async with db.connection() as conn:
                await conn.execute("UPDATE rate_limits SET tat = now() - interval '1 second' WHERE key = %s", (old,))
                return await purge_rate_limits(conn)
        finally:
            await db.close()

    assert anyio.run(main) >= 1
    with psycopg.connect(db_url) as conn:
        keys = {r[0] for r in conn.execute("SELECT key FROM rate_limits WHERE key IN (%s, %s)", (old, live))}
    assert keys == {live}
