"""Event ingestion (idempotent), queries and task management, always for the calling user."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from isa.core.db import Database
from isa.core.errors import ApiError
from isa.core.http import input_problem
from isa.events import egress, schedule, store
from isa.events.settings import EventsSettings

TASK_TYPES = ("web_monitor", "schedule", "news_digest", "threshold_watch")
# Event types produced by tasks; their owner's agent is told about each.
AGENT_EVENT_TYPES = ("web_content_change", "scheduled_trigger", "daily_news_digest", "threshold_crossed")


def payload_hash(payload: dict[str, Any]) -> str:
    """Fingerprint of a request body, independent of key order and whitespace."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def has_nul(value: Any) -> bool:
    """Whether a JSON value holds a NUL character anywhere (Postgres text and jsonb can't store one)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def not_found(what: str = "event") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def event_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": str(row["id"]),
        "event_type": row["event_type"],
        "task_id": str(row["task_id"]) if row["task_id"] else None,
        "data": row["event_data"],
        "source": row["source"],
        "priority": row["priority"],
        "status": row["status"],
        "attempts": row["attempts"],
        "agent_response": row["agent_response"],
        "processing_result": row["processing_result"],
        "last_error": row["last_error"],
        "created_at": row["created_at"].isoformat(),
        "processed_at": row["processed_at"].isoformat() if row["processed_at"] else None,
    }


def task_out(row: dict[str, Any]) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "task_id": str(row["id"]),
        "task_type": row["task_type"],
        "name": row["name"],
        "description": row["description"],
        "config": row["config"],
        "callback_url": row["callback_url"],
        "status": row["status"],
        "interval_seconds": row["interval_seconds"],
        "last_run": iso(row["last_check"]),
        "next_run": iso(row["next_check"]) if row["status"] == "active" else None,
        "run_count": row["run_count"],
        "consecutive_failures": row["consecutive_failures"],
        "last_error": row["last_error"],
        "created_at": iso(row["created_at"]),
    }


def receipt(row: dict[str, Any]) -> dict[str, Any]:
    """The ingestion response, built only from the stored row so a replay returns exactly the same body."""
    return {
        "event_id": str(row["id"]),
        "event_type": row["event_type"],
        "idempotency_key": row["idempotency_key"],
        "created_at": row["created_at"].isoformat(),
    }


class EventService:
    def __init__(
        self,
        db: Database,
        settings: EventsSettings,
        clock: Callable[[], datetime] | None = None,
        *,
        agent_in_process: bool = False,
    ) -> None:
        self.db = db
        self.settings = settings
        self.agent_in_process = agent_in_process
        self.clock = clock or (lambda: datetime.now(UTC))
        # Test seam: called after the event's transaction committed, before the response is built.
        self.after_commit: Callable[[dict[str, Any]], None] | None = None

    async def ingest(
        self,
        user_id: str,
        *,
        event_type: str,
        data: dict[str, Any],
        key: str | None,
        fingerprint: dict[str, Any],
        source: str = "api",
        priority: int = 5,
        task_id: str | None = None,
        needs_agent: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Store one event -> (row, replayed). Same key: same payload replays, other payload 422, in flight 409."""
        if has_nul([event_type, data]):
            raise ApiError(422, "invalid_request", "text may not contain NUL characters")  # Postgres can't store them
        problem = input_problem([event_type, data, key])  # also lone surrogates, and in the key (batch items)
        if problem:
            raise ApiError(422, "invalid_request", problem)
        digest = payload_hash(fingerprint) if key else None
        async with self.db.transaction() as conn:
            if key is not None:
                if not await store.try_key_lock(conn, user_id, key):
                    raise ApiError(409, "idempotency_key_in_use", "a request with this Idempotency-Key is in flight")
                existing = await store.event_by_key(conn, user_id, key)
                if existing is not None:
                    return self._replay(existing, digest), True
            if task_id is not None and await store.get_task(conn, user_id, task_id) is None:
                raise not_found("task")
            row = await store.insert_event(
                conn,
                user_id=user_id,
                event_type=event_type,
                data=data,
                source=source,
                priority=priority,
                key=key,
                payload_hash=digest,
                task_id=task_id,
                needs_agent=needs_agent,
            )
        if row is None:  # lost a race with a committed twin (only possible without the key lock): replay it
            async with self.db.connection() as conn:
                existing = await store.event_by_key(conn, user_id, key or "")
            if existing is None:
                raise ApiError(409, "idempotency_key_in_use", "a request with this Idempotency-Key is in flight")
            return self._replay(existing, digest), True
        if self.after_commit is not None:
            self.after_commit(row)
        return row, False

    @staticmethod
    def _replay(existing: dict[str, Any], digest: str | None) -> dict[str, Any]:
        if existing["payload_hash"] != digest:
            raise ApiError(
                422, "idempotency_key_reused", "this Idempotency-Key was already used with a different payload"
            )
        return existing

    async def get_event(self, user_id: str, event_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            row = await store.get_event(conn, user_id, event_id)
        if row is None:
            raise not_found()
        return row

    async def list_events(self, user_id: str, **filters: Any) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            return await store.list_events(conn, user_id, **filters)

    # --- tasks ---------------------------------------------------------------------------------------------------

    async def create_task(self, user_id: str, **fields: Any) -> dict[str, Any]:
        """A new task of the user (task_type, name, description, config, callback_url)."""
        row, _ = await self.create_task_once(user_id, **fields)
        return row

    async def create_task_once(
        self,
        user_id: str,
        *,
        task_type: str,
        name: str | None,
        description: str | None,
        config: dict[str, Any],
        callback_url: str | None,
        idempotency_key: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """(the task, True) when created; (the task made earlier with this idempotency key, False) on a replay."""
        if task_type not in TASK_TYPES:
            raise ApiError(422, "invalid_request", f"task_type must be one of {', '.join(TASK_TYPES)}")
        if has_nul([name, description, config, callback_url]):
            raise ApiError(422, "invalid_request", "text may not contain NUL characters")  # Postgres can't store them
        _check_config(task_type, config)
        minimum = self.settings.min_interval_seconds
        try:
            interval = schedule.interval_seconds(task_type, config, minimum)
            first = schedule.first_run(task_type, config, self.clock(), minimum)
        except schedule.ScheduleError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        if callback_url is not None and not callback_url.startswith(("http://", "https://")):
            raise ApiError(422, "invalid_request", "callback_url must be an http(s) URL")
        _check_urls(self.settings, callback_url, config)
        values = {
            "task_type": task_type,
            "name": name,
            "description": description,
            "config": config,
            "callback_url": callback_url,
            "interval_seconds": interval,
            "next_check": first,
        }
        request = {k: values[k] for k in ("task_type", "name", "description", "config", "callback_url")}
        digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest() if idempotency_key else None
        async with self.db.transaction() as conn:
            row, earlier = await store.insert_task(conn, user_id, values, idempotency_key, digest)
        if earlier is not None and earlier != digest:
            raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different task")
        return row, earlier is None

    async def list_tasks(
        self, user_id: str, status: str | None = None, limit: int = 100, offset: int = 0, task_type: str | None = None
    ) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            return await store.list_tasks(conn, user_id, status, limit, offset, task_type)

    async def get_task(self, user_id: str, task_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            task = await store.get_task(conn, user_id, task_id)
        if task is None:
            raise not_found("task")
        return task

    async def run_now(self, user_id: str, task_id: str) -> dict[str, Any]:
        """Make an active task due now (a worker runs it next round); at most once per min_interval_seconds."""
        now = self.clock()
        gap = timedelta(seconds=self.settings.min_interval_seconds)
        async with self.db.transaction() as conn:
            row = await store.make_due_now(conn, user_id, task_id, now, gap)
            task = row or await store.get_task(conn, user_id, task_id)
        if task is None:
            raise not_found("task")
        if row is not None:
            return row
        if task["status"] != "active":
            raise ApiError(409, "task_not_active", f"the task is {task['status']}; resume it first")
        if task["last_check"] is None or (task["lease_expires_at"] is not None and task["lease_expires_at"] > now):
            raise ApiError(409, "task_running", "the task is running now")
        # Same floor as the schedules: a run-now can't be used to hammer the monitored site.
        wait = max(1, math.ceil((task["last_check"] + gap - now).total_seconds()))
        minimum = self.settings.min_interval_seconds
        message = f"the task ran less than {minimum} seconds ago"
        raise ApiError(429, "run_too_soon", message, headers={"Retry-After": str(wait)})

    async def control_task(self, user_id: str, task_id: str, action: str) -> dict[str, Any] | None:
        """pause | resume | delete | run; another user's task is not found. Returns the task (None after delete)."""
        if action == "run":
            return await self.run_now(user_id, task_id)
        async with self.db.transaction() as conn:
            if action == "delete":
                if not await store.delete_task(conn, user_id, task_id):
                    raise not_found("task")
                return None
            if action not in ("pause", "resume"):
                raise ApiError(422, "invalid_request", "action must be pause, resume, delete or run")
            task = await store.get_task(conn, user_id, task_id)
            if task is None:
                raise not_found("task")
            if action == "pause":
                return await store.set_task_status(conn, user_id, task_id, "paused", None)
            nxt = schedule.first_run(
                task["task_type"], task["config"], self.clock(), self.settings.min_interval_seconds
            )
            if task["last_check"] is not None:  # pausing and resuming is no way around the minimum interval
                nxt = max(nxt, task["last_check"] + timedelta(seconds=self.settings.min_interval_seconds))
            return await store.set_task_status(conn, user_id, task_id, "active", nxt)

    async def status(self, user_id: str) -> dict[str, Any]:
        async with self.db.connection() as conn:
            numbers = await store.counts(conn, user_id)
        return {
            "service": "isa.events",
            "worker": "inprocess" if self.settings.inprocess_worker is True else "external (isa worker)",
            "agent_configured": bool(self.settings.agent_url) or self.agent_in_process,
            **{k: int(v) for k, v in numbers.items()},
        }


# What each task type reads from its config (isa/events/tasks.py and schedule.py); a key outside it is a typo that
# would otherwise be stored silently and ignored on every run (e.g. "intervl_minutes").
_TIMING_KEYS = {"interval_minutes", "check_interval_minutes", "schedule_type", "mode", "time", "timezone"}
CONFIG_KEYS = {
    "web_monitor": {"urls", "keywords"} | _TIMING_KEYS,
    "news_digest": {"urls", "keywords", "max_headlines"} | _TIMING_KEYS,
    "threshold_watch": {"url", "above", "below", "json_path", "pattern", "keywords"} | _TIMING_KEYS,
    "schedule": {"message", "keywords"} | _TIMING_KEYS,
}


def _check_urls(settings: EventsSettings, callback_url: str | None, config: dict[str, Any]) -> None:
    """Refuse internal addresses at creation (the checks that need no DNS: every IP encoding, internal names).

    Runs vet each URL again, with DNS and a pinned address, since a name can resolve elsewhere later.
    """
    urls = [callback_url] if callback_url else []
    urls += [u for u in config.get("urls") or () if isinstance(u, str)]
    if isinstance(config.get("url"), str):
        urls.append(config["url"])
    guard = egress.policy(settings)
    for url in urls:
        try:
            guard.check_static(url)
        except egress.EgressBlocked as exc:
            raise ApiError(422, "url_blocked", str(exc)) from None


def _check_config(task_type: str, config: dict[str, Any]) -> None:
    """The fields each task type needs, so a task never fails on every run for a missing field."""
    unknown = sorted(set(config) - CONFIG_KEYS[task_type])
    if unknown:
        allowed = ", ".join(sorted(CONFIG_KEYS[task_type]))
        raise ApiError(422, "invalid_request", f"unknown {task_type} config keys {unknown}; allowed: {allowed}")

    def need(name: str, kind: type) -> None:
        if not isinstance(config.get(name), kind) or not config.get(name):
            raise ApiError(422, "invalid_request", f"{task_type} needs config.{name} ({kind.__name__})")

    if task_type in ("web_monitor", "news_digest"):
        need("urls", list)
        if not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in config["urls"]):
            raise ApiError(422, "invalid_request", "config.urls must be http(s) URLs")
    keywords = config.get("keywords", [])
    if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
        raise ApiError(422, "invalid_request", "config.keywords must be a list of strings")
    if task_type == "threshold_watch":
        need("url", str)
        if "above" not in config and "below" not in config:
            raise ApiError(422, "invalid_request", "threshold_watch needs config.above or config.below")
