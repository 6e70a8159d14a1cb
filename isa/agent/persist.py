"""The end of a request, in one transaction: its messages, its checkpoint, its credits; then its trace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from isa.agent import store
from isa.agent.engine import Counters, RunContext
from isa.agent.events import AgentError
from isa.agent.state import RunState
from isa.core.db import Database, DictConnection
from isa.core.logging import get_logger
from isa.users import credits, schemas, sessions

if TYPE_CHECKING:
    from isa.agent.service import Prepared

log = get_logger(__name__)


async def _add(conn: DictConnection, user_id: str, session_id: str, message: schemas.MessageCreate) -> None:
    await sessions.append_message(conn, user_id, session_id, message)


async def _user_message(conn: DictConnection, user_id: str, state: RunState) -> None:
    if state.user_saved:
        return
    key = f"{state.idempotency_key}:user" if state.idempotency_key else None
    await _add(
        conn,
        user_id,
        state.session_id,
        schemas.MessageCreate(role="user", content=state.user_message, idempotency_key=key),
    )
    state.user_saved = True


async def _turn(
    conn: DictConnection, user_id: str, state: RunState, cards: dict[str, dict[str, Any]] | None = None
) -> None:
    """The tool exchanges of the finished turn, then its answer; a tool result keeps what its card showed."""
    turn = state.messages[state.turn_start + 1 :]
    for index, message in enumerate(turn):
        role, content = message["role"], message.get("content") or ""
        row: schemas.MessageCreate | None = None
        if role == "assistant" and message.get("tool_calls"):
            row = schemas.MessageCreate(
                role="assistant", message_type="tool_call", content=content, tool_calls=message["tool_calls"]
            )
        elif role == "tool":
            row = schemas.MessageCreate(
                role="tool",
                message_type="tool_result",
                content=content[:200_000],
                tool_call_id=message["tool_call_id"],
                metadata=(cards or {}).get(message["tool_call_id"], {}),
            )
        elif role == "assistant" and index == len(turn) - 1:
            key = f"{state.idempotency_key}:assistant" if state.idempotency_key else None
            row = schemas.MessageCreate(
                role="assistant", content=content, idempotency_key=key, metadata={"run_id": state.run_id}
            )
        if row is not None:
            await _add(conn, user_id, state.session_id, row)


def charge_reason(outcome: str, counters: Counters) -> str:
    """Why a request is charged, or `failed_before_model_output` when it is not (nothing was produced)."""
    if outcome in ("completed", "interrupted"):
        return outcome
    if counters.produced or counters.tool_calls:
        return "partial"  # work was done before the failure: billed as docs/agent.md says
    return "failed_before_model_output"


async def _charge(
    conn: DictConnection, user_id: str, counters: Counters, p: Prepared, run_id: str, outcome: str
) -> dict[str, Any]:
    amount = counters.credits
    reason = charge_reason(outcome, counters)
    billing: dict[str, Any] = {
        "success": True,
        "model_calls": counters.model_calls,
        "tool_calls": counters.tool_calls,
        "total_credits": float(amount),
        "credits_remaining": None,
        "error_message": None,
        "charged": reason != "failed_before_model_output",
        "charge_reason": reason,
    }
    if not billing["charged"]:
        billing.update(total_credits=0.0, credits_remaining=float(p.balance))
        return billing
    try:
        async with conn.transaction():  # a savepoint: a refused charge leaves the rest of the request intact
            entry = await credits.consume(
                conn,
                user_id,
                amount,
                description="agent chat",
                idempotency_key=f"agent:{p.request_id or run_id}:{run_id}",
                metadata={
                    "session_id": p.session_id,
                    "model_calls": counters.model_calls,
                    "tool_calls": counters.tool_calls,
                },
            )
        billing["credits_remaining"] = float(entry.credits_after)
    except credits.InsufficientCredits as exc:
        billing.update(success=False, error_message=exc.message, total_credits=0)
    return billing


async def persist_outcome(
    db: Database, p: Prepared, state: RunState | None, ctx: RunContext | None, outcome: str,
    error: AgentError | None, answer: str, started_at: datetime,
) -> dict[str, Any]:  # fmt: skip
    """Write the request's outcome; returns the `billing` event's content."""
    user = p.principal.user_id
    claimed = state.checkpoint_id if p.resumed and state is not None else None
    counters = ctx.counters if ctx is not None else Counters()
    run_id = state.run_id if state is not None else "none"
    async with db.transaction() as conn:
        if state is None and p.body is not None:  # failed before the turn was built: keep the question anyway
            state = RunState("none", p.session_id, p.body.message, [], [], 0, p.body.idempotency_key)
        if state is not None:
            await _user_message(conn, user, state)
        if outcome == "completed" and state is not None:
            await _turn(conn, user, state, ctx.tool_cards if ctx is not None else None)
        elif outcome == "interrupted" and state is not None:
            state.checkpoint_id = await store.save_checkpoint(
                conn, user, p.session_id, state.to_json(), state.checkpoint_id, "interrupted"
            )
        elif state is not None:
            partial = "".join(ctx.answer_so_far) if ctx is not None else ""
            code = error.code if error is not None else "cancelled"
            metadata = {"error_code": code, "run_id": run_id}
            row = schemas.MessageCreate(role="assistant", content=partial, status="incomplete", metadata=metadata)
            await _add(conn, user, p.session_id, row)
        if claimed is not None:
            # A failed resume can be tried again; a finished or re-paused one is done with.
            next_status = {"completed": "done", "interrupted": "resumed"}.get(outcome, "interrupted")
            await store.set_checkpoint_status(conn, user, claimed, next_status)
        billing = await _charge(conn, user, counters, p, run_id, outcome)
    await _trace(db, p, ctx, outcome, error, started_at)
    return billing


async def _trace(
    db: Database, p: Prepared, ctx: RunContext | None, outcome: str, error: AgentError | None, started_at: datetime
) -> None:
    status = {"completed": "ok", "interrupted": "ok", "cancelled": "cancelled"}.get(outcome, "error")
    counters = ctx.counters if ctx is not None else Counters()
    try:
        async with db.transaction() as conn:
            await store.write_trace(
                conn,
                user_id=p.principal.user_id,
                session_id=p.session_id,
                request_id=p.request_id,
                name="agent.resume" if p.resumed else "agent.chat",
                status=status,
                started_at=started_at,
                ended_at=datetime.now(UTC),
                tokens=counters.tokens,
                metadata={
                    "outcome": outcome,
                    "model_calls": counters.model_calls,
                    "tool_calls": counters.tool_calls,
                    "credits": str(counters.credits),
                    "error_code": error.code if error else None,
                },
                error=error.message if error else None,
                spans=ctx.spans if ctx is not None else [],
            )
    except Exception:  # the answer is given; a lost trace is logged, never raised at the user
        log.exception("agent_trace_failed", session_id=p.session_id)
