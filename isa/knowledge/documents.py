"""Text of a file in the caller's storage, for add_document: txt, md, html (tags stripped) and pdf (text layer)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from html.parser import HTMLParser

import anyio
from pypdf import PdfReader

from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.files.service import FilesService

log = get_logger(__name__)

TEXT_TYPES = ("text/plain", "text/markdown", "text/x-markdown", "text/html")
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm")
PDF_TYPE = "application/pdf"


class UnreadableFile(Exception):
    """The file is missing for this user, not ready, too large, or of a kind we can't read."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one add_document may read: text characters, PDF bytes and PDF pages."""

    max_chars: int = 2_000_000
    max_pdf_bytes: int = 20 * 1024 * 1024
    max_pdf_pages: int = 500


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


def pdf_text(data: bytes, limits: Limits) -> str:
    """The text layer of a PDF, page by page; UnreadableFile for encrypted, corrupt, too long or image-only ones."""
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnreadableFile("the PDF is encrypted (password-protected PDFs are not supported)")
        pages = len(reader.pages)
        if pages > limits.max_pdf_pages:
            raise UnreadableFile(f"the PDF has {pages} pages; at most {limits.max_pdf_pages} are read")
        parts: list[str] = []
        total = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            total += len(text)
            if total > limits.max_chars:
                raise UnreadableFile(f"the PDF's text is longer than {limits.max_chars} characters")
            parts.append(text)
    except UnreadableFile:
        raise
    # pypdf raises its own errors for most damage, but a broken object graph can surface as a plain
    # ValueError/KeyError/TypeError/... from deep inside; any of them means "not a readable PDF".
    except Exception as exc:
        log.info("pdf_unreadable", error=type(exc).__name__)
        raise UnreadableFile("the file is not a readable PDF (it is damaged or not a PDF)") from None
    # Postgres text can't hold NUL; some PDFs put it in their text layer.
    text = "\n\n".join(parts).replace("\x00", "")
    if not text.strip():
        raise UnreadableFile("the PDF has no text layer (a scanned PDF needs OCR, which is not supported)")
    return text


async def read_text(files: FilesService, user_id: str, file_id: str, limits: Limits) -> tuple[str, str]:
    """(text, filename) of the caller's ready file; another user's file is 'not found' like a missing one."""
    try:
        row = await files.get(user_id, file_id)
    except (ApiError, ValueError):
        raise UnreadableFile(f"no file {file_id}") from None
    name = row.filename.lower()
    ctype = row.content_type.split(";")[0].strip()
    if row.status != "ready":
        raise UnreadableFile(f"file {file_id} is not ready")
    is_pdf = ctype == PDF_TYPE
    if not is_pdf and ctype not in TEXT_TYPES and not name.endswith(TEXT_SUFFIXES):
        raise UnreadableFile(f"can't read {row.content_type} files (txt, md, html and pdf are supported)")
    max_bytes = limits.max_pdf_bytes if is_pdf else limits.max_chars
    if row.size_bytes > max_bytes:
        raise UnreadableFile(f"file {file_id} is larger than {max_bytes} bytes")
    body = bytearray()
    async for chunk in files.storage.read(row.storage_key, row.storage_version):
        body.extend(chunk)
        if len(body) > max_bytes:
            raise UnreadableFile(f"file {file_id} is larger than {max_bytes} bytes")
    if is_pdf:
        # Parsing is CPU work: keep it off the event loop.
        return await anyio.to_thread.run_sync(pdf_text, bytes(body), limits), row.filename
    text = body.decode("utf-8", errors="replace")
    if ctype == "text/html" or name.endswith((".html", ".htm")):
        text = html_text(text)
    return text, row.filename
