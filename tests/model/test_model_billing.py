"""Every call records usage (tokens, USD from the local cost map, credits) and is refused at zero credits."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

from starlette.testclient import TestClient

from tests.model.conftest import Headers, settle, sql
from tests.support.fake_openai import FakeOpenAI, Reply

NewUser = Callable[..., tuple[str, Headers]]
HI = [{"role": "user", "content": "hi there"}]


def db_url_of(client: TestClient) -> str:
    """The gateway's database, once every call made so far has its usage written."""
    settle(client)
    return str(client.app.state.isa.db.url)  # type: ignore[attr-defined]


def daily(db: str, column: str, provider: str, model: str) -> int:
    """Today's model_statistics counter for one provider model (0 before its first call)."""
    query = (
        f"SELECT coalesce(sum(s.{column}), 0) FROM model_statistics s JOIN models m ON m.id = s.model_id "
        "WHERE m.provider = %s AND m.model_name = %s"
    )
    return int(sql(db, query, provider, model)[0][0])


def test_a_chat_call_writes_usage_charges_credits_and_counts_daily_statistics(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    user_id, headers = new_user(credits=100)
    fake.script("gpt-4o-mini", Reply(text="ok", prompt_tokens=1200, completion_tokens=300))
    db = db_url_of(gateway)
    before = daily(db, "total_requests", "alpha", "gpt-4o-mini")
    response = gateway.post("/v1/chat/completions", headers=headers, json={"model": "default", "messages": HI})
    assert response.status_code == 200
    settle(gateway)
    rows = sql(
        db,
        "SELECT id, event_type, prompt_tokens, completion_tokens, total_tokens, cost_usd, credits_charged, model_name, "
        "provider, request_id, billing_metadata FROM user_usage_records WHERE user_id = %s",
        user_id,
    )
    assert len(rows) == 1
    usage_id, kind, prompt, completion, total, cost, credits, model, provider, request_id, meta = rows[0]
    assert (kind, prompt, completion, total) == ("model.chat", 1200, 300, 1500)
    assert (model, provider) == ("gpt-4o-mini", "alpha")
    assert request_id == response.headers["x-request-id"]
    # gpt-4o-mini from litellm's bundled cost map: $0.15 / $0.60 per million tokens.
    assert cost == Decimal("0.000360")
    assert credits == Decimal("1.500")  # 1.5k tokens at 1 credit per 1k
    assert meta["deployment"] == "alpha/main" and meta["model_group"] == "main" and meta["status"] == "completed"
    balance = sql(db, "SELECT credits_remaining FROM users WHERE user_id = %s", user_id)[0][0]
    assert balance == Decimal("98.500")
    ledger = sql(
        db,
        "SELECT credits_amount, usage_record_id FROM user_credit_transactions "
        "WHERE user_id = %s AND transaction_type = 'consume'",
        user_id,
    )
    assert ledger == [(Decimal("-1.500"), usage_id)]
    assert daily(db, "total_requests", "alpha", "gpt-4o-mini") == before + 1
    assert daily(db, "input_tokens", "alpha", "gpt-4o-mini") >= 1200


def test_no_credits_is_402_before_any_provider_call(gateway: TestClient, fake: FakeOpenAI, new_user: NewUser) -> None:
    _, headers = new_user(credits=0)
    for path, body in [
        ("/v1/chat/completions", {"model": "main", "messages": HI}),
        ("/v1/chat/completions", {"model": "main", "messages": HI, "stream": True}),
        ("/v1/embeddings", {"model": "emb", "input": "x"}),
        ("/v1/images/generations", {"model": "img", "prompt": "x"}),
    ]:
        response = gateway.post(path, headers=headers, json=body)
        assert response.status_code == 402, path
        assert response.json()["error"]["code"] == "insufficient_credits"
    assert fake.count() == 0


def test_a_balance_that_runs_short_is_charged_what_it_has_then_refused(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    user_id, headers = new_user(credits=Decimal("0.5"))
    fake.script("gpt-4o-mini", Reply(prompt_tokens=4000, completion_tokens=1000))
    assert (
        gateway.post("/v1/chat/completions", headers=headers, json={"model": "main", "messages": HI}).status_code == 200
    )
    db = db_url_of(gateway)
    query = "SELECT credits_charged, billing_metadata FROM user_usage_records WHERE user_id = %s"
    ((credits, meta),) = sql(db, query, user_id)
    assert credits == Decimal("0.500")
    assert meta["credits_due"] == "5.000" and meta["credits_shortfall"] == "4.500"
    refused = gateway.post("/v1/chat/completions", headers=headers, json={"model": "main", "messages": HI})
    assert refused.status_code == 402
    assert fake.count() == 1


def test_a_finished_stream_records_its_usage(gateway: TestClient, fake: FakeOpenAI, new_user: NewUser) -> None:
    user_id, headers = new_user()
    fake.script("gpt-4o-mini", Reply(text="a b c d", prompt_tokens=40, completion_tokens=4))
    with gateway.stream(
        "POST", "/v1/chat/completions", headers=headers, json={"model": "main", "messages": HI, "stream": True}
    ) as response:
        frames = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "data: [DONE]"
    # The client did not ask for usage, so the provider's usage chunk is not forwarded.
    assert all("usage" not in json.loads(f[6:]) for f in frames[:-1])
    ((prompt, completion, meta),) = sql(
        db_url_of(gateway),
        "SELECT prompt_tokens, completion_tokens, billing_metadata FROM user_usage_records WHERE user_id = %s",
        user_id,
    )
    assert (prompt, completion) == (40, 4)
    assert meta["stream"] is True and meta["status"] == "completed"


def test_a_failed_call_charges_nothing_and_counts_as_a_failure(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    user_id, headers = new_user()
    fake.script("gpt-4o", Reply.error(401, message="invalid key sk-should-not-leak"))  # not retried: fast
    db = db_url_of(gateway)
    failed_before = daily(db, "failed_requests", "beta", "gpt-4o")
    response = gateway.post("/v1/chat/completions", headers=headers, json={"model": "backup", "messages": HI})
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_auth"
    assert "sk-should-not-leak" not in response.text
    settle(gateway)
    assert sql(db, "SELECT count(*) FROM user_usage_records WHERE user_id = %s", user_id)[0][0] == 0
    assert sql(db, "SELECT credits_remaining FROM users WHERE user_id = %s", user_id)[0][0] == Decimal(100)
    assert daily(db, "failed_requests", "beta", "gpt-4o") == failed_before + 1


def test_usage_summaries_are_the_owners_and_everyones_only_for_admins(
    gateway: TestClient, fake: FakeOpenAI, new_user: NewUser
) -> None:
    alice, alice_headers = new_user()
    bob, bob_headers = new_user()
    _, admin_headers = new_user(scope="admin")
    for headers in (alice_headers, alice_headers, bob_headers):
        gateway.post("/v1/chat/completions", headers=headers, json={"model": "main", "messages": HI})
    settle(gateway)
    mine = gateway.get("/api/v1/analytics/usage", headers=alice_headers).json()["data"]
    assert mine["user_id"] == alice and mine["totals"]["requests"] == 2
    assert [row["key"] for row in mine["breakdown"]] == ["gpt-4o-mini"]
    assert gateway.get("/api/v1/analytics/usage?all_users=true", headers=alice_headers).status_code == 403
    assert gateway.get(f"/api/v1/analytics/usage?user_id={bob}", headers=alice_headers).status_code == 403
    everyone = gateway.get("/api/v1/analytics/usage?group_by=user", headers=admin_headers).json()["data"]
    users = {row["key"]: row["requests"] for row in everyone["breakdown"]}
    assert users[alice] == 2 and users[bob] == 1
    bobs = gateway.get(f"/api/v1/analytics/usage?user_id={bob}", headers=admin_headers).json()["data"]
    assert bobs["totals"]["requests"] == 1
    assert gateway.get("/api/v1/analytics/models", headers=alice_headers).status_code == 403
    stats = gateway.get("/api/v1/analytics/models", headers=admin_headers).json()["data"]
    assert any(row["model_name"] == "gpt-4o-mini" and row["total_requests"] >= 3 for row in stats)
