"""`isa worker`: run the event service's job engine (tasks and event processing) in this process."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime

from isa.auth.settings import auth_settings
from isa.core.cli import run_with_database
from isa.core.db import Database
from isa.core.settings import Settings
from isa.events.settings import EventsSettings
from isa.events.worker import Worker


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    fixed = datetime.fromisoformat(args.now) if args.now else None

    async def main(db: Database) -> int:
        clock = (lambda: fixed) if fixed else None
        worker = Worker(db, settings.section("events", EventsSettings), auth_settings(settings), clock, args.worker_id)
        if args.once:
            tasks, events = await worker.run_once()
            print(f"worker={worker.id} tasks_run={tasks} events_processed={events}", flush=True)
        else:
            await worker.run_forever()
        return 0

    return run_with_database(settings, main, keep_running=True)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], load: Callable[..., Settings]) -> None:
    p = sub.add_parser("worker", help="run background tasks and event processing (the event service's job engine)")
    p.add_argument("--once", action="store_true", help="one round of due tasks and pending events, then exit")
    p.add_argument("--now", help="ISO time to treat as now (tests and replays)")
    p.add_argument("--worker-id", help="name shown as the lease owner (default host:pid:random)")
    p.set_defaults(func=lambda args: _worker(load(), args))
