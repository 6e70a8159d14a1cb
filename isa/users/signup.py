"""The sign-up grant: every user starts with the default plan's credits, however the account was made.

Public for the domains that create accounts (isa.auth: `isa users create`, `isa keys create`, the dev token,
a JWT user's first request, the first-run key; isa.users: POST /api/v1/users/ensure). Granted once per user
ever: the ledger move carries the idempotency key `signup_grant`, so a second call (or a race) adds nothing.
"""

from __future__ import annotations

from isa.core.db import DictConnection
from isa.core.settings import Settings
from isa.users import credits
from isa.users.settings import BillingSettings

SIGNUP_GRANT_KEY = "signup_grant"


def billing_settings(settings: Settings) -> BillingSettings:
    return settings.section("billing", BillingSettings)


async def grant_signup_credits(conn: DictConnection, user_id: str, billing: BillingSettings) -> bool:
    """Give `user_id` the default plan's credits unless it ever got them; True when this call did.

    Call inside the transaction that created (or found) the user row.
    """
    plan = billing.plans.get(billing.default_plan)
    if plan is None or plan.credits <= 0:
        return False
    entry = await credits.credit_once(
        conn,
        user_id,
        plan.credits,
        idempotency_key=SIGNUP_GRANT_KEY,
        kind="grant",
        description=f"{plan.name} plan sign-up credits",
        metadata={"plan": billing.default_plan},
    )
    return entry is not None
