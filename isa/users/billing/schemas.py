"""Wire models of plans, subscriptions, Stripe Checkout and the webhook."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from isa.users.wire import Label, Request


class Checkout(Request):
    plan: Label


class CheckoutSession(BaseModel):
    session_id: str
    checkout_url: str
    plan: str


class Plan(BaseModel):
    plan: str
    name: str
    credits: float
    price_usd: float
    interval: str
    description: str
    recommended: bool
    purchasable: bool


class PlanList(BaseModel):
    plans: list[Plan]
    # Whether this deployment can take a payment (Stripe's secret key is set): clients hide "Buy" otherwise.
    payments_enabled: bool


class Subscription(BaseModel):
    id: str
    plan_type: str
    status: str
    credits_included: float
    current_period_start: datetime | None
    current_period_end: datetime | None
    canceled_at: datetime | None
    cancel_at_period_end: bool
    created_at: datetime


class CurrentSubscription(BaseModel):
    plan: str
    subscription_status: str
    subscription: Subscription | None


class WebhookResult(BaseModel):
    # Another domain has a model of this name, so /openapi.json qualifies it by module: keep the name it had
    # before users was split into sub-packages (a client generated from the document keeps its type names).
    __module__ = "isa.users.schemas"

    received: bool
    duplicate: bool
    event_id: str
    outcome: str | None = None
