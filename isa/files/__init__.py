"""Per-user files on S3 or a local folder: streamed or presigned uploads, owner-checked access, quota, sweeping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from isa.core.builder import AppBuilder
from isa.core.logging import get_logger
from isa.core.settings import ConfigError
from isa.core.storage import LocalStorage, StorageError, StorageSettings, build_storage
from isa.files import local_routes, routes
from isa.files.service import FilesService
from isa.files.settings import FilesSettings
from isa.files.store import FileRow

__all__ = ["FileRow", "FilesService", "FilesSettings", "register"]

log = get_logger(__name__)
# Multipart framing around the file: boundaries, part headers (a file name can be long), other small fields.
MULTIPART_OVERHEAD = 1024 * 1024


def register(builder: AppBuilder) -> None:
    settings = builder.settings
    files_settings = settings.section("files", FilesSettings)
    try:
        storage = build_storage(settings.section("storage", StorageSettings), settings.data_dir)
    except StorageError as exc:
        raise ConfigError(str(exc)) from None
    service = FilesService(builder.state.db, storage, files_settings)
    builder.provide("storage", storage)
    builder.provide("files", service)
    builder.add_routes(*routes.ROUTES)
    builder.allow_body(routes.BASE, files_settings.max_upload_bytes + MULTIPART_OVERHEAD)
    if isinstance(storage, LocalStorage):
        builder.add_routes(*local_routes.ROUTES)
        builder.allow_body(local_routes.PREFIX, files_settings.max_upload_bytes)
    if files_settings.sweep_interval_seconds > 0:
        builder.add_lifespan(lambda: _sweeper(service, files_settings.sweep_interval_seconds))


@asynccontextmanager
async def _sweeper(service: FilesService, interval: float) -> AsyncIterator[None]:
    """Expire abandoned pending uploads every `interval` seconds while the node runs (safe on every replica)."""

    async def loop() -> None:
        while True:  # the first round at start-up: what a killed node left is cleared when it comes back
            try:
                await service.sweep_pending()
                await service.sweep_temporary()
            except Exception as exc:  # keep sweeping; the next round retries
                log.warning("pending_sweep_failed", error=type(exc).__name__)
            await anyio.sleep(interval)

    async with anyio.create_task_group() as tg:
        tg.start_soon(loop)
        yield
        tg.cancel_scope.cancel()
