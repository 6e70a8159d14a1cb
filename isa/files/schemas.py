"""Wire models of the files domain."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from isa.files.store import FileRow


class FileOut(BaseModel):
    file_id: str
    user_id: str
    filename: str
    content_type: str
    size_bytes: int
    sha256: str | None
    status: Literal["pending", "ready", "deleted"]
    file_path: str  # the storage key, as the original API called it
    created_at: datetime
    updated_at: datetime
    download_url: str  # this API's download route (auth required), never a presigned URL

    @classmethod
    def of(cls, row: FileRow, download_url: str) -> FileOut:
        return cls(
            file_id=row.id,
            user_id=row.user_id,
            filename=row.filename,
            content_type=row.content_type,
            size_bytes=row.size_bytes,
            sha256=row.sha256,
            status=row.status,
            file_path=row.storage_key,
            created_at=row.created_at,
            updated_at=row.updated_at,
            download_url=download_url,
        )


class PresignUploadIn(BaseModel):
    """Ask for a direct-to-storage upload link. The key is always chosen by the server."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field("", max_length=16_384)
    content_type: str = Field(min_length=1, max_length=255)
    size_bytes: int = Field(ge=1, le=2**53)
    expires_in: int | None = Field(None, ge=1, le=604_800)


class UploadForm(BaseModel):
    method: Literal["POST", "PUT"]
    url: str
    fields: dict[str, str]
    headers: dict[str, str]


class PresignUploadOut(BaseModel):
    file: FileOut
    upload: UploadForm
    expires_at: datetime
    max_bytes: int
    complete_url: str


class FileList(RootModel[list[FileOut]]):
    """A page of files, newest first (the envelope adds total, limit and offset)."""


class Deleted(BaseModel):
    file_id: str
    deleted: bool


class _Query(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ListQuery(_Query):
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10_000_000)
    status: Literal["pending", "ready"] | None = None


class DownloadQuery(_Query):
    expires_in: int | None = Field(None, ge=1, le=604_800)


class PathQuery(_Query):
    file_path: str = Field(min_length=1, max_length=1024)


class DownloadByPathQuery(PathQuery, DownloadQuery):
    pass
