"""The chat API in one process (agent, mcp and model in-process): events, tools, bounds, billing, records."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import httpx

from isa.core.settings import Settings
from tests.support.agent import FAKE_MODEL, chat, new_user
from tests.support.fake_openai import FakeOpenAI, Reply, call
from tests.support.users import sql


def test_a_chat_discovers_a_tool_calls_it_and_streams_the_answer(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    user, key = new_user(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("weather_forecast", {"city": "Paris"})]),
        Reply(text="Tomorrow Paris will be sunny, 21 degrees."),
    )
    result = chat(node, key, {"message": "What is the weather forecast for Paris tomorrow?"})

    assert result.status == 200 and result.done
    assert result.types[0] == "start" and result.types[-1] == "end"
    assert result.types.index("billing") < result.types.index("end")
    assert {"custom_stream", "message_stream", "graph_update", "memory_update"} <= set(result.types)
    assert all(e["session_id"] == result.session_id and e["timestamp"] for e in result.events)
    # Discovery picked the tool for this message; the model was offered it and called it as the user.
    offered = [t["function"]["name"] for t in fake.requests_for(FAKE_MODEL)[0].body["tools"]]
    assert "weather_forecast" in offered and len(offered) <= 12
    progress = [e["content"]["data"] for e in result.of("custom_stream") if e["content"].get("type") == "progress"]
    assert progress == ["[weather_forecast] Starting execution (1/1)", progress[1]]
    assert progress[1].startswith("[weather_forecast] Completed - ")
    # The page's tool card: one call id from start to done, the arguments, the state and the time it took.
    start, done = [e for e in result.of("custom_stream") if e["content"].get("type") == "progress"]
    assert start["call_id"] == done["call_id"] and start["call_id"]
    assert (start["phase"], start["arguments"]) == ("start", {"city": "Paris"})
    assert (done["phase"], done["status"], done["images"], done["files"]) == ("done", "finished", [], [])
    assert isinstance(done["duration_ms"], int) and done["duration_ms"] >= 0
    tool_result = fake.requests_for(FAKE_MODEL)[1].body["messages"][-1]
    assert tool_result["role"] == "tool" and json.loads(tool_result["content"])["data"]["asked_by"] == user
    # Tokens arrive as several chunks, in order.
    chunks = [e for e in result.of("custom_stream") if "custom_llm_chunk" in e["content"]]
    assert len(chunks) >= 2 and result.text == "Tomorrow Paris will be sunny, 21 degrees."
    rows = sql(
        db_url,
        "SELECT role, message_type, status FROM session_messages WHERE session_id = %s::uuid ORDER BY seq",
        result.session_id,
    )
    assert rows == [
        ("user", "chat", "complete"),
        ("assistant", "tool_call", "complete"),
        ("tool", "tool_result", "complete"),
        ("assistant", "chat", "complete"),
    ]
    # The tool result keeps what its card showed, so a reopened conversation draws the same card.
    kept = sql(
        db_url,
        "SELECT message_metadata FROM session_messages WHERE session_id = %s::uuid AND message_type = 'tool_result'",
        result.session_id,
    )[0][0]
    assert kept == {"status": "finished", "duration_ms": done["duration_ms"], "files": []}


def test_a_tool_that_saves_a_file_names_it_in_its_card_and_history(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    user, key = new_user(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("chart_test_picture", {"title": "sales by month"})]),
        Reply(text="Here is the chart."),
    )
    result = chat(node, key, {"message": "make a test chart of sales by month"})
    assert result.status == 200 and result.done
    done = next(e for e in result.of("custom_stream") if e.get("phase") == "done")
    (file_id,) = done["files"]
    owner = sql(db_url, "SELECT user_id, content_type FROM files WHERE id = %s::uuid", file_id)
    assert owner == [(user, "image/png")]
    kept = sql(
        db_url,
        "SELECT message_metadata FROM session_messages WHERE session_id = %s::uuid AND message_type = 'tool_result'",
        result.session_id,
    )[0][0]
    assert kept["files"] == [file_id] and kept["status"] == "finished"


def test_billing_is_one_credit_per_model_call_and_two_per_tool_call_charged_once(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    user, key = new_user(db_url, all_settings, credits=50)
    fake.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("get_current_time", {"timezone": "UTC"}), call("weather_forecast", {"city": "Oslo"})]),
        Reply(text="Done."),
    )
    result = chat(node, key, {"message": "what time is it, and what is the weather in Oslo?"})
    billing = result.of("billing")[0]["content"]
    assert billing["success"] is True
    assert (billing["model_calls"], billing["tool_calls"], billing["total_credits"]) == (2, 2, 6)
    agent_moves = sql(
        db_url,
        "SELECT credits_amount FROM user_credit_transactions WHERE user_id = %s AND description = 'agent chat'",
        user,
    )
    assert agent_moves == [(Decimal("-6.000"),)]
    assert (
        Decimal(str(billing["credits_remaining"]))
        == sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = %s", user)[0][0]
    )


def test_an_answer_without_tools_still_costs_the_minimum_of_one_credit(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="Hello!"))
    billing = chat(node, key, {"message": "hi"}).of("billing")[0]["content"]
    assert (billing["model_calls"], billing["tool_calls"], billing["total_credits"]) == (1, 0, 1)


def test_a_user_without_credits_gets_a_clear_402_before_any_model_call(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings, credits=0)
    result = chat(node, key, {"message": "hi"})
    assert result.status == 402 and result.body["error"]["code"] == "insufficient_credits"
    assert fake.count(FAKE_MODEL) == 0


def test_a_model_that_keeps_calling_tools_stops_at_max_iterations_with_an_error_event(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(tool_calls=[call("get_current_time", {})], times=50))
    result = chat(node, key, {"message": "loop forever"})
    assert result.done and result.error_code == "max_iterations"
    assert fake.count(FAKE_MODEL, "/v1/chat/completions") == 6  # provider calls = max_iterations, no more
    assert result.of("billing")[0]["content"]["model_calls"] == 6


def test_a_hanging_tool_ends_the_run_with_tool_timeout_within_the_configured_time(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(tool_calls=[call("slow_lookup", {"seconds": 60})]))
    started = time.monotonic()
    result = chat(node, key, {"message": "slow lookup please, it may hang"})
    assert result.error_code == "tool_timeout" and result.done
    assert time.monotonic() - started < 3.0 + 5  # tool_timeout_seconds (3) plus the rest of the turn


def test_a_model_stream_cut_midway_ends_with_an_error_and_leaves_only_an_incomplete_answer(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="This answer will break off halfway through", chunks=6, cut_after=3))
    result = chat(node, key, {"message": "tell me something long"})
    assert result.done and result.error_code in ("model_stream_cut", "upstream_error", "model_unavailable")
    rows = sql(
        db_url,
        "SELECT role, message_type, status, message_metadata->>'error_code' FROM session_messages "
        "WHERE session_id = %s::uuid ORDER BY seq",
        result.session_id,
    )
    assert rows[0][:3] == ("user", "chat", "complete")
    assert rows[1][:3] == ("assistant", "chat", "incomplete") and rows[1][3] == result.error_code
    assert len(rows) == 2  # no tool rows, no complete answer


def test_the_model_node_unreachable_ends_with_model_unavailable(
    all_settings: Settings, db_url: str, fake: FakeOpenAI
) -> None:
    from isa.app import create_app
    from isa.core.settings import ServicesSettings
    from tests.support.agent import SAMPLE_DOMAIN
    from tests.support.mcp_servers import serve_asgi, with_domains
    from tests.support.procs import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    with with_domains(SAMPLE_DOMAIN, role="all"):
        broken = all_settings.model_copy(update={"services": ServicesSettings(model_url=dead)})
        app = create_app(broken, "all", database_url=db_url)
    _, key = new_user(db_url, all_settings)
    with serve_asgi(app) as url:
        result = chat(url, key, {"message": "anyone there?"})
    assert result.done and result.error_code == "model_unavailable"


def test_heartbeats_keep_a_quiet_stream_alive(node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="after a pause", delay=1.2))
    result = chat(node, key, {"message": "think slowly"})
    assert result.done and ": heartbeat" in result.lines


def test_the_same_idempotency_key_replays_a_finished_answer_instead_of_running_again(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="First and only answer."))
    first = chat(node, key, {"message": "once", "idempotency_key": "k-1"})
    again = chat(node, key, {"message": "once", "idempotency_key": "k-1", "session_id": first.session_id})
    assert again.text == "First and only answer." and again.of("billing")[0]["content"]["total_credits"] == 0
    assert fake.count(FAKE_MODEL) == 1


def test_a_failed_turn_can_be_retried_with_the_same_key(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="broken answer here", chunks=4, cut_after=2), Reply(text="Whole answer."))
    first = chat(node, key, {"message": "retry me", "idempotency_key": "k-2"})
    assert first.error_code is not None
    second = chat(node, key, {"message": "retry me", "idempotency_key": "k-2", "session_id": first.session_id})
    assert second.error_code is None and second.text == "Whole answer."
    users = sql(
        db_url, "SELECT count(*) FROM session_messages WHERE session_id = %s::uuid AND role = 'user'", first.session_id
    )
    assert users == [(1,)]  # the question is stored once


def test_each_run_writes_a_trace_with_model_and_tool_spans(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(tool_calls=[call("get_current_time", {})]), Reply(text="noon"))
    result = chat(node, key, {"message": "what time is it"})
    traces = sql(db_url, "SELECT id, status, name FROM traces WHERE session_id = %s::uuid", result.session_id)
    assert len(traces) == 1 and traces[0][1:] == ("ok", "agent.chat")
    spans = sql(
        db_url,
        "SELECT name, kind, status, duration_ms FROM spans WHERE trace_id = %s ORDER BY started_at",
        traces[0][0],
    )
    assert [s[:3] for s in spans] == [
        ("model.chat", "llm", "ok"),
        ("tool.get_current_time", "tool", "ok"),
        ("model.chat", "llm", "ok"),
    ]
    assert all(s[3] >= 0 for s in spans)


def test_the_non_streaming_endpoint_returns_the_answer_as_json(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="Plain answer."))
    response = httpx.post(
        node + "/api/chat/message", json={"message": "hi"}, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    body = response.json()
    assert response.status_code == 200 and body["response"] == "Plain answer." and body["model"] == "default"
    assert body["processing_time"] >= 0 and body["session_id"]


def test_an_event_callback_is_answered_by_the_agent_as_the_events_owner(
    node: str, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="The page changed: price dropped."))
    response = httpx.post(
        node + "/api/chat/event_callback",
        json={"event_type": "web_monitor", "task_id": "t-1", "data": {"change": "price 10 -> 8"}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert response.status_code == 200 and response.json()["response"].startswith("The page changed")
    sent = fake.requests_for(FAKE_MODEL)[0].body["messages"][-1]["content"]
    assert "web_monitor" in sent and "price 10 -> 8" in sent
