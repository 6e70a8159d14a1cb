"""The streaming multipart reader: the file part comes out byte-exact in chunks, malformed bodies are 4xx."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from isa.core.errors import ApiError
from isa.files.multipart import MultipartFileReader

pytestmark = pytest.mark.anyio
BOUNDARY = "----isaBoundary7MA4YWxkTrZu0gW"
CTYPE = f"multipart/form-data; boundary={BOUNDARY}"


def form(parts: list[tuple[str, str | None, str | None, bytes]], end: bool = True) -> bytes:
    """(field name, filename, content type, data) -> a multipart/form-data body."""
    out = b""
    for name, filename, ctype, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + (f"--{BOUNDARY}--\r\n".encode() if end else b"")


async def chunked(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
async def test_the_file_part_comes_out_exact_whatever_the_chunking(chunk: int) -> None:
    data = os.urandom(50_000) + f"\r\n--{BOUNDARY[:-1]}".encode() + os.urandom(1000)  # a near-boundary inside
    body = form([("note", None, None, b"hello"), ("file", "ré.png", "image/png", data), ("after", None, None, b"x")])
    reader = MultipartFileReader(chunked(body, chunk), CTYPE)
    part = await reader.open_file()
    assert part.filename == "ré.png" and part.content_type == "image/png"
    assert b"".join([c async for c in part.chunks]) == data
    await reader.drain()


async def test_a_body_that_ends_inside_the_file_is_refused() -> None:
    body = form([("file", "a.png", "image/png", b"x" * 10_000)])[:-200]
    part = await MultipartFileReader(chunked(body, 1000), CTYPE).open_file()
    with pytest.raises(ApiError) as err:
        async for _ in part.chunks:
            pass
    assert err.value.status == 400


async def test_a_form_without_the_file_field_is_422() -> None:
    body = form([("file", None, None, b"not a file"), ("other", "a.png", "image/png", b"x")])
    with pytest.raises(ApiError) as err:
        await MultipartFileReader(chunked(body, 100), CTYPE).open_file()
    assert err.value.status == 422 and err.value.code == "missing_file"


@pytest.mark.parametrize("ctype", ["application/json", "multipart/form-data", "text/plain; boundary=x", ""])
async def test_anything_but_multipart_with_a_boundary_is_415(ctype: str) -> None:
    with pytest.raises(ApiError) as err:
        MultipartFileReader(chunked(b"", 1), ctype)
    assert err.value.status == 415


async def test_garbage_instead_of_a_form_is_a_client_error() -> None:
    with pytest.raises(ApiError) as err:
        await MultipartFileReader(chunked(b"garbage\r\n" * 100, 64), CTYPE).open_file()
    assert err.value.status in (400, 422)


async def test_a_ten_kilobyte_file_name_is_read_not_refused() -> None:
    body = form([("file", "n" * 10_000 + ".png", "image/png", b"x")])
    part = await MultipartFileReader(chunked(body, 512), CTYPE).open_file()
    assert len(part.filename) == 10_004
