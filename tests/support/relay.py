"""A TCP relay on 127.0.0.1 in front of the embedded Postgres, which a test can cut and restore (outage drills).

The embedded server listens on a Unix socket only, so the relay accepts TCP on loopback and forwards each
connection's bytes to that socket. `cut()` closes the listener (new connections are refused, as by a database
host that is down) and aborts every relayed connection (the app's pooled connections break mid-life);
`cut(reset=True)` keeps listening but resets each new connection at once and notes when it came (so a test can
see the app's reconnect attempts); `restore()` relays again on the same port. It runs its own asyncio loop in a
thread; it starts down (refusing) until the first `restore()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import psycopg

from tests.support.procs import free_port

T = TypeVar("T")
_CHUNK = 65536


def unix_socket_of(url: str) -> Path:
    """The Unix socket file of a `postgresql://…?host=/dir` URL (the server reports its own port)."""
    host = parse_qs(urlsplit(url).query)["host"][0]
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SHOW port").fetchone()
    assert row is not None
    return Path(host) / f".s.PGSQL.{row[0]}"


def tcp_url(url: str, port: int) -> str:
    """The same database as `url` (a Unix-socket URL of the embedded server), reached over 127.0.0.1:`port`."""
    parts = urlsplit(url)
    return f"postgresql://postgres@127.0.0.1:{port}{parts.path}"


class PgRelay:
    """127.0.0.1:port -> a Unix socket, with cut/restore and counters."""

    def __init__(self, target: Path, port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self.accepted = 0  # connections relayed to the database since start
        self.resets: list[float] = []  # monotonic times of connections reset while cut with reset=True
        self._resetting = False
        self._open: set[asyncio.StreamWriter] = set()  # both ends of every relayed connection
        self._clients: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"pg-relay-{self.port}", daemon=True)

    # -- control (from the test's thread) --------------------------------------------------------
    def start(self, *, up: bool = True) -> PgRelay:
        self._thread.start()
        if up:
            self.restore()
        return self

    def restore(self) -> None:
        """Relay again (same port): new connections reach the database."""
        self._call(self._restore())

    def cut(self, *, reset: bool = False) -> None:
        """Drop every open connection; refuse new ones (reset=True: accept, note and reset them)."""
        self._call(self._cut(reset))

    @property
    def active(self) -> int:
        """Relayed connections open right now."""
        return self._call(self._count())

    def stop(self) -> None:
        if self._thread.is_alive():
            self.cut()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    def __enter__(self) -> PgRelay:
        if not self._thread.is_alive():
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # -- inside the relay's loop ------------------------------------------------------------------
    async def _count(self) -> int:
        return len(self._clients)

    async def _restore(self) -> None:
        self._resetting = False
        await self._listen()

    async def _listen(self) -> None:
        if self._server is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            self._server = await asyncio.start_server(self._handle, sock=sock)

    async def _cut(self, reset: bool) -> None:
        self._resetting = reset
        if reset:
            await self._listen()
        elif self._server is not None:
            self._server.close()  # the listening socket closes now: connects are refused from here on
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        self._clients.clear()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self._resetting:
            self.resets.append(time.monotonic())
            client_writer.transport.abort()
            return
        self.accepted += 1
        try:
            db_reader, db_writer = await asyncio.open_unix_connection(str(self.target))
        except OSError:
            client_writer.transport.abort()
            return
        pair = {client_writer, db_writer}
        self._open |= pair
        self._clients.add(client_writer)

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(_CHUNK):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                for w in pair:  # one side closed: close both, as a TCP proxy does
                    w.transport.abort()
                    self._open.discard(w)
                self._clients.discard(client_writer)

        with contextlib.suppress(Exception):
            await asyncio.gather(pipe(client_reader, db_writer), pipe(db_reader, client_writer))
