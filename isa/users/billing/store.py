"""SQL for subscriptions and the webhook idempotency record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg.errors

from isa.core.db import DictConnection, fetch_one

LIVE_STATUSES = ("incomplete", "trialing", "active", "past_due", "unpaid", "paused")
# users.subscription_status allows fewer states than Stripe has.
USER_STATUS = {
    "active": "active",
    "trialing": "trialing",
    "past_due": "past_due",
    "unpaid": "unpaid",
    "canceled": "canceled",
    "incomplete_expired": "canceled",
}


@dataclass(frozen=True)
class SubscriptionChange:
    user_id: str
    stripe_subscription_id: str
    stripe_customer_id: str | None
    status: str
    plan_type: str
    credits_included: Decimal
    event_at: datetime
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    canceled_at: datetime | None = None
    cancel_at_period_end: bool | None = None


async def record_event(
    conn: DictConnection, event_id: str, event_type: str, livemode: bool, created: datetime | None
) -> bool:
    """Claim an event id; False when it was applied before. Concurrent retries wait on the key."""
    cur = await conn.execute(
        """INSERT INTO webhook_events (event_id, event_type, livemode, provider_created)
           VALUES (%s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING""",
        (event_id, event_type, livemode, created),
    )
    return cur.rowcount == 1


async def finish_event(conn: DictConnection, event_id: str, outcome: str, user_id: str | None) -> None:
    await conn.execute(
        "UPDATE webhook_events SET outcome = %s, user_id = %s, processed_at = now() WHERE event_id = %s",
        (outcome[:100], user_id, event_id),
    )


async def user_exists(conn: DictConnection, user_id: str) -> bool:
    return await fetch_one(conn, "SELECT 1 FROM users WHERE user_id = %s", (user_id,)) is not None


async def subscription_by_stripe_id(conn: DictConnection, stripe_subscription_id: str) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        "SELECT id::text, user_id, plan_type, status, stripe_customer_id FROM subscriptions "
        "WHERE stripe_subscription_id = %s",
        (stripe_subscription_id,),
    )


async def user_for_customer(conn: DictConnection, customer_id: str) -> str | None:
    row = await fetch_one(
        conn,
        "SELECT user_id FROM subscriptions WHERE stripe_customer_id = %s ORDER BY created_at DESC LIMIT 1",
        (customer_id,),
    )
    return None if row is None else str(row["user_id"])


async def customer_for_user(conn: DictConnection, user_id: str) -> str | None:
    row = await fetch_one(
        conn,
        "SELECT stripe_customer_id FROM subscriptions WHERE user_id = %s AND stripe_customer_id IS NOT NULL "
        "ORDER BY created_at DESC LIMIT 1",
        (user_id,),
    )
    return None if row is None else str(row["stripe_customer_id"])


async def upsert_subscription(conn: DictConnection, change: SubscriptionChange) -> str | None:
    """Insert or update the row for a Stripe subscription; None when a newer event already updated it."""
    if change.status in LIVE_STATUSES:
        # One live platform subscription per user: a new one (e.g. an upgrade bought through a second
        # checkout) supersedes the old row locally.
        await conn.execute(
            """UPDATE subscriptions SET status = 'canceled', canceled_at = coalesce(canceled_at, now())
               WHERE user_id = %s AND subscription_scope = 'platform' AND status = ANY(%s)
                 AND stripe_subscription_id IS DISTINCT FROM %s
                 AND (last_event_at IS NULL OR last_event_at <= %s)""",
            (change.user_id, list(LIVE_STATUSES), change.stripe_subscription_id, change.event_at),
        )
    try:
        # A savepoint: a stale event that would make a second live row fails alone, not the delivery.
        async with conn.transaction():
            return await _upsert(conn, change)
    except psycopg.errors.UniqueViolation:
        return None


async def _upsert(conn: DictConnection, change: SubscriptionChange) -> str | None:
    row = await fetch_one(
        conn,
        """INSERT INTO subscriptions AS s
               (user_id, stripe_subscription_id, stripe_customer_id, status, plan_type, credits_included,
                current_period_start, current_period_end, canceled_at, downgrade_at_period_end, last_event_at)
           VALUES (%(user_id)s, %(sub)s, %(customer)s, %(status)s, %(plan)s, %(credits)s,
                   %(start)s, %(end)s, %(canceled)s, coalesce(%(at_end)s, false), %(event_at)s)
           ON CONFLICT (stripe_subscription_id) DO UPDATE SET
               stripe_customer_id = coalesce(EXCLUDED.stripe_customer_id, s.stripe_customer_id),
               status = EXCLUDED.status,
               plan_type = EXCLUDED.plan_type,
               credits_included = EXCLUDED.credits_included,
               current_period_start = coalesce(EXCLUDED.current_period_start, s.current_period_start),
               current_period_end = coalesce(EXCLUDED.current_period_end, s.current_period_end),
               canceled_at = coalesce(EXCLUDED.canceled_at, s.canceled_at),
               downgrade_at_period_end = coalesce(%(at_end)s, s.downgrade_at_period_end),
               last_event_at = EXCLUDED.last_event_at
           WHERE s.user_id = EXCLUDED.user_id
             AND (s.last_event_at IS NULL OR s.last_event_at <= EXCLUDED.last_event_at)
           RETURNING id::text""",
        {
            "user_id": change.user_id,
            "sub": change.stripe_subscription_id,
            "customer": change.stripe_customer_id,
            "status": change.status,
            "plan": change.plan_type,
            "credits": change.credits_included,
            "start": change.current_period_start,
            "end": change.current_period_end,
            "canceled": change.canceled_at,
            "at_end": change.cancel_at_period_end,
            "event_at": change.event_at,
        },
    )
    return None if row is None else str(row["id"])


async def set_subscription_status(conn: DictConnection, stripe_subscription_id: str, status: str) -> None:
    await conn.execute(
        "UPDATE subscriptions SET status = %s WHERE stripe_subscription_id = %s AND status <> 'canceled'",
        (status, stripe_subscription_id),
    )


async def set_user_status(conn: DictConnection, user_id: str, stripe_status: str) -> None:
    status = USER_STATUS.get(stripe_status)
    if status is not None:
        await conn.execute("UPDATE users SET subscription_status = %s WHERE user_id = %s", (status, user_id))


async def current_subscription(conn: DictConnection, user_id: str) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        """SELECT id::text, plan_type, status, credits_included, current_period_start, current_period_end,
                  canceled_at, downgrade_at_period_end AS cancel_at_period_end, created_at
           FROM subscriptions WHERE user_id = %s AND subscription_scope = 'platform'
           ORDER BY (status = ANY(%s)) DESC, created_at DESC LIMIT 1""",
        (user_id, list(LIVE_STATUSES)),
    )
