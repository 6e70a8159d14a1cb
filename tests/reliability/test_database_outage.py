"""B2.7 and B2.8 drills: a real `isa serve --role mcp` whose database sits behind a TCP relay the test cuts.

The node reaches the embedded Postgres through `tests.support.relay.PgRelay` (127.0.0.1 -> the server's Unix
socket). Cutting the relay refuses new connections and breaks the pooled ones, as a database host that goes
away does. The drills: the node starts while the database is unreachable (live, not ready, no crash, ready
once it is back), and the database goes away under a warm node (503 with Retry-After, readiness 503, liveness
200, recovery without a restart, no leaked connections).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from isa.core.settings import DatabaseSettings, Settings
from tests.support.auth import create_key
from tests.support.procs import IsaProcess, isa_serve, wait_for
from tests.support.relay import PgRelay, tcp_url, unix_socket_of

# Short bounds so every phase of the drill is quick: one pool wait, one readiness check.
CONNECT_TIMEOUT = 1.0
READY_TIMEOUT = 1.0
# The load balancer's health-check interval (deploy/terraform/variables.tf): a node must be back within one probe.
PROBE_INTERVAL = 5.0
# The routes the drill calls: a plain read and a list. (/mcp initialize is not among them: it needs no database
# once the caller's principal is cached, so it rightly answers 200 during an outage; it is checked after recovery.)
ROUTES = ("/api/v1/users/me", "/api/v1/users/me/sessions")
MCP_INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "drill", "version": "1"}},
}


def _env(relay: PgRelay, db_url: str) -> dict[str, str]:
    return {
        "ISA_DATABASE__URL": tcp_url(db_url, relay.port),
        "ISA_DATABASE__AUTO_MIGRATE": "false",
        "ISA_DATABASE__CONNECT_TIMEOUT_SECONDS": str(CONNECT_TIMEOUT),
        "ISA_HEALTH__READY_TIMEOUT_SECONDS": str(READY_TIMEOUT),
    }


def _backends(pg_admin_url: str, db_url: str) -> int:
    """Client connections the server holds for the drill's database (counted directly, not through the relay)."""
    name = urlsplit(db_url).path.lstrip("/")
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'", (name,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _seconds_until(condition: Callable[[], bool], limit: float = 3 * PROBE_INTERVAL) -> float:
    """Seconds until `condition` holds (polled, bounded); `limit` + 1 when it never did."""
    started = time.monotonic()
    try:
        wait_for(condition, timeout=limit)
    except TimeoutError:
        return limit + 1
    return time.monotonic() - started


@pytest.fixture(scope="module")
def key(settings: Settings, db_url: str) -> str:
    return create_key(db_url, settings, "outage-drill-user", "write")


@pytest.fixture()
def relay(db_url: str) -> Iterator[PgRelay]:
    """A relay to the drill's database, up."""
    with PgRelay(unix_socket_of(db_url)).start() as r:
        yield r


