"""Wire models of the credit API: spending, recharging, balances and the transaction history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field

from isa.users.wire import Credits, DateRange, Key, Label, Request, clean_text


class Consume(Request):
    amount: Credits
    reason: Label = "api_call"
    endpoint: Annotated[str, Field(max_length=500), AfterValidator(clean_text)] | None = None
    usage_record_id: UUID | None = None
    # Retrying a consume with the same key charges once.
    idempotency_key: Key | None = None


class Recharge(Request):
    amount: Credits
    description: Annotated[str, Field(max_length=500), AfterValidator(clean_text)] = "admin recharge"
    # A payment or ticket reference; a repeated reference recharges once.
    reference_id: Key | None = None


class Balance(BaseModel):
    user_id: str
    balance: float
    credits_total: float
    plan: str


class Consumed(BaseModel):
    transaction_id: str
    consumed_amount: float
    remaining_credits: float
    credits_before: float
    credits_after: float


class Recharged(BaseModel):
    transaction_id: str | None
    user_id: str
    amount: float
    credits_after: float
    applied: bool


class TransactionQuery(DateRange):
    transaction_type: (
        Literal["consume", "recharge", "refund", "grant", "subscription", "expire", "adjustment"] | None
    ) = None


class Transaction(BaseModel):
    id: str
    transaction_type: str
    credits_amount: float
    credits_before: float
    credits_after: float
    usage_record_id: str | None
    description: str | None
    metadata: dict[str, Any]
    created_at: datetime


class TransactionPage(BaseModel):
    transactions: list[Transaction]
    total: int
    limit: int
    offset: int
