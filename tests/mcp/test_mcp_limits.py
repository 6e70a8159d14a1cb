"""The upstream circuit breaker (B2 item 6) and the leased per-user, per-tool limiter shared by replicas."""

from __future__ import annotations

import anyio
import pytest

from isa.core.db import Database
from isa.core.settings import Settings
from isa.mcp.envelope import ToolFailure
from isa.mcp.limits import ToolLimiter, lease_size
from isa.mcp.upstream import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fail_fast(breaker: CircuitBreaker, key: str) -> ToolFailure:
    with pytest.raises(ToolFailure) as failure:
        breaker.before(key)
    return failure.value


def test_five_consecutive_failures_open_the_breaker_and_calls_fail_fast_with_retry_after() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=5, cooldown=30, clock=clock)
    for _ in range(4):
        breaker.before("up")
        breaker.failure("up")
    breaker.before("up")  # four failures: still closed
    breaker.failure("up")
    refused = _fail_fast(breaker, "up")
    assert refused.outcome == "circuit_open" and refused.retry_after == 30
    clock.now += 12
    assert _fail_fast(breaker, "up").retry_after == 18
    breaker.before("other")  # other servers are not affected


def test_after_the_cooldown_one_probe_passes_and_its_success_closes_the_breaker() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=5, cooldown=30, clock=clock)
    for _ in range(5):
        breaker.failure("up")
    clock.now += 30
    breaker.before("up")  # the probe
    assert breaker.snapshot()["up"] == {"failures": 5, "open": True, "probing": True}
    _fail_fast(breaker, "up")  # everyone else still fails fast while it runs
    breaker.success("up")
    assert "up" not in breaker.snapshot()  # closed: the circuit is forgotten
    breaker.before("up")
    breaker.before("up")


def test_a_failed_probe_reopens_the_breaker_for_another_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=5, cooldown=30, clock=clock)
    for _ in range(5):
        breaker.failure("up")
    clock.now += 31
    breaker.before("up")
    breaker.failure("up")
    assert _fail_fast(breaker, "up").retry_after == 30
    assert breaker.snapshot()["up"]["open"] is True


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    breaker = CircuitBreaker(threshold=5, cooldown=30, clock=Clock())
    for _ in range(4):
        breaker.failure("up")
    breaker.success("up")
    for _ in range(4):
        breaker.failure("up")
    assert breaker.snapshot()["up"] == {"failures": 4, "open": False, "probing": False}  # 4, not 8
    breaker.before("up")


def test_lease_sizes_are_one_for_small_limits_and_at_most_fifty() -> None:
    assert [lease_size(n) for n in (1, 3, 39, 40, 120, 10**9)] == [1, 1, 1, 2, 6, 50]


@pytest.mark.anyio
async def test_two_replicas_leasing_from_one_budget_never_exceed_it(db_url: str, settings: Settings) -> None:
    db = Database(db_url, settings)
    await db.open()
    try:
        replicas = [ToolLimiter(db), ToolLimiter(db)]
        allowed = 0

        async def hammer(limiter: ToolLimiter) -> None:
            nonlocal allowed
            for _ in range(60):
                if (await limiter.hit("shared_tool", "dora", 100)).allowed:
                    allowed += 1

        async with anyio.create_task_group() as tg:
            for limiter in replicas:
                tg.start_soon(hammer, limiter)
        assert allowed == 100  # 120 attempts, exactly the budget granted across both replicas
        refused = await replicas[0].hit("shared_tool", "dora", 100)
        assert not refused.allowed and 1 <= refused.retry_after <= 60
        other_user = await replicas[1].hit("shared_tool", "erin", 100)
        assert other_user.allowed
    finally:
        await db.close()
