"""End to end: the agent, mcp and model roles as three `isa serve` processes on loopback, the fake provider
scripted over HTTP (it runs in this test process). The agent reaches the others only over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from isa.core.settings import Settings
from tests.support.agent import FAKE_MODEL, SAMPLE_DOMAIN, chat, new_user, resume
from tests.support.deployment import common_env
from tests.support.deployment import model_env as deployment_model_env
from tests.support.fake_openai import FakeOpenAI, Reply, call
from tests.support.procs import IsaProcess, free_port, wait_for
from tests.support.users import sql

# `isa serve` with the agent tests' sample domain added to the mcp role (the registry finds its tools).
_SERVE_WITH_SAMPLE = (
    "import sys; from isa.roles import ROLE_DOMAINS; "
    f"ROLE_DOMAINS['mcp'] = (*ROLE_DOMAINS['mcp'], {SAMPLE_DOMAIN!r}); "
    "from isa.cli import main; main(sys.argv[1:])"
)


@contextmanager
def serve(role: str, data_dir: Path, env: dict[str, str], port: int | None = None) -> Iterator[IsaProcess]:
    port = port or free_port()
    log_path = data_dir / f"e2e-{role}-{port}.log"
    code = _SERVE_WITH_SAMPLE if role == "mcp" else "import sys; from isa.cli import main; main(sys.argv[1:])"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", "--role", role, "--port", str(port)],
            env={**os.environ, "ISA_DATA_DIR": str(data_dir), "ISA_ENV": "test", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        handle = IsaProcess(proc, port, log_path)
        try:
            yield handle
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="module")
def cluster(fake_llm: FakeOpenAI, db_url: str, data_dir: Path) -> Iterator[dict[str, Any]]:
    common = common_env(db_url)
    model_env = {**common, **deployment_model_env(fake_llm)}
    with serve("mcp", data_dir, common) as mcp, serve("model", data_dir, model_env) as model:
        mcp.wait_ready(120)
        model.wait_ready(120)
        agent_env = {**common, "ISA_SERVICES__MODEL_URL": model.url, "ISA_SERVICES__MCP_URL": mcp.url}
        yield {"mcp": mcp, "model": model, "agent_env": agent_env, "data_dir": data_dir, "model_env": model_env}


@pytest.fixture(scope="module")
def agent(cluster: dict[str, Any]) -> Iterator[IsaProcess]:
    with serve("agent", cluster["data_dir"], cluster["agent_env"]) as proc:
        proc.wait_ready(60)
        yield proc


def test_a_chat_across_three_processes_discovers_and_calls_a_real_tool_and_bills_it(
    agent: IsaProcess, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    user, key = new_user(db_url, all_settings, credits=40)
    fake.script(FAKE_MODEL, Reply(tool_calls=[call("weather_forecast", {"city": "Lima"})]), Reply(text="Lima: sunny."))
    result = chat(agent.url, key, {"message": "weather forecast for Lima tomorrow"})
    assert result.error_code is None and result.text == "Lima: sunny.", result.events
    tool_message = fake.requests_for(FAKE_MODEL)[1].body["messages"][-1]["content"]
    assert json.loads(tool_message)["data"]["asked_by"] == user  # the mcp node ran it as this user
    billing = result.of("billing")[0]["content"]
    assert (billing["model_calls"], billing["tool_calls"], billing["total_credits"]) == (2, 1, 4)
    charged = sql(db_url, "SELECT credits_amount FROM user_credit_transactions WHERE user_id = %s AND "
                  "description = 'agent chat'", user)  # fmt: skip
    assert charged == [(-4,)]


def test_the_iteration_bound_holds_across_processes(
    agent: IsaProcess, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(tool_calls=[call("get_current_time", {})], times=50))
    result = chat(agent.url, key, {"message": "never stop"})
    assert result.error_code == "max_iterations" and fake.count(FAKE_MODEL) == 5


def test_a_hanging_tool_on_the_mcp_node_ends_with_tool_timeout(
    agent: IsaProcess, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(tool_calls=[call("slow_lookup", {"seconds": 60})]))
    started = time.monotonic()
    result = chat(agent.url, key, {"message": "a slow lookup that hangs"})
    assert result.error_code == "tool_timeout" and result.done
    assert time.monotonic() - started < 10


def test_a_cut_model_stream_ends_with_an_error_and_no_half_written_rows(
    agent: IsaProcess, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="one two three four five six", chunks=6, cut_after=3))
    result = chat(agent.url, key, {"message": "count slowly"})
    assert result.done and result.error_code is not None
    statuses = sql(db_url, "SELECT role, status FROM session_messages WHERE session_id = %s::uuid ORDER BY seq",
                   result.session_id)  # fmt: skip
    assert statuses == [("user", "complete"), ("assistant", "incomplete")]


def test_an_approval_round_trip_survives_a_restart_of_the_agent(
    cluster: dict[str, Any], fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    user, key = new_user(db_url, all_settings)
    fake.script(
        FAKE_MODEL,
        Reply(tool_calls=[call("delete_my_memories", {"memory_type": "episodic"})]),
        Reply(text="Deleted your episodic memories."),
    )
    port = free_port()
    with serve("agent", cluster["data_dir"], cluster["agent_env"], port) as first:
        first.wait_ready(60)
        paused = chat(first.url, key, {"message": "delete my episodic memories"})
        assert paused.interrupt is not None and paused.interrupt["type"] == "authorization"
        first.proc.send_signal(signal.SIGTERM)
        assert first.proc.wait(30) == 0
    request_id = paused.interrupt["authorization_request_id"]
    approved = httpx.post(
        f"{cluster['mcp'].url}/api/v1/authorizations/{request_id}/approve",
        headers={"Authorization": f"Bearer {key}"},
        json={"note": "yes"},
        timeout=10,
    )
    assert approved.status_code == 200, approved.text
    with serve("agent", cluster["data_dir"], cluster["agent_env"], port) as second:
        second.wait_ready(60)
        done = resume(second.url, key, paused.session_id, {"approved": True})
    assert done.error_code is None and done.text == "Deleted your episodic memories."
    deleted = (
        "SELECT count(*) FROM audit_log WHERE user_id = %s AND tool_name = 'delete_my_memories' AND outcome = 'ok'"
    )
    wait_for(lambda: sql(db_url, deleted, user)[0][0] == 1)


def test_the_model_node_dying_mid_stream_ends_the_chat_with_an_error_in_time(
    cluster: dict[str, Any], agent: IsaProcess, fake: FakeOpenAI, all_settings: Settings, db_url: str
) -> None:
    _, key = new_user(db_url, all_settings)
    fake.script(FAKE_MODEL, Reply(text="a b c d e f g h i j", chunks=10, chunk_delay=1.0))
    model: IsaProcess = cluster["model"]

    def kill_when_streaming() -> bool:
        if fake.count(FAKE_MODEL):
            model.proc.kill()
            return True
        return False

    import threading

    killer = threading.Thread(target=lambda: wait_for(kill_when_streaming, timeout=30), daemon=True)
    killer.start()
    started = time.monotonic()
    result = chat(agent.url, key, {"message": "stream slowly"})
    killer.join(5)
    assert result.done and result.error_code in ("model_stream_cut", "model_unavailable")
    assert time.monotonic() - started < 15
    statuses = sql(db_url, "SELECT role, status FROM session_messages WHERE session_id = %s::uuid ORDER BY seq",
                   result.session_id)  # fmt: skip
    assert statuses == [("user", "complete"), ("assistant", "incomplete")]
