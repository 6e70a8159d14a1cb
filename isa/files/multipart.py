"""Read the file part of a multipart/form-data body as a stream of chunks, never holding the whole file."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from isa.core.errors import ApiError

_MAX_HEADER_BYTES = 16 * 1024  # a part header line; a 10 kB file name still fits


def bad_multipart(message: str) -> ApiError:
    return ApiError(400, "invalid_multipart", message)


@dataclass
class FilePart:
    filename: str
    content_type: str
    chunks: AsyncIterator[bytes]


class MultipartFileReader:
    """Feeds the body to python-multipart's streaming parser and hands out the named file part's data."""

    def __init__(self, stream: AsyncIterator[bytes], content_type_header: str, field: str = "file") -> None:
        ctype, params = parse_options_header(content_type_header)
        boundary = params.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            raise ApiError(415, "unsupported_media_type", "send the file as multipart/form-data")
        self._stream = stream
        self._field = field
        # (kind, data, headers): each part's headers travel with its event, since one write can parse several parts.
        self._events: deque[tuple[str, bytes, dict[bytes, bytes]]] = deque()
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        try:
            self._parser = MultipartParser(
                boundary,
                {
                    "on_part_begin": self._part_begin,
                    "on_header_field": self._header_field,
                    "on_header_value": self._header_value_cb,
                    "on_header_end": self._header_end,
                    "on_headers_finished": lambda: self._events.append(("headers", b"", self._headers)),
                    "on_part_data": lambda data, start, end: self._events.append(("data", data[start:end], {})),
                    "on_part_end": lambda: self._events.append(("end", b"", {})),
                    "on_end": lambda: self._events.append(("done", b"", {})),
                },
                max_header_size=_MAX_HEADER_BYTES,
            )
        except Exception as exc:
            raise bad_multipart("malformed multipart boundary") from exc
        self._exhausted = False

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    async def _pump(self) -> bool:
        """Feed one more chunk of the body; False once the body is over."""
        if self._exhausted:
            return False
        try:
            chunk = await anext(self._stream)
        except StopAsyncIteration:
            self._exhausted = True
            return False
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise bad_multipart("malformed multipart body") from exc
        return True

    async def open_file(self) -> FilePart:
        """Skip to the named file part and return its name, declared type and data stream."""
        while True:
            while self._events:
                kind, _, headers = self._events.popleft()
                if kind == "done":
                    break
                if kind != "headers":
                    continue  # data and ends of other fields
                _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
                if disposition.get(b"name", b"").decode("latin-1") == self._field and b"filename" in disposition:
                    return FilePart(
                        filename=disposition[b"filename"].decode("utf-8", errors="replace"),
                        content_type=headers.get(b"content-type", b"").decode("latin-1"),
                        chunks=self._data(),
                    )
            else:
                if await self._pump():
                    continue
            raise ApiError(422, "missing_file", f"the form has no file field named {self._field!r}")

    async def _data(self) -> AsyncIterator[bytes]:
        while True:
            while self._events:
                kind, data, _ = self._events.popleft()
                if kind == "data":
                    if data:
                        yield data
                elif kind == "end":
                    return
            if not await self._pump():
                raise bad_multipart("the body ended inside the file part")

    async def drain(self) -> None:
        """Read (and discard) the rest of the body, bounded by the request body limit."""
        while await self._pump():
            self._events.clear()
