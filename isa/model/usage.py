"""Usage off the response path: a bounded queue with one writer, and a cheap credit check.

Every call's usage row, credit charge and daily statistics used to be written by the request itself
(one transaction per call, all of them locking the same user and statistics rows). Under load those
transactions queued on row locks while holding pool connections, and the next requests' auth and
credit queries waited for a connection. Now a request only enqueues its row; one writer drains the
queue in batches (one transaction per batch, statistics summed per model), so at most one connection
writes usage and the locks are taken once per batch. The queue is bounded (a full queue makes
requests wait: backpressure, never a dropped row) and drained on shutdown.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from isa.core.db import DictConnection
from isa.core.logging import get_logger
from isa.model.settings import Deployment
from isa.model.store import Usage
from isa.users import credits
from isa.users import usage as users_usage

log = get_logger(__name__)


@dataclass(frozen=True)
class Pending:
    """One call to account for: its usage row (None for a failed call), who served it, whether it failed."""

    usage: Usage | None
    deployment: Deployment
    failed: bool = False


# Writes a batch in one transaction; returns the credits charged per item (None: no charge / no row).
WriteBatch = Callable[[list[Pending]], Awaitable[list[Decimal | None]]]


class CreditGate:
    """The 402 check without a query per call: a recent balance, minus what this node has charged since.

    A balance read is trusted for `ttl` seconds, and only to let a call through: whenever the cached
    figure (less the credits still queued for writing) is below the minimum, the balance is read again,
    so a refusal always comes from the database. Credits queued but not yet written count against the
    balance, so a user who just spent their last credits is refused even before the writer has run.
    """

    def __init__(self, ttl_seconds: float, max_users: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl_seconds
        self.max_users = max_users
        self.clock = clock
        self._known: OrderedDict[str, tuple[Decimal, float]] = OrderedDict()  # user -> (balance, read at)
        self._pending: dict[str, Decimal] = {}

    def pending(self, user_id: str) -> Decimal:
        return self._pending.get(user_id, Decimal(0))

    def cached(self, user_id: str) -> Decimal | None:
        """The balance this node believes the user has now, if it read it less than `ttl` ago."""
        known = self._known.get(user_id)
        if known is None or self.clock() - known[1] >= self.ttl:
            return None
        return known[0] - self.pending(user_id)

    def remember(self, user_id: str, balance: Decimal) -> None:
        if self.ttl <= 0:
            return
        self._known[user_id] = (balance, self.clock())
        self._known.move_to_end(user_id)
        while len(self._known) > self.max_users:
            self._known.popitem(last=False)

    def queued(self, user_id: str, due: Decimal) -> None:
        self._pending[user_id] = self.pending(user_id) + due

    def written(self, user_id: str, due: Decimal, charged: Decimal | None) -> None:
        """A queued charge reached the database (or was given up): it is no longer pending."""
        left = self.pending(user_id) - due
        if left > 0:
            self._pending[user_id] = left
        else:
            self._pending.pop(user_id, None)
        known = self._known.get(user_id)
        if known is not None and charged:
            self._known[user_id] = (known[0] - charged, known[1])


class UsageWriter:
    """A bounded queue of calls to account for, drained in batches by one task."""

    def __init__(
        self, write: WriteBatch, gate: CreditGate, *, max_queue: int, max_batch: int, linger: float = 0.0
    ) -> None:
        self.write = write
        self.gate = gate
        self.max_batch = max_batch
        self.linger = linger  # seconds a batch may wait for more rows after its first (0: written at once)
        self._closing: anyio.Event | None = None  # made by run() (an Event needs the event loop)
        self._send: MemoryObjectSendStream[Pending]
        self._receive: MemoryObjectReceiveStream[Pending]
        self._send, self._receive = anyio.create_memory_object_stream[Pending](max_queue)
        self._writing = 0
        self._done = anyio.Event()
        self.running = False
        self.closing = False

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being written (tests wait on this)."""
        return self._writing == 0 and self._receive.statistics().current_buffer_used == 0

    async def put(self, item: Pending) -> None:
        """Queue a call; waits while the queue is full. Without a running writer, write it now."""
        if item.usage is not None:
            self.gate.queued(item.usage.user_id, item.usage.credits_due)
        if not self.running or self.closing:
            await self._write([item])
            return
        self._writing += 1  # counted from here, so `idle` never sees it between queue and batch
        try:
            try:
                # No checkpoint when there is room: a stream's last frame is not delayed by the writer's turn.
                self._send.send_nowait(item)
            except anyio.WouldBlock:
                await self._send.send(item)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._writing -= 1
            await self._write([item])

    async def run(self) -> None:
        """Drain the queue until it is closed and empty (the lifespan's task)."""
        self.running = True
        self._closing = closing = anyio.Event()
        try:
            async for first in self._receive:
                if self.linger > 0:
                    # Rows gather for a moment (a sequential client's next request is not served between one
                    # row's statements), so one transaction writes many; shutdown stops the wait at once.
                    with anyio.move_on_after(self.linger):
                        await closing.wait()
                batch = [first]
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                try:
                    await self._write(batch)
                finally:
                    self._writing -= len(batch)
        finally:
            self.running = False
            self._done.set()

    async def close(self, drain_seconds: float) -> None:
        """Stop taking calls and wait (bounded) until every queued one is written."""
        self.closing = True
        if self._closing is not None:
            self._closing.set()
        await self._send.aclose()
        with anyio.move_on_after(drain_seconds):
            await self._done.wait()
        left = self._receive.statistics().current_buffer_used
        if left:  # the database stayed away past the bound: say loudly what is lost
            while True:
                try:
                    item = self._receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
                if item.usage is not None:
                    log.error("usage_record_lost", user_id=item.usage.user_id, request_id=item.usage.request_id)

    async def _write(self, batch: list[Pending]) -> None:
        """One transaction for the batch; if it fails, each call alone, so one bad row loses no other."""
        with anyio.CancelScope(shield=True):
            try:
                with anyio.fail_after(30):
                    charged = await self.write(batch)
            except Exception:
                if len(batch) == 1:
                    self._given_up(batch[0])
                    return
                log.warning("usage_batch_failed", size=len(batch))
                for item in batch:
                    await self._write([item])
                return
        for item, charge in zip(batch, charged, strict=True):
            if item.usage is not None:
                self.gate.written(item.usage.user_id, item.usage.credits_due, charge)

    def _given_up(self, item: Pending) -> None:
        # The answer is already on its way; a lost row is logged loudly, never raised into the client.
        usage = item.usage
        log.exception(
            "usage_record_failed",
            deployment=item.deployment.id,
            user_id=usage.user_id if usage else None,
            request_id=usage.request_id if usage else None,
        )
        if usage is not None:
            self.gate.written(usage.user_id, usage.credits_due, None)


async def record_usage(conn: DictConnection, usage: Usage) -> tuple[str, Decimal] | None:
    """Insert the usage row and charge up to the balance, in the caller's transaction.

    The call has already happened, so a balance that ran short meanwhile is charged what it has
    (the shortfall is kept in billing_metadata); None when the user has no row.
    """
    available = await credits.balance(conn, usage.user_id, lock=True)
    if available is None:
        return None
    charge = min(usage.credits_due, available)
    metadata = {
        **usage.metadata,
        "model_group": usage.model_group,
        "deployment": usage.deployment_id,
        "status": usage.status,
        "latency_ms": round(usage.latency_ms, 2),
        "credits_due": str(usage.credits_due),
        "units": str(usage.units),
    }
    if charge < usage.credits_due:
        metadata["credits_shortfall"] = str(usage.credits_due - charge)
    usage_id = await users_usage.record_call(conn, usage, charge, metadata)
    if charge > 0:
        await credits.consume(
            conn,
            usage.user_id,
            charge,
            description=f"{usage.event_type}: {usage.model_group}",
            usage_record_id=usage_id,
            metadata={"deployment": usage.deployment_id, "request_id": usage.request_id},
        )
    return usage_id, charge
