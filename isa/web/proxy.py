"""An in-process egress proxy on 127.0.0.1 that the browser must use: every connection is vetted and pinned.

Chromium sends every http(s) and WebSocket connection here (`--proxy-server`, and `--proxy-bypass-list=<-loopback>`
so loopback is not exempt). HTTPS and WebSockets arrive as CONNECT host:port, plain HTTP as an absolute-form
request. The host is resolved once by the guard and the upstream socket dials that address, so the browser's own
DNS never decides where a byte goes.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from isa.core.egress import EgressBlocked, EgressPolicy
from isa.core.logging import get_logger

log = get_logger(__name__)
MAX_HEAD = 64 * 1024
BLOCKED_HEADER = b"X-Isa-Egress"  # set on every refusal, so a caller can tell the proxy from the site
HOP_HEADERS = {b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive"}


class EgressProxy:
    """HTTP CONNECT/forward proxy applying `policy`; counts what it blocked and what it let through."""

    def __init__(self, policy: EgressPolicy, connect_timeout: float = 10.0) -> None:
        self.policy = policy
        self.connect_timeout = connect_timeout
        self.blocked = 0
        self.allowed = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.connect_timeout)
        if len(head) > MAX_HEAD:
            return
        request_line, _, rest = head.partition(b"\r\n")
        method, target, version = request_line.decode("latin-1").split(" ", 2)
        if method.upper() == "CONNECT":
            host, _, port_text = target.rpartition(":")
            port = int(port_text)
            upstream = await self._dial(host, port, writer)
            if upstream is None:
                return
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            await _pipe(reader, writer, *upstream)
            return
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            await _refuse(writer, b"400 Bad Request")
            return
        upstream = await self._dial(parts.hostname, parts.port or 80, writer)
        if upstream is None:
            return
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        lines = [h for h in rest.split(b"\r\n") if h and h.split(b":", 1)[0].strip().lower() not in HOP_HEADERS]
        # One request per upstream connection: a kept-alive client connection could otherwise reach another host.
        head = b"\r\n".join([f"{method} {path} {version}".encode("latin-1"), *lines, b"Connection: close", b"", b""])
        upstream[1].write(head)
        await _pipe(reader, writer, *upstream)

    async def _dial(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            ip = await self.policy.vet_host(host, port)
        except EgressBlocked as exc:
            self.blocked += 1
            log.info("egress_proxy_blocked", host=host[:100], port=port, reason=str(exc)[:120])
            await _refuse(writer, b"403 Forbidden")
            return None
        try:
            pair = await asyncio.wait_for(asyncio.open_connection(ip, port), self.connect_timeout)
        except (OSError, TimeoutError):
            await _refuse(writer, b"502 Bad Gateway")
            return None
        self.allowed += 1
        return pair


async def _refuse(writer: asyncio.StreamWriter, status: bytes) -> None:
    # A body, so the browser shows the refusal as a response (with our header) rather than a bare error.
    body = b"<html><body>refused by the isa egress policy</body></html>"
    head = [b"HTTP/1.1 " + status, BLOCKED_HEADER + b": " + status, b"Content-Type: text/html"]
    head += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    writer.write(b"\r\n".join([*head, b"", body]))
    with contextlib.suppress(OSError):
        await writer.drain()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


async def _pipe(
    c_reader: asyncio.StreamReader,
    c_writer: asyncio.StreamWriter,
    u_reader: asyncio.StreamReader,
    u_writer: asyncio.StreamWriter,
) -> None:
    """Copy both ways until either side ends, then close both."""
    tasks = [asyncio.ensure_future(_copy(c_reader, u_writer)), asyncio.ensure_future(_copy(u_reader, c_writer))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        u_writer.close()
