"""AppBuilder: what a domain's `register(builder)` gets to add its routes, checks and start-up work."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.routing import BaseRoute

from isa.core.db import Database
from isa.core.metrics import Metrics
from isa.core.settings import Settings

T = TypeVar("T")
ReadyCheck = Callable[[], Awaitable[None]]
Lifespan = Callable[[], AbstractAsyncContextManager[Any]]


class NotReady(Exception):
    """Raised by a ready check that knows why: /health/ready answers 503 with this code (e.g. catalog_syncing)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class AppState:
    """Shared by every domain of one process; domains find each other's services here."""

    settings: Settings
    role: str
    db: Database
    metrics: Metrics
    shutting_down: bool = False
    services: dict[str, Any] = field(default_factory=dict)
    # The process's own ASGI app, set once by create_app: in-process clients (isa/llm/transport.py) call it.
    app: Any = None

    def get(self, name: str, kind: type[T]) -> T:
        """A service another domain provided, checked for type; a missing one is a wiring bug."""
        service = self.services.get(name)
        if not isinstance(service, kind):
            raise LookupError(f"service {name!r} is not available in role {self.role!r}")
        return service


@dataclass
class AppBuilder:
    state: AppState
    routes: list[BaseRoute] = field(default_factory=list)
    ready_checks: dict[str, ReadyCheck] = field(default_factory=dict)
    lifespans: list[Lifespan] = field(default_factory=list)
    body_limits: list[tuple[str, int]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.state.settings

    def add_routes(self, *routes: BaseRoute, first: bool = False) -> None:
        """Routes are matched in order; `first` puts these before all others (a hot path whose paths no other
        route matches: Starlette tries each route's pattern until one matches)."""
        if first:
            self.routes[:0] = routes
        else:
            self.routes.extend(routes)

    def add_ready_check(self, name: str, check: ReadyCheck) -> None:
        """A dependency /health/ready must see healthy (it gets the role's ready timeout)."""
        self.ready_checks[name] = check

    def add_lifespan(self, lifespan: Lifespan) -> None:
        """An async context manager entered at start-up and left at shutdown, in reverse order."""
        self.lifespans.append(lifespan)

    def on_shutdown(self, stop: Callable[[], Awaitable[None]]) -> None:
        """Work for shutdown only, e.g. closing a domain's clients: a lifespan that awaits `stop` on the way out
        (before the database pool closes, which the app does after every lifespan)."""

        @asynccontextmanager
        async def stopping() -> AsyncIterator[None]:
            try:
                yield
            finally:
                await stop()

        self.add_lifespan(stopping)

    def allow_body(self, path_prefix: str, max_bytes: int) -> None:
        """Raise the request body limit for one path prefix (uploads)."""
        self.body_limits.append((path_prefix, max_bytes))

    def provide(self, name: str, service: Any) -> None:
        self.state.services[name] = service
