"""Plans, Stripe Checkout and the Stripe webhook, against a fake Stripe on loopback speaking Stripe's formats."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from tests.support.fake_stripe import FakeStripe
from tests.support.procs import free_port
from tests.support.users import sql, with_billing, with_plan

Maker = Callable[..., tuple[str, dict[str, str]]]
WEBHOOK = "/api/v1/billing/webhook"


def _checkout(client: TestClient, headers: dict[str, str], plan: str = "pro") -> str:
    response = client.post("/api/v1/billing/checkout", json={"plan": plan}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["session_id"])


def _deliver(client: TestClient, fake: FakeStripe, event: dict[str, Any], **kwargs: Any) -> Any:
    payload, headers = fake.signed(event, **kwargs)
    return client.post(WEBHOOK, content=payload, headers=headers)


def _subscribe(client: TestClient, fake: FakeStripe, headers: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
    session_id = _checkout(client, headers)
    events = fake.pay(session_id)
    for event in events:
        response = _deliver(client, fake, event)
        assert response.status_code == 200 and response.json()["data"]["outcome"] == "applied", response.text
    return session_id, events


def test_plans_are_listed_from_settings(client: TestClient, app_settings: Settings, db_url: str) -> None:
    plans = {p["plan"]: p for p in client.get("/api/v1/subscriptions/plans").json()["data"]["plans"]}
    assert {k: (p["credits"], p["price_usd"]) for k, p in plans.items()} == {
        "free": (1000, 0),
        "pro": (10000, 20),
        "enterprise": (50000, 100),
    }
    assert plans["pro"]["recommended"] and not plans["free"]["purchasable"]
    changed = with_plan(app_settings, "pro", credits=12345)
    with TestClient(create_app(changed, "mcp", database_url=db_url)) as other:
        again = {p["plan"]: p for p in other.get("/api/v1/subscriptions/plans").json()["data"]["plans"]}
    assert again["pro"]["credits"] == 12345


def test_the_plans_say_whether_payments_are_enabled(client: TestClient, app_settings: Settings, db_url: str) -> None:
    assert client.get("/api/v1/subscriptions/plans").json()["data"]["payments_enabled"] is True
    # Without Stripe's secret key nothing can be bought: a client hides its "Buy" buttons.
    unpaid = with_billing(app_settings, secret_key="")
    with TestClient(create_app(unpaid, "mcp", database_url=db_url)) as other:
        listed = other.get("/api/v1/subscriptions/plans").json()["data"]
        assert listed["payments_enabled"] is False
        assert any(p["purchasable"] for p in listed["plans"])


def test_checkout_posts_a_form_encoded_session_to_stripe_and_returns_its_url(
    client: TestClient, fake_stripe: FakeStripe, signed_up: Maker
) -> None:
    user_id, headers = signed_up()
    client.put("/api/v1/users/me", json={"email": "payer@example.test"}, headers=headers)
    response = client.post("/api/v1/billing/checkout", json={"plan": "enterprise"}, headers=headers)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["checkout_url"].startswith(fake_stripe.api_base + "/c/pay/cs_test_")
    sent = fake_stripe.requests[-1]
    assert sent["headers"]["authorization"] == f"Bearer {fake_stripe.secret_key}"
    assert sent["headers"]["content-type"].startswith("application/x-www-form-urlencoded")
    form = sent["form"]
    assert form["mode"] == "subscription" and form["client_reference_id"] == user_id
    assert form["line_items"][0]["price_data"] == {
        "currency": "usd",
        "unit_amount": "10000",
        "recurring": {"interval": "month"},
        "product_data": {"name": "Enterprise"},
    }
    assert form["subscription_data"]["metadata"] == {"user_id": user_id, "plan": "enterprise"}
    assert form["customer_email"] == "payer@example.test"


def test_checkout_for_a_free_or_unknown_plan_is_422(client: TestClient, signed_up: Maker) -> None:
    _, headers = signed_up()
    for plan in ("free", "platinum"):
        response = client.post("/api/v1/billing/checkout", json={"plan": plan}, headers=headers)
        assert response.status_code == 422 and response.json()["error"]["code"] == "plan_not_purchasable"


def test_checkout_reports_stripe_failures_as_upstream_errors(
    client: TestClient, fake_stripe: FakeStripe, signed_up: Maker, app_settings: Settings, db_url: str
) -> None:
    _, headers = signed_up()
    fake_stripe.fail_with = 500
    try:
        refused = client.post("/api/v1/billing/checkout", json={"plan": "pro"}, headers=headers)
    finally:
        fake_stripe.fail_with = None
    assert refused.status_code == 502 and refused.json()["error"]["code"] == "upstream_error"
    assert fake_stripe.secret_key not in refused.text
    down = with_billing(app_settings, api_base=f"http://127.0.0.1:{free_port()}")
    unconfigured = with_billing(app_settings, secret_key="")
    with TestClient(create_app(down, "mcp", database_url=db_url)) as other:
        assert other.post("/api/v1/billing/checkout", json={"plan": "pro"}, headers=headers).status_code == 502
    with TestClient(create_app(unconfigured, "mcp", database_url=db_url)) as other:
        assert other.post("/api/v1/billing/checkout", json={"plan": "pro"}, headers=headers).status_code == 503


def test_a_paid_checkout_makes_the_user_pro_and_grants_the_plans_credits_once(
    client: TestClient, fake_stripe: FakeStripe, signed_up: Maker, db_url: str
) -> None:
    user_id, headers = signed_up()
    _, events = _subscribe(client, fake_stripe, headers)
    me = client.get("/api/v1/users/me", headers=headers).json()["data"]
    assert (me["plan"], me["credits"], me["subscription_status"]) == ("pro", 11000, "active")
    sub = client.get("/api/v1/users/me/subscription", headers=headers).json()["data"]["subscription"]
    assert sub["status"] == "active" and sub["plan_type"] == "pro" and sub["current_period_end"]
    # checkout.session.completed and invoice.payment_succeeded both name the first invoice: one grant.
    grants = sql(
        db_url,
        "SELECT credits_amount FROM user_credit_transactions WHERE user_id = %s AND transaction_type = 'subscription'",
        user_id,
    )
    assert grants == [(Decimal(10000),)]
    stored = sql(
        db_url, "SELECT stripe_subscription_id, stripe_customer_id FROM subscriptions WHERE user_id = %s", user_id
    )
    assert stored == [(events[0]["data"]["object"]["id"], events[0]["data"]["object"]["customer"])]


def test_a_redelivered_event_is_acknowledged_and_applied_once(
    client: TestClient, fake_stripe: FakeStripe, signed_up: Maker, db_url: str
) -> None:
    _, headers = signed_up()
    _, events = _subscribe(client, fake_stripe, headers)
    renewal = fake_stripe.event("invoice.payment_succeeded", fake_stripe.invoice(events[0]["data"]["object"]))
    first = _deliver(client, fake_stripe, renewal)
    # Stripe retries with the same event id and a fresh signature.
    replays = [_deliver(client, fake_stripe, renewal) for _ in range(3)]
    assert first.json()["data"]["duplicate"] is False
    assert [r.status_code for r in replays] == [200] * 3 and all(r.json()["data"]["duplicate"] for r in replays)
    assert client.get("/api/v1/users/me", headers=headers).json()["data"]["credits"] == 21000
    assert sql(db_url, "SELECT count(*) FROM webhook_events WHERE event_id = %s", renewal["id"]) == [(1,)]


def test_concurrent_deliveries_of_one_event_apply_it_once(
    client: TestClient, fake_stripe: FakeStripe, signed_up: Maker
) -> None:
    _, headers = signed_up()
    _, events = _subscribe(client, fake_stripe, headers)
    renewal = fake_stripe.event("invoice.payment_succeeded", fake_stripe.invoice(events[0]["data"]["object"]))
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _deliver(client, fake_stripe, renewal), range(8)))
    assert [r.status_code for r in results] == [200] * 8
    assert sum(not r.json()["data"]["duplicate"] for r in results) == 1
    assert client.get("/api/v1/users/me", headers=headers).json()["data"]["credits"] == 21000


def test_a_bad_signature_is_400_and_changes_nothing(
    client: TestClient, fake_stripe: FakeStripe, signed_up: Maker, db_url: str
) -> None:
    _, headers = signed_up()
    session_id = _checkout(client, headers)
    event = fake_stripe.pay(session_id)[2]
    payload, good = fake_stripe.signed(event)
    forged = {**good, "Stripe-Signature": good["Stripe-Signature"][:-4] + "0000"}
    for sent_headers in (forged, {"Content-Type": "application/json"}):
        response = client.post(WEBHOOK, content=payload, headers=sent_headers)
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_signature"
    tampered = payload.replace(b'"amount_paid":2000', b'"amount_paid":9999')
    assert client.post(WEBHOOK, content=tampered, headers=good).status_code == 400
    assert sql(db_url, "SELECT count(*) FROM webhook_events WHERE event_id = %s", event["id"]) == [(0,)]


def test_a_delivery_signed_outside_the_tolerance_is_400(
    client: TestClient, fake_stripe: FakeStripe, signed_up: Maker, db_url: str
) -> None:
    _, headers = signed_up()
    event = fake_stripe.pay(_checkout(client, headers))[2]
    stale = _deliver(client, fake_stripe, event, timestamp=int(time.time()) - 301)
    assert stale.status_code == 400
    assert client.get("/api/v1/users/me", headers=headers).json()["data"]["credits"] == 1000
    assert _deliver(client, fake_stripe, event).status_code == 200


def test_payment_failure_cancellation_and_deletion_update_the_subscription(
    client: TestClient, fake_stripe: FakeStripe, signed_up: Maker
) -> None:
    _, headers = signed_up()
    session_id, events = _subscribe(client, fake_stripe, headers)
    sub = events[0]["data"]["object"]

    def state() -> tuple[str, str, str, bool]:
        data = client.get("/api/v1/users/me/subscription", headers=headers).json()["data"]
        s = data["subscription"]
        return data["plan"], data["subscription_status"], s["status"], s["cancel_at_period_end"]

    failed = fake_stripe.event("invoice.payment_failed", fake_stripe.invoice(sub, paid=False))
    assert _deliver(client, fake_stripe, failed).status_code == 200
    assert state() == ("pro", "past_due", "past_due", False)
    updated = fake_stripe.subscription(session_id, status="active", cancel_at_period_end=True)
    assert _deliver(client, fake_stripe, fake_stripe.event("customer.subscription.updated", updated)).status_code == 200
    assert state() == ("pro", "active", "active", True)
    deleted = fake_stripe.subscription(session_id, status="canceled", canceled_at=int(time.time()))
    assert _deliver(client, fake_stripe, fake_stripe.event("customer.subscription.deleted", deleted)).status_code == 200
    assert state() == ("free", "canceled", "canceled", False)
    assert client.get("/api/v1/users/me", headers=headers).json()["data"]["credits"] == 11000


def test_an_older_subscription_event_arriving_late_does_not_overwrite_a_newer_one(
    client: TestClient, fake_stripe: FakeStripe, signed_up: Maker
) -> None:
    _, headers = signed_up()
    session_id, _ = _subscribe(client, fake_stripe, headers)
    now = int(time.time())
    newer = fake_stripe.event(
        "customer.subscription.updated", fake_stripe.subscription(session_id, status="past_due"), created=now + 10
    )
    older = fake_stripe.event(
        "customer.subscription.updated", fake_stripe.subscription(session_id, status="active"), created=now + 5
    )
    assert _deliver(client, fake_stripe, newer).json()["data"]["outcome"] == "applied"
    assert _deliver(client, fake_stripe, older).json()["data"]["outcome"].startswith("ignored")
    data = client.get("/api/v1/users/me/subscription", headers=headers).json()["data"]
    assert data["subscription"]["status"] == "past_due"


def test_events_of_other_types_or_unknown_customers_are_acknowledged_and_ignored(
    client: TestClient, fake_stripe: FakeStripe, db_url: str
) -> None:
    other = fake_stripe.event("charge.refunded", {"id": "ch_1", "object": "charge"})
    stranger = fake_stripe.event(
        "invoice.payment_succeeded", {"id": "in_x", "object": "invoice", "customer": "cus_nobody"}
    )
    for event in (other, stranger):
        response = _deliver(client, fake_stripe, event)
        assert response.status_code == 200 and response.json()["data"]["outcome"].startswith("ignored")
    assert sql(db_url, "SELECT outcome FROM webhook_events WHERE event_id = %s", other["id"]) == [
        ("ignored: unhandled event type",)
    ]


def test_the_original_webhook_path_is_served_too(client: TestClient, fake_stripe: FakeStripe) -> None:
    payload, headers = fake_stripe.signed(fake_stripe.event("charge.refunded", {"id": "ch_2"}))
    assert client.post("/api/v1/webhooks/stripe", content=payload, headers=headers).status_code == 200
