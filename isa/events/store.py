"""SQL of the event service: events (idempotent on user + key) and user_tasks (leased work queue)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from isa.core.db import fetch_all, fetch_one

Conn = AsyncConnection[DictRow]
EVENT_COLUMNS = (
    "id, user_id, task_id, event_type, event_data, source, priority, idempotency_key, payload_hash, status, "
    "attempts, processed_at, agent_response, processing_result, last_error, created_at, updated_at"
)
TASK_COLUMNS = (
    "id, user_id, task_type, name, description, config, state, callback_url, status, interval_seconds, "
    "last_check, next_check, run_count, consecutive_failures, last_error, lease_owner, lease_expires_at, "
    "created_at, updated_at"
)


async def try_key_lock(conn: Conn, user_id: str, key: str) -> bool:
    """Hold (for this transaction) the lock of one idempotency key; False while another request holds it."""
    row = await fetch_one(
        conn,
        "SELECT pg_try_advisory_xact_lock(hashtextextended('isa.events:' || %s || ':' || %s, 0)) AS ok",
        (user_id, key),
    )
    return bool(row and row["ok"])


async def event_by_key(conn: Conn, user_id: str, key: str) -> dict[str, Any] | None:
    return await _event(conn, "user_id = %s AND idempotency_key = %s", (user_id, key))


async def insert_event(
    conn: Conn,
    *,
    user_id: str,
    event_type: str,
    data: dict[str, Any],
    source: str,
    priority: int,
    key: str | None,
    payload_hash: str | None,
    task_id: str | None,
    needs_agent: bool,
) -> dict[str, Any] | None:
    """Insert one event; None when (user, key) already exists (the caller then replays that row)."""
    return await fetch_one(
        conn,
        f"""INSERT INTO events (user_id, task_id, event_type, event_data, source, priority, idempotency_key,
                                payload_hash, status, processed_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN NULL ELSE now() END)
            ON CONFLICT (user_id, idempotency_key) DO NOTHING RETURNING {EVENT_COLUMNS}""",
        (
            user_id,
            task_id,
            event_type,
            Jsonb(data),
            source,
            priority,
            key,
            payload_hash,
            "pending" if needs_agent else "processed",
            needs_agent,
        ),
    )


async def get_event(conn: Conn, user_id: str, event_id: str) -> dict[str, Any] | None:
    return await _event(conn, "id = %s AND user_id = %s", (event_id, user_id))


async def _event(conn: Conn, where: str, params: tuple[str, str]) -> dict[str, Any] | None:
    return await fetch_one(conn, f"SELECT {EVENT_COLUMNS} FROM events WHERE {where}", params)


async def list_events(
    conn: Conn,
    user_id: str,
    *,
    event_type: str | None,
    task_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        f"""SELECT {EVENT_COLUMNS} FROM events
            WHERE user_id = %(u)s
              AND (%(t)s::text IS NULL OR event_type = %(t)s)
              AND (%(k)s::uuid IS NULL OR task_id = %(k)s)
              AND (%(s)s::timestamptz IS NULL OR created_at >= %(s)s)
              AND (%(e)s::timestamptz IS NULL OR created_at < %(e)s)
            ORDER BY created_at DESC, id DESC LIMIT %(l)s OFFSET %(o)s""",
        {"u": user_id, "t": event_type, "k": task_id, "s": since, "e": until, "l": limit, "o": offset},
    )


async def claim_events(conn: Conn, now: datetime, lease: timedelta, limit: int) -> list[dict[str, Any]]:
    """Take pending events (or ones whose worker died) for processing; lease_expires_at also holds the backoff."""
    return await fetch_all(
        conn,
        f"""UPDATE events SET status = 'processing', attempts = attempts + 1, lease_expires_at = %(until)s
            WHERE id IN (SELECT id FROM events
                         WHERE status IN ('pending', 'processing')
                           AND (lease_expires_at IS NULL OR lease_expires_at <= %(now)s)
                         ORDER BY priority DESC, created_at LIMIT %(n)s FOR UPDATE SKIP LOCKED)
            RETURNING {EVENT_COLUMNS}""",
        {"now": now, "until": now + lease, "n": limit},
    )


async def claim_event(conn: Conn, event_id: str, now: datetime, lease: timedelta) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        f"""UPDATE events SET status = 'processing', attempts = attempts + 1, lease_expires_at = %s
            WHERE id = %s AND status = 'pending' AND (lease_expires_at IS NULL OR lease_expires_at <= %s)
            RETURNING {EVENT_COLUMNS}""",
        (now + lease, event_id, now),
    )


async def finish_event(conn: Conn, event_id: str, attempts: int, answer: str | None, result: dict[str, Any]) -> bool:
    """Record the outcome, only if we still hold the claim of this attempt (never a second 'processed')."""
    cur = await conn.execute(
        """UPDATE events SET status = 'processed', processed_at = now(), agent_response = %s,
                             processing_result = %s, lease_expires_at = NULL, last_error = NULL
           WHERE id = %s AND status = 'processing' AND attempts = %s""",
        (answer, Jsonb(result), event_id, attempts),
    )
    return cur.rowcount == 1


async def fail_event(conn: Conn, event_id: str, attempts: int, error: str, retry_at: datetime | None) -> None:
    """Back off (pending again at `retry_at`) or give up (failed) after an unsuccessful attempt."""
    await conn.execute(
        """UPDATE events SET status = CASE WHEN %(r)s::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
                             processed_at = CASE WHEN %(r)s::timestamptz IS NULL THEN now() END,
                             lease_expires_at = %(r)s, last_error = %(e)s
           WHERE id = %(id)s AND status = 'processing' AND attempts = %(a)s""",
        {"r": retry_at, "e": error[:500], "id": event_id, "a": attempts},
    )


async def task_callback_url(conn: Conn, task_id: str | None, user_id: str) -> str | None:
    if task_id is None:
        return None
    row = await fetch_one(
        conn, "SELECT callback_url FROM user_tasks WHERE id = %s AND user_id = %s", (task_id, user_id)
    )
    return None if row is None else row["callback_url"]


# --- tasks -----------------------------------------------------------------------------------------------------


async def insert_task(
    conn: Conn, user_id: str, values: dict[str, Any], key: str | None = None, payload_hash: str | None = None
) -> tuple[dict[str, Any], str | None]:
    """(the new task, None), or with an idempotency key already used: (that task, its payload hash)."""
    row = await fetch_one(
        conn,
        f"""INSERT INTO user_tasks (user_id, task_type, name, description, config, callback_url,
                                    interval_seconds, next_check, idempotency_key, payload_hash)
            VALUES (%(u)s, %(task_type)s, %(name)s, %(description)s, %(config)s, %(callback_url)s,
                    %(interval_seconds)s, %(next_check)s, %(key)s, %(hash)s)
            ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
            RETURNING {TASK_COLUMNS}""",
        {"u": user_id, **values, "config": Jsonb(values["config"]), "key": key, "hash": payload_hash},
    )
    if row is not None:
        return row, None
    # The key was used before (a concurrent insert with it has committed by now: the conflict waited for it).
    existing = await fetch_one(
        conn,
        f"SELECT {TASK_COLUMNS}, payload_hash FROM user_tasks WHERE user_id = %s AND idempotency_key = %s",
        (user_id, key),
    )
    assert existing is not None
    return existing, str(existing.pop("payload_hash"))


async def get_task(conn: Conn, user_id: str, task_id: str) -> dict[str, Any] | None:
    return await fetch_one(
        conn, f"SELECT {TASK_COLUMNS} FROM user_tasks WHERE id = %s AND user_id = %s", (task_id, user_id)
    )


async def list_tasks(
    conn: Conn, user_id: str, status: str | None, limit: int, offset: int = 0, task_type: str | None = None
) -> list[dict[str, Any]]:
    return await fetch_all(
        conn,
        f"""SELECT {TASK_COLUMNS} FROM user_tasks
            WHERE user_id = %(u)s AND (%(s)s::text IS NULL OR status = %(s)s)
              AND (%(t)s::text IS NULL OR task_type = %(t)s)
            ORDER BY created_at DESC, id DESC LIMIT %(l)s OFFSET %(o)s""",
        {"u": user_id, "s": status, "t": task_type, "l": limit, "o": offset},
    )


async def make_due_now(conn: Conn, user_id: str, task_id: str, now: datetime, gap: timedelta) -> dict[str, Any] | None:
    """Set an active, unleased task due at `now` if its last run is at least `gap` ago; None when it isn't eligible."""
    return await fetch_one(
        conn,
        f"""UPDATE user_tasks SET next_check = %(now)s
            WHERE id = %(id)s AND user_id = %(u)s AND status = 'active'
              AND (lease_expires_at IS NULL OR lease_expires_at <= %(now)s)
              AND (last_check IS NULL OR last_check <= %(since)s)
            RETURNING {TASK_COLUMNS}""",
        {"now": now, "id": task_id, "u": user_id, "since": now - gap},
    )


