"""Usage records over HTTP: recorded with their charge in one transaction, listed, and summed by day/model/provider."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from starlette.testclient import TestClient

from tests.support.users import sql

Maker = Callable[..., tuple[str, dict[str, str]]]
USAGE = "/api/v1/users/me/usage"


def _call(model: str, provider: str, credits: float, tokens: int = 100) -> dict[str, object]:
    return {
        "event_type": "model_call",
        "model_name": model,
        "provider": provider,
        "credits_charged": credits,
        "cost_usd": 0.0015,
        "prompt_tokens": tokens // 2,
        "completion_tokens": tokens - tokens // 2,
        "endpoint": "/api/v1/invoke",
        "billing_metadata": {"tier": "standard"},
    }


def test_a_usage_record_charges_its_credits_in_the_same_transaction(
    client: TestClient, signed_up: Maker, db_url: str
) -> None:
    user_id, headers = signed_up()
    created = client.post(USAGE, json=_call("gpt-4.1-mini", "openai", 1.5), headers=headers)
    assert created.status_code == 201, created.text
    record = created.json()["data"]
    assert record["remaining_credits"] == 998.5 and record["total_tokens"] == 100
    linked = sql(
        db_url,
        "SELECT usage_record_id::text, credits_amount FROM user_credit_transactions "
        "WHERE user_id = %s AND transaction_type = 'consume'",
        user_id,
    )
    assert linked == [(record["id"], Decimal("-1.500"))]


def test_a_usage_record_the_balance_cannot_pay_for_is_402_and_not_recorded(
    client: TestClient, signed_up: Maker, db_url: str
) -> None:
    user_id, headers = signed_up()
    refused = client.post(USAGE, json=_call("big-model", "openai", 5000), headers=headers)
    assert refused.status_code == 402
    assert sql(db_url, "SELECT count(*) FROM user_usage_records WHERE user_id = %s", user_id) == [(0,)]


def test_a_retried_usage_record_with_the_same_key_is_recorded_and_charged_once(
    client: TestClient, signed_up: Maker, db_url: str
) -> None:
    user_id, headers = signed_up()
    body = {**_call("m", "p", 2), "idempotency_key": "call-77"}
    first = client.post(USAGE, json=body, headers=headers)
    second = client.post(USAGE, json=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["data"]["duplicate"] is True and second.json()["data"]["id"] == first.json()["data"]["id"]
    assert sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = %s", user_id) == [(Decimal(998),)]


def test_usage_can_point_at_the_callers_own_session_only(client: TestClient, signed_up: Maker) -> None:
    _, alice = signed_up()
    _, bob = signed_up()
    session_id = client.post("/api/v1/users/me/sessions", json={}, headers=alice).json()["data"]["session_id"]
    own = client.post(USAGE, json={"event_type": "tool_call", "session_id": session_id}, headers=alice)
    assert own.status_code == 201 and own.json()["data"]["session_id"] == session_id
    foreign = client.post(USAGE, json={"event_type": "tool_call", "session_id": session_id}, headers=bob)
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "session_not_found"


def test_usage_lists_newest_first_with_paging_and_filters(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    for model in ("a", "b", "c"):
        client.post(USAGE, json=_call(model, "openai", 0), headers=headers)
    client.post(USAGE, json={"event_type": "tool_call", "tool_name": "web_search"}, headers=headers)
    page = client.get(f"{USAGE}?limit=2", headers=headers).json()["data"]
    assert page["total"] == 4 and page["records"][0]["tool_name"] == "web_search"
    calls = client.get(f"{USAGE}?event_type=model_call&limit=10", headers=headers).json()["data"]
    assert [r["model_name"] for r in calls["records"]] == ["c", "b", "a"]


def test_usage_statistics_sum_by_day_model_and_provider(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    for model, provider, credits in (("m1", "openai", 1), ("m1", "openai", 2), ("m2", "anthropic", 3)):
        assert client.post(USAGE, json=_call(model, provider, credits), headers=headers).status_code == 201
    stats = client.get(f"{USAGE}/stats", headers=headers).json()["data"]
    assert stats["totals"]["requests"] == 3 and stats["totals"]["credits"] == 6 and stats["totals"]["tokens"] == 300
    assert {b["key"]: b["credits"] for b in stats["by_model"]} == {"m1": 3, "m2": 3}
    assert {b["key"]: b["requests"] for b in stats["by_provider"]} == {"openai": 2, "anthropic": 1}
    today = datetime.now(UTC).date().isoformat()
    assert [(b["key"], b["requests"]) for b in stats["by_day"]] == [(today, 3)]
    later = client.get(f"{USAGE}/stats?start_date=2999-01-01", headers=headers).json()["data"]
    assert later["totals"]["requests"] == 0 and later["by_model"] == []


def test_usage_fields_that_do_not_fit_are_422(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    for bad in (
        {"event_type": ""},
        {"event_type": "x", "prompt_tokens": -1},
        {"event_type": "x", "session_id": "not-a-uuid"},
        {"event_type": "x", "billing_metadata": {"a": "\u0000"}},
        {"event_type": "x", "request_data": {"deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}},
        {"event_type": "x", "user_id": "someone-else"},
    ):
        assert client.post(USAGE, json=bad, headers=headers).status_code == 422, bad
