"""Wire models of the user service: what requests may carry (extra fields refused) and what responses hold."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

MAX_CREDITS = Decimal("1000000000")
MAX_USD = Decimal("1000000")
MAX_TOKENS = 1_000_000_000
MAX_JSON_DEPTH = 16


def _clean_text(value: str) -> str:
    """Postgres text can't hold NUL, and lone surrogates can't be encoded: refuse both as input errors."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid unicode text") from None
    return value


def _clean_json(value: Any, depth: int = 0) -> Any:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        for key, item in value.items():
            _clean_text(str(key))
            _clean_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _clean_json(item, depth + 1)
    return value


Text = Annotated[str, AfterValidator(_clean_text)]
Name = Annotated[str, Field(max_length=200), AfterValidator(_clean_text)]
Label = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_clean_text)]
Key = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_clean_text)]
# Deliberately loose (one @, no spaces): the address is the user's own contact detail, not an identity.
Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"), AfterValidator(_clean_text)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_clean_json)]
# Amounts are JSON numbers on the wire; the documented schema says so (and what decimal_places enforces).
Credits = Annotated[
    Decimal,
    Field(gt=0, le=MAX_CREDITS, decimal_places=3, allow_inf_nan=False),
    WithJsonSchema({"type": "number", "exclusiveMinimum": 0, "maximum": int(MAX_CREDITS), "multipleOf": 0.001}),
]
CreditsOrZero = Annotated[
    Decimal,
    Field(ge=0, le=MAX_CREDITS, decimal_places=3, allow_inf_nan=False),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": int(MAX_CREDITS), "multipleOf": 0.001}),
]
Usd = Annotated[
    Decimal,
    Field(ge=0, le=MAX_USD, decimal_places=6, allow_inf_nan=False),
    WithJsonSchema({"type": "number", "minimum": 0, "maximum": int(MAX_USD), "multipleOf": 0.000001}),
]
Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]


class Request(BaseModel):
    """Request bodies: unknown fields (user_id, credits, role, created_at ...) are refused with 422."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Query(BaseModel):
    """Query strings: unknown parameters (e.g. ?user_id=) are ignored; the owner comes from the token."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Paging(Query):
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class DateRange(Paging):
    start_date: date | datetime | None = None
    end_date: date | datetime | None = None


# --- users -------------------------------------------------------------------------------------


class EnsureUser(Request):
    email: Email | None = None
    name: Name | None = None
    # The original client sends its token subject here; it must be the caller's own.
    auth0_id: Key | None = None


class UpdateProfile(Request):
    email: Email | None = None
    name: Name | None = None
    phone: Annotated[str, Field(max_length=40), AfterValidator(_clean_text)] | None = None
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


# --- credits -----------------------------------------------------------------------------------


class Consume(Request):
    amount: Credits
    reason: Label = "api_call"
    endpoint: Annotated[str, Field(max_length=500), AfterValidator(_clean_text)] | None = None
    usage_record_id: UUID | None = None
    # Retrying a consume with the same key charges once.
    idempotency_key: Key | None = None


class Recharge(Request):
    amount: Credits
    description: Annotated[str, Field(max_length=500), AfterValidator(_clean_text)] = "admin recharge"
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


# --- usage -------------------------------------------------------------------------------------


class UsageCreate(Request):
    event_type: Label
    session_id: UUID | None = None
    trace_id: UUID | None = None
    endpoint: Annotated[str, Field(max_length=500), AfterValidator(_clean_text)] | None = None
    # Charged from the caller's balance in the same transaction that records the usage (402 if short).
    credits_charged: CreditsOrZero = Decimal(0)
    cost_usd: Usd = Decimal(0)
    calculation_method: Annotated[str, Field(max_length=100), AfterValidator(_clean_text)] | None = None
    tokens_used: Tokens | None = None
    prompt_tokens: Tokens = 0
    completion_tokens: Tokens = 0
    model_name: Annotated[str, Field(max_length=200), AfterValidator(_clean_text)] | None = None
    provider: Annotated[str, Field(max_length=100), AfterValidator(_clean_text)] | None = None
    tool_name: Annotated[str, Field(max_length=200), AfterValidator(_clean_text)] | None = None
    operation_name: Annotated[str, Field(max_length=200), AfterValidator(_clean_text)] | None = None
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


# --- sessions ----------------------------------------------------------------------------------

SessionStatus = Literal["active", "ended", "expired", "archived"]


class SessionCreate(Request):
    title: Name | None = None
    metadata: JsonObject = Field(default_factory=dict)


class SessionUpdate(Request):
    title: Name | None = None
    status: SessionStatus | None = None
    metadata: JsonObject | None = None
    session_summary: Annotated[str, Field(max_length=20_000), AfterValidator(_clean_text)] | None = None


class SessionQuery(Paging):
    active_only: bool = False


class MessageCreate(Request):
    role: Literal["user", "assistant", "system", "tool"]
    content: Annotated[str, Field(max_length=200_000), AfterValidator(_clean_text)] = ""
    message_type: Literal["chat", "tool_call", "tool_result", "system", "summary", "event"] = "chat"
    status: Literal["complete", "incomplete", "error"] = "complete"
    tool_calls: list[JsonObject] | None = Field(default=None, max_length=100)
    tool_call_id: Annotated[str, Field(max_length=200), AfterValidator(_clean_text)] | None = None
    metadata: JsonObject = Field(default_factory=dict)
    tokens_used: Tokens = 0
    cost_usd: Usd = Decimal(0)
    idempotency_key: Key | None = None

    @model_validator(mode="after")
    def _tool_messages_name_their_call(self) -> MessageCreate:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id")
        return self


class MessageQuery(Query):
    limit: int = Field(default=100, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class Message(BaseModel):
    id: str
    session_id: str
    role: str
    message_type: str
    content: str
    status: str
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    metadata: dict[str, Any]
    tokens_used: int
    cost_usd: float
    created_at: datetime


class Session(BaseModel):
    session_id: str
    user_id: str
    title: str | None
    status: str
    is_active: bool
    message_count: int
    total_tokens: int
    total_cost: float
    metadata: dict[str, Any]
    session_summary: str | None
    last_activity_at: datetime
    created_at: datetime


class SessionWithMessages(Session):
    messages: list[Message]


class SessionPage(BaseModel):
    sessions: list[Session]
    limit: int
    offset: int


class MessagePage(BaseModel):
    messages: list[Message]
    limit: int
    offset: int


class Deleted(BaseModel):
    deleted: bool
    id: str


class UserList(BaseModel):
    users: list[User]
    limit: int
    offset: int


# --- plans and billing -------------------------------------------------------------------------


class Checkout(Request):
    plan: Label


class CheckoutSession(BaseModel):
    session_id: str
    checkout_url: str
    plan: str


class Plan(BaseModel):
    plan: str
    name: str
    credits: float
    price_usd: float
    interval: str
    description: str
    recommended: bool
    purchasable: bool


class PlanList(BaseModel):
    plans: list[Plan]


class Subscription(BaseModel):
    id: str
    plan_type: str
    status: str
    credits_included: float
    current_period_start: datetime | None
    current_period_end: datetime | None
    canceled_at: datetime | None
    cancel_at_period_end: bool
    created_at: datetime


class CurrentSubscription(BaseModel):
    plan: str
    subscription_status: str
    subscription: Subscription | None


class WebhookResult(BaseModel):
    received: bool
    duplicate: bool
    event_id: str
    outcome: str | None = None