def _mcp_init(node: IsaProcess, key: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    return httpx.post(node.url + "/mcp", json=MCP_INIT, headers=headers, timeout=10)


def _assert_unavailable(response: httpx.Response, key: str) -> None:
    """A database outage answers 503 with Retry-After and a generic body: no driver names, no key."""
    # The 503 mapping of database errors lives in isa/core/errors.py (psycopg.OperationalError -> 503).
    assert response.status_code == 503, (response.request.url.path, response.status_code, response.text)
    assert 1 <= int(response.headers["retry-after"]) <= 60
    body = response.json()
    assert set(body["error"]) >= {"code", "message", "request_id"} and body["error"]["request_id"]
    text = response.text.lower()
    assert "psycopg" not in text and "traceback" not in text and "127.0.0.1" not in text and key not in text


def _pool_backed_off(resets: list[float]) -> bool:
    """The outage has lasted 7 s since the first attempt (long past the first back-off steps of every chain)."""
    return bool(resets) and time.monotonic() - resets[0] >= 7.0


@dataclass
class StartDrill:
    """What a node started during a database outage did; the B2.7 tests below assert one part each."""

    live_at_start: object  # True, or "exited"
    ready_status: int
    ready_body: dict[str, Any]
    attempts: int  # connection attempts the relay reset during the outage
    outage: float  # seconds from the first attempt to the restore
    alive_through_outage: bool
    live_during_outage: int
    ready_after_restore: float  # seconds from the restore to readiness 200 (limit + 1: never)
    exit_code: int | None
    log: str = field(repr=False)


@pytest.fixture(scope="module")
def start_drill(db_url: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartDrill]:
    """`isa serve --role mcp` started while its database resets every connection; restored 6.5 s or more later.

    The relay notes each connection attempt. The pool's reconnect chains (min_size, and growth for waiting
    clients) back off 1 s, capped there (isa/core/db.py; uncapped they doubled to 2, 4, 8 s and readiness lagged
    the database by about the outage's length); the catalog's LISTEN connection retries on its own 0.5, 1, 2, 5 s
    schedule. The database comes back 7 s into the outage.
    """
    logs = tmp_path_factory.mktemp("b2-7")
    with PgRelay(unix_socket_of(db_url)).start(up=False) as relay:
        relay.cut(reset=True)
        with isa_serve("mcp", data_dir, env=_env(relay, db_url), log_dir=logs) as node:
            # Live, or exited: a node that dies at start (its pool insisting on a connection) shows here at once.
            live = wait_for(lambda: "exited" if node.proc.poll() is not None else node.get("/health").is_success, 60)
            ready = node.get("/health/ready") if live is True else None
            with contextlib.suppress(TimeoutError):  # a node that died makes no attempts; the tests report it
                wait_for(lambda: _pool_backed_off(relay.resets), timeout=20)
            relay.restore()
            outage = time.monotonic() - relay.resets[0]
            attempts = len(relay.resets)
            alive = node.proc.poll() is None
            live_during = node.get("/health").status_code if alive else 0
            ready_after = _seconds_until(lambda: node.get("/health/ready").status_code == 200)
            exit_code = node.stop() if node.proc.poll() is None else node.proc.returncode
            yield StartDrill(
                live_at_start=live,
                ready_status=ready.status_code if ready is not None else 0,
                ready_body=ready.json() if ready is not None else {},
                attempts=attempts,
                outage=outage,
                alive_through_outage=alive,
                live_during_outage=live_during,
                ready_after_restore=ready_after,
                exit_code=exit_code,
                log=node.log_path.read_text(errors="replace"),
            )


def test_b2_7_a_node_started_while_the_database_is_down_is_live_and_not_ready(start_drill: StartDrill) -> None:
    assert start_drill.live_at_start is True, start_drill.log[-3000:]
    assert start_drill.ready_status == 503 and start_drill.ready_body["error"]["code"] == "not_ready"
    assert start_drill.ready_body["checks"]["database"] != "ok"


def test_b2_7_it_keeps_retrying_through_the_outage_without_crashing(start_drill: StartDrill) -> None:
    assert start_drill.attempts >= 3 and start_drill.outage >= 6.5  # it did meet the outage, several times
    assert start_drill.alive_through_outage and start_drill.live_during_outage == 200, start_drill.log[-3000:]


def test_b2_7_once_the_database_is_back_it_turns_ready_without_a_restart_and_stops_cleanly(
    start_drill: StartDrill,
) -> None:
    assert start_drill.ready_after_restore <= 3 * PROBE_INTERVAL, "never ready again after the restore"
    assert start_drill.exit_code == 0
    assert "Traceback" not in start_drill.log, start_drill.log[-3000:]


def test_b2_7_readiness_is_back_within_one_probe_interval_of_the_database(start_drill: StartDrill) -> None:
    assert start_drill.ready_after_restore < PROBE_INTERVAL, (
        f"ready only {start_drill.ready_after_restore:.1f}s after the database came back "
        f"(outage {start_drill.outage:.1f}s, {start_drill.attempts} attempts)"
    )


def test_b2_8_a_database_outage_under_load_is_503_with_retry_after_and_the_pool_recovers_without_leaks(
    relay: PgRelay, key: str, db_url: str, pg_admin_url: str, data_dir: Path, tmp_path: Path
) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    with (
        isa_serve("mcp", data_dir, env=_env(relay, db_url), log_dir=tmp_path) as node,
        httpx.Client(base_url=node.url, headers=auth, timeout=10) as http,
    ):
        node.wait_ready(60)
        for path in ROUTES:  # warm: the pool holds live connections through the relay
            assert http.get(path).status_code == 200
        assert _mcp_init(node, key).status_code == 200
        before = _backends(pg_admin_url, db_url)
        assert before == relay.active >= 1

        relay.cut()
        statuses: dict[str, list[int]] = {}
        started = time.monotonic()
        # Two rounds: the first meets the pool's broken connections, the second finds no database at all.
        for _ in range(2):
            for path in ROUTES:
                response = http.get(path)
                statuses.setdefault(path, []).append(response.status_code)
                _assert_unavailable(response, key)
        assert time.monotonic() - started < 4 * (CONNECT_TIMEOUT + 2)  # each answer within the pool's bound
        ready = node.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["database"] != "ok"
        assert node.get("/health").status_code == 200
        assert node.proc.poll() is None

        relay.restore()
        # The pool's reconnect back-off is capped (isa/core/db.py), so service is back within one probe interval.
        elapsed = _seconds_until(lambda: all(http.get(path).status_code == 200 for path in ROUTES))
        assert elapsed < PROBE_INTERVAL, f"served again only {elapsed:.1f}s after the database came back"
        assert _mcp_init(node, key).status_code == 200
        assert node.get("/health/ready").status_code == 200

        # No leak: every backend belongs to a live relayed connection, and the pool stays within its bound. (Requests
        # that waited during the outage ask the pool to grow; with the capped back-off those connections arrive
        # once the database is back, so the pool may be a connection or two larger than before: grown, not leaked.)
        def settled() -> int | None:
            count = _backends(pg_admin_url, db_url)
            return count if count == relay.active else None  # >= 1: the requests above hold the pool open

        after = wait_for(settled, timeout=5)
        bound = max(before, DatabaseSettings().pool_max)
        assert after <= bound, json.dumps({"before": before, "after": after, "statuses": statuses})
        assert node.stop() == 0
        log = node.log()
        assert "Traceback" not in log, log
