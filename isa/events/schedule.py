"""When a task runs next: a pure function of its config and a given `now` (tests drive the clock)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_INTERVAL_MINUTES = {"web_monitor": 30, "schedule": 60, "news_digest": 60, "threshold_watch": 15}
MAX_INTERVAL_SECONDS = 366 * 24 * 3600  # a year: beyond it a "monitor" is a mistake (and datetimes overflow)


class ScheduleError(ValueError):
    """A task config whose timing can't be understood."""


def _daily_time(config: dict[str, Any]) -> tuple[time, ZoneInfo]:
    raw = str(config.get("time", ""))
    try:
        hour, minute = (int(p) for p in raw.split(":", 1))
        at = time(hour, minute)
    except ValueError:
        raise ScheduleError(f"daily schedules need time='HH:MM', got {raw!r}") from None
    try:
        zone = ZoneInfo(str(config.get("timezone") or "UTC"))
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {config.get('timezone')!r}") from None
    return at, zone


def interval_seconds(task_type: str, config: dict[str, Any], minimum: int) -> int | None:
    """The fixed interval of a task, or None for a daily schedule."""
    if config.get("schedule_type", config.get("mode")) == "daily":
        _daily_time(config)
        return None
    minutes = config.get("interval_minutes", config.get("check_interval_minutes"))
    value = DEFAULT_INTERVAL_MINUTES[task_type] if minutes is None else minutes
    try:
        seconds = int(float(value) * 60)
    except (TypeError, ValueError, OverflowError):  # also NaN and Infinity, which JSON bodies can carry
        raise ScheduleError(f"interval_minutes must be a number, got {value!r}") from None
    if seconds < minimum:
        raise ScheduleError(f"the interval must be at least {minimum} seconds")
    if seconds > MAX_INTERVAL_SECONDS:
        raise ScheduleError(f"the interval must be at most {MAX_INTERVAL_SECONDS // 86400} days")
    return seconds


def next_run(task_type: str, config: dict[str, Any], after: datetime, minimum: int = 60) -> datetime:
    """The first run strictly after `after` (a daily time in the task's zone, or after + interval)."""
    if after.tzinfo is None:
        raise ScheduleError("`after` must be timezone-aware")
    seconds = interval_seconds(task_type, config, minimum)
    if seconds is not None:
        return after + timedelta(seconds=seconds)
    at, zone = _daily_time(config)
    local = after.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate.astimezone(UTC)


def first_run(task_type: str, config: dict[str, Any], now: datetime, minimum: int = 60) -> datetime:
    """Interval tasks run right away; daily ones at their next time of day."""
    if interval_seconds(task_type, config, minimum) is not None:
        return now
    return next_run(task_type, config, now, minimum)
