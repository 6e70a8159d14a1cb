"""Text of a file in the caller's storage, for add_document: txt, md and html (tags stripped). No pdf reader yet."""

from __future__ import annotations

from html.parser import HTMLParser

from isa.core.errors import ApiError
from isa.files.service import FilesService

TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown", "text/html")
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")


class UnreadableFile(Exception):
    """The file is missing for this user, not ready, too large, or of a kind we can't read."""


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in ("p", "div", "br", "li", "h1", "h2", "h3", "h4", "tr"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


async def read_text(files: FilesService, user_id: str, file_id: str, max_bytes: int) -> tuple[str, str]:
    """(text, filename) of the caller's ready file; another user's file is 'not found' like a missing one."""
    try:
        row = await files.get(user_id, file_id)
    except (ApiError, ValueError):
        raise UnreadableFile(f"no file {file_id}") from None
    name = row.filename.lower()
    if row.status != "ready":
        raise UnreadableFile(f"file {file_id} is not ready")
    if row.content_type.split(";")[0] not in TEXT_TYPES and not name.endswith(TEXT_SUFFIXES):
        raise UnreadableFile(f"can't read {row.content_type} files yet (txt, md and html are supported)")
    if row.size_bytes > max_bytes:
        raise UnreadableFile(f"file {file_id} is larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in files.storage.read(row.storage_key, row.storage_version):
        body.extend(chunk)
        if len(body) > max_bytes:
            raise UnreadableFile(f"file {file_id} is larger than {max_bytes} bytes")
    text = body.decode("utf-8", errors="replace")
    if row.content_type.startswith("text/html") or name.endswith((".html", ".htm")):
        text = html_text(text)
    return text, row.filename
