"""The credit ledger's rules: every change is one SQL statement that moves the balance and records the move.

Concurrent consumers can't double-spend: see `store._MOVE`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from isa.core.db import DictConnection
from isa.core.errors import ApiError
from isa.users.credits import store
from isa.users.credits.store import LedgerEntry, Move


class InsufficientCredits(ApiError):
    def __init__(self, balance: Decimal, needed: Decimal) -> None:
        super().__init__(
            402,
            "insufficient_credits",
            f"this needs {needed} credits; the balance is {balance}",
            details={"balance": str(balance), "needed": str(needed)},
        )


class UserNotFound(ApiError):
    def __init__(self) -> None:
        super().__init__(404, "user_not_found", "no such user")


async def balance(conn: DictConnection, user_id: str, *, lock: bool = False) -> Decimal | None:
    """The user's balance (None: no such user); `lock` holds the user row until the transaction ends."""
    return await store.balance(conn, user_id, lock=lock)


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
    entry = await store.move(
        conn, Move(user_id, -credits, "consume", description, usage_record_id, idempotency_key, metadata)
    )
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
    entry = await store.move(conn, Move(user_id, credits, kind, description, None, idempotency_key, metadata))
    if entry is None:
        raise UserNotFound()
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
    if await store.balance(conn, user_id, lock=True) is None:
        raise UserNotFound()
    if await store.has_move(conn, user_id, idempotency_key):
        return None
    return await credit(
        conn, user_id, credits, kind=kind, description=description, idempotency_key=idempotency_key, metadata=metadata
    )