async def set_task_status(
    conn: Conn, user_id: str, task_id: str, status: str, next_check: datetime | None
) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        f"""UPDATE user_tasks SET status = %s, next_check = COALESCE(%s, next_check)
            WHERE id = %s AND user_id = %s RETURNING {TASK_COLUMNS}""",
        (status, next_check, task_id, user_id),
    )


async def delete_task(conn: Conn, user_id: str, task_id: str) -> bool:
    cur = await conn.execute("DELETE FROM user_tasks WHERE id = %s AND user_id = %s", (task_id, user_id))
    return cur.rowcount == 1


async def claim_tasks(conn: Conn, worker: str, now: datetime, lease: timedelta, limit: int) -> list[dict[str, Any]]:
    """Lease due tasks: active, next_check reached, and nobody's live lease on them (SKIP LOCKED across workers)."""
    return await fetch_all(
        conn,
        f"""UPDATE user_tasks SET lease_owner = %(w)s, lease_expires_at = %(until)s
            WHERE id IN (SELECT id FROM user_tasks
                         WHERE status = 'active' AND next_check <= %(now)s
                           AND (lease_expires_at IS NULL OR lease_expires_at <= %(now)s)
                         ORDER BY next_check LIMIT %(n)s FOR UPDATE SKIP LOCKED)
            RETURNING {TASK_COLUMNS}""",
        {"w": worker, "now": now, "until": now + lease, "n": limit},
    )


