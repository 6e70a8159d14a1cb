"""Run one app under uvicorn with a graceful, bounded shutdown.

On SIGTERM the node turns not-ready at once, keeps serving for `drain_seconds` (so a load
balancer stops sending new requests), then stops accepting and gives in-flight requests
`graceful_timeout_seconds` to finish.

Once started (app built, lifespan done), everything alive is moved out of the cyclic garbage collector's reach
(`gc.freeze()`): a node holds a few hundred thousand long-lived objects (modules, settings, models, catalog), and
every full collection walked all of them again. The youngest generation is collected every GC_GEN0 allocations
instead of 700, so most of a request's objects are freed by reference counting before a collection looks at them.
Together: the collector's CPU per MCP tools/call from about 0.18 to 0.05 ms (issue #22, docs/benchmarks.md).
Frozen objects are still freed by reference counting; only cycles among them are never collected.
"""

from __future__ import annotations

import gc
import signal
import socket
import time
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from isa.core.builder import AppState
from isa.core.logging import get_logger

log = get_logger("isa.server")

GC_GEN0 = 7000  # Python's default is 700; the older generations keep theirs (collected every 10 of the younger)


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

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        freeze_heap()

    async def on_tick(self, counter: int) -> bool:
        if self.exit_at is not None and time.monotonic() >= self.exit_at:
            self.should_exit = True
        return await super().on_tick(counter)


def freeze_heap() -> None:
    """Collect once, then leave the survivors out of every later collection (they live as long as the node)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0, gen1, gen2)


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
