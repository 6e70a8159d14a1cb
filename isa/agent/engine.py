"""One run of the agent: reason (model) -> act (MCP tools) -> repeat -> answer, within hard bounds.

The loop is resumable from its messages alone: an assistant message whose tool calls lack results is
finished first (with a human's answer or approval when the run was paused there), then the model is asked
again. Bounds: `max_iterations` model calls per request (the count of provider calls, never more),
`max_tokens` over all calls, and the wall-clock budget (enforced by the caller around `run`).
"""

from __future__ import annotations

import json
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from isa.agent.events import AgentError, Emitter
from isa.agent.mcp_client import HIL_MARKERS, McpLink
from isa.agent.settings import AgentSettings
from isa.agent.state import AUTHORIZATION, HUMAN_INPUT, Paused, Pending, RunState, tool_names
from isa.agent.store import Span
from isa.agent.upstream import Upstreams
from isa.core.db import Database
from isa.llm.wire import ModelCallError, ModelTurn, stream_chat

PLAN_TOOL = "create_execution_plan"
REPLAN_TOOL = "replan_execution"
PLANNER_FAILURES = ("plan_failed", "plan_invalid")
PLANNER_HINT = "No plan was made. Retry once, answer without a plan, or ask the user."
REQUEST_AUTHORIZATION = "request_authorization"
MODEL_CALL_CREDITS = Decimal(1)
TOOL_CALL_CREDITS = Decimal(2)


@dataclass
class Counters:
    model_calls: int = 0
    tool_calls: int = 0
    tokens: int = 0
    produced: bool = False  # the model sent at least one token or one whole answer (a failed turn is billed then)

    @property
    def credits(self) -> Decimal:
        """1 per model call, 2 per tool call, at least 1 per request (the original's rule)."""
        return max(Decimal(1), MODEL_CALL_CREDITS * self.model_calls + TOOL_CALL_CREDITS * self.tool_calls)


@dataclass
class RunContext:
    """What a run works with; none of it is saved in a checkpoint."""

    settings: AgentSettings
    upstreams: Upstreams
    link: McpLink
    token: str
    request_id: str
    emit: Emitter
    balance: Decimal
    counters: Counters = field(default_factory=Counters)
    spans: list[Span] = field(default_factory=list)
    answer_so_far: list[str] = field(default_factory=list)
    # What each finished tool card showed (status, duration_ms, files), kept with the tool result in the history
    # so a reopened conversation draws the same card.
    tool_cards: dict[str, dict[str, Any]] = field(default_factory=dict)


def _approved(value: Any) -> tuple[bool, str]:
    if isinstance(value, dict):
        return bool(value.get("approved")), str(value.get("reason") or "")
    if isinstance(value, bool):
        return value, ""
    text = str(value).strip().lower()
    return text in ("approve", "approved", "yes", "y", "true", "ok"), ""


