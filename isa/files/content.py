"""What an upload really is: its type from magic bytes, a safe display name, and a key built from neither input."""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import unicodedata
import uuid
from datetime import UTC, datetime
from pathlib import PurePosixPath

from isa.core.errors import ApiError

# How much of the start of a file decides its type (zip entry names of docx/xlsx need a few KB).
SNIFF_BYTES = 64 * 1024
# Browsers decide "is this HTML?" from about this many leading bytes (WHATWG MIME sniffing uses 1445).
BROWSER_SNIFF_BYTES = 1445

# The audio containers isa.media transcribes, with the extension a stored file of each type gets.
AUDIO_EXTENSIONS = {
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/flac": ".flac",
    "audio/mp4": ".m4a",
    "audio/webm": ".webm",
}
EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/csv": ".csv",
    "application/json": ".json",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.apache.parquet": ".parquet",  # data files for the analytics tools
    # Audio, for transcription (isa.media); each recognised by its container's magic bytes below.
    **AUDIO_EXTENSIONS,
}
TEXT_TYPES = ("text/plain", "text/markdown", "text/csv", "application/json")
_GENERIC = ("", "application/octet-stream", "binary/octet-stream")
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "text/x-markdown": "text/markdown",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/x-flac": "audio/flac",
    "audio/x-m4a": "audio/mp4",
}
_TEXT_HINTS = {".txt": "text/plain", ".md": "text/markdown", ".csv": "text/csv", ".json": "application/json"}
_ZIP_KINDS = (
    (b"word/", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    (b"xl/", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    (b"ppt/", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
)
# Content a browser would render as HTML if it sniffed, at the start of a text file...
_HTML_START = re.compile(
    rb"^\s*<(!doctype\s+html|html|head|body|script|iframe|svg|object|embed|title|style|a\s|div|table|p[\s>]|br"
    rb"|h1|font|b[\s>]|!--|\?xml)",
    re.I,
)
# ...or anywhere early in a binary file (polyglots such as PNG or PDF with an HTML body).
_MARKUP = re.compile(rb"<(script|html|iframe|svg|body|object|embed)[\s>/]|<!doctype\s+html", re.I)
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")


def rejected(message: str) -> ApiError:
    return ApiError(415, "unsupported_file_type", message)


def normalize_type(declared: str | None) -> str:
    base = (declared or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def _zip_kind(head: bytes) -> str | None:
    """docx/xlsx/pptx from the names in the zip's local file headers; None for other zips or macro files."""
    names: list[bytes] = []
    pos = 0
    while (pos := head.find(b"PK\x03\x04", pos)) != -1 and pos + 30 <= len(head) and len(names) < 200:
        length = int.from_bytes(head[pos + 26 : pos + 28], "little")
        names.append(head[pos + 30 : pos + 30 + length])
        pos += 4
    if any(name.lower().endswith(b"vbaproject.bin") for name in names):
        return None  # macro-enabled documents are not accepted
    for prefix, kind in _ZIP_KINDS:
        if any(name.startswith(prefix) for name in names):
            return kind
    return None


def _is_text(head: bytes, eof: bool) -> bool:
    if _CONTROL.search(head):
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=eof)
    except UnicodeDecodeError:
        return False
    return True


def sniff(head: bytes, eof: bool) -> str | None:
    """The type the bytes say they are ("text" for UTF-8 text), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(head)
    if head.startswith(b"PAR1\x15"):  # magic, then a thrift page header: text that starts with PAR1 stays text
        return "application/vnd.apache.parquet"
    if audio := sniff_audio(head):
        return audio
    return "text" if _is_text(head.removeprefix(codecs.BOM_UTF8), eof) else None


def _mpeg_frame(head: bytes) -> bool:
    """An MPEG audio frame header: the 11-bit sync, and no reserved version, layer, bitrate or sample rate."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    return (head[1] >> 3) & 3 != 1 and (head[1] >> 1) & 3 != 0 and head[2] >> 4 != 15 and (head[2] >> 2) & 3 != 3


def sniff_audio(head: bytes) -> str | None:
    """The audio type the first bytes say (WAV, MP3, Ogg, FLAC, M4A, WebM), or None; media checks URL audio with it."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"ID3") or _mpeg_frame(head):
        return "audio/mpeg"  # an ID3 tag, or an MPEG audio frame sync
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head[4:8] == b"ftyp" and head[8:12] in (b"M4A ", b"M4B "):
        return "audio/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return "audio/webm"
    return None


def classify(head: bytes, eof: bool, declared: str | None, filename: str, allowed: tuple[str, ...]) -> str:
    """The content type to store: the sniffed type, which must agree with the declared one and be allowed."""
    wanted = normalize_type(declared)
    found = sniff(head, eof)
    if found is None:
        raise rejected("the file's content is not a recognised type")
    if found == "text":
        if wanted in TEXT_TYPES:
            found = wanted
        elif wanted in _GENERIC:
            found = _TEXT_HINTS.get(PurePosixPath(filename.lower()).suffix, "text/plain")
        else:
            raise rejected(f"the content is text, not {wanted}")
        body = head.removeprefix(codecs.BOM_UTF8)
        if _HTML_START.match(body):
            raise rejected("HTML content is not accepted")
        if found == "application/json" and not _looks_like_json(body, eof):
            raise rejected("the content is not JSON")
    elif wanted not in _GENERIC and wanted != found:
        raise rejected(f"the content is {found}, not {wanted}")
    elif _MARKUP.search(head[:BROWSER_SNIFF_BYTES]):
        raise rejected("the file carries HTML markup (polyglot)")
    if found not in allowed or found not in EXTENSIONS:
        raise rejected(f"{found} files are not accepted here")
    return found


def _looks_like_json(body: bytes, eof: bool) -> bool:
    stripped = body.lstrip()
    if stripped[:1] not in (b"{", b"["):
        return False
    if eof:
        try:
            json.loads(body)
        except ValueError:
            return False
    return True


class TextCheck:
    """Keeps checking the rest of a text upload (UTF-8, no control bytes) as it streams past."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def feed(self, chunk: bytes, final: bool = False) -> None:
        if _CONTROL.search(chunk):
            raise rejected("text files may not contain control bytes")
        try:
            self._decoder.decode(chunk, final=final)
        except UnicodeDecodeError:
            raise rejected("text files must be UTF-8") from None


def display_name(raw: str | None) -> str:
    """The user's file name as metadata only: last path segment, no control/bidi characters, at most 255."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"))
    name = name.strip().lstrip(".").strip()
    if len(name) > 255:
        suffix = PurePosixPath(name).suffix
        suffix = suffix if len(suffix) <= 16 else ""
        name = name[: 255 - len(suffix)] + suffix
    return name or "file"


def user_segment(user_id: str) -> str:
    """A key segment for a user id: safe characters only, with a hash suffix whenever anything was changed."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", user_id)[:64]
    if cleaned != user_id:
        cleaned = f"{cleaned}-{hashlib.sha256(user_id.encode()).hexdigest()[:12]}"
    return cleaned


def user_prefix(user_id: str) -> str:
    return f"users/{user_segment(user_id)}/files/"


def object_key(user_id: str, content_type: str, now: datetime | None = None) -> str:
    """users/{user}/files/{YYYY}/{MM}/{timestamp}_{uuid8}{ext}, the extension from the detected type."""
    now = now or datetime.now(UTC)
    ext = EXTENSIONS[content_type]
    return f"{user_prefix(user_id)}{now:%Y}/{now:%m}/{now:%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:8]}{ext}"


# Types a browser may show in place (the content route's `inline`): raster images only. SVG is never among them
# (it can carry script), and everything else is an attachment, so no stored file renders as a document here.
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def served_type(content_type: str) -> str:
    """The Content-Type a download carries (text is always served as UTF-8)."""
    return f"{content_type}; charset=utf-8" if content_type in TEXT_TYPES else content_type
