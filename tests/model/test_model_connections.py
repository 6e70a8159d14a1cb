"""The direct path's pooled transport keeps connections alive and notices when the provider closed an idle one."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from isa.model.connections import pooled_transport

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


@pytest.mark.anyio
async def test_a_kept_alive_connection_is_reused_and_one_the_provider_closed_is_replaced() -> None:
    connections: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):  # a GET: headers only
                writer.write(ANSWER)  # keep-alive: the connection stays open after the answer
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # closed

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=8, keepalive_expiry=30)
    async with server, httpx.AsyncClient(transport=pooled_transport(limits)) as client:
        url = f"http://127.0.0.1:{port}/v1/models"
        assert (await client.get(url)).json() == {}
        assert (await client.get(url)).json() == {}
        assert len(connections) == 1  # the second call went over the same connection
        connections[0].close()  # the provider drops the idle connection, unannounced
        await connections[0].wait_closed()
        for _ in range(100):  # the FIN reaches our socket within a few loop turns
            await asyncio.sleep(0)
        assert (await client.get(url)).json() == {}  # not a "server disconnected" error
        assert len(connections) == 2
