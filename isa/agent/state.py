"""A run's state: what a paused run needs to continue, as plain JSON (stored in `checkpoints`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

HUMAN_INPUT = "ask_human"
AUTHORIZATION = "authorization"


@dataclass
class Pending:
    """A tool call waiting for a human: an approval or an answer."""

    kind: str  # AUTHORIZATION | HUMAN_INPUT
    call_id: str
    tool: str
    arguments: dict[str, Any]
    data: dict[str, Any]
    where: str = "main"  # "main", or the key of the plan step that asked

    def interrupt(self) -> dict[str, Any]:
        """What the client sees under `__interrupt__`."""
        value: dict[str, Any] = {"type": self.kind, "tool": self.tool, "tool_call_id": self.call_id, **self.data}
        if self.kind == HUMAN_INPUT:
            value.setdefault("question", self.data.get("question", ""))
        else:
            value["authorization_request_id"] = self.data.get("id") or self.data.get("request_id")
            value.setdefault("tool_args", self.arguments)
        return {"value": value, "resumable": True, "ns": [self.where]}


@dataclass
class StepState:
    key: str
    title: str
    instructions: str = ""
    depends_on: list[str] = field(default_factory=list)
    status: str = "pending"  # pending | running | paused | done | failed | superseded
    messages: list[dict[str, Any]] = field(default_factory=list)
    result: str | None = None
    error: str | None = None
    pending: Pending | None = None


@dataclass
class PlanState:
    plan_id: str
    call_id: str
    request: str
    steps: list[StepState] = field(default_factory=list)
    replans: int = 0

    def step(self, key: str) -> StepState | None:
        return next((s for s in self.steps if s.key == key), None)


@dataclass
class RunState:
    run_id: str
    session_id: str
    user_message: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    turn_start: int
    idempotency_key: str | None = None
    plan: PlanState | None = None
    pending: Pending | None = None
    checkpoint_id: str | None = None
    user_saved: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        plan = data.get("plan")
        pending = data.get("pending")
        state = cls(**{**data, "plan": None, "pending": None})
        state.pending = Pending(**pending) if pending else None
        if plan:
            steps = []
            for raw in plan.get("steps", []):
                step_pending = raw.get("pending")
                steps.append(StepState(**{**raw, "pending": Pending(**step_pending) if step_pending else None}))
            state.plan = PlanState(**{**plan, "steps": steps})
        return state


class Paused(Exception):
    """A tool asked for a human; the run stops here and is checkpointed."""

    def __init__(self, pending: Pending) -> None:
        super().__init__(pending.kind)
        self.pending = pending


def tool_names(tools: list[dict[str, Any]]) -> set[str]:
    return {t["function"]["name"] for t in tools}
