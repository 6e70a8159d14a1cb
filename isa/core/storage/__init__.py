"""Object storage behind one interface: S3 (boto3, instance-role friendly) or a local folder with signed links.

Both backends stream uploads with a byte cap, never overwrite an existing key, and mint download links whose
lifetime can never exceed the configured cap.
"""

from __future__ import annotations

from pathlib import Path

from isa.core.storage.base import (
    CHUNK,
    InvalidLink,
    ObjectExists,
    ObjectInfo,
    ObjectTooLarge,
    PresignedUpload,
    Storage,
    StorageError,
    StorageSettings,
    StoredObject,
    attachment_disposition,
    policy_of,
    validate_key,
)
from isa.core.storage.local import LocalStorage
from isa.core.storage.s3 import S3Storage

__all__ = [
    "CHUNK",
    "InvalidLink",
    "LocalStorage",
    "ObjectExists",
    "ObjectInfo",
    "ObjectTooLarge",
    "PresignedUpload",
    "S3Storage",
    "Storage",
    "StorageError",
    "StorageSettings",
    "StoredObject",
    "attachment_disposition",
    "build_storage",
    "policy_of",
    "validate_key",
]


def build_storage(settings: StorageSettings, data_dir: Path) -> Storage:
    """The configured backend."""
    if settings.backend == "s3":
        return S3Storage(settings)
    return LocalStorage(settings, Path(settings.local_dir) if settings.local_dir else data_dir / "files")
