"""Usage rows are written after the answer, by one batching writer: every call lands exactly once, under
concurrency, when a batch fails, and when the node shuts down with rows still queued."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import anyio
import httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from isa.app import create_app
from isa.core.settings import Settings
from isa.model.service import ModelService
from isa.model.settings import Deployment
from isa.model.store import Usage
from isa.model.usage import CreditGate, Pending, UsageWriter
from tests.model.conftest import Headers, LiveGateway, sql
from tests.support.fake_openai import FakeOpenAI
from tests.support.procs import wait_for

NewUser = Callable[..., tuple[str, Headers]]
HI = [{"role": "user", "content": "hi"}]
DEPLOYMENT = Deployment(name="m", model="openai/m", api_key_env="")


def rows_of(db_url: str, user_id: str) -> list[tuple[object, ...]]:
    return sql(db_url, "SELECT request_id, credits_charged FROM user_usage_records WHERE user_id = %s", user_id)


def test_concurrent_calls_each_land_exactly_one_usage_row_and_one_charge(
    model_settings: Settings, db_url: str, fake: FakeOpenAI, new_user: NewUser
) -> None:
    user_id, headers = new_user(credits=100)
    before = int(
        sql(
            db_url,
            "SELECT coalesce(sum(s.total_requests), 0) FROM model_statistics s JOIN models m ON m.id = s.model_id "
            "WHERE m.provider = 'alpha' AND m.model_name = 'gpt-4o-mini'",
        )[0][0]
    )
    with LiveGateway(model_settings, db_url) as live:

        def call(i: int) -> str:
            body = {"model": "main", "messages": HI, "stream": i % 3 == 0}
            response = httpx.post(live.url + "/v1/chat/completions", headers=headers, json=body, timeout=30)
            assert response.status_code == 200
            return response.headers["x-request-id"]

        with ThreadPoolExecutor(8) as pool:
            request_ids = list(pool.map(call, range(24)))
        service = live.server.config.app.state.isa.get("model", ModelService)
        wait_for(lambda: service.usage_writer.idle, timeout=15)
        rows = rows_of(db_url, user_id)
    assert sorted(str(r[0]) for r in rows) == sorted(request_ids)  # each call once, none twice
    charged = sum((Decimal(str(r[1])) for r in rows), Decimal(0))
    balance = sql(db_url, "SELECT credits_remaining FROM users WHERE user_id = %s", user_id)[0][0]
    assert balance == Decimal(100) - charged and charged > 0
    consumed = sql(
        db_url,
        "SELECT count(*) FROM user_credit_transactions WHERE user_id = %s AND transaction_type = 'consume'",
        user_id,
    )[0][0]
    assert consumed == 24
    after = int(
        sql(
            db_url,
            "SELECT coalesce(sum(s.total_requests), 0) FROM model_statistics s JOIN models m ON m.id = s.model_id "
            "WHERE m.provider = 'alpha' AND m.model_name = 'gpt-4o-mini'",
        )[0][0]
    )
    assert after == before + 24


def test_rows_still_queued_at_shutdown_are_written_before_the_node_stops(
    model_settings: Settings, db_url: str, fake: FakeOpenAI, new_user: NewUser
) -> None:
    user_id, headers = new_user(credits=100)
    # Hold the user's row: the writer's first batch waits on it, so later calls stay queued.
    lock = psycopg.connect(db_url)
    lock.execute("SELECT 1 FROM users WHERE user_id = %s FOR UPDATE", (user_id,))
    client = TestClient(create_app(model_settings, "model", database_url=db_url))
    client.__enter__()
    try:
        request_ids = []
        for _ in range(3):
            response = client.post("/v1/chat/completions", headers=headers, json={"model": "main", "messages": HI})
            assert response.status_code == 200
            request_ids.append(response.headers["x-request-id"])
        assert rows_of(db_url, user_id) == []  # answered, not yet written
        writer = client.app.state.isa.get("model", ModelService).usage_writer  # type: ignore[attr-defined]

        def release_once_shutdown_began() -> None:
            wait_for(lambda: writer.closing, timeout=15)
            lock.rollback()

        releaser = threading.Thread(target=release_once_shutdown_began)
        releaser.start()
    finally:
        client.__exit__(None, None, None)  # the lifespan drains the queue before the database closes
    releaser.join(15)
    lock.close()
    assert sorted(str(r[0]) for r in rows_of(db_url, user_id)) == sorted(request_ids)


def usage(user: str, due: str = "1") -> Usage:
    return Usage(
        user_id=user,
        request_id=f"r-{user}",
        endpoint="/v1/chat/completions",
        event_type="model.chat",
        model_group="m",
        deployment_id="openai/m",
        model_name="m",
        provider="openai",
        credits_due=Decimal(due),
    )


@pytest.mark.anyio
async def test_a_failing_batch_is_retried_row_by_row_so_one_bad_row_loses_no_other() -> None:
    committed: list[str] = []
    attempts: list[int] = []
    queued = anyio.Event()

    async def write(batch: list[Pending]) -> list[Decimal | None]:
        attempts.append(len(batch))
        await queued.wait()  # the first batch waits until the others are queued behind it
        if any(p.usage is not None and p.usage.user_id == "bad" for p in batch):
            raise RuntimeError("constraint violated")  # the whole transaction rolls back
        committed.extend(p.usage.user_id for p in batch if p.usage is not None)
        return [Decimal(1)] * len(batch)

    gate = CreditGate(60)
    writer = UsageWriter(write, gate, max_queue=100, max_batch=10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        await anyio.wait_all_tasks_blocked()
        await writer.put(Pending(usage("a"), DEPLOYMENT))
        await anyio.wait_all_tasks_blocked()  # the writer holds "a" alone, waiting in its transaction
        for user in ("bad", "b", "c"):
            await writer.put(Pending(usage(user), DEPLOYMENT))
        assert gate.pending("b") == Decimal(1)  # queued charges count against the balance
        queued.set()
        await writer.close(5)
    assert attempts == [1, 3, 1, 1, 1]  # a; then bad+b+c in one transaction, which failed; then each alone
    assert sorted(committed) == ["a", "b", "c"]  # exactly once each; the bad row alone is given up
    assert gate.pending("a") == 0 and gate.pending("bad") == 0 and writer.idle


@pytest.mark.anyio
async def test_rows_queued_one_after_another_gather_into_one_batch_and_shutdown_cuts_the_wait() -> None:
    batches: list[list[str]] = []

    async def write(batch: list[Pending]) -> list[Decimal | None]:
        batches.append([p.usage.user_id for p in batch if p.usage is not None])
        return [Decimal(1)] * len(batch)

    writer = UsageWriter(write, CreditGate(60), max_queue=100, max_batch=10, linger=60)
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        await anyio.wait_all_tasks_blocked()
        for user in ("a", "b", "c"):
            await writer.put(Pending(usage(user), DEPLOYMENT))
            await anyio.wait_all_tasks_blocked()  # the writer took "a" and lingers: nothing written yet
        assert batches == []
        with anyio.fail_after(5):  # far less than the linger: closing ends the wait at once
            await writer.close(5)
    assert batches == [["a", "b", "c"]] and writer.idle


@pytest.mark.anyio
async def test_without_a_running_writer_a_call_is_written_at_once() -> None:
    committed: list[str] = []

    async def write(batch: list[Pending]) -> list[Decimal | None]:
        committed.extend(p.usage.user_id for p in batch if p.usage is not None)
        return [None] * len(batch)

    writer = UsageWriter(write, CreditGate(0), max_queue=1, max_batch=1)
    await writer.put(Pending(usage("late"), DEPLOYMENT))
    assert committed == ["late"] and writer.idle


def test_the_credit_gate_lets_calls_through_on_a_recent_balance_less_what_is_still_queued() -> None:
    now = [0.0]
    gate = CreditGate(2.0, clock=lambda: now[0])
    assert gate.cached("u") is None  # never read: the caller reads the database
    gate.remember("u", Decimal("5"))
    assert gate.cached("u") == Decimal("5")
    gate.queued("u", Decimal("4.5"))  # a call answered, its charge not yet written
    assert gate.cached("u") == Decimal("0.5")
    gate.written("u", Decimal("4.5"), Decimal("4.5"))  # written: the known balance carries it now
    assert gate.cached("u") == Decimal("0.5") and gate.pending("u") == 0
    now[0] = 2.0
    assert gate.cached("u") is None  # past the TTL the balance is read again
    off = CreditGate(0)
    off.remember("u", Decimal("5"))
    assert off.cached("u") is None
