"""SQL of the credit ledger: the balance columns of `users` and `user_credit_transactions`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from isa.core.db import DictConnection, fetch_one

# One statement moves the balance and records the move: the balance update is conditional
# (`credits_remaining + delta >= 0`) and row-locked by Postgres for the statement, and the
# transaction row is written from the same statement's RETURNING values.
_MOVE = """
WITH moved AS (
    UPDATE users SET credits_remaining = credits_remaining + %(delta)s,
                     credits_total = credits_total + GREATEST(%(delta)s, 0)
    WHERE user_id = %(user_id)s AND credits_remaining + %(delta)s >= 0
    RETURNING credits_remaining - %(delta)s AS before, credits_remaining AS after
)
INSERT INTO user_credit_transactions
    (user_id, transaction_type, credits_amount, credits_before, credits_after,
     usage_record_id, idempotency_key, description, metadata)
SELECT %(user_id)s, %(kind)s, %(delta)s, before, after,
       %(usage_record_id)s, %(idempotency_key)s, %(description)s, %(metadata)s::jsonb
FROM moved
RETURNING id, credits_before, credits_after
"""


@dataclass(frozen=True)
class Move:
    """One change of a balance: `delta` < 0 takes credits, > 0 adds them."""

    user_id: str
    delta: Decimal
    kind: str
    description: str
    usage_record_id: str | None = None
    idempotency_key: str | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True)
class LedgerEntry:
    transaction_id: str
    credits_before: Decimal
    credits_after: Decimal


async def move(conn: DictConnection, m: Move) -> LedgerEntry | None:
    """The ledger entry of the move, or None when the user is missing or the balance would go negative."""
    params = {**asdict(m), "metadata": json.dumps(m.metadata or {})}
    row = await fetch_one(conn, _MOVE, params)
    return None if row is None else LedgerEntry(str(row["id"]), row["credits_before"], row["credits_after"])


async def balance(conn: DictConnection, user_id: str, *, lock: bool = False) -> Decimal | None:
    row = await fetch_one(
        conn, "SELECT credits_remaining FROM users WHERE user_id = %s" + (" FOR UPDATE" if lock else ""), (user_id,)
    )
    return None if row is None else Decimal(row["credits_remaining"])


async def has_move(conn: DictConnection, user_id: str, idempotency_key: str) -> bool:
    return (
        await fetch_one(
            conn,
            "SELECT 1 FROM user_credit_transactions WHERE user_id = %s AND idempotency_key = %s",
            (user_id, idempotency_key),
        )
        is not None
    )
