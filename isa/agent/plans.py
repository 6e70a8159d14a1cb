"""Task orchestration in the agent: make a plan through MCP, run its steps (independent ones at once), replan.

The plan is made and remade by the MCP tools `create_execution_plan` / `replan_execution` (they live on the
mcp node and ask the model node); the steps run here, each as a short tool-using loop of its own. Every step
change is written to `agent_plan_steps` as it happens, so `get_autonomous_status` reports the real state and a
plan paused for a human survives a restart of this process (its run state is in the checkpoint).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import anyio

from isa.agent import store
from isa.agent.events import AgentError, first_error
from isa.agent.state import Paused, PlanState, StepState
from isa.core.db import Database

if TYPE_CHECKING:
    from isa.agent.engine import Run

STEP_PROMPT = (
    "You carry out one step of a larger plan. Use the tools when they help. Answer with the step's result in a "
    "few sentences. If the step can't be done, answer starting with 'STEP FAILED:' and the reason."
)
FAILED_PREFIX = "STEP FAILED:"
_RESULT_CHARS = 4000


def _steps_from(data: Any) -> list[StepState]:
    raw = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise AgentError("plan_invalid", "the planner returned no steps")
    return [
        StepState(
            key=str(s["id"]),
            title=str(s.get("title") or s["id"]),
            instructions=str(s.get("instructions") or ""),
            depends_on=[str(d) for d in s.get("depends_on") or []],
        )
        for s in raw
        if isinstance(s, dict) and s.get("id")
    ]


class PlanRunner:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.ctx = run.ctx
        self.db: Database = run.db

    async def _plan_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        call = {"id": f"plan-{name}", "function": {"name": name, "arguments": json.dumps(arguments)}}
        tools = [{"type": "function", "function": {"name": name}}]
        message = await self.run.tool_call(call, tools, "planner", 1, 1)
        try:
            envelope = json.loads(message["content"])
        except ValueError:
            raise AgentError("plan_invalid", f"{name} returned no JSON") from None
        if envelope.get("status") != "success":
            raise AgentError("plan_failed", f"{name} failed: {envelope.get('error') or envelope.get('data')}")
        data: dict[str, Any] = envelope.get("data") or {}
        return data

    async def run_plan(self, call: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
        """The create_execution_plan call of the main loop: make (or continue) the plan, run it, summarise."""
        state = self.run.state
        if state.plan is None or state.plan.call_id != call["id"]:
            request = str(arguments.get("request") or state.user_message)
            data = await self._plan_tool(
                "create_execution_plan", {"request": request, "context": str(arguments.get("context") or "")}
            )
            state.plan = PlanState(str(data["plan_id"]), call["id"], request, _steps_from(data))
            await self.ctx.emit(
                "graph_update",
                {
                    "planner": {
                        "plan_id": state.plan.plan_id,
                        "steps": [s.title for s in state.plan.steps],
                        "step_ids": [s.key for s in state.plan.steps],
                    }
                },
                stream_mode="updates",
            )
        plan = state.plan
        await self._set_plan(plan, "running")
        while True:
            ready = [s for s in plan.steps if s.status in ("pending", "paused", "running") and self._ready(plan, s)]
            if not ready:
                break
            await self._run_batch(plan, ready)
            paused = [s for s in plan.steps if s.status == "paused" and s.pending is not None]
            if paused:
                first = paused[0]
                assert first.pending is not None
                await self._set_plan(plan, "paused")
                raise Paused(first.pending)
            failed = [s for s in plan.steps if s.status == "failed"]
            if failed:
                if plan.replans >= self.ctx.settings.max_replans:
                    break
                await self._replan(plan, failed[0])
        done = all(s.status in ("done", "superseded") for s in plan.steps)
        summary = {
            "plan_id": plan.plan_id,
            "status": "completed" if done else "failed",
            "steps": [{"id": s.key, "title": s.title, "status": s.status, "result": s.result, "error": s.error}
                      for s in plan.steps if s.status != "superseded"],
        }  # fmt: skip
        await self._set_plan(plan, "completed" if done else "failed")
        return summary

    @staticmethod
    def _ready(plan: PlanState, step: StepState) -> bool:
        status = {s.key: s.status for s in plan.steps}
        return all(status.get(dep) == "done" for dep in step.depends_on)

    async def _run_batch(self, plan: PlanState, steps: list[StepState]) -> None:
        limiter = anyio.CapacityLimiter(self.ctx.settings.plan_concurrency)
        total = len([s for s in plan.steps if s.status != "superseded"])

        async def one(step: StepState) -> None:
            async with limiter:
                await self._run_step(plan, step, total)

        try:
            async with anyio.create_task_group() as tg:
                for step in steps:
                    tg.start_soon(one, step)
        except BaseExceptionGroup as group:
            raise first_error(group) from None  # a bound or an upstream failure ends the whole run

    async def _run_step(self, plan: PlanState, step: StepState, total: int) -> None:
        from isa.agent.engine import PLAN_TOOL, REPLAN_TOOL, StepFailed

        position = plan.steps.index(step) + 1
        await self._progress(plan, step, "running", f"[plan] step {position}/{total} started: {step.title}")
        if not step.messages:
            earlier = {s.key: s.result for s in plan.steps if s.key in step.depends_on}
            step.messages = [
                {"role": "system", "content": STEP_PROMPT},
                {
                    "role": "user",
                    "content": f"Overall request: {plan.request}\nThis step: {step.title}\n{step.instructions}\n"
                    f"Results of the steps it depends on: {json.dumps(earlier, ensure_ascii=False)}",
                },
            ]
        tools = [t for t in self.run.state.tools if t["function"]["name"] not in (PLAN_TOOL, REPLAN_TOOL)]
        resume = self.run.resume_value if step.pending is not None else None
        step.pending = None
        try:
            answer = await self.run.react(
                step.messages, tools, where=step.key, resume=resume, max_calls=self.ctx.settings.step_max_iterations
            )
        except Paused as paused:
            step.pending = paused.pending
            await self._progress(plan, step, "paused", f"[plan] step {position}/{total} waits for a human")
            return
        except StepFailed as exc:
            step.error = str(exc)
            await self._progress(plan, step, "failed", f"[plan] step {position}/{total} failed: {exc}")
            return
        if answer.strip().upper().startswith(FAILED_PREFIX):
            step.error = answer.strip()[len(FAILED_PREFIX) :].strip()[:_RESULT_CHARS] or "failed"
            await self._progress(plan, step, "failed", f"[plan] step {position}/{total} failed: {step.error}")
            return
        step.result = answer[:_RESULT_CHARS]
        await self._progress(plan, step, "done", f"[plan] step {position}/{total} completed: {step.title}")

    async def _replan(self, plan: PlanState, failed: StepState) -> None:
        data = await self._plan_tool(
            "replan_execution",
            {"plan_id": plan.plan_id, "failed_step_id": failed.key, "error": failed.error or "failed"},
        )
        plan.replans += 1
        for step in plan.steps:
            if step.status in ("pending", "paused", "failed"):
                step.status = "superseded"
        new_steps = _steps_from(data)
        plan.steps.extend(new_steps)
        await self.ctx.emit(
            "graph_update",
            {"replanner": {"plan_id": plan.plan_id, "failed_step": failed.key, "steps": [s.title for s in new_steps]}},
            stream_mode="updates",
        )

    async def _progress(self, plan: PlanState, step: StepState, status: str, text: str) -> None:
        step.status = status
        async with self.db.transaction() as conn:
            await store.set_step_status(
                conn, self.run.user_id, plan.plan_id, step.key, status, result=step.result, error=step.error
            )
        await self.ctx.emit.progress(text, plan_id=plan.plan_id, step=step.key)
        await self.ctx.emit(
            "graph_update",
            {"executor": {"plan_id": plan.plan_id, "step": step.key, "status": status}},
            stream_mode="updates",
        )

    async def _set_plan(self, plan: PlanState, status: str) -> None:
        async with self.db.transaction() as conn:
            await store.set_plan_status(conn, self.run.user_id, plan.plan_id, status)
