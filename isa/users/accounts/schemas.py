"""Wire models of accounts and usage records: what requests may carry (extra fields refused) and responses hold."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, Field

from isa.users.wire import (
    CreditsOrZero,
    DateRange,
    Email,
    JsonObject,
    Key,
    Label,
    Name,
    Query,
    Request,
    Tokens,
    Usd,
    clean_text,
)

# --- users -------------------------------------------------------------------------------------


class EnsureUser(Request):
    email: Email | None = None
    name: Name | None = None
    # The original client sends its token subject here; it must be the caller's own.
    auth0_id: Key | None = None


class UpdateProfile(Request):
    email: Email | None = None
    name: Name | None = None
    phone: Annotated[str, Field(max_length=40), AfterValidator(clean_text)] | None = None
    preferences: JsonObject | None = None


class User(BaseModel):
    user_id: str
    email: str | None
    name: str | None
    phone: str | None = None
    credits: float
    credits_total: float
    plan: str
    subscription_status: str
    is_active: bool
    preferences: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class EnsuredUser(User):
    created: bool


class UserList(BaseModel):
    users: list[User]
    limit: int
    offset: int


# --- usage -------------------------------------------------------------------------------------


class UsageCreate(Request):
    event_type: Label
    session_id: UUID | None = None
    trace_id: UUID | None = None
    endpoint: Annotated[str, Field(max_length=500), AfterValidator(clean_text)] | None = None
    # Charged from the caller's balance in the same transaction that records the usage (402 if short).
    credits_charged: CreditsOrZero = Decimal(0)
    cost_usd: Usd = Decimal(0)
    calculation_method: Annotated[str, Field(max_length=100), AfterValidator(clean_text)] | None = None
    tokens_used: Tokens | None = None
    prompt_tokens: Tokens = 0
    completion_tokens: Tokens = 0
    model_name: Annotated[str, Field(max_length=200), AfterValidator(clean_text)] | None = None
    provider: Annotated[str, Field(max_length=100), AfterValidator(clean_text)] | None = None
    tool_name: Annotated[str, Field(max_length=200), AfterValidator(clean_text)] | None = None
    operation_name: Annotated[str, Field(max_length=200), AfterValidator(clean_text)] | None = None
    billing_metadata: JsonObject = Field(default_factory=dict)
    request_data: JsonObject | None = None
    response_data: JsonObject | None = None
    idempotency_key: Key | None = None

    @property
    def total_tokens(self) -> int:
        return self.tokens_used if self.tokens_used is not None else self.prompt_tokens + self.completion_tokens


class UsageQuery(DateRange):
    event_type: Label | None = None


class UsageRecord(BaseModel):
    id: str
    session_id: str | None
    trace_id: str | None
    endpoint: str | None
    event_type: str
    credits_charged: float
    cost_usd: float
    calculation_method: str | None
    total_tokens: int
    prompt_tokens: int
    completion_tokens: int
    model_name: str | None
    provider: str | None
    tool_name: str | None
    operation_name: str | None
    billing_metadata: dict[str, Any]
    created_at: datetime


class UsageCreated(UsageRecord):
    duplicate: bool = False
    remaining_credits: float | None = None


class UsagePage(BaseModel):
    records: list[UsageRecord]
    total: int
    limit: int
    offset: int


class StatsQuery(Query):
    start_date: date | datetime | None = None
    end_date: date | datetime | None = None


class UsageBucket(BaseModel):
    key: str | None
    requests: int
    credits: float
    cost_usd: float
    tokens: int


class UsageStats(BaseModel):
    totals: UsageBucket
    by_day: list[UsageBucket]
    by_model: list[UsageBucket]
    by_provider: list[UsageBucket]
    by_event_type: list[UsageBucket]
