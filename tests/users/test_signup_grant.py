"""Every user starts with the default plan's credits however the account was made — once per user ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from decimal import Decimal

from starlette.testclient import TestClient

from isa.core.settings import Settings
from tests.support.jwt_keys import SUPABASE_ISSUER, SUPABASE_SECRET, app_with_whoami, claims, hs256, jwt_settings
from tests.support.mcp_servers import sql

PLAN_CREDITS = Decimal(1000)  # [default.billing.plans.free] credits


def isa_cli(db_url: str, *args: str) -> str:
    env = {**os.environ, "ISA_DATABASE__URL": db_url, "ISA_DATABASE__AUTO_MIGRATE": "false"}
    done = subprocess.run(
        [sys.executable, "-m", "isa", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def credits(db_url: str, user: str) -> tuple[Decimal, int]:
    """The balance and how many sign-up grants the ledger holds for `user`."""
    balance = sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = %s", (user,))[0]["credits_remaining"]
    grants = sql(
        db_url,
        "SELECT count(*) AS n FROM user_credit_transactions WHERE user_id = %s AND idempotency_key = 'signup_grant'",
        (user,),
    )[0]["n"]
    return balance, grants


def test_users_made_by_the_cli_start_with_the_plan_credits_once(db_url: str) -> None:
    made, keyed = f"cli-{uuid.uuid4().hex[:8]}", f"key-{uuid.uuid4().hex[:8]}"
    isa_cli(db_url, "users", "create", made)
    isa_cli(db_url, "users", "create", made)  # again: no second grant
    key = json.loads(isa_cli(db_url, "keys", "create", "--user", keyed, "--scope", "write", "--json"))
    isa_cli(db_url, "keys", "create", "--user", keyed)  # a second key for the same user
    assert key["user_id"] == keyed
    assert credits(db_url, made) == (PLAN_CREDITS, 1)
    assert credits(db_url, keyed) == (PLAN_CREDITS, 1)


def test_a_jwt_user_seen_for_the_first_time_starts_with_the_plan_credits(settings: Settings, db_url: str) -> None:
    user = f"supa-{uuid.uuid4().hex[:8]}"
    token = hs256(claims(SUPABASE_ISSUER, "authenticated", sub=user, role="authenticated"), SUPABASE_SECRET)
    app = app_with_whoami(jwt_settings(settings, "http://127.0.0.1:9/jwks.json"), db_url)
    with TestClient(app) as client:
        for _ in range(2):
            seen = client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
            assert seen.status_code == 200, seen.text
        user = seen.json()["user_id"]  # the principal's id for this subject
        ensured = client.post("/api/v1/users/ensure", json={}, headers={"Authorization": f"Bearer {token}"})
        assert ensured.status_code == 200, ensured.text
    assert credits(db_url, user) == (PLAN_CREDITS, 1)
