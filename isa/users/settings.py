"""The `[billing]` settings section: plans (credits and prices) and the Stripe account."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from isa.core.settings import ConfigError, Section, Settings


class PlanSettings(Section):
    name: str
    # Credits granted when the plan starts (free: at sign-up) and on every paid invoice.
    credits: Decimal = Field(ge=0)
    # Whole-cent USD price per interval; 0 for a free plan (which has no Stripe checkout).
    price_usd: Decimal = Field(default=Decimal(0), ge=0)
    interval: Literal["month", "year"] = "month"
    # A Price created in the Stripe dashboard; empty: checkout sends inline price_data instead.
    stripe_price_id: str = ""
    description: str = ""
    recommended: bool = False

    @property
    def price_cents(self) -> int:
        return int((self.price_usd * 100).to_integral_value())


class StripeSettings(Section):
    # Tests point this at a fake on 127.0.0.1; production leaves it at Stripe.
    api_base: str = "https://api.stripe.com"
    secret_key: str = ""
    webhook_secret: str = ""
    # Stripe's own libraries refuse signatures older than this.
    tolerance_seconds: int = 300
    timeout_seconds: float = 10
    # Pinned API version sent as Stripe-Version; empty: the account's default.
    api_version: str = ""
    currency: str = "usd"
    # Where Checkout sends the buyer back; {CHECKOUT_SESSION_ID} is filled in by Stripe.
    success_url: str = "http://localhost:5173/billing/success?session_id={CHECKOUT_SESSION_ID}"
    cancel_url: str = "http://localhost:5173/billing/cancel"


class BillingSettings(Section):
    # The plan every user has without a live subscription; its credits are granted once at sign-up.
    default_plan: str = "free"
    # No plans here on purpose: they live in config/settings.toml ([default.billing.plans.*]).
    plans: dict[str, PlanSettings] = Field(default_factory=dict)
    stripe: StripeSettings = StripeSettings()

    def plan(self, name: str) -> PlanSettings | None:
        return self.plans.get(name)

    @property
    def default(self) -> PlanSettings:
        return self.plans[self.default_plan]

    def plan_for_price(self, price_id: str | None) -> str | None:
        """The plan whose configured Stripe price is `price_id`."""
        if not price_id:
            return None
        return next((name for name, p in self.plans.items() if p.stripe_price_id == price_id), None)


def billing_settings(settings: Settings) -> BillingSettings:
    """The validated `[billing]` section; a missing default plan is a start-up error."""
    billing = settings.section("billing", BillingSettings)
    if billing.default_plan not in billing.plans:
        raise ConfigError(f"BILLING.PLANS must define the default plan {billing.default_plan!r}")
    return billing
