"""Usage records: the public face of `user_usage_records` for other domains (owner: `isa.users.store`).

The model gateway records the calls it served here, in its own transaction, next to the charge it takes
through `isa.users.credits`; the users API (`POST /api/v1/users/me/usage`) writes through `UsersService`.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Protocol

from isa.core.db import DictConnection
from isa.users.accounts import store


class BillableCall(Protocol):
    """What a usage row says about one call another domain made (the model gateway's `Usage` is one)."""

    user_id: str
    request_id: str
    endpoint: str
    event_type: str
    cost_usd: Decimal
    calculation_method: str
    prompt_tokens: int
    completion_tokens: int
    model_name: str
    provider: str
    operation: str


async def record_call(conn: DictConnection, call: BillableCall, credits: Decimal, metadata: dict[str, Any]) -> str:
    """Insert the usage row of a call already made, charged `credits`, in the caller's transaction; its id."""
    return await store.insert_gateway_usage(
        conn,
        {
            "user_id": call.user_id,
            "request_id": call.request_id,
            "endpoint": call.endpoint,
            "event_type": call.event_type,
            "credits": credits,
            "cost": call.cost_usd,
            "method": call.calculation_method,
            "total": call.prompt_tokens + call.completion_tokens,
            "prompt": call.prompt_tokens,
            "completion": call.completion_tokens,
            "model_name": call.model_name,
            "provider": call.provider,
            "operation": call.operation,
            "metadata": json.dumps(metadata),
        },
    )
