"""SQL for the model gateway: the models catalogue, daily model statistics, usage summaries (read-only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from isa.core.db import DictConnection


@dataclass
class Usage:
    """One billable gateway call, as recorded."""

    user_id: str
    request_id: str
    endpoint: str
    event_type: str  # model.chat | model.embedding | model.image | model.transcription
    model_group: str
    deployment_id: str
    model_name: str
    provider: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    units: Decimal = Decimal(0)  # images, audio files: what non-token calls are counted in
    cost_usd: Decimal = Decimal(0)
    calculation_method: str = "litellm_cost_map"
    credits_due: Decimal = Decimal(0)
    latency_ms: float = 0.0
    status: str = "completed"  # completed | client_disconnected | provider_error
    operation: str = ""  # chat.completions, embeddings, images.generations, audio.transcriptions
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


async def ensure_model(
    conn: DictConnection, model_name: str, provider: str, model_type: str, dimensions: int | None
) -> str:
    """The `models` row for a provider model (created on first use), for daily statistics."""
    cur = await conn.execute(
        "INSERT INTO models (model_name, provider, model_type, embedding_dimensions, display_name) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (provider, model_name) DO NOTHING RETURNING id",
        (model_name, provider, model_type, dimensions, model_name),
    )
    row = await cur.fetchone()
    if row is None:
        cur = await conn.execute(
            "SELECT id FROM models WHERE provider = %s AND model_name = %s", (provider, model_name)
        )
        row = await cur.fetchone()
    assert row is not None
    return str(row["id"])


_STATS = """
INSERT INTO model_statistics AS s
    (model_id, stat_date, total_requests, successful_requests, failed_requests, input_tokens, output_tokens,
     total_tokens, total_units, total_cost_usd, total_latency_ms)
VALUES (%(model_id)s, (now() AT TIME ZONE 'UTC')::date, %(requests)s, %(ok)s, %(failed)s, %(input)s, %(output)s,
        %(input)s + %(output)s, %(units)s, %(cost)s, %(latency)s)
ON CONFLICT (model_id, stat_date) DO UPDATE SET
    total_requests = s.total_requests + EXCLUDED.total_requests,
    successful_requests = s.successful_requests + EXCLUDED.successful_requests,
    failed_requests = s.failed_requests + EXCLUDED.failed_requests,
    input_tokens = s.input_tokens + EXCLUDED.input_tokens,
    output_tokens = s.output_tokens + EXCLUDED.output_tokens,
    total_tokens = s.total_tokens + EXCLUDED.total_tokens,
    total_units = s.total_units + EXCLUDED.total_units,
    total_cost_usd = s.total_cost_usd + EXCLUDED.total_cost_usd,
    total_latency_ms = s.total_latency_ms + EXCLUDED.total_latency_ms
"""


@dataclass
class StatsDelta:
    """What some calls add to one model's daily statistics (summed, so a batch updates the row once)."""

    requests: int = 0
    ok: int = 0
    failed: int = 0
    input: int = 0
    output: int = 0
    units: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    latency: float = 0.0

    def add(self, usage: Usage | None, *, failed: bool) -> None:
        self.requests += 1
        self.ok += 0 if failed or usage is None or usage.status != "completed" else 1
        self.failed += 1 if failed else 0
        if usage is not None:
            self.input += usage.prompt_tokens
            self.output += usage.completion_tokens
            self.units += usage.units
            self.cost += usage.cost_usd
            self.latency += usage.latency_ms


async def add_statistics(conn: DictConnection, model_id: str, delta: StatsDelta) -> None:
    await conn.execute(
        _STATS,
        {
            "model_id": model_id,
            "requests": delta.requests,
            "ok": delta.ok,
            "failed": delta.failed,
            "input": delta.input,
            "output": delta.output,
            "units": delta.units,
            "cost": delta.cost,
            "latency": delta.latency,
        },
    )


_GROUPS = {
    "model": "model_name",
    "provider": "provider",
    "day": "to_char((created_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD')",
    "event_type": "event_type",
    "user": "user_id",
}


async def usage_summary(
    conn: DictConnection, user_id: str | None, since: datetime, group_by: str, limit: int = 500
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Totals and a breakdown of gateway usage since `since`; `user_id` None means every user."""
    key = _GROUPS[group_by]
    where = "created_at >= %(since)s AND event_type LIKE 'model.%%'"
    if user_id is not None:
        where += " AND user_id = %(user_id)s"
    params = {"since": since, "user_id": user_id, "limit": limit}
    aggregates = (
        "count(*) AS requests, coalesce(sum(prompt_tokens), 0) AS prompt_tokens, "
        "coalesce(sum(completion_tokens), 0) AS completion_tokens, coalesce(sum(total_tokens), 0) AS total_tokens, "
        "coalesce(sum(cost_usd), 0) AS cost_usd, coalesce(sum(credits_charged), 0) AS credits"
    )
    base = f"FROM user_usage_records WHERE {where}"
    cur = await conn.execute(f"SELECT {aggregates} {base}", params)
    totals = await cur.fetchone() or {}
    cur = await conn.execute(
        f"SELECT {key} AS key, {aggregates} {base} GROUP BY 1 ORDER BY 1 LIMIT %(limit)s",
        params,
    )
    return dict(totals), list(await cur.fetchall())


async def model_statistics(conn: DictConnection, since: datetime) -> list[dict[str, Any]]:
    cur = await conn.execute(
        "SELECT m.model_name, m.provider, m.model_type, s.stat_date, s.total_requests, s.successful_requests, "
        "s.failed_requests, s.input_tokens, s.output_tokens, s.total_tokens, s.total_units, s.total_cost_usd, "
        "CASE WHEN s.total_requests > 0 THEN s.total_latency_ms / s.total_requests ELSE 0 END AS avg_latency_ms "
        "FROM model_statistics s JOIN models m ON m.id = s.model_id "
        "WHERE s.stat_date >= (%s AT TIME ZONE 'UTC')::date ORDER BY s.stat_date DESC, m.provider, m.model_name",
        (since,),
    )
    return list(await cur.fetchall())