class Run:
    def __init__(self, ctx: RunContext, state: RunState, db: Database, user_id: str, resume_value: Any = None) -> None:
        self.ctx = ctx
        self.state = state
        self.db = db
        self.user_id = user_id
        self.resume_value = resume_value
        self._stack = AsyncExitStack()
        self._model: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Run:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    # -- bounds ------------------------------------------------------------------------------
    def _afford(self, extra: Decimal) -> None:
        c = self.ctx.counters
        if MODEL_CALL_CREDITS * c.model_calls + TOOL_CALL_CREDITS * c.tool_calls + extra > self.ctx.balance:
            raise AgentError(
                "insufficient_credits", f"this request would need more than the {self.ctx.balance} credits left"
            )

    def _span(
        self, name: str, kind: str, started: float, at: datetime, status: str, error: str | None, **attrs: Any
    ) -> None:
        duration = (time.perf_counter() - started) * 1000
        self.ctx.spans.append(Span(name, kind, at, datetime.now(UTC), duration, status, attrs, error))

    # -- the model ---------------------------------------------------------------------------
    async def model_call(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *, stream: bool, label: str
    ) -> ModelTurn:
        s, c = self.ctx.settings, self.ctx.counters
        if c.model_calls >= s.max_iterations:
            raise AgentError("max_iterations", f"stopped after {s.max_iterations} model calls without a final answer")
        if c.tokens >= s.max_tokens:
            raise AgentError("max_tokens", f"stopped after {c.tokens} tokens (limit {s.max_tokens})")
        self._afford(MODEL_CALL_CREDITS)
        c.model_calls += 1
        if self._model is None:
            client = self.ctx.upstreams.client(
                "model", self.ctx.token, self.ctx.request_id, read_timeout=s.model_idle_timeout_seconds
            )
            self._model = await self._stack.enter_async_context(client)
        payload: dict[str, Any] = {"model": s.model, "messages": messages}
        if tools:
            payload["tools"] = tools
            payload["tool_choice"] = "auto"

        async def on_token(piece: str) -> None:
            c.produced = True
            self.ctx.answer_so_far.append(piece)
            await self.ctx.emit("custom_stream", {"custom_llm_chunk": piece}, stream_mode="custom")

        started, at = time.perf_counter(), datetime.now(UTC)
        self.ctx.answer_so_far.clear()
        try:
            turn = await stream_chat(self._model, payload, s.model_idle_timeout_seconds, on_token if stream else None)
        except ModelCallError as exc:
            self._span("model.chat", "llm", started, at, "error", exc.code, label=label, model=s.model)
            raise AgentError(exc.code, exc.message) from None
        c.produced = True
        c.tokens += turn.prompt_tokens + turn.completion_tokens
        self._span(
            "model.chat", "llm", started, at, "ok", None, label=label, model=s.model,
            prompt_tokens=turn.prompt_tokens, completion_tokens=turn.completion_tokens, tool_calls=len(turn.tool_calls),
        )  # fmt: skip
        if c.tokens > s.max_tokens:
            raise AgentError("max_tokens", f"stopped after {c.tokens} tokens (limit {s.max_tokens})")
        return turn

    # -- the loop ----------------------------------------------------------------------------
    async def react(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *, where: str, resume: Any = None,
        max_calls: int | None = None,
    ) -> str:  # fmt: skip
        """Run the loop on `messages` until the model answers without tool calls; returns that answer."""
        calls = 0
        main = where == "main"
        while True:
            last = messages[-1]
            if last.get("role") == "assistant" and last.get("tool_calls"):
                await self.finish_tool_calls(messages, tools, where=where, resume=resume)
                resume = None
            elif last.get("role") == "assistant":
                return str(last.get("content") or "")
            if max_calls is not None and calls >= max_calls:
                raise StepFailed(f"no answer within {max_calls} model calls")
            calls += 1
            turn = await self.model_call(messages, tools, stream=main, label=where)
            messages.append(turn.message())
            if main:
                await self.ctx.emit(
                    "message_stream", {"raw_message": json.dumps(turn.message())}, stream_mode="messages"
                )
                next_action = "call_tool" if turn.tool_calls else "respond"
                names = [t["function"]["name"] for t in turn.tool_calls]
                await self.ctx.emit(
                    "graph_update", {"reason_model": {"next_action": next_action, "tool_calls": names}},
                    stream_mode="updates",
                )  # fmt: skip

    async def finish_tool_calls(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *, where: str, resume: Any
    ) -> None:
        """Add the missing tool results of the last assistant message (running each call not yet run)."""
        assistant = messages[-1]
        done = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
        calls = [c for c in assistant["tool_calls"] if c.get("id") not in done]
        total = len(assistant["tool_calls"])
        results: list[dict[str, Any]] = []
        try:
            for call in calls:
                index = assistant["tool_calls"].index(call) + 1
                pending = self.state.pending
                if pending is not None and pending.call_id == call["id"] and pending.where == where:
                    self.state.pending = None
                    results.append(await self.resumed_call(call, pending, resume, tools, where, index, total))
                else:
                    results.append(await self.tool_call(call, tools, where, index, total))
        finally:
            messages.extend(results)

    async def resumed_call(
        self,
        call: dict[str, Any],
        pending: Pending,
        value: Any,
        tools: list[dict[str, Any]],
        where: str,
        i: int,
        n: int,
    ) -> dict[str, Any]:
        if pending.kind == HUMAN_INPUT:
            answer = value.get("answer", value) if isinstance(value, dict) else value
            content = {"status": "human_input_received", "answer": answer}
        else:
            approved, reason = _approved(value)
            if approved and pending.tool != REQUEST_AUTHORIZATION:
                return await self.tool_call(call, tools, where, i, n)  # the approval lets the same call through
            status = "approved" if approved else "denied"
            content = {"status": status, "request_id": pending.data.get("id"), "reason": reason}
            if approved:
                content["next"] = "call the tool now with exactly the approved arguments"
        message = {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(content)}
        if where == "main":
            await self.ctx.emit("message_stream", {"raw_message": json.dumps(message)}, stream_mode="messages")
        return message

    async def tool_call(
        self, call: dict[str, Any], tools: list[dict[str, Any]], where: str, index: int, total: int
    ) -> dict[str, Any]:
        name = call["function"]["name"]
        reply: dict[str, Any] = {"role": "tool", "tool_call_id": call["id"]}
        try:
            arguments = json.loads(call["function"].get("arguments") or "{}")
            if not isinstance(arguments, dict):
                raise ValueError
        except ValueError:
            return {**reply, "content": json.dumps({"status": "error", "error": "arguments are not a JSON object"})}
        if name not in tool_names(tools):
            return {**reply, "content": json.dumps({"status": "error", "error": f"no tool named {name!r} here"})}
        if name == PLAN_TOOL and where == "main":
            from isa.agent.plans import PlanRunner

            try:
                summary = await PlanRunner(self).run_plan(call, arguments)
            except AgentError as exc:
                if exc.code not in PLANNER_FAILURES:
                    raise
                # The model gets the failure as this call's result and decides (retry, answer without a plan,
                # ask the user); the run's own bounds still end a model that keeps retrying.
                failure = {"status": "error", "error": exc.code, "message": exc.message, "hint": PLANNER_HINT}
                return {**reply, "content": json.dumps(failure, ensure_ascii=False)}
            return {**reply, "content": json.dumps(summary, ensure_ascii=False)}
        self._afford(TOOL_CALL_CREDITS)
        self.ctx.counters.tool_calls += 1
        if name in (PLAN_TOOL, REPLAN_TOOL):
            arguments["session_id"] = self.state.session_id
        label = f"[{name}]" + (f" ({where})" if where != "main" else "")
        # call_id/phase/status/duration_ms/images let the page draw one card per call (same event type and text).
        card = {"tool": name, "step": where, "call_id": call.get("id")}
        await self.ctx.emit.progress(
            f"{label} Starting execution ({index}/{total})", **card, phase="start", arguments=arguments
        )

        async def on_progress(progress: float, total_: float | None, message: str | None) -> None:
            text = message or (f"{progress:g}/{total_:g}" if total_ else f"{progress:g}")
            await self.ctx.emit.progress(f"{label} {text}", **card, phase="progress")

        started, at = time.perf_counter(), datetime.now(UTC)
        try:
            outcome = await self.ctx.link.call_tool(
                name, arguments, self.ctx.settings.tool_timeout_seconds, on_progress
            )
        except AgentError as exc:
            self._span(f"tool.{name}", "tool", started, at, "error", exc.code, tool=name, step=where)
            await self.ctx.emit.progress(
                f"{label} Failed - {exc.message}", **card, phase="done", status="failed", duration_ms=_ms(started)
            )
            raise
        self._span(
            f"tool.{name}", "tool", started, at, "error" if outcome.is_error else "ok",
            (outcome.envelope or {}).get("error"), tool=name, step=where, result_status=outcome.status,
        )  # fmt: skip
        if outcome.status in HIL_MARKERS:
            kind = AUTHORIZATION if outcome.status == "authorization_requested" else HUMAN_INPUT
            data = (outcome.envelope or {}).get("data") or {}
            raise Paused(Pending(kind, call["id"], name, arguments, data if isinstance(data, dict) else {}, where))
        text = outcome.text
        limit = self.ctx.settings.max_tool_result_chars
        if len(text) > limit:
            text = text[:limit] + f"... [truncated: {len(outcome.text)} characters in all]"
        if (outcome.envelope or {}).get("untrusted"):
            text = "<untrusted_tool_output>\n" + text + "\n</untrusted_tool_output>"
        shown = {
            "status": "failed" if outcome.is_error or outcome.status == "error" else "finished",
            "duration_ms": _ms(started),
            "files": outcome.files,
        }
        if call.get("id"):
            self.ctx.tool_cards[str(call["id"])] = shown
        await self.ctx.emit.progress(
            f"{label} Completed - {len(outcome.text)} chars result", **card, phase="done", images=outcome.images,
            **shown,
        )  # fmt: skip
        message = {**reply, "content": text}
        if where == "main":
            await self.ctx.emit("message_stream", {"raw_message": json.dumps(message)}, stream_mode="messages")
        return message


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


class StepFailed(Exception):
    """A plan step gave up (its own bound, or it said it can't be done)."""
