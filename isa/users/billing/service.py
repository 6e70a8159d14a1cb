"""Plans, Stripe Checkout and the Stripe webhook: each verified event applied exactly once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from isa.core.db import Database, DictConnection
from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.users import credits
from isa.users.accounts import store
from isa.users.accounts.service import user_not_found
from isa.users.billing import schemas
from isa.users.billing import store as bstore
from isa.users.billing.stripe import SignatureError, StripeClient, verify_signature
from isa.users.settings import BillingSettings, PlanSettings

log = get_logger(__name__)

HANDLED_EVENTS = (
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
)


@dataclass(frozen=True)
class Outcome:
    result: str  # "applied" or "ignored: <why>"
    user_id: str | None = None


def _dig(obj: Any, *path: str | int) -> Any:
    """obj[a][b]... or None when any step is missing or of the wrong type (Stripe objects vary by API version)."""
    for step in path:
        if isinstance(step, int):
            obj = obj[step] if isinstance(obj, list) and len(obj) > step else None
        else:
            obj = obj.get(step) if isinstance(obj, dict) else None
        if obj is None:
            return None
    return obj


def _id(value: Any) -> str | None:
    """An object reference: Stripe sends the id string, or the object itself when expanded."""
    if isinstance(value, str) and value:
        return value
    ref = _dig(value, "id")
    return ref if isinstance(ref, str) and ref else None


def _when(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) and value > 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class BillingService:
    def __init__(self, db: Database, billing: BillingSettings) -> None:
        self.db = db
        self.billing = billing
        self.stripe = StripeClient(billing.stripe)

    def plans(self) -> schemas.PlanList:
        return schemas.PlanList(
            plans=[
                schemas.Plan(
                    plan=key,
                    name=p.name,
                    credits=float(p.credits),
                    price_usd=float(p.price_usd),
                    interval=p.interval,
                    description=p.description,
                    recommended=p.recommended,
                    purchasable=p.price_cents > 0,
                )
                for key, p in self.billing.plans.items()
            ],
            payments_enabled=self.stripe.configured,
        )

    async def current(self, user_id: str) -> schemas.CurrentSubscription:
        """The caller's plan and newest platform subscription (live ones first)."""
        async with self.db.connection() as conn:
            user = await store.get_user(conn, user_id, self.billing.default_plan)
            if user is None:
                raise user_not_found()
            row = await bstore.current_subscription(conn, user_id)
        return schemas.CurrentSubscription(
            plan=user["plan"],
            subscription_status=user["subscription_status"],
            subscription=None if row is None else schemas.Subscription.model_validate(row),
        )

    def _purchasable(self, name: str) -> PlanSettings:
        plan = self.billing.plan(name)
        if plan is None or plan.price_cents <= 0:
            raise ApiError(422, "plan_not_purchasable", "choose one of the paid plans listed by /subscriptions/plans")
        return plan

    async def checkout(self, user_id: str, plan_name: str) -> schemas.CheckoutSession:
        """Create a Stripe Checkout Session for a paid plan; the webhook applies the result."""
        plan = self._purchasable(plan_name)
        async with self.db.connection() as conn:
            user = await store.email_of(conn, user_id)
            if user is None:
                raise user_not_found()
            customer = await bstore.customer_for_user(conn, user_id)
        stripe = self.billing.stripe
        item: dict[str, Any] = {"quantity": 1}
        if plan.stripe_price_id:
            item["price"] = plan.stripe_price_id
        else:
            item["price_data"] = {
                "currency": stripe.currency,
                "unit_amount": plan.price_cents,
                "recurring": {"interval": plan.interval},
                "product_data": {"name": plan.name},
            }
        # user_id and plan travel in metadata so every later event (subscription, invoice) names them.
        metadata = {"user_id": user_id, "plan": plan_name}
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": [item],
            "success_url": stripe.success_url,
            "cancel_url": stripe.cancel_url,
            "client_reference_id": user_id,
            "metadata": metadata,
            "subscription_data": {"metadata": metadata},
        }
        if customer:
            params["customer"] = customer
        elif user["email"]:
            params["customer_email"] = user["email"]
        session = await self.stripe.post("/v1/checkout/sessions", params)
        session_id, url = _text(session.get("id")), _text(session.get("url"))
        if not session_id or not url:
            raise ApiError(502, "upstream_error", "the payment provider returned no checkout URL")
        log.info("checkout_created", user_id=user_id, plan=plan_name, session_id=session_id)
        return schemas.CheckoutSession(session_id=session_id, checkout_url=url, plan=plan_name)

    async def handle_webhook(self, payload: bytes, signature: str | None) -> schemas.WebhookResult:
        """Verify a delivery and apply its event once; a redelivered event id changes nothing."""
        stripe = self.billing.stripe
        if not stripe.webhook_secret:
            raise ApiError(503, "billing_not_configured", "the Stripe webhook secret is not configured")
        try:
            verify_signature(payload, signature, stripe.webhook_secret, stripe.tolerance_seconds)
        except SignatureError as exc:
            log.warning("webhook_rejected", reason=str(exc))
            raise ApiError(400, "invalid_signature", "the Stripe-Signature header does not verify") from None
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):
            raise ApiError(400, "invalid_event", "the event is not JSON") from None
        event_id, event_type = _text(_dig(event, "id")), _text(_dig(event, "type"))
        obj = _dig(event, "data", "object")
        if not event_id or not event_type or not isinstance(obj, dict) or len(event_id) > 255:
            raise ApiError(400, "invalid_event", "the event lacks an id, a type or a data object")
        event_at = _when(_dig(event, "created")) or datetime.now(UTC)
        async with self.db.transaction() as conn:
            if not await bstore.record_event(conn, event_id, event_type[:255], bool(event.get("livemode")), event_at):
                log.info("webhook_duplicate", event_id=event_id, type=event_type)
                return schemas.WebhookResult(received=True, duplicate=True, event_id=event_id)
            outcome = await self._apply(conn, event_type, obj, event_at)
            await bstore.finish_event(conn, event_id, outcome.result, outcome.user_id)
        log.info("webhook_applied", event_id=event_id, type=event_type, outcome=outcome.result, user_id=outcome.user_id)
        return schemas.WebhookResult(received=True, duplicate=False, event_id=event_id, outcome=outcome.result)

    async def _apply(self, conn: DictConnection, kind: str, obj: dict[str, Any], at: datetime) -> Outcome:
        if kind == "checkout.session.completed":
            return await self._checkout_completed(conn, obj, at)
        if kind in ("customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"):
            return await self._subscription_changed(conn, obj, at, deleted=kind.endswith("deleted"))
        if kind == "invoice.payment_succeeded":
            return await self._invoice(conn, obj, paid=True)
        if kind == "invoice.payment_failed":
            return await self._invoice(conn, obj, paid=False)
        return Outcome("ignored: unhandled event type")

    async def _known_user(self, conn: DictConnection, *candidates: Any) -> str | None:
        for candidate in candidates:
            if (user_id := _text(candidate)) and await bstore.user_exists(conn, user_id):
                return user_id
        return None

    def _plan_name(self, *candidates: Any) -> str | None:
        return next((c for c in candidates if isinstance(c, str) and c in self.billing.plans), None)

    async def _grant(self, conn: DictConnection, user_id: str, plan_name: str, invoice_id: str) -> bool:
        """The plan's credits for one paid invoice; keyed by invoice so checkout and invoice events grant once."""
        plan = self.billing.plans[plan_name]
        entry = await credits.credit_once(
            conn,
            user_id,
            plan.credits,
            idempotency_key=f"stripe_invoice:{invoice_id}",
            kind="subscription",
            description=f"{plan.name} plan credits",
            metadata={"plan": plan_name, "invoice": invoice_id},
        )
        return entry is not None

    async def _checkout_completed(self, conn: DictConnection, session: dict[str, Any], at: datetime) -> Outcome:
        if session.get("mode") != "subscription":
            return Outcome("ignored: not a subscription checkout")
        meta = _dig(session, "metadata") or {}
        user_id = await self._known_user(conn, session.get("client_reference_id"), _dig(meta, "user_id"))
        plan_name = self._plan_name(_dig(meta, "plan"))
        sub_id = _id(session.get("subscription"))
        if user_id is None or plan_name is None or sub_id is None:
            return Outcome("ignored: unknown user, plan or subscription")
        paid = session.get("payment_status") in ("paid", "no_payment_required")
        change = bstore.SubscriptionChange(
            user_id=user_id,
            stripe_subscription_id=sub_id,
            stripe_customer_id=_id(session.get("customer")),
            status="active" if paid else "incomplete",
            plan_type=plan_name,
            credits_included=self.billing.plans[plan_name].credits,
            event_at=at,
        )
        if await bstore.upsert_subscription(conn, change) is not None:
            await bstore.set_user_status(conn, user_id, change.status)
        invoice_id = _id(session.get("invoice"))
        if paid and invoice_id and session.get("payment_status") == "paid":
            await self._grant(conn, user_id, plan_name, invoice_id)
        return Outcome("applied", user_id)

    async def _subscription_changed(
        self, conn: DictConnection, sub: dict[str, Any], at: datetime, *, deleted: bool
    ) -> Outcome:
        sub_id = _text(sub.get("id"))
        if sub_id is None:
            return Outcome("ignored: no subscription id")
        existing = await bstore.subscription_by_stripe_id(conn, sub_id)
        customer = _id(sub.get("customer"))
        meta = _dig(sub, "metadata") or {}
        by_customer = await bstore.user_for_customer(conn, customer) if customer else None
        user_id = await self._known_user(conn, _dig(meta, "user_id"), _dig(existing, "user_id"), by_customer)
        item = _dig(sub, "items", "data", 0)
        plan_name = self._plan_name(
            _dig(meta, "plan"), self.billing.plan_for_price(_id(_dig(item, "price"))), _dig(existing, "plan_type")
        )
        if user_id is None or plan_name is None:
            return Outcome("ignored: unknown user or plan")
        status = "canceled" if deleted else _text(sub.get("status")) or "incomplete"
        if status not in (*bstore.LIVE_STATUSES, "canceled", "incomplete_expired"):
            return Outcome(f"ignored: unknown status {status[:40]}")
        at_end = sub.get("cancel_at_period_end")
        change = bstore.SubscriptionChange(
            user_id=user_id,
            stripe_subscription_id=sub_id,
            stripe_customer_id=customer,
            status=status,
            plan_type=plan_name,
            credits_included=self.billing.plans[plan_name].credits,
            event_at=at,
            # Newer API versions moved the period onto the subscription item.
            current_period_start=_when(sub.get("current_period_start")) or _when(_dig(item, "current_period_start")),
            current_period_end=_when(sub.get("current_period_end")) or _when(_dig(item, "current_period_end")),
            canceled_at=_when(sub.get("canceled_at")) or (at if deleted else None),
            cancel_at_period_end=at_end if isinstance(at_end, bool) else None,
        )
        if await bstore.upsert_subscription(conn, change) is None:
            return Outcome("ignored: stale event", user_id)
        await bstore.set_user_status(conn, user_id, status)
        return Outcome("applied", user_id)

    async def _invoice(self, conn: DictConnection, invoice: dict[str, Any], *, paid: bool) -> Outcome:
        invoice_id = _text(invoice.get("id"))
        # Where the subscription and its metadata sit depends on the API version.
        details = _dig(invoice, "parent", "subscription_details") or _dig(invoice, "subscription_details") or {}
        sub_id = _id(invoice.get("subscription")) or _id(_dig(details, "subscription"))
        meta = _dig(details, "metadata") or {}
        existing = await bstore.subscription_by_stripe_id(conn, sub_id) if sub_id else None
        customer = _id(invoice.get("customer"))
        by_customer = await bstore.user_for_customer(conn, customer) if customer else None
        user_id = await self._known_user(conn, _dig(existing, "user_id"), _dig(meta, "user_id"), by_customer)
        line_price = _id(_dig(invoice, "lines", "data", 0, "price")) or _text(
            _dig(invoice, "lines", "data", 0, "pricing", "price_details", "price")
        )
        plan_name = self._plan_name(
            _dig(existing, "plan_type"), _dig(meta, "plan"), self.billing.plan_for_price(line_price)
        )
        if invoice_id is None or sub_id is None or user_id is None or plan_name is None:
            return Outcome("ignored: not a subscription invoice of a known user")
        status = "active" if paid else "past_due"
        if existing is not None:
            await bstore.set_subscription_status(conn, sub_id, status)
        await bstore.set_user_status(conn, user_id, status)
        if paid:
            await self._grant(conn, user_id, plan_name, invoice_id)
        return Outcome("applied", user_id)
