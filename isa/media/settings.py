"""The `media` settings section: input limits, the model groups each operation asks the model node for, local OCR."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from isa.core.settings import Section


def _image_models() -> dict[str, str]:
    # The original's routing (Replicate models via the model service); each name is a model group or alias on
    # the model node, so an operator points a type at whatever deployment can do it.
    kontext = "flux-kontext-pro"
    return {
        "text_to_image": "image",
        "image_to_image": kontext,
        "sticker": "sticker-maker",
        "emoji": "sticker-maker",
        "professional_headshot": kontext,
        "face_swap": "face-swap",
        "style_transfer": kontext,
        "inpainting": kontext,
        "outpainting": kontext,
    }


class MediaSettings(Section):
    # Inputs: a caller's file (by id) or an http(s) URL fetched through the egress guard: public addresses only,
    # unless opened here on purpose (same forms as web.allow_hosts / web.allow_cidrs). Provider result links too.
    allow_hosts: list[str] = Field(default_factory=list)
    allow_cidrs: list[str] = Field(default_factory=list)
    max_image_bytes: int = Field(20_000_000, ge=1024)
    # Decoded size limit, checked from the header before any pixel is decoded (decompression bombs).
    max_image_pixels: int = Field(40_000_000, ge=1)
    max_audio_bytes: int = Field(25_000_000, ge=1024)
    max_audio_seconds: float = Field(1800.0, gt=0)
    fetch_timeout_seconds: float = Field(20.0, gt=0)
    # Vision tools (analyze, describe, objects, emotion, compare; OCR's vision path).
    vision_model: str = "vision"
    vision_timeout_seconds: float = Field(120.0, gt=0)
    # Images: the model group per image type; results go to the caller's files.
    image_models: dict[str, str] = Field(default_factory=_image_models)
    image_timeout_seconds: float = Field(180.0, gt=0)
    max_images_per_call: int = Field(4, ge=1, le=10)
    # Results at most this big also travel inline as MCP image content.
    inline_image_bytes: int = Field(1_000_000, ge=0)
    link_expires_seconds: int = Field(3600, ge=60, le=604_800)
    # Audio: the model group for transcriptions (an alias on the model node).
    transcription_model: str = "transcribe"
    # Local speech-to-text (PocketSphinx, English, WAV): the fallback when no provider answers, or model="local".
    local_transcription: bool = True
    local_transcription_max_seconds: float = Field(300.0, gt=0)
    local_transcription_timeout_seconds: float = Field(120.0, gt=0)
    # Local OCR (no provider needed): "tesseract" (Debian's tesseract-ocr) or "rapidocr" (ONNX models in its wheel).
    ocr_engine: Literal["tesseract", "rapidocr"] = "tesseract"
    tesseract_path: str = "tesseract"
    ocr_timeout_seconds: float = Field(60.0, gt=0)
