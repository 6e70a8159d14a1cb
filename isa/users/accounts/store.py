"""SQL for users, the credit history and usage records. Every query names its owner in the WHERE clause."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from isa.core.db import DictConnection, fetch_all, fetch_one, fetch_page
from isa.users import wire
from isa.users.accounts import schemas
from isa.users.credits import schemas as credit_schemas

# A user's plan: the newest live platform subscription, else the default plan (a parameter).
_USER = """
SELECT u.user_id, u.email, u.name, u.phone, u.credits_remaining AS credits, u.credits_total,
       u.subscription_status, u.is_active, u.preferences, u.created_at,
       coalesce((SELECT s.plan_type FROM subscriptions s
                 WHERE s.user_id = u.user_id AND s.subscription_scope = 'platform'
                   AND s.status IN ('active', 'trialing', 'past_due')
                 ORDER BY s.created_at DESC LIMIT 1), %(default_plan)s) AS plan
FROM users u
"""


def as_bound(value: date | datetime | None, *, end: bool = False) -> datetime | None:
    """A date range bound: a bare end date includes that whole day."""
    if value is None or isinstance(value, datetime):
        return value
    if end and value == date.max:
        return None
    return datetime.combine(value + timedelta(days=1) if end else value, time.min, tzinfo=UTC)


async def get_user(conn: DictConnection, user_id: str, default_plan: str) -> dict[str, Any] | None:
    return await fetch_one(
        conn, _USER + "WHERE u.user_id = %(user_id)s", {"user_id": user_id, "default_plan": default_plan}
    )


async def email_of(conn: DictConnection, user_id: str) -> dict[str, Any] | None:
    """The user's contact address ({"email": ...}, the value may be None); None when there is no such user."""
    return await fetch_one(conn, "SELECT email FROM users WHERE user_id = %s", (user_id,))


async def list_users(conn: DictConnection, default_plan: str, limit: int, offset: int) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        _USER + "ORDER BY u.created_at, u.user_id LIMIT %(limit)s OFFSET %(offset)s",
        {"default_plan": default_plan, "limit": limit, "offset": offset},
    )


async def upsert_user(conn: DictConnection, user_id: str, email: str | None, name: str | None) -> bool:
    """Create the row, or fill in an email/name it lacks; True when this call created it."""
    row = await fetch_one(
        conn,
        """INSERT INTO users (user_id, email, name) VALUES (%s, %s, %s)
           ON CONFLICT (user_id) DO UPDATE
               SET email = coalesce(users.email, EXCLUDED.email), name = coalesce(users.name, EXCLUDED.name)
           RETURNING (xmax = 0) AS created""",
        (user_id, email, name),
    )
    return bool(row and row["created"])


async def update_profile(conn: DictConnection, user_id: str, changes: dict[str, Any]) -> bool:
    """Set only the whitelisted profile columns present in `changes`."""
    allowed = {"email", "name", "phone", "preferences"}
    columns = [c for c in changes if c in allowed]
    if not columns:
        cur = await conn.execute("SELECT 1 FROM users WHERE user_id = %s", (user_id,))
        return await cur.fetchone() is not None
    values = [Jsonb(changes[c]) if c == "preferences" else changes[c] for c in columns]
    assignments = ", ".join(f"{c} = %s" for c in columns)
    cur = await conn.execute(f"UPDATE users SET {assignments} WHERE user_id = %s", (*values, user_id))
    return cur.rowcount == 1


async def transaction_by_key(conn: DictConnection, user_id: str, key: str) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        "SELECT id, credits_amount, credits_before, credits_after, description, usage_record_id, metadata "
        "FROM user_credit_transactions WHERE user_id = %s AND idempotency_key = %s",
        (user_id, key),
    )


def _range_filter(query: wire.DateRange | schemas.StatsQuery, column: str = "created_at") -> tuple[str, list[Any]]:
    sql, args = "", []
    if (start := as_bound(query.start_date)) is not None:
        sql += f" AND {column} >= %s"
        args.append(start)
    if (end := as_bound(query.end_date, end=True)) is not None:
        sql += f" AND {column} < %s"
        args.append(end)
    return sql, args


async def _owned_page(
    conn: DictConnection, columns: str, table: str, user_id: str, query: wire.DateRange, kind: tuple[str, str | None]
) -> tuple[list[dict[str, Any]], int]:
    """A page of the user's rows of `table`, newest first, in the query's date range and of one kind if asked."""
    where, args = _range_filter(query)
    column, value = kind
    if value:
        where += f" AND {column} = %s"
        args.append(value)
    base = f"FROM {table} WHERE user_id = %s{where}"
    return await fetch_page(conn, columns, base, (user_id, *args), "created_at DESC, id", query.limit, query.offset)


async def list_transactions(
    conn: DictConnection, user_id: str, query: credit_schemas.TransactionQuery
) -> tuple[list[dict[str, Any]], int]:
    kind = ("transaction_type", query.transaction_type)
    return await _owned_page(conn, _TRANSACTION_COLUMNS, "user_credit_transactions", user_id, query, kind)


