"""Billing: plans, subscriptions, Stripe Checkout and the signed Stripe webhook (owner of `subscriptions`)."""

from __future__ import annotations

from isa.users.billing.service import BillingService

__all__ = ["BillingService"]
