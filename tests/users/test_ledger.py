"""The credit ledger under concurrency: no double spend, every move recorded with before/after."""

from __future__ import annotations

from decimal import Decimal

import anyio
import psycopg
import pytest

from isa.core.db import Database
from isa.core.settings import Settings
from isa.users import credits as ledger


@pytest.mark.anyio
async def test_fifty_concurrent_consumes_against_ten_credits_spend_exactly_ten(settings: Settings, db_url: str) -> None:
    db = Database(
        db_url, settings.model_copy(update={"database": settings.database.model_copy(update={"pool_max": 20})})
    )
    await db.open()
    try:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO users (user_id) VALUES ('spender')")
            await ledger.credit(conn, "spender", Decimal(10), kind="grant", description="test grant")
        outcomes: list[str] = []

        async def spend() -> None:
            try:
                async with db.transaction() as conn:
                    await ledger.consume(conn, "spender", Decimal(1), description="one call")
                outcomes.append("ok")
            except ledger.InsufficientCredits:
                outcomes.append("refused")

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(spend)
    finally:
        await db.close()
    assert outcomes.count("ok") == 10 and outcomes.count("refused") == 40
    with psycopg.connect(db_url) as conn:
        balance = conn.execute("SELECT credits_remaining FROM users WHERE user_id = 'spender'").fetchone()
        moves = conn.execute(
            "SELECT credits_before, credits_after FROM user_credit_transactions "
            "WHERE user_id = 'spender' AND transaction_type = 'consume' ORDER BY credits_before DESC"
        ).fetchall()
    assert balance == (Decimal(0),)
    assert [(int(b), int(a)) for b, a in moves] == [(n, n - 1) for n in range(10, 0, -1)]


@pytest.mark.anyio
async def test_a_refused_consume_changes_nothing_and_says_402(settings: Settings, db_url: str) -> None:
    db = Database(db_url, settings)
    await db.open()
    try:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO users (user_id) VALUES ('poor')")
        with pytest.raises(ledger.InsufficientCredits) as refused:
            async with db.transaction() as conn:
                await ledger.consume(conn, "poor", Decimal("0.5"), description="too much")
        assert refused.value.status == 402
        async with db.connection() as conn:
            assert await ledger.balance(conn, "poor") == Decimal(0)
            cur = await conn.execute("SELECT count(*) AS n FROM user_credit_transactions WHERE user_id = 'poor'")
            assert (await cur.fetchone()) == {"n": 0}
    finally:
        await db.close()
