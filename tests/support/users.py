"""Helpers for user-service tests: settings overrides and direct database reads."""

from __future__ import annotations

import copy
import threading
from typing import Any

import psycopg
import uvicorn

from isa.core.settings import Settings
from tests.support.procs import free_port, wait_for


def with_billing(settings: Settings, **stripe: Any) -> Settings:
    """The settings with `[billing.stripe]` keys replaced (e.g. api_base pointing at the fake)."""
    raw = copy.deepcopy(settings.raw)
    raw.setdefault("billing", {}).setdefault("stripe", {}).update(stripe)
    return settings.model_copy(update={"raw": raw})


def with_plan(settings: Settings, name: str, **values: Any) -> Settings:
    raw = copy.deepcopy(settings.raw)
    raw["billing"]["plans"].setdefault(name, {}).update(values)
    return settings.model_copy(update={"raw": raw})


def sql(db_url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the database directly, to check what the API claims."""
    with psycopg.connect(db_url) as conn:
        return conn.execute(query, args).fetchall()


class ServedApp:
    """An ASGI app served by uvicorn on 127.0.0.1 in a thread (real sockets, lifespan included)."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedApp:
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
