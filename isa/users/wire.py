"""The wire types every users sub-package shares: clean text and JSON, amounts, and the request/query bases."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

MAX_CREDITS = Decimal("1000000000")
MAX_USD = Decimal("1000000")
MAX_TOKENS = 1_000_000_000
MAX_JSON_DEPTH = 16


def clean_text(value: str) -> str:
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
        return clean_text(value)
    if isinstance(value, dict):
        for key, item in value.items():
            clean_text(str(key))
            _clean_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _clean_json(item, depth + 1)
    return value


Text = Annotated[str, AfterValidator(clean_text)]
Name = Annotated[str, Field(max_length=200), AfterValidator(clean_text)]
Label = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(clean_text)]
Key = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(clean_text)]
# Deliberately loose (one @, no spaces): the address is the user's own contact detail, not an identity.
Email = Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"), AfterValidator(clean_text)]
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