_TRANSACTION_COLUMNS = (
    "id::text, transaction_type, credits_amount, credits_before, credits_after, usage_record_id::text, "
    "description, metadata, created_at"
)


_USAGE_COLUMNS = (
    "id::text, session_id::text, trace_id::text, endpoint, event_type, credits_charged, cost_usd, "
    "calculation_method, total_tokens, prompt_tokens, completion_tokens, model_name, provider, tool_name, "
    "operation_name, billing_metadata, created_at"
)


async def insert_usage(conn: DictConnection, user_id: str, body: schemas.UsageCreate) -> dict[str, Any] | None:
    """Insert a usage record; None when the caller's idempotency key was used before."""
    return await fetch_one(
        conn,
        f"""INSERT INTO user_usage_records
               (user_id, session_id, trace_id, idempotency_key, endpoint, event_type, credits_charged, cost_usd,
                calculation_method, total_tokens, prompt_tokens, completion_tokens, model_name, provider,
                tool_name, operation_name, billing_metadata, request_data, response_data)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (user_id, idempotency_key) DO NOTHING
            RETURNING {_USAGE_COLUMNS}""",
        (
            user_id,
            body.session_id,
            body.trace_id,
            body.idempotency_key,
            body.endpoint,
            body.event_type,
            body.credits_charged,
            body.cost_usd,
            body.calculation_method,
            body.total_tokens,
            body.prompt_tokens,
            body.completion_tokens,
            body.model_name,
            body.provider,
            body.tool_name,
            body.operation_name,
            Jsonb(body.billing_metadata),
            None if body.request_data is None else Jsonb(body.request_data),
            None if body.response_data is None else Jsonb(body.response_data),
        ),
    )


_INSERT_GATEWAY_USAGE = """
INSERT INTO user_usage_records
    (user_id, request_id, endpoint, event_type, credits_charged, cost_usd, calculation_method, total_tokens,
     prompt_tokens, completion_tokens, model_name, provider, operation_name, billing_metadata)
VALUES (%(user_id)s, %(request_id)s, %(endpoint)s, %(event_type)s, %(credits)s, %(cost)s, %(method)s, %(total)s,
        %(prompt)s, %(completion)s, %(model_name)s, %(provider)s, %(operation)s, %(metadata)s::jsonb)
RETURNING id
"""


async def insert_gateway_usage(conn: DictConnection, params: dict[str, Any]) -> str:
    """A usage row for a call the model gateway already made (no idempotency key: one row per call)."""
    row = await fetch_one(conn, _INSERT_GATEWAY_USAGE, params)
    assert row is not None
    return str(row["id"])


async def usage_by_key(conn: DictConnection, user_id: str, key: str) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        f"SELECT {_USAGE_COLUMNS} FROM user_usage_records WHERE user_id = %s AND idempotency_key = %s",
        (user_id, key),
    )


async def list_usage(conn: DictConnection, user_id: str, query: schemas.UsageQuery) -> tuple[list[dict[str, Any]], int]:
    kind = ("event_type", query.event_type)
    return await _owned_page(conn, _USAGE_COLUMNS, "user_usage_records", user_id, query, kind)


# Buckets are computed in one scan with GROUPING SETS; the day is the UTC calendar day.
_STATS = """
SELECT GROUPING(day) = 0 AS by_day, GROUPING(model_name) = 0 AS by_model,
       GROUPING(provider) = 0 AS by_provider, GROUPING(event_type) = 0 AS by_event_type,
       day::text AS day, model_name, provider, event_type,
       count(*) AS requests, coalesce(sum(credits_charged), 0) AS credits,
       coalesce(sum(cost_usd), 0) AS cost_usd, coalesce(sum(total_tokens), 0) AS tokens
FROM (SELECT *, (created_at AT TIME ZONE 'UTC')::date AS day FROM user_usage_records
      WHERE user_id = %s{where}) r
GROUP BY GROUPING SETS ((), (day), (model_name), (provider), (event_type))
ORDER BY 5, 6, 7, 8
"""


async def usage_stats(conn: DictConnection, user_id: str, query: schemas.StatsQuery) -> dict[str, Any]:
    where, args = _range_filter(query)
    cur = await conn.execute(_STATS.format(where=where), (user_id, *args))
    out: dict[str, Any] = {
        "totals": {"key": None, "requests": 0, "credits": 0, "cost_usd": 0, "tokens": 0},
        "by_day": [],
        "by_model": [],
        "by_provider": [],
        "by_event_type": [],
    }
    for row in await cur.fetchall():
        bucket = {k: row[k] for k in ("requests", "credits", "cost_usd", "tokens")}
        for kind, column in (("by_day", "day"), ("by_model", "model_name"), ("by_provider", "provider")):
            if row[kind]:
                out[kind].append({"key": row[column], **bucket})
                break
        else:
            if row["by_event_type"]:
                out["by_event_type"].append({"key": row["event_type"], **bucket})
            else:
                out["totals"] = {"key": None, **bucket}
    return out
