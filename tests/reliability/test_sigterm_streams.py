"""B2.9 drill: SIGTERM to a real `isa serve --role agent` while chat streams and short requests are in flight.

Three real nodes on loopback (mcp, model in front of the scripted fake provider, agent), as in
tests/agent/test_agent_e2e.py. The fake streams slowly, so the chat streams outlive the agent's drain and graceful
bounds. On SIGTERM: readiness turns 503 at once while the node keeps serving for `drain_seconds`; requests in
flight are answered; each stream still open when the graceful bound runs out gets a final `error` event
(`stream_interrupted`) and then `[DONE]`; the process exits 0 within the bounds, the cut turns are recorded whole,
and the log has no traceback (the streams uvicorn cancels at its graceful bound end quietly after their last words).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from isa.core.settings import Settings
from tests.support.agent import FAKE_MODEL, new_user
from tests.support.deployment import common_env, model_env
from tests.support.fake_openai import FAKE_KEY_ENV, FakeOpenAI, Reply
from tests.support.procs import IsaProcess, isa_serve, wait_for
from tests.support.users import sql

DRAIN = 2.0
GRACEFUL = 3
STREAMS = 5
SHORT_WORKERS = 4
# Each stream: 40 pieces 0.5 s apart (20 s), far past drain + graceful, so only the shutdown can end it.
SLOW = Reply(text=" ".join(f"w{i}" for i in range(40)), chunks=40, chunk_delay=0.5, times=STREAMS)
# A non-streamed chat that is in flight at SIGTERM: its model call answers after a second.
BRIEF = Reply(text="brief answer", delay=1.0, times=2)


@dataclass
class Stream:
    """One open chat stream read in a thread: its lines, and when its first model words arrived."""

    lines: list[str] = field(default_factory=list)
    streaming: threading.Event = field(default_factory=threading.Event)
    closed_at: float | None = None
    error: BaseException | None = None

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line[6:]) for line in self.lines if line.startswith("data: {")]

    def read(self, url: str, key: str, message: str) -> None:
        try:
            with (
                httpx.Client(base_url=url, timeout=30) as http,
                http.stream("POST", "/api/chat", json={"message": message}, headers=_auth(key)) as response,
            ):
                assert response.status_code == 200, response.read()
                for line in response.iter_lines():
                    if not line:
                        continue
                    self.lines.append(line)
                    if '"custom_llm_chunk"' in line:
                        self.streaming.set()
        except BaseException as exc:  # recorded; the test asserts there was none
            self.error = exc
        finally:
            self.closed_at = time.monotonic()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    os.environ.setdefault(FAKE_KEY_ENV, "sk-fake-provider-key")
    with FakeOpenAI() as provider:
        yield provider


@pytest.fixture(scope="module")
def upstreams(
    fake: FakeOpenAI, db_url: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The mcp and model nodes the agent needs; the agent itself is started by the test (it is SIGTERMed)."""
    logs = tmp_path_factory.mktemp("sigterm-logs")
    common = common_env(db_url)
    with ExitStack() as stack:
        mcp = stack.enter_context(isa_serve("mcp", data_dir, env=common, log_dir=logs))
        model = stack.enter_context(isa_serve("model", data_dir, env={**common, **model_env(fake)}, log_dir=logs))
        mcp.wait_ready(120)
        model.wait_ready(120)
        yield {**common, "ISA_SERVICES__MODEL_URL": model.url, "ISA_SERVICES__MCP_URL": mcp.url}


@dataclass
class Drill:
    """What the drill observed; each test below asserts one part of it."""

    sent: float  # monotonic time of the SIGTERM
    ready_status: int
    ready_code: str
    ready_after: float  # seconds from the SIGTERM to the first 503 from /health/ready
    live_status: int  # /health while draining
    shorts: list[list[int] | BaseException]
    briefs: list[tuple[int, Any] | BaseException]
    streams: list[Stream]
    exit_code: int | None
    exited_after: float
    log: str = field(repr=False)
    turns: list[tuple[tuple[str, str], ...]]


def _outcome(future: Future[Any]) -> Any:
    try:
        return future.result(timeout=10)
    except BaseException as exc:  # reported by the test that looks at it
        return exc


