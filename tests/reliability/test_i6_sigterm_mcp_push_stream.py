"""Review item I6: SIGTERM to a real `isa serve --role mcp` while a client holds the MCP server-push stream open.

A 2025 client keeps `GET /mcp` open for server-initiated messages (e.g. `notifications/tools/list_changed`).
When the node shuts down that stream must end as the streamable-HTTP spec asks of a server that closes an SSE
stream: a last SSE event with a `retry` field (how long to wait before reconnecting, which the SDK's client
honours) and then a proper end of the chunked body, not a cut connection; the node exits 0 within its bounds and
the log has no traceback. Run with the dev default (no drain) and with a drain, during which the stream stays open.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from isa.core.settings import Settings
from tests.support.auth import create_key
from tests.support.deployment import common_env
from tests.support.procs import isa_serve, wait_for

GRACEFUL = 3
PROTOCOL = "2025-06-18"
MCP_INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "i6-drill", "version": "1"}},
}


@dataclass
class PushStream:
    """The GET /mcp stream read in a thread: its raw lines, whether it opened, and how it ended."""

    lines: list[str] = field(default_factory=list)
    opened: threading.Event = field(default_factory=threading.Event)
    status: int = 0
    closed_at: float | None = None
    error: BaseException | None = None

    def read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=30)) as http,
                http.stream("GET", url, headers=headers) as r,
            ):
                self.status = r.status_code
                self.opened.set()
                for line in r.iter_lines():
                    self.lines.append(line)
        except BaseException as exc:  # recorded; the test asserts there was none
            self.error = exc
        finally:
            self.closed_at = time.monotonic()
            self.opened.set()

    @property
    def events(self) -> list[dict[str, str]]:
        """The SSE events (blank-line separated blocks of `field: value` lines; comments dropped)."""
        events: list[dict[str, str]] = []
        current: dict[str, str] = {}
        for line in self.lines:
            if not line:
                if current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                current[name] = value.removeprefix(" ")
        if current:
            events.append(current)
        return events


@dataclass
class Drill:
    drain: float
    stream: PushStream
    sent: float
    exit_code: int | None
    exited_after: float
    log: str = field(repr=False)


def _drill(drain: float, db_url: str, key: str, data_dir: Path, logs: Path) -> Drill:
    env = {
        **common_env(db_url),
        "ISA_SERVER__DRAIN_SECONDS": str(drain),
        "ISA_SERVER__GRACEFUL_TIMEOUT_SECONDS": str(GRACEFUL),
    }
    with isa_serve("mcp", data_dir, env=env, log_dir=logs) as node:
        node.wait_ready(120)
        headers = {"Authorization": f"Bearer {key}", "MCP-Protocol-Version": PROTOCOL}
        init = httpx.post(
            node.url + "/mcp",
            json=MCP_INIT,
            headers={**headers, "Accept": "application/json, text/event-stream"},
            timeout=10,
        )
        assert init.status_code == 200, init.text
        headers["Mcp-Session-Id"] = init.headers["mcp-session-id"]
        done = httpx.post(
            node.url + "/mcp",
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers={**headers, "Accept": "application/json, text/event-stream"},
            timeout=10,
        )
        assert done.status_code == 202, done.text

        stream = PushStream()
        reader = threading.Thread(
            target=stream.read, args=(node.url + "/mcp", {**headers, "Accept": "text/event-stream"}), daemon=True
        )
        reader.start()
        assert stream.opened.wait(10) and stream.status == 200, (stream.status, stream.error)

        node.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        try:
            exit_code: int | None = node.proc.wait(timeout=drain + GRACEFUL + 5)
        except subprocess.TimeoutExpired:
            exit_code = None
        exited_after = time.monotonic() - sent
        reader.join(5)
        wait_for(lambda: stream.closed_at is not None, timeout=5)
        return Drill(drain, stream, sent, exit_code, exited_after, node.log_path.read_text(errors="replace"))


@pytest.fixture(scope="module")
def key(settings: Settings, db_url: str) -> str:
    return create_key(db_url, settings, "i6-push-stream-user", "read")


@pytest.fixture(scope="module", params=[0.0, 1.5], ids=["no-drain", "drain"])
def drill(
    request: pytest.FixtureRequest, key: str, db_url: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Drill:
    drain: float = request.param
    return _drill(drain, db_url, key, data_dir, tmp_path_factory.mktemp("i6-sigterm"))


def test_i6_sigterm_ends_the_mcp_push_stream_with_a_retry_hint_then_a_clean_end_and_no_traceback(drill: Drill) -> None:
    stream = drill.stream
    # A clean end of the chunked body: a cut connection would raise (RemoteProtocolError) in the reader.
    assert stream.error is None, (repr(stream.error), stream.lines[-5:])
    assert stream.events, stream.lines
    last = stream.events[-1]
    # The spec's last words for a server closing an SSE stream: a `retry` field (ms before reconnecting).
    assert "retry" in last and int(last["retry"]) > 0, stream.lines[-5:]
    assert last.get("event", "message") == "message", last  # a type every client accepts
    assert drill.exit_code == 0, drill.log[-3000:]
    assert drill.exited_after < drill.drain + GRACEFUL + 3, drill.exited_after
    assert "Traceback" not in drill.log and "CancelledError" not in drill.log, drill.log[-3000:]
    # Served through the drain (a load balancer is still moving clients away), ended after it.
    assert stream.closed_at is not None and stream.closed_at - drill.sent >= drill.drain - 0.1
