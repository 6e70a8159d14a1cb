"""Images, vision and audio tools: inputs from the caller's files or guarded URLs, model work on the model node as
the caller, results in the caller's files, local OCR when no provider is set (docs/media.md)."""

from __future__ import annotations

from isa.core.builder import AppBuilder
from isa.files.service import FilesService
from isa.llm.client import model_client
from isa.media.decode import MediaError
from isa.media.service import MediaService
from isa.media.settings import MediaSettings

__all__ = ["MediaError", "MediaService", "MediaSettings", "register"]


def register(builder: AppBuilder) -> None:
    settings = builder.settings
    media = settings.section("media", MediaSettings)
    timeout = max(media.vision_timeout_seconds, media.image_timeout_seconds)
    state = builder.state

    def files() -> FilesService | None:
        try:
            return state.get("files", FilesService)
        except LookupError:
            return None

    service = MediaService(
        media,
        client=model_client(settings, timeout, user_agent="isa-media"),
        files=files,
        allow_hosts=media.allow_hosts,
        allow_cidrs=media.allow_cidrs,
    )
    builder.provide("media", service)
