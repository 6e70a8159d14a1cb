"""Schedules from a given `now`: daily times (with zones and DST), intervals, and the first run of a task."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from isa.events.schedule import ScheduleError, first_run, next_run

DAILY_9 = {"schedule_type": "daily", "time": "09:00"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_a_daily_task_runs_at_its_time_today_when_that_time_is_still_ahead() -> None:
    assert next_run("schedule", DAILY_9, at("2026-03-02T08:59:59+00:00")) == at("2026-03-02T09:00:00+00:00")


def test_a_daily_task_that_just_ran_at_its_time_runs_next_tomorrow() -> None:
    assert next_run("schedule", DAILY_9, at("2026-03-02T09:00:00+00:00")) == at("2026-03-03T09:00:00+00:00")


def test_a_daily_time_is_read_in_the_tasks_zone_across_a_dst_change() -> None:
    paris = {**DAILY_9, "timezone": "Europe/Paris"}
    # 29 March 2026: Paris moves from UTC+1 to UTC+2 overnight.
    assert next_run("schedule", paris, at("2026-03-28T09:00:00+01:00")) == at("2026-03-29T09:00:00+02:00")


def test_an_interval_task_runs_every_n_minutes_from_its_last_due_time() -> None:
    every = {"schedule_type": "interval", "interval_minutes": 15}
    assert next_run("schedule", every, at("2026-03-02T10:00:00+00:00")) == at("2026-03-02T10:15:00+00:00")


def test_web_monitors_default_to_the_originals_thirty_minutes() -> None:
    assert next_run("web_monitor", {"urls": ["http://x"]}, at("2026-03-02T10:00:00+00:00")) == at(
        "2026-03-02T10:30:00+00:00"
    )


def test_an_interval_task_is_due_at_once_and_a_daily_one_at_its_next_time() -> None:
    now = at("2026-03-02T10:00:00+00:00")
    assert first_run("web_monitor", {}, now) == now
    assert first_run("schedule", DAILY_9, now) == at("2026-03-03T09:00:00+00:00")


@pytest.mark.parametrize(
    "config",
    [
        {"schedule_type": "daily", "time": "25:00"},
        {"schedule_type": "daily", "time": "nine"},
        {"interval_minutes": "often"},
        {"interval_minutes": 0.1},
        {**DAILY_9, "timezone": "Mars/Base"},
    ],
)
def test_timing_that_cannot_be_understood_is_refused(config: dict[str, object]) -> None:
    with pytest.raises(ScheduleError):
        next_run("schedule", config, at("2026-03-02T10:00:00+00:00"))
