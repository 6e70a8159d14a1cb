"""ledger.credit_once: a grant keyed by an idempotency key lands once, even when the same key races."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from isa.core.db import Database
from isa.core.errors import ApiError
from isa.core.settings import Settings
from isa.users import credits as ledger
from tests.support.users import sql


@pytest.mark.anyio
async def test_twenty_concurrent_grants_with_one_key_credit_once(settings: Settings, db_url: str) -> None:
    db = Database(
        db_url, settings.model_copy(update={"database": settings.database.model_copy(update={"pool_max": 20})})
    )
    await db.open()
    applied: list[bool] = []
    try:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO users (user_id) VALUES ('granted')")

        async def grant() -> None:
            async with db.transaction() as conn:
                entry = await ledger.credit_once(
                    conn, "granted", Decimal(100), idempotency_key="stripe_invoice:in_1", description="plan credits"
                )
            applied.append(entry is not None)

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(grant)
    finally:
        await db.close()
    assert sorted(applied) == [False] * 19 + [True]
    assert sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = 'granted'") == [(Decimal(100),)]


@pytest.mark.anyio
async def test_credit_once_for_a_missing_user_is_404(settings: Settings, db_url: str) -> None:
    db = Database(db_url, settings)
    await db.open()
    try:
        with pytest.raises(ApiError) as missing:
            async with db.transaction() as conn:
                await ledger.credit_once(conn, "ghost", Decimal(1), idempotency_key="k", description="x")
        assert missing.value.status == 404
    finally:
        await db.close()