@pytest.fixture(scope="module")
def drill(
    upstreams: dict[str, str],
    fake: FakeOpenAI,
    settings: Settings,
    db_url: str,
    data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Drill:
    """One agent node: 5 live streams, 2 chats and a stream of short GETs in flight, then SIGTERM."""
    user, key = new_user(db_url, settings, credits=100)
    env = {
        **upstreams,
        "ISA_SERVER__DRAIN_SECONDS": str(DRAIN),
        "ISA_SERVER__GRACEFUL_TIMEOUT_SECONDS": str(GRACEFUL),
        # The short requests loop as fast as the node answers: on a quiet machine four of them pass the per-user
        # budget (1,200 a minute) within the drain. The drill is about the drain, not the rate limit.
        "ISA_AUTH__RATE_LIMIT__PRINCIPAL_LIMIT": "0",
    }
    logs = tmp_path_factory.mktemp("sigterm-agent")
    with isa_serve("agent", data_dir, env=env, log_dir=logs) as agent, ThreadPoolExecutor(2 + SHORT_WORKERS) as pool:
        agent.wait_ready(60)
        fake.script(FAKE_MODEL, SLOW)
        streams = [Stream() for _ in range(STREAMS)]
        readers = [
            threading.Thread(target=s.read, args=(agent.url, key, f"count slowly {i}"), daemon=True)
            for i, s in enumerate(streams)
        ]
        for reader in readers:
            reader.start()
        wait_for(lambda: all(s.streaming.is_set() for s in streams), timeout=30)  # every stream is live

        # Two non-streamed chats whose model calls are under way when the signal comes.
        fake.script(FAKE_MODEL, BRIEF)
        briefs = [pool.submit(_brief_chat, agent, key, i) for i in range(2)]
        wait_for(lambda: fake.count(FAKE_MODEL) == STREAMS + 2, timeout=15)
        # Short requests keep coming from before the signal until just before the drain ends.
        stop_short = threading.Event()
        shorts = [pool.submit(_short_requests, agent, key, stop_short) for _ in range(SHORT_WORKERS)]
        wait_for(lambda: all(f.running() for f in shorts), timeout=5)

        agent.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        ready_status, ready_code, ready_after, live_status = _probe_health(agent, sent)
        wait_for(lambda: time.monotonic() - sent >= DRAIN - 0.5, timeout=DRAIN)
        stop_short.set()
        short_results = [_outcome(f) for f in shorts]
        brief_results = [_outcome(f) for f in briefs]
        try:
            exit_code: int | None = agent.proc.wait(timeout=DRAIN + GRACEFUL + 5)
        except subprocess.TimeoutExpired:
            exit_code = None
        exited_after = time.monotonic() - sent
        for reader in readers:
            reader.join(5)
        log = agent.log_path.read_text(errors="replace")

    rows = sql(
        db_url,
        "SELECT session_id::text, role, status FROM session_messages WHERE user_id = %s ORDER BY session_id, seq",
        user,
    )
    turns: dict[str, list[tuple[str, str]]] = {}
    for session_id, role, status in rows:
        turns.setdefault(session_id, []).append((role, status))
    return Drill(
        sent=sent,
        ready_status=ready_status,
        ready_code=ready_code,
        ready_after=ready_after,
        live_status=live_status,
        shorts=short_results,
        briefs=brief_results,
        streams=streams,
        exit_code=exit_code,
        exited_after=exited_after,
        log=log,
        turns=sorted(tuple(t) for t in turns.values()),
    )


def test_readiness_turns_503_shutting_down_at_once_while_the_node_stays_live(drill: Drill) -> None:
    assert drill.ready_status == 503 and drill.ready_code == "shutting_down"
    assert drill.ready_after < 0.5, f"readiness turned 503 only {drill.ready_after:.2f}s after SIGTERM"
    assert drill.live_status == 200


def test_requests_in_flight_at_sigterm_and_during_the_drain_are_all_answered(drill: Drill) -> None:
    for batch in drill.shorts:  # GET /api/sessions on keep-alive connections, across the signal
        assert isinstance(batch, list) and batch and set(batch) == {200}, batch
    for outcome in drill.briefs:  # non-streamed chats whose model call was under way at the signal
        assert not isinstance(outcome, BaseException), repr(outcome)
        status, body = outcome
        assert status == 200 and body["response"] == "brief answer", body


def test_every_open_stream_ends_with_stream_interrupted_then_done_after_the_drain(drill: Drill) -> None:
    for stream in drill.streams:
        assert stream.error is None, (repr(stream.error), stream.lines[-3:])
        assert stream.lines[-1] == "data: [DONE]", stream.lines[-3:]
        last = stream.events[-1]
        assert last["type"] == "error" and last["code"] == "stream_interrupted", last
        # Served through the drain, cut only when the graceful bound ran out.
        assert stream.closed_at is not None and stream.closed_at - drill.sent >= DRAIN


def test_the_node_exits_0_within_the_drain_and_graceful_bounds(drill: Drill) -> None:
    assert drill.exit_code == 0, drill.log[-3000:]
    assert drill.exited_after < DRAIN + GRACEFUL + 3, drill.exited_after


def test_the_interrupted_turns_are_recorded_whole(drill: Drill) -> None:
    complete = (("user", "complete"), ("assistant", "complete"))
    cut = (("user", "complete"), ("assistant", "incomplete"))
    assert drill.turns == sorted([complete] * 2 + [cut] * STREAMS), drill.turns


def test_the_log_has_no_traceback(drill: Drill) -> None:
    assert "Traceback" not in drill.log and "CancelledError" not in drill.log, drill.log[-3000:]


def _probe_health(agent: IsaProcess, sent: float) -> tuple[int, str, float, int]:
    """(first 503 of /health/ready, its code, seconds after the signal, /health meanwhile); 0 when none came."""
    with httpx.Client(base_url=agent.url, timeout=2) as probe:

        def not_ready() -> httpx.Response | None:
            response = probe.get("/health/ready")
            return response if response.status_code == 503 else None

        try:
            ready = wait_for(not_ready, timeout=DRAIN)
        except TimeoutError:
            return 0, "no 503 while draining", time.monotonic() - sent, 0
        after = time.monotonic() - sent
        try:
            live = probe.get("/health").status_code
        except httpx.HTTPError:
            live = 0
        return ready.status_code, str(ready.json()["error"]["code"]), after, live


def _brief_chat(agent: IsaProcess, key: str, i: int) -> tuple[int, Any]:
    response = httpx.post(
        agent.url + "/api/chat/message", json={"message": f"a brief question {i}"}, headers=_auth(key), timeout=15
    )
    return response.status_code, response.json()


def _short_requests(agent: IsaProcess, key: str, stop: threading.Event) -> list[int]:
    """GET /api/sessions again and again on one keep-alive connection until told to stop; the statuses."""
    statuses: list[int] = []
    with httpx.Client(base_url=agent.url, headers=_auth(key), timeout=5) as http:
        while not stop.is_set():
            statuses.append(http.get("/api/sessions", params={"limit": 5}).status_code)
    return statuses
