"""Credits over HTTP: balance, consume (402 when short, idempotent retries), history, admin recharge."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal

import anyio
import httpx
import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.users import ServedApp, sql

Maker = Callable[..., tuple[str, dict[str, str]]]
CONSUME = "/api/v1/users/me/credits/consume"


def test_consume_takes_credits_and_reports_before_and_after(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    response = client.post(CONSUME, json={"amount": 2.5, "reason": "api_call", "endpoint": "/x"}, headers=headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["credits_before"], data["credits_after"], data["remaining_credits"]) == (1000, 997.5, 997.5)
    balance = client.get("/api/v1/users/me/credits/balance", headers=headers).json()["data"]
    assert balance["balance"] == 997.5 and balance["plan"] == "free"


def test_consuming_more_than_the_balance_is_402_and_changes_nothing(
    client: TestClient, signed_up: Maker, db_url: str
) -> None:
    user_id, headers = signed_up()
    refused = client.post(CONSUME, json={"amount": 1000.001}, headers=headers)
    assert refused.status_code == 402 and refused.json()["error"]["code"] == "insufficient_credits"
    assert sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = %s", user_id) == [(Decimal("1000"),)]
    assert sql(db_url, "SELECT count(*) FROM user_credit_transactions WHERE user_id = %s", user_id) == [(1,)]


@pytest.mark.parametrize("amount", [0, -1, "NaN", "Infinity", 1e12, 0.0001, "abc", None])
def test_a_consume_amount_must_be_positive_finite_and_in_range(
    client: TestClient, signed_up: Maker, amount: object
) -> None:
    _, headers = signed_up()
    response = client.post(CONSUME, json={"amount": amount}, headers=headers)
    assert response.status_code == 422, response.text


def test_a_retried_consume_with_the_same_idempotency_key_charges_once(
    client: TestClient, signed_up: Maker, db_url: str
) -> None:
    user_id, headers = signed_up()
    body = {"amount": 7, "idempotency_key": "req-123"}
    first = client.post(CONSUME, json=body, headers=headers).json()["data"]
    second = client.post(CONSUME, json=body, headers=headers).json()["data"]
    assert first == second and first["remaining_credits"] == 993
    assert sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = %s", user_id) == [(Decimal("993"),)]


def test_transactions_page_through_the_history_newest_first(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    for amount in (1, 2, 3):
        assert client.post(CONSUME, json={"amount": amount}, headers=headers).status_code == 200
    page = client.get(
        "/api/v1/users/me/credits/transactions?limit=2&offset=0&transaction_type=consume", headers=headers
    ).json()["data"]
    assert page["total"] == 3 and [t["credits_amount"] for t in page["transactions"]] == [-3, -2]
    rest = client.get("/api/v1/users/me/credits/transactions?limit=2&offset=2", headers=headers).json()["data"]
    assert rest["total"] == 4
    assert [(t["transaction_type"], t["credits_before"], t["credits_after"]) for t in rest["transactions"]] == [
        ("consume", 1000, 999),
        ("grant", 0, 1000),
    ]
    assert client.get("/api/v1/users/me/credits/transactions?limit=0", headers=headers).status_code == 422
    assert (
        client.get("/api/v1/users/me/credits/transactions?start_date=2999-01-01", headers=headers).json()["data"][
            "total"
        ]
        == 0
    )


def test_only_an_admin_recharges_and_a_repeated_reference_recharges_once(
    client: TestClient, signed_up: Maker, db_url: str
) -> None:
    target, target_headers = signed_up()
    _, admin = signed_up("admin", "admin")
    url = f"/api/v1/admin/users/{target}/credits/recharge"
    body = {"amount": 500, "description": "support credit", "reference_id": "ticket-9"}
    denied = client.post(url, json=body, headers=target_headers)
    assert denied.status_code == 403
    first = client.post(url, json=body, headers=admin).json()["data"]
    second = client.post(url, json=body, headers=admin).json()["data"]
    assert (first["applied"], first["credits_after"]) == (True, 1500)
    assert (second["applied"], second["credits_after"]) == (False, 1500)
    rows = sql(
        db_url,
        "SELECT credits_amount, metadata->>'by' FROM user_credit_transactions "
        "WHERE user_id = %s AND transaction_type = 'recharge'",
        target,
    )
    assert len(rows) == 1 and rows[0][0] == Decimal(500) and rows[0][1].startswith("admin-")
    assert client.post("/api/v1/admin/users/nobody/credits/recharge", json=body, headers=admin).status_code == 404
    history = client.get(f"/api/v1/admin/users/{target}/credits/transactions", headers=admin).json()["data"]
    assert history["total"] == 2


def test_a_recharge_past_the_largest_balance_is_refused_not_a_500(client: TestClient, signed_up: Maker) -> None:
    target, _ = signed_up()
    _, admin = signed_up("admin", "admin")
    url = f"/api/v1/admin/users/{target}/credits/recharge"
    statuses = [client.post(url, json={"amount": 1_000_000_000}, headers=admin).status_code for _ in range(101)]
    assert statuses[0] == 200 and statuses[-1] == 422 and 500 not in statuses


def test_fifty_concurrent_http_consumes_against_ten_credits_spend_exactly_ten(settings: Settings, db_url: str) -> None:
    user_id = f"racer-{uuid.uuid4().hex[:8]}"
    key = create_key(db_url, settings, user_id, "write")
    admin = create_key(db_url, settings, f"admin-{uuid.uuid4().hex[:8]}", "admin")
    wide = settings.model_copy(update={"database": settings.database.model_copy(update={"pool_max": 20})})
    with ServedApp(create_app(wide, "mcp", database_url=db_url)) as server:
        # The key's row starts at 0 credits (no ensure); an admin gives it exactly 10.
        grant = httpx.post(
            f"{server.url}/api/v1/admin/users/{user_id}/credits/recharge",
            json={"amount": 10},
            headers={"X-API-Key": admin},
            timeout=10,
        )
        assert grant.status_code == 200, grant.text
        statuses: list[int] = []

        async def main() -> None:
            async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}, timeout=30) as http:

                async def one() -> None:
                    statuses.append((await http.post(CONSUME, json={"amount": 1})).status_code)

                async with anyio.create_task_group() as tg:
                    for _ in range(50):
                        tg.start_soon(one)

        anyio.run(main)
    assert sorted(statuses) == [200] * 10 + [402] * 40
    assert sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = %s", user_id) == [(Decimal(0),)]
    moves = sql(
        db_url,
        "SELECT credits_before, credits_after FROM user_credit_transactions "
        "WHERE user_id = %s AND transaction_type = 'consume' ORDER BY credits_before DESC",
        user_id,
    )
    assert [(int(b), int(a)) for b, a in moves] == [(n, n - 1) for n in range(10, 0, -1)]
