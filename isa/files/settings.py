"""The `[files]` settings section."""

from __future__ import annotations

from pydantic import Field

from isa.core.settings import Section
from isa.files.content import EXTENSIONS

DEFAULT_TYPES = tuple(t for t in EXTENSIONS if "presentationml" not in t)


class FilesSettings(Section):
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1)
    allowed_types: tuple[str, ...] = DEFAULT_TYPES
    quota_bytes: int = Field(1024**3, ge=0)
    quota_files: int = Field(1000, ge=0)
    pending_ttl_minutes: float = Field(60, gt=0)
    # A streamed upload runs inside one request: its row pending this long means the node died mid-stream,
    # so its reserved quota comes back sooner than a presigned upload's.
    stream_pending_ttl_minutes: float = Field(15, gt=0)
    # Partial files of the local backend untouched this long are left over from a killed process.
    tmp_max_age_minutes: float = Field(10, gt=0)
    sweep_interval_seconds: float = Field(300, ge=0)
    orphan_min_age_minutes: float = Field(60, ge=0)
    list_max: int = Field(1000, ge=1)
