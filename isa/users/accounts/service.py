"""The user service's behaviour: accounts, credits and usage. Callers pass the owner from the principal."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeVar

import psycopg.errors
from pydantic import BaseModel

from isa.core.db import Database, DictConnection
from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.users import credits
from isa.users.accounts import schemas, store
from isa.users.credits import schemas as credit_schemas
from isa.users.settings import BillingSettings
from isa.users.signup import SIGNUP_GRANT_KEY, grant_signup_credits
from isa.users.wire import Paging

__all__ = ["SIGNUP_GRANT_KEY", "UsersService"]

log = get_logger(__name__)
P = TypeVar("P", bound=BaseModel)


# Which missing row a foreign-key violation means, by constraint name.
_MISSING = {
    "user_usage_records_session_fkey": ("session_not_found", "no such session"),
    "user_credit_transactions_usage_record_id_user_id_fkey": ("usage_record_not_found", "no such usage record"),
}


def not_found_for(exc: psycopg.errors.ForeignKeyViolation) -> ApiError:
    """A 404 naming the referenced object that does not exist (or belongs to someone else)."""
    code, message = _MISSING.get(exc.diag.constraint_name or "", ("user_not_found", "no such user"))
    return ApiError(404, code, message)


def user_not_found() -> ApiError:
    return ApiError(404, "user_not_found", "no user row for this principal yet; call POST /api/v1/users/ensure first")


class UsersService:
    """Accounts, the credit ledger and usage records; the `users` service other domains look up."""

    def __init__(self, db: Database, billing: BillingSettings) -> None:
        self.db = db
        self.billing = billing

    async def _user(self, conn: DictConnection, user_id: str) -> schemas.User:
        row = await store.get_user(conn, user_id, self.billing.default_plan)
        if row is None:
            raise user_not_found()
        return schemas.User.model_validate(row)

    async def ensure(self, user_id: str, body: schemas.EnsureUser) -> schemas.EnsuredUser:
        """Create the caller's row (or return it) and grant the default plan's credits exactly once."""
        if body.auth0_id is not None and body.auth0_id != user_id:
            raise ApiError(422, "identity_mismatch", "auth0_id must be the caller's own token subject")
        async with self.db.transaction() as conn:
            created = await store.upsert_user(conn, user_id, body.email, body.name)
            await grant_signup_credits(conn, user_id, self.billing)
            user = await self._user(conn, user_id)
        if created:
            log.info("user_created", user_id=user_id)
        return schemas.EnsuredUser(**user.model_dump(), created=created)

    async def get(self, user_id: str) -> schemas.User:
        async with self.db.connection() as conn:
            return await self._user(conn, user_id)

    async def list_users(self, limit: int, offset: int) -> list[schemas.User]:
        async with self.db.connection() as conn:
            rows = await store.list_users(conn, self.billing.default_plan, limit, offset)
        return [schemas.User.model_validate(r) for r in rows]

    async def update_profile(self, user_id: str, body: schemas.UpdateProfile) -> schemas.User:
        async with self.db.transaction() as conn:
            if not await store.update_profile(conn, user_id, body.model_dump(exclude_unset=True, exclude_none=True)):
                raise user_not_found()
            return await self._user(conn, user_id)

    async def balance(self, user_id: str) -> credit_schemas.Balance:
        user = await self.get(user_id)
        return credit_schemas.Balance(
            user_id=user.user_id, balance=user.credits, credits_total=user.credits_total, plan=user.plan
        )

    async def consume(self, user_id: str, body: credit_schemas.Consume) -> credit_schemas.Consumed:
        """Take credits (402 when short); a repeated idempotency key returns the first result.

        The same key with a different request is 422 idempotency_key_reused (as the events API answers, and as
        the IETF Idempotency-Key draft asks): replaying the first result would hide the client's bug.
        """
        key = f"consume:{body.idempotency_key}" if body.idempotency_key else None
        try:
            async with self.db.transaction() as conn:
                if key and (done := await store.transaction_by_key(conn, user_id, key)):
                    return _replayed(done, body)
                entry = await credits.consume(
                    conn,
                    user_id,
                    body.amount,
                    description=body.reason,
                    usage_record_id=str(body.usage_record_id) if body.usage_record_id else None,
                    idempotency_key=key,
                    metadata={"endpoint": body.endpoint} if body.endpoint else None,
                )
        except psycopg.errors.UniqueViolation:
            # A concurrent retry with the same key won the race: answer with its result.
            assert key is not None
            async with self.db.connection() as conn:
                done = await store.transaction_by_key(conn, user_id, key)
            if done is None:
                raise
            return _replayed(done, body)
        except psycopg.errors.ForeignKeyViolation as exc:
            raise not_found_for(exc) from None
        return credit_schemas.Consumed(
            transaction_id=entry.transaction_id,
            consumed_amount=float(body.amount),
            remaining_credits=float(entry.credits_after),
            credits_before=float(entry.credits_before),
            credits_after=float(entry.credits_after),
        )

    async def recharge(self, user_id: str, body: credit_schemas.Recharge, *, by: str) -> credit_schemas.Recharged:
        """Add credits to a user (admins only; the route checks). A repeated reference_id recharges once."""
        meta: dict[str, Any] = {"by": by, "reference_id": body.reference_id}
        try:
            async with self.db.transaction() as conn:
                if body.reference_id:
                    entry = await credits.credit_once(
                        conn,
                        user_id,
                        body.amount,
                        idempotency_key=f"recharge:{body.reference_id}",
                        kind="recharge",
                        description=body.description,
                        metadata=meta,
                    )
                else:
                    entry = await credits.credit(
                        conn, user_id, body.amount, kind="recharge", description=body.description, metadata=meta
                    )
                balance = await credits.balance(conn, user_id) or Decimal(0)
        except psycopg.errors.DataError:
            raise ApiError(422, "balance_out_of_range", "this recharge would exceed the largest balance") from None
        log.info("credits_recharged", user_id=user_id, by=by, amount=str(body.amount), applied=entry is not None)
        return credit_schemas.Recharged(
            transaction_id=entry.transaction_id if entry else None,
            user_id=user_id,
            amount=float(body.amount),
            credits_after=float(balance),
            applied=entry is not None,
        )

    async def transactions(
        self, user_id: str, query: credit_schemas.TransactionQuery
    ) -> credit_schemas.TransactionPage:
        async with self.db.connection() as conn:
            rows, total = await store.list_transactions(conn, user_id, query)
        return _page(credit_schemas.TransactionPage, "transactions", rows, total, query)

    async def record_usage(self, user_id: str, body: schemas.UsageCreate) -> schemas.UsageCreated:
        """Record one billable operation and charge its credits in the same transaction (402 if short)."""
        try:
            async with self.db.transaction() as conn:
                row = await store.insert_usage(conn, user_id, body)
                if row is None:
                    assert body.idempotency_key is not None
                    again = await store.usage_by_key(conn, user_id, body.idempotency_key)
                    assert again is not None
                    return schemas.UsageCreated(**again, duplicate=True)
                remaining = None
                if body.credits_charged > 0:
                    entry = await credits.consume(
                        conn,
                        user_id,
                        body.credits_charged,
                        description=f"usage: {body.event_type}",
                        usage_record_id=row["id"],
                        idempotency_key=f"usage:{row['id']}",
                    )
                    remaining = float(entry.credits_after)
        except psycopg.errors.ForeignKeyViolation as exc:
            raise not_found_for(exc) from None
        return schemas.UsageCreated(**row, remaining_credits=remaining)

    async def usage(self, user_id: str, query: schemas.UsageQuery) -> schemas.UsagePage:
        async with self.db.connection() as conn:
            rows, total = await store.list_usage(conn, user_id, query)
        return _page(schemas.UsagePage, "records", rows, total, query)

    async def usage_stats(self, user_id: str, query: schemas.StatsQuery) -> schemas.UsageStats:
        async with self.db.connection() as conn:
            return schemas.UsageStats.model_validate(await store.usage_stats(conn, user_id, query))


def _page(page: type[P], items: str, rows: list[dict[str, Any]], total: int, query: Paging) -> P:
    """One page of `rows` under `items`, with the total and the query's limit and offset."""
    return page.model_validate({items: rows, "total": total, "limit": query.limit, "offset": query.offset})


def _replayed(row: dict[str, Any], body: credit_schemas.Consume) -> credit_schemas.Consumed:
    """The first consume made with this key, if `body` asks for the same thing; else 422."""
    first = (
        -row["credits_amount"],
        row["description"],
        str(row["usage_record_id"]) if row["usage_record_id"] else None,
        (row["metadata"] or {}).get("endpoint"),
    )
    again = (body.amount, body.reason, str(body.usage_record_id) if body.usage_record_id else None, body.endpoint)
    if first != again:
        raise ApiError(422, "idempotency_key_reused", "this idempotency_key was already used with a different request")
    return _consumed(row)


def _consumed(row: dict[str, Any]) -> credit_schemas.Consumed:
    return credit_schemas.Consumed(
        transaction_id=str(row["id"]),
        consumed_amount=float(-row["credits_amount"]),
        remaining_credits=float(row["credits_after"]),
        credits_before=float(row["credits_before"]),
        credits_after=float(row["credits_after"]),
    )
