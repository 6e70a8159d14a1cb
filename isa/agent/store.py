"""SQL of the agent: plans and their steps, paused runs (checkpoints), traces, and session search.

Every statement names the owning user; sessions and messages themselves go through `isa.users.sessions`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from isa.core.db import DictConnection, fetch_one

_PLAN_COLUMNS = "id::text AS plan_id, user_id, session_id::text, request, status, replans, summary, error, " \
    "created_at, updated_at, finished_at"  # fmt: skip
_STEP_COLUMNS = "step_key, position, title, instructions, depends_on, status, result, error, started_at, finished_at"


def as_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError, AttributeError):
        return None


# -- plans ------------------------------------------------------------------------------------


async def insert_plan(
    conn: DictConnection, user_id: str, session_id: str | None, request: str, steps: list[dict[str, Any]]
) -> dict[str, Any]:
    """A new plan with its steps; a session id that isn't the user's own is dropped."""
    if session_id is not None:
        cur = await conn.execute(
            "SELECT 1 FROM sessions WHERE id = %s::uuid AND user_id = %s", (as_uuid(session_id), user_id)
        )
        if as_uuid(session_id) is None or await cur.fetchone() is None:
            session_id = None
    cur = await conn.execute(
        f"INSERT INTO agent_plans (user_id, session_id, request) VALUES (%s, %s::uuid, %s) RETURNING {_PLAN_COLUMNS}",
        (user_id, session_id, request),
    )
    plan = await cur.fetchone()
    assert plan is not None
    await insert_steps(conn, user_id, plan["plan_id"], steps, first_position=0)
    return plan


async def insert_steps(
    conn: DictConnection, user_id: str, plan_id: str, steps: list[dict[str, Any]], first_position: int
) -> None:
    for offset, step in enumerate(steps):
        await conn.execute(
            """INSERT INTO agent_plan_steps (plan_id, user_id, step_key, position, title, instructions, depends_on)
               VALUES (%s::uuid, %s, %s, %s, %s, %s, %s)""",
            (
                plan_id,
                user_id,
                step["id"],
                first_position + offset,
                step["title"],
                step.get("instructions", ""),
                list(step.get("depends_on", [])),
            ),
        )


async def get_plan(conn: DictConnection, user_id: str, plan_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    """The user's plan with its steps in order; None for a foreign or unknown id."""
    if as_uuid(plan_id) is None:
        return None
    cur = await conn.execute(
        f"SELECT {_PLAN_COLUMNS} FROM agent_plans WHERE id = %s::uuid AND user_id = %s" + (" FOR UPDATE" * lock),
        (plan_id, user_id),
    )
    plan = await cur.fetchone()
    if plan is None:
        return None
    cur = await conn.execute(
        f"SELECT {_STEP_COLUMNS} FROM agent_plan_steps WHERE plan_id = %s::uuid AND user_id = %s ORDER BY position",
        (plan_id, user_id),
    )
    plan["steps"] = list(await cur.fetchall())
    return plan


async def set_plan_status(conn: DictConnection, user_id: str, plan_id: str, status: str) -> None:
    await conn.execute(
        """UPDATE agent_plans SET status = %s, error = NULL,
                  finished_at = CASE WHEN %s IN ('completed', 'failed') THEN now() ELSE NULL END
           WHERE id = %s::uuid AND user_id = %s""",
        (status, status, plan_id, user_id),
    )


async def set_step_status(
    conn: DictConnection,
    user_id: str,
    plan_id: str,
    step_key: str,
    status: str,
    *,
    result: str | None,
    error: str | None,
) -> None:
    """A step's new status: `result` None keeps its last result, `error` None clears its error (both required)."""
    await conn.execute(
        """UPDATE agent_plan_steps SET status = %s, result = COALESCE(%s, result), error = %s,
                  started_at = CASE WHEN %s = 'running' THEN COALESCE(started_at, now()) ELSE started_at END,
                  finished_at = CASE WHEN %s IN ('done', 'failed', 'superseded') THEN now() ELSE NULL END
           WHERE plan_id = %s::uuid AND user_id = %s AND step_key = %s""",
        (status, result, error, status, status, plan_id, user_id, step_key),
    )


async def supersede_pending(conn: DictConnection, user_id: str, plan_id: str) -> int:
    """Mark the steps a replan replaces; returns the next free position."""
    await conn.execute(
        """UPDATE agent_plan_steps SET status = 'superseded', finished_at = now()
           WHERE plan_id = %s::uuid AND user_id = %s AND status IN ('pending', 'paused')""",
        (plan_id, user_id),
    )
    await conn.execute(
        "UPDATE agent_plans SET replans = replans + 1 WHERE id = %s::uuid AND user_id = %s", (plan_id, user_id)
    )
    row = await fetch_one(
        conn,
        "SELECT COALESCE(max(position) + 1, 0) AS next FROM agent_plan_steps WHERE plan_id = %s::uuid AND user_id = %s",
        (plan_id, user_id),
    )
    return int(row["next"]) if row else 0


# -- paused runs ------------------------------------------------------------------------------


