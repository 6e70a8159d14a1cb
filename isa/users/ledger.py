"""The credit ledger: every change is one SQL statement that moves the balance and records the move.

Concurrent consumers can't double-spend: the balance update is conditional
(`credits_remaining >= amount`) and row-locked by Postgres for the statement, and the transaction
row is written from the same statement's RETURNING values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from isa.core.db import DictConnection
from isa.core.errors import ApiError


class InsufficientCredits(ApiError):
    def __init__(self, balance: Decimal, needed: Decimal) -> None:
        super().__init__(
            402,
            "insufficient_credits",
            f"this needs {needed} credits; the balance is {balance}",
            details={"balance": str(balance), "needed": str(needed)},
        )


@dataclass(frozen=True)
class LedgerEntry:
    transaction_id: str
    credits_before: Decimal
    credits_after: Decimal


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


async def _move(
    conn: DictConnection,
    user_id: str,
    delta: Decimal,
    kind: str,
    description: str,
    usage_record_id: str | None,
    idempotency_key: str | None,
    metadata: dict[str, Any] | None,
) -> LedgerEntry | None:
    cur = await conn.execute(
        _MOVE,
        {
            "user_id": user_id,
            "delta": delta,
            "kind": kind,
            "description": description,
            "usage_record_id": usage_record_id,
            "idempotency_key": idempotency_key,
            "metadata": json.dumps(metadata or {}),
        },
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return LedgerEntry(str(row["id"]), row["credits_before"], row["credits_after"])


async def balance(conn: DictConnection, user_id: str) -> Decimal | None:
    cur = await conn.execute("SELECT credits_remaining FROM users WHERE user_id = %s", (user_id,))
    row = await cur.fetchone()
    return None if row is None else Decimal(row["credits_remaining"])


async def consume(
    conn: DictConnection,
    user_id: str,
    credits: Decimal,
    *,
    description: str,
    usage_record_id: str | None = None,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> LedgerEntry:
    """Take `credits` from the user, or raise InsufficientCredits (402) and change nothing."""
    if credits < 0:
        raise ValueError("consume takes a non-negative amount")
    entry = await _move(conn, user_id, -credits, "consume", description, usage_record_id, idempotency_key, metadata)
    if entry is None:
        raise InsufficientCredits(await balance(conn, user_id) or Decimal(0), credits)
    return entry


async def credit(
    conn: DictConnection,
    user_id: str,
    credits: Decimal,
    *,
    kind: str = "recharge",
    description: str,
    idempotency_key: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> LedgerEntry:
    """Add credits (recharge, refund, grant, subscription). Callers check who may do this."""
    if credits < 0:
        raise ValueError("credit takes a non-negative amount")
    entry = await _move(conn, user_id, credits, kind, description, None, idempotency_key, metadata)
    if entry is None:
        raise ApiError(404, "user_not_found", "no such user")
    return entry


async def credit_once(
    conn: DictConnection,
    user_id: str,
    credits: Decimal,
    *,
    idempotency_key: str,
    kind: str = "grant",
    description: str,
    metadata: dict[str, Any] | None = None,
) -> LedgerEntry | None:
    """Add credits unless a move with `idempotency_key` exists (then None). Call inside a transaction.

    The user row is locked first, so two concurrent calls with the same key serialise and the second
    sees the first one's move instead of failing on the unique key.
    """
    cur = await conn.execute("SELECT 1 FROM users WHERE user_id = %s FOR UPDATE", (user_id,))
    if await cur.fetchone() is None:
        raise ApiError(404, "user_not_found", "no such user")
    cur = await conn.execute(
        "SELECT 1 FROM user_credit_transactions WHERE user_id = %s AND idempotency_key = %s",
        (user_id, idempotency_key),
    )
    if await cur.fetchone() is not None:
        return None
    return await credit(
        conn, user_id, credits, kind=kind, description=description, idempotency_key=idempotency_key, metadata=metadata
    )
