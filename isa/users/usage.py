"""Usage records: the public face of `user_usage_records` for other domains (owner: `isa.users.store`).

The model gateway records the calls it served here, in its own transaction, next to the charge it takes
through `isa.users.credits`; the users API (`POST /api/v1/users/me/usage`) writes through `UsersService`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from isa.core.db import DictConnection
from isa.users import store


@dataclass(frozen=True)
class GatewayUsage:
    """One call the model gateway made, as it is recorded."""

    user_id: str
    request_id: str
    endpoint: str
    event_type: str
    credits_charged: Decimal
    cost_usd: Decimal
    calculation_method: str
    prompt_tokens: int
    completion_tokens: int
    model_name: str
    provider: str
    operation: str
    metadata: dict[str, Any] = field(default_factory=dict)


async def record_gateway_usage(conn: DictConnection, usage: GatewayUsage) -> str:
    """Insert the usage row in the caller's transaction; its id."""
    return await store.insert_gateway_usage(
        conn,
        {
            "user_id": usage.user_id,
            "request_id": usage.request_id,
            "endpoint": usage.endpoint,
            "event_type": usage.event_type,
            "credits": usage.credits_charged,
            "cost": usage.cost_usd,
            "method": usage.calculation_method,
            "total": usage.prompt_tokens + usage.completion_tokens,
            "prompt": usage.prompt_tokens,
            "completion": usage.completion_tokens,
            "model_name": usage.model_name,
            "provider": usage.provider,
            "operation": usage.operation,
            "metadata": json.dumps(usage.metadata),
        },
    )
