"""Human in the loop: a tool asks for a human, the run pauses in a checkpoint, /api/chat/resume continues it."""

from __future__ import annotations

import json

import httpx

from isa.core.settings import Settings
from tests.support.agent import FAKE_MODEL, chat, new_user, resume
from tests.support.fake_openai import FakeOpenAI, Reply, call
from tests.support.procs import wait_for
from tests.support.users import sql


def test_ask_human_pauses_the_run_and_the_answer_resumes_it(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("ask_human", {"question": "Which city?", "options": ["Paris", "Rome"]})]),
        Reply(text="Rome it is."),
    )
    first = chat(node, key, {"message": "Plan a trip for me"})
    interrupt = first.interrupt
    assert interrupt is not None and interrupt["type"] == "ask_human" and interrupt["question"] == "Which city?"
    assert first.done and first.error_code is None and first.of("end")[0]["outcome"] == "interrupted"
    paused = sql(db_url, "SELECT metadata->>'status' FROM checkpoints WHERE thread_id = %s", first.session_id)
    assert paused == [("interrupted",)]

    second = resume(node, key, first.session_id, "Rome")
    assert second.types[0] == "resume_start" and second.types[-1] == "resume_end"
    assert all(e.get("resumed") is True for e in second.events)
    assert second.text == "Rome it is."
    answered = fake.requests_for(FAKE_MODEL)[1].body["messages"][-1]
    assert answered["role"] == "tool" and json.loads(answered["content"])["answer"] == "Rome"
    assert sql(db_url, "SELECT metadata->>'status' FROM checkpoints WHERE thread_id = %s", first.session_id) == [
        ("done",)
    ]
    # Nothing left to resume.
    assert resume(node, key, first.session_id, "again").status == 409


def test_an_approval_request_pauses_and_a_human_approval_lets_the_same_call_run_once(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    user, key = new_user(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("delete_my_memories", {"memory_type": "working"})]),
        Reply(text="Your working memories are gone."),
    )
    first = chat(node, key, {"message": "forget my working memories, delete them"})
    interrupt = first.interrupt
    assert interrupt is not None and interrupt["type"] == "authorization"
    request_id = interrupt["authorization_request_id"]
    assert interrupt["tool"] == "delete_my_memories"

    # Before a human decides, resuming pauses again on the same request.
    again = resume(node, key, first.session_id, {"approved": True})
    assert again.interrupt is not None and again.interrupt["authorization_request_id"] == request_id

    headers = {"Authorization": f"Bearer {key}"}
    decided = httpx.post(f"{node}/api/v1/authorizations/{request_id}/approve", json={}, headers=headers, timeout=10)
    assert decided.status_code == 200, decided.text
    done = resume(node, key, again.session_id, {"approved": True})
    assert done.error_code is None and done.text == "Your working memories are gone."

    def outcomes() -> list[str]:
        rows = sql(
            db_url,
            "SELECT outcome FROM audit_log WHERE user_id = %s AND tool_name = 'delete_my_memories' ORDER BY created_at",
            user,
        )
        return [r[0] for r in rows]

    # The audit log is written off the request path: wait for its rows.
    wait_for(lambda: len(outcomes()) == 3, timeout=10)
    assert outcomes() == ["approval_required", "approval_required", "ok"]


def test_a_denied_authorization_is_reported_to_the_model_and_the_tool_never_runs(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    user, key = new_user(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("delete_my_memories", {"memory_type": "all"})]),
        Reply(text="Okay, I left them alone."),
    )
    first = chat(node, key, {"message": "delete all my memories"})
    assert first.interrupt is not None
    done = resume(node, key, first.session_id, {"approved": False, "reason": "changed my mind"})
    assert done.text == "Okay, I left them alone."
    told = json.loads(fake.requests_for(FAKE_MODEL)[-1].body["messages"][-1]["content"])
    assert told["status"] == "denied" and told["reason"] == "changed my mind"
    # Only the tool under approval counts: the agent's memory recall/store calls are audited too.
    deleting = "SELECT count(*) FROM audit_log WHERE user_id = %s AND tool_name = 'delete_my_memories'"
    wait_for(lambda: sql(db_url, deleting, user)[0][0] >= 1, timeout=10)
    ran = sql(db_url, deleting + " AND outcome = 'ok'", user)
    assert ran == [(0,)]


def test_a_new_message_gives_up_the_run_that_waited(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(tool_calls=[call("ask_human", {"question": "Sure?"})]), Reply(text="New topic."))
    first = chat(node, key, {"message": "start something"})
    assert first.interrupt is not None
    second = chat(node, key, {"message": "never mind, something else", "session_id": first.session_id})
    assert second.text == "New topic."
    assert resume(node, key, first.session_id, "yes").status == 409