async def finish_task_run(
    conn: Conn,
    task_id: str,
    worker: str,
    *,
    now: datetime,
    next_check: datetime,
    state: dict[str, Any],
    error: str | None,
) -> bool:
    """Advance a leased task to its next run; False if our lease was lost (another worker took over)."""
    cur = await conn.execute(
        """UPDATE user_tasks SET last_check = %(now)s, next_check = %(next)s, state = %(state)s,
                  run_count = run_count + 1, last_error = %(err)s,
                  consecutive_failures = CASE WHEN %(err)s::text IS NULL THEN 0 ELSE consecutive_failures + 1 END,
                  lease_owner = NULL, lease_expires_at = NULL
           WHERE id = %(id)s AND lease_owner = %(w)s""",
        {"now": now, "next": next_check, "state": Jsonb(state), "err": error, "id": task_id, "w": worker},
    )
    return cur.rowcount == 1


async def counts(conn: Conn, user_id: str) -> dict[str, Any]:
    row = await fetch_one(
        conn,
        """SELECT (SELECT count(*) FROM user_tasks WHERE user_id = %(u)s AND status = 'active') AS active_tasks,
                  (SELECT count(*) FROM user_tasks WHERE user_id = %(u)s) AS tasks,
                  (SELECT count(*) FROM events WHERE user_id = %(u)s) AS events,
                  (SELECT count(*) FROM events WHERE user_id = %(u)s AND status IN ('pending', 'processing'))
                    AS events_pending,
                  (SELECT count(*) FROM events WHERE user_id = %(u)s AND status = 'failed') AS events_failed""",
        {"u": user_id},
    )
    return dict(row or {})
