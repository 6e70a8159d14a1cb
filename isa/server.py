"""Run one app under uvicorn with a graceful, bounded shutdown.

On SIGTERM the node turns not-ready at once, keeps serving for `drain_seconds` (so a load
balancer stops sending new requests), then stops accepting and gives in-flight requests
`graceful_timeout_seconds` to finish.
"""

from __future__ import annotations

import signal
import time
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from isa.core.builder import AppState
from isa.core.logging import get_logger

log = get_logger("isa.server")


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: AppState, drain_seconds: float) -> None:
        super().__init__(config)
        self.state = state
        self.drain_seconds = drain_seconds
        self.exit_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.exit_at is not None:  # a second signal: stop now
            super().handle_exit(sig, frame)
            return
        self.state.shutting_down = True
        self.exit_at = time.monotonic() + self.drain_seconds
        log.info("shutdown_requested", signal=sig, drain_seconds=self.drain_seconds)
        if self.drain_seconds <= 0:
            super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.exit_at is not None and time.monotonic() >= self.exit_at:
            self.should_exit = True
        return await super().on_tick(counter)


def serve(app: Starlette, host: str, port: int) -> None:
    state: AppState = app.state.isa
    server_settings = state.settings.server
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_keep_alive=server_settings.keep_alive_seconds,
        timeout_graceful_shutdown=server_settings.graceful_timeout_seconds,
        proxy_headers=True,
        server_header=False,
    )
    # uvicorn re-raises the captured signal after its graceful shutdown; with these no-op handlers
    # in place that re-raise is swallowed and the process exits 0, as systemd and tests expect.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    _DrainingServer(config, state, server_settings.drain_seconds).run()