async def save_checkpoint(
    conn: DictConnection, user_id: str, thread_id: str, state: dict[str, Any], parent: str | None, status: str
) -> str:
    checkpoint_id = uuid.uuid4().hex
    await conn.execute(
        """INSERT INTO checkpoints (user_id, thread_id, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata)
           VALUES (%s, %s, %s, %s, 'isa.agent.run', %s, %s)""",
        (user_id, thread_id, checkpoint_id, parent, Jsonb(state), Jsonb({"status": status, "source": "isa.agent"})),
    )
    return checkpoint_id


async def claim_paused(conn: DictConnection, user_id: str, thread_id: str) -> dict[str, Any] | None:
    """Take the thread's newest paused run for resuming (at most one caller gets it)."""
    return await fetch_one(
        conn,
        """UPDATE checkpoints SET metadata = metadata || '{"status": "resuming"}'::jsonb
           WHERE id = (SELECT id FROM checkpoints
                       WHERE user_id = %s AND thread_id = %s AND metadata ->> 'status' = 'interrupted'
                       ORDER BY created_at DESC LIMIT 1 FOR UPDATE SKIP LOCKED)
           RETURNING checkpoint_id, checkpoint""",
        (user_id, thread_id),
    )


async def set_checkpoint_status(conn: DictConnection, user_id: str, checkpoint_id: str, status: str) -> None:
    await conn.execute(
        """UPDATE checkpoints SET metadata = metadata || jsonb_build_object('status', %s::text)
           WHERE user_id = %s AND checkpoint_id = %s""",
        (status, user_id, checkpoint_id),
    )


async def abandon_paused(conn: DictConnection, user_id: str, thread_id: str) -> None:
    """A new message in the session: a run still waiting for a human there is given up."""
    await conn.execute(
        """UPDATE checkpoints SET metadata = metadata || '{"status": "abandoned"}'::jsonb
           WHERE user_id = %s AND thread_id = %s AND metadata ->> 'status' = 'interrupted'""",
        (user_id, thread_id),
    )


async def paused_view(conn: DictConnection, user_id: str, thread_id: str) -> dict[str, Any] | None:
    return await fetch_one(
        conn,
        """SELECT checkpoint -> 'pending' AS pending, created_at FROM checkpoints
           WHERE user_id = %s AND thread_id = %s AND metadata ->> 'status' = 'interrupted'
           ORDER BY created_at DESC LIMIT 1""",
        (user_id, thread_id),
    )


# -- traces -----------------------------------------------------------------------------------


@dataclass
class Span:
    name: str
    kind: str
    started_at: datetime
    ended_at: datetime
    duration_ms: float
    status: str = "ok"
    attributes: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


async def write_trace(
    conn: DictConnection,
    *,
    user_id: str,
    session_id: str,
    request_id: str,
    name: str,
    status: str,
    started_at: datetime,
    ended_at: datetime,
    tokens: int,
    metadata: dict[str, Any],
    error: str | None,
    spans: list[Span],
) -> str:
    row = await fetch_one(
        conn,
        """INSERT INTO traces (user_id, session_id, thread_id, request_id, name, service_name, status,
                               started_at, ended_at, duration_ms, total_tokens, metadata, error_message)
           VALUES (%s, %s::uuid, %s, %s, %s, 'isa.agent', %s, %s, %s, %s, %s, %s, %s) RETURNING id::text""",
        (
            user_id,
            session_id,
            session_id,
            request_id,
            name,
            status,
            started_at,
            ended_at,
            max(0.0, (ended_at - started_at).total_seconds() * 1000),
            tokens,
            Jsonb(metadata),
            error,
        ),
    )
    assert row is not None
    trace_id = str(row["id"])
    async with conn.cursor() as cursor:
        await cursor.executemany(
            """INSERT INTO spans (trace_id, name, kind, service_name, status, started_at, ended_at, duration_ms,
                                  attributes, error_message)
               VALUES (%s::uuid, %s, %s, 'isa.agent', %s, %s, %s, %s, %s, %s)""",
            [
                (
                    trace_id,
                    s.name,
                    s.kind,
                    s.status,
                    s.started_at,
                    s.ended_at,
                    s.duration_ms,
                    Jsonb(s.attributes),
                    s.error,
                )
                for s in spans
            ],
        )
    return trace_id


_VIEW_RESULT_CHARS = 2000


def plan_view(plan: dict[str, Any]) -> dict[str, Any]:
    steps = [
        {
            "id": s["step_key"],
            "title": s["title"],
            "instructions": s["instructions"],
            "depends_on": list(s["depends_on"]),
            "status": s["status"],
            "result": (s["result"] or "")[:_VIEW_RESULT_CHARS] or None,
            "error": s["error"],
            "started_at": s["started_at"],
            "finished_at": s["finished_at"],
        }
        for s in plan["steps"]
    ]
    live = [s for s in steps if s["status"] != "superseded"]
    return {
        "plan_id": plan["plan_id"],
        "status": plan["status"],
        "request": plan["request"],
        "session_id": plan["session_id"],
        "replans": plan["replans"],
        "progress": {"done": sum(s["status"] == "done" for s in live), "total": len(live)},
        "steps": steps,
        "created_at": plan["created_at"],
        "updated_at": plan["updated_at"],
        "finished_at": plan["finished_at"],
    }
