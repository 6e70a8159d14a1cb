"""Plans made by the model node (through the OpenAI wire, as the user), checked before they are stored."""

from __future__ import annotations

import json
import re
from typing import Any

from isa.agent.events import AgentError
from isa.agent.settings import AgentSettings
from isa.agent.upstream import Upstreams
from isa.auth.principal import Principal
from isa.llm.wire import ModelCallError, complete

STEP_KEY = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
PLAN_PROMPT = (
    "You split a user's request into a short plan of concrete steps an assistant with tools can carry out. "
    'Answer with JSON only: {"steps": [{"id": "s1", "title": "...", "instructions": "...", "depends_on": []}]}. '
    "Ids are short (letters, digits, _ or -); depends_on lists ids of earlier steps whose results a step needs; "
    "steps that don't depend on each other can run at the same time. At most {max_steps} steps."
)
REPLAN_PROMPT = (
    "A step of a plan failed. Given the request, the steps already done (with results) and the failure, write "
    "the steps that still have to happen, as JSON only: "
    '{"steps": [{"id": "...", "title": "...", "instructions": "...", "depends_on": []}]}. '
    "depends_on may name the done steps or your new ones. At most {max_steps} steps."
)


def check_steps(data: dict[str, Any], max_steps: int, known: set[str], prefix: str = "") -> list[dict[str, Any]]:
    """Valid, uniquely named steps whose dependencies point backwards (so the plan can't deadlock)."""
    raw = data.get("steps")
    if not isinstance(raw, list) or not raw:
        raise AgentError("plan_invalid", "the plan has no steps")
    steps: list[dict[str, Any]] = []
    seen = set(known)
    for item in raw[:max_steps]:
        if not isinstance(item, dict):
            raise AgentError("plan_invalid", "a step is not an object")
        key = prefix + str(item.get("id") or f"s{len(steps) + 1}")
        title = str(item.get("title") or "").strip()[:500]
        if not STEP_KEY.match(key) or key in seen or not title:
            raise AgentError("plan_invalid", f"step {key!r} has a bad or repeated id, or no title")
        depends = [prefix + str(d) if prefix + str(d) in seen else str(d) for d in item.get("depends_on") or []]
        if any(d not in seen for d in depends):
            raise AgentError("plan_invalid", f"step {key!r} depends on a step that isn't before it")
        seen.add(key)
        steps.append(
            {
                "id": key,
                "title": title,
                "instructions": str(item.get("instructions") or "")[:10_000],
                "depends_on": depends,
            }
        )
    return steps


def json_object(content: str) -> dict[str, Any]:
    """The JSON object in the planner's answer (models may wrap it in prose or a code fence)."""
    start, end = content.find("{"), content.rfind("}")
    if start < 0 or end <= start:
        raise AgentError("plan_invalid", "the planner's answer holds no JSON object")
    try:
        parsed = json.loads(content[start : end + 1])
    except ValueError:
        raise AgentError("plan_invalid", "the planner's answer is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise AgentError("plan_invalid", "the planner's answer is not a JSON object")
    return parsed


class Planner:
    def __init__(self, upstreams: Upstreams, settings: AgentSettings) -> None:
        self.upstreams = upstreams
        self.settings = settings

    async def _ask(self, principal: Principal, system: str, user: str, request_id: str) -> dict[str, Any]:
        token = self.upstreams.token_for(principal)
        payload = {
            "model": self.settings.planner_model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            "response_format": {"type": "json_object"},
        }
        timeout = self.settings.tool_timeout_seconds
        async with self.upstreams.client("model", token, request_id, read_timeout=timeout) as http:
            try:
                content = await complete(http, payload, timeout)
            except ModelCallError as exc:
                raise AgentError(exc.code, exc.message) from None
        return json_object(content)

    async def plan(
        self, principal: Principal, request: str, context: str, request_id: str = ""
    ) -> list[dict[str, Any]]:
        max_steps = self.settings.plan_max_steps
        user = request if not context else f"{request}\n\nContext:\n{context}"
        data = await self._ask(principal, PLAN_PROMPT.replace("{max_steps}", str(max_steps)), user, request_id)
        return check_steps(data, max_steps, set())

    async def replan(
        self, principal: Principal, plan: dict[str, Any], failed_key: str, error: str, request_id: str = ""
    ) -> list[dict[str, Any]]:
        done = [
            {"id": s["step_key"], "title": s["title"], "result": (s["result"] or "")[:2000]}
            for s in plan["steps"]
            if s["status"] == "done"
        ]
        failed = next((s for s in plan["steps"] if s["step_key"] == failed_key), None)
        user = json.dumps(
            {
                "request": plan["request"],
                "done": done,
                "failed_step": {"id": failed_key, "title": failed["title"] if failed else "", "error": error[:2000]},
            },
            ensure_ascii=False,
        )
        max_steps = self.settings.plan_max_steps
        data = await self._ask(principal, REPLAN_PROMPT.replace("{max_steps}", str(max_steps)), user, request_id)
        known = {s["step_key"] for s in plan["steps"] if s["status"] == "done"}
        prefix = f"r{int(plan['replans']) + 1}_"
        return check_steps(data, max_steps, known, prefix)
