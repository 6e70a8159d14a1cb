"""Task orchestration: a plan made through MCP (by the model node), steps run here, real persisted status."""

from __future__ import annotations

import json

from isa.core.settings import Settings
from tests.support.agent import FAKE_MODEL, chat, new_user
from tests.support.fake_openai import FakeOpenAI, Reply, call
from tests.support.users import sql

PLAN = {
    "steps": [
        {"id": "s1", "title": "Weather in Paris", "instructions": "Get the forecast", "depends_on": []},
        {"id": "s2", "title": "Weather in Rome", "instructions": "Get the forecast", "depends_on": []},
        {"id": "s3", "title": "Compare", "instructions": "Compare both", "depends_on": ["s1", "s2"]},
    ]
}


def test_a_multi_step_request_runs_a_stored_plan_and_reports_its_real_status(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    user, key = new_user(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("create_execution_plan", {"request": "compare the weather in Paris and Rome"})]),
        Reply(text=json.dumps(PLAN)),  # the planner (the mcp node asks the model node)
        Reply(text="Paris: sunny.", times=2),  # s1 and s2 run at the same time
        Reply(text="Both sunny; Rome warmer."),  # s3 after both
        Reply(text="Both cities are sunny tomorrow; Rome is warmer."),
    )
    result = chat(node, key, {"message": "Compare the weather in Paris and Rome tomorrow"})
    assert result.error_code is None, result.events
    assert result.text == "Both cities are sunny tomorrow; Rome is warmer."
    progress = [e["content"]["data"] for e in result.of("custom_stream") if e["content"].get("type") == "progress"]
    assert any(p.startswith("[plan] step") and "completed: Compare" in p for p in progress)
    executor = [e["content"]["executor"] for e in result.of("graph_update") if "executor" in e["content"]]
    assert {(u["step"], u["status"]) for u in executor} >= {("s1", "done"), ("s2", "done"), ("s3", "done")}

    plan_id = executor[0]["plan_id"]
    rows = sql(
        db_url, "SELECT step_key, status FROM agent_plan_steps WHERE plan_id = %s::uuid ORDER BY position", plan_id
    )
    assert rows == [("s1", "done"), ("s2", "done"), ("s3", "done")]
    assert sql(db_url, "SELECT status, user_id FROM agent_plans WHERE id = %s::uuid", plan_id) == [("completed", user)]

    # s3 saw the results of s1 and s2 (it ran after them).
    step_prompts = [
        r.body["messages"][1]["content"] for r in fake.requests_for(FAKE_MODEL) if len(r.body["messages"]) == 2
    ]
    compare = next(p for p in step_prompts if "This step: Compare" in p)
    assert "Paris: sunny." in compare

    status = _status(node, key, plan_id)
    assert status["status"] == "completed" and status["progress"] == {"done": 3, "total": 3}
    assert [s["status"] for s in status["steps"]] == ["done", "done", "done"]


def test_a_failed_step_is_replanned_and_the_new_steps_run(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    one = {"steps": [{"id": "a", "title": "Try the flaky way", "depends_on": []}]}
    fix = {"steps": [{"id": "b", "title": "Do it another way", "depends_on": []}]}
    fake.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("create_execution_plan", {"request": "do the thing"})]),
        Reply(text=json.dumps(one)),
        Reply(text="STEP FAILED: the flaky way is down"),
        Reply(text=json.dumps(fix)),  # replan_execution
        Reply(text="Done the other way."),
        Reply(text="It is done."),
    )
    result = chat(node, key, {"message": "do the thing in several steps"})
    assert result.error_code is None and result.text == "It is done."
    replans = [e["content"]["replanner"] for e in result.of("graph_update") if "replanner" in e["content"]]
    assert len(replans) == 1 and replans[0]["failed_step"] == "a"
    status = _status(node, key, replans[0]["plan_id"])
    assert status["status"] == "completed" and status["replans"] == 1
    assert [(s["id"], s["status"]) for s in status["steps"]] == [("a", "failed"), ("r1_b", "done")]


def test_another_users_plan_is_not_found(node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str) -> None:
    _, key = new_user(db_url, all_settings)
    _, other = new_user(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("create_execution_plan", {"request": "x"})]),
        Reply(text=json.dumps({"steps": [{"id": "s1", "title": "only step"}]})),
        Reply(text="step done"),
        Reply(text="all done"),
    )
    result = chat(node, key, {"message": "a plan please"})
    plan_id = next(e["content"]["planner"]["plan_id"] for e in result.of("graph_update") if "planner" in e["content"])
    import httpx

    mine = httpx.get(f"{node}/api/chat/plans/{plan_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    theirs = httpx.get(f"{node}/api/chat/plans/{plan_id}", headers={"Authorization": f"Bearer {other}"}, timeout=10)
    assert mine.status_code == 200 and theirs.status_code == 404


def _status(node: str, key: str, plan_id: str) -> dict[str, object]:
    """get_autonomous_status over MCP, as any MCP client would call it."""
    import anyio

    from tests.support.mcp_servers import mcp_client

    async def main() -> dict[str, object]:
        async with mcp_client(node, key) as client:
            result = await client.call_tool("get_autonomous_status", {"plan_id": plan_id})
        envelope = result.structured_content
        assert envelope is not None and envelope["status"] == "success", envelope
        data: dict[str, object] = envelope["data"]
        return data

    return anyio.run(main)


def test_a_planner_answer_that_is_not_json_goes_back_to_the_model_which_answers_without_a_plan(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("create_execution_plan", {"request": "compare the weather in Paris and Rome"})]),
        Reply(text="Sure! Here is a plan: first Paris, then Rome."),  # the planner, not JSON
        Reply(text="I couldn't plan it, but both cities look sunny."),
    )
    result = chat(node, key, {"message": "Compare the weather in Paris and Rome tomorrow"})
    assert result.error_code is None, result.events
    assert result.text == "I couldn't plan it, but both cities look sunny."
    seen = fake.requests_for(FAKE_MODEL)[-1].body["messages"][-1]
    assert seen["role"] == "tool" and json.loads(seen["content"])["status"] == "error"
