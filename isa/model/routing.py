"""The gateway's one routing engine, for both call paths (direct OpenAI wire and litellm).

It picks a deployment of the requested group (random among the healthy ones), holds a slot of its
provider's concurrency cap for the attempt, retries with back-off (the only retry layer: HTTP clients never
retry), cools down a deployment that keeps failing, and falls back to the configured groups once a group
has failed. An attempt is any coroutine taking the chosen deployment; what it speaks to the provider is the
engine's business (isa/model/direct.py or litellm), so both paths route, fail and recover alike.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from isa.core.logging import get_logger
from isa.model.settings import Deployment, ModelSettings

log = get_logger(__name__)

T = TypeVar("T")
_WINDOW_SECONDS = 60.0  # allowed_fails counts failures in this window
_MAX_RETRY_AFTER = 5.0  # a provider's Retry-After is honoured up to this long between retries


class NoDeployment(Exception):
    """Every deployment of the group is cooling down (503 upstream_unavailable)."""

    status_code = 503


class CapReached(Exception):
    """The provider's concurrency cap is full: the attempt fails fast, like a 429, and is retried or falls back."""

    status_code = 429


class Slot:
    """One held place in a provider's concurrency pool; released once, however the call ends."""

    __slots__ = ("_pool", "_released")

    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._pool.in_use -= 1


class Pool:
    """A provider's (or a deployment's own) cap on calls in flight."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.in_use = 0

    def take(self) -> Slot | None:
        if self.in_use >= self.cap:
            return None
        self.in_use += 1
        return Slot(self)


def status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _retryable(exc: BaseException) -> bool:
    """A request the provider refused as malformed fails the same everywhere: no retry, no fallback."""
    name = type(exc).__name__
    if name in ("BadRequestError", "ContextWindowExceededError", "UnsupportedParamsError"):
        return False
    return status_of(exc) not in (400, 413, 422)


def _repeatable(exc: BaseException) -> bool:
    """Worth another attempt inside the group (a refused key or unknown model is not)."""
    return status_of(exc) not in (401, 403, 404) and type(exc).__name__ not in (
        "AuthenticationError",
        "PermissionDeniedError",
        "NotFoundError",
    )


class Routing:
    """Deployment choice, cooldown, caps, retries and fallbacks over the servable deployments."""

    def __init__(self, settings: ModelSettings, groups: dict[str, list[Deployment]]) -> None:
        self.settings = settings
        self.groups = groups
        self._fails: dict[str, deque[float]] = {}
        self._cool_until: dict[str, float] = {}
        provider_pools: dict[str, Pool] = {}
        self._pools: dict[str, Pool] = {}
        for deployments in groups.values():
            for d in deployments:
                if d.max_parallel is not None:
                    self._pools[d.id] = Pool(d.max_parallel)
                else:
                    pool = provider_pools.setdefault(d.provider, Pool(settings.cap_for(d.provider)))
                    self._pools[d.id] = pool

    # -- health --------------------------------------------------------------------------------
    def cooling(self, deployment: Deployment, now: float) -> bool:
        until = self._cool_until.get(deployment.id)
        return until is not None and until > now

    def _lone(self, group: str) -> bool:
        """A group's only deployment with nowhere to fall back is never cooled down (5xx would only become 503)."""
        return len(self.groups.get(group, ())) <= 1 and not self.settings.fallbacks.get(group)

    def failed(self, group: str, deployment: Deployment) -> None:
        """Count a failure; past `allowed_fails` a minute the deployment gets no traffic for `cooldown_seconds`."""
        s = self.settings
        if s.cooldown_seconds <= 0 or self._lone(group):
            return
        now = time.monotonic()
        fails = self._fails.setdefault(deployment.id, deque())
        fails.append(now)
        while fails and fails[0] < now - _WINDOW_SECONDS:
            fails.popleft()
        if len(fails) > s.allowed_fails:
            self._cool_until[deployment.id] = now + s.cooldown_seconds
            fails.clear()
            log.warning("deployment_cooled_down", deployment=deployment.id, seconds=s.cooldown_seconds)

    def _pick(self, group: str, avoid: set[str]) -> Deployment:
        now = time.monotonic()
        healthy = [d for d in self.groups.get(group, ()) if not self.cooling(d, now)]
        if not healthy:
            raise NoDeployment(f"No deployments available for {group}")
        fresh = [d for d in healthy if d.id not in avoid]  # a retry prefers a deployment not tried yet
        return random.choice(fresh or healthy)  # noqa: S311 (load spreading, not security)

    @staticmethod
    def _backoff(attempt: int, exc: BaseException) -> float:
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > 0:
            return min(float(retry_after), _MAX_RETRY_AFTER)
        base: float = min(0.5 * 2.0**attempt, 4.0)
        return base * (0.75 + random.random() / 2)  # noqa: S311

    # -- calls ---------------------------------------------------------------------------------
    async def call(self, group: str, attempt: Callable[[Deployment, Slot], Awaitable[T]], *, hold: bool = False) -> T:
        """`attempt(deployment, slot)` on `group`, then on its fallbacks, until one answers.

        With `hold`, a successful attempt keeps its slot (a stream releases it when it closes).
        """
        chain = [group, *self.settings.fallbacks.get(group, ())[: self.settings.max_fallbacks]]
        error: BaseException | None = None
        for name in chain:
            if name not in self.groups:
                continue
            try:
                return await self._group(name, attempt, hold)
            except Exception as exc:
                if not _retryable(exc):
                    raise
                error = exc
                if name != chain[-1]:
                    log.info("model_fallback", group=name, error=type(exc).__name__)
        assert error is not None  # the first group always exists (resolved before routing)
        raise error

    async def _group(self, group: str, attempt: Callable[[Deployment, Slot], Awaitable[T]], hold: bool) -> T:
        tried: set[str] = set()
        error: BaseException | None = None
        for n in range(self.settings.num_retries + 1):
            if n:
                assert error is not None
                await anyio.sleep(self._backoff(n - 1, error))
            deployment = self._pick(group, tried)
            tried.add(deployment.id)
            slot = self._pools[deployment.id].take()
            if slot is None:
                error = CapReached(f"provider {deployment.provider} is at its concurrency cap")
                continue
            try:
                result = await attempt(deployment, slot)
            except Exception as exc:
                slot.release()
                if not _retryable(exc):
                    raise
                self.failed(group, deployment)
                log.info("model_attempt_failed", deployment=deployment.id, error=type(exc).__name__)
                error = exc
                if not _repeatable(exc):
                    break
                continue
            except BaseException:
                slot.release()  # cancelled (client gone, total timeout): the slot must not leak
                raise
            if not hold:
                slot.release()
            return result
        assert error is not None
        raise error
