"""Credits for tool calls: taken before the tool runs (402-equivalent error when short), refunded if it fails."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from isa.core.db import Database
from isa.mcp.envelope import ToolFailure
from isa.users import credits


class Billing:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def charge(self, user_id: str, tool: str, cost: Decimal) -> dict[str, Any] | None:
        """Take `cost` credits; None for free tools. The dict is the envelope's `billing` block."""
        if cost <= 0:
            return None
        charge_id = str(uuid.uuid4())
        try:
            async with self.db.transaction() as conn:
                entry = await credits.consume(
                    conn,
                    user_id,
                    cost,
                    description=f"MCP tool {tool}",
                    idempotency_key=f"mcp-tool:{charge_id}",
                    metadata={"tool": tool},
                )
        except credits.InsufficientCredits as exc:
            raise ToolFailure(
                "insufficient_credits", "insufficient_credits", exc.message, details=exc.details or {}
            ) from None
        return {
            "credits_charged": str(cost),
            "credits_remaining": str(entry.credits_after),
            "currency": "credits",
            "charge_id": charge_id,
        }

    async def refund(self, user_id: str, tool: str, charge: dict[str, Any] | None) -> None:
        """Give a failed call's credits back, once per charge."""
        if charge is None:
            return
        async with self.db.transaction() as conn:
            await credits.credit_once(
                conn,
                user_id,
                Decimal(charge["credits_charged"]),
                idempotency_key=f"mcp-refund:{charge['charge_id']}",
                kind="refund",
                description=f"MCP tool {tool} failed",
                metadata={"tool": tool},
            )
