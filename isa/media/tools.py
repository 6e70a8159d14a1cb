"""MCP tools: generate_image, the vision tools, local-first OCR, transcribe_audio and the capability lists.

`image_path`/`audio` is the id of one of the caller's files or an http(s) URL (fetched through the egress guard),
never a server path. What a model says about an image (or reads in it) is derived from untrusted content, so those
answers are marked untrusted. Credits: the model node bills each call as the caller (per image, per
transcription, per token); the tools add no charge of their own, so a call that fails before a provider answers
costs nothing.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ImageContent
from pydantic import Field

from isa.files.content import AUDIO_EXTENSIONS
from isa.mcp.context import current_call
from isa.mcp.envelope import envelope, to_result
from isa.mcp.registry import Capabilities
from isa.media import ocr, speech
from isa.media.decode import MediaError
from isa.media.schemas import (
    COMPARE_INSTRUCTION,
    DETAIL_INSTRUCTIONS,
    EMOTION_INSTRUCTION,
    IMAGE_TYPE_PROMPTS,
    NEEDS_IMAGE,
    NEEDS_TARGET,
    OBJECTS_INSTRUCTION,
    OCR_INSTRUCTION,
    DetailLevel,
    ImageType,
    OcrMethod,
)
from isa.media.service import MediaService, parse_json

capabilities = Capabilities("isa.media")
Source = Annotated[str, Field(min_length=1, max_length=4000, description="one of your file ids, or an http(s) URL")]
Prompt = Annotated[str, Field(min_length=1, max_length=4000)]
Model = Annotated[str, Field(max_length=200, description="a model (group) on the model node; empty: the default")]
Language = Annotated[str, Field(max_length=16, description="an ISO 639-1 code such as en, de, fr")]


def _service() -> MediaService:
    return current_call().service("media", MediaService)


def _fail(exc: MediaError) -> ToolError:
    return ToolError(f"{exc.code}: {exc.message}")


@capabilities.tool(
    category="images",
    keywords=["generate image", "draw", "picture", "sticker", "emoji", "headshot", "face swap", "style", "inpaint"],
    scope="write",
    rate_limit_per_minute=20,
)
async def generate_image(
    prompt: Prompt,
    image_type: ImageType = "text_to_image",
    init_image_url: Annotated[str | None, Field(max_length=4000)] = None,
    width: Annotated[int | None, Field(ge=64, le=4096)] = None,
    height: Annotated[int | None, Field(ge=64, le=4096)] = None,
    strength: Annotated[float | None, Field(ge=0, le=1)] = None,
    target_image_url: Annotated[str | None, Field(max_length=4000)] = None,
    count: Annotated[int, Field(ge=1, le=10)] = 1,
) -> CallToolResult:
    """Create images (text_to_image, image_to_image, sticker, emoji, professional_headshot, face_swap,
    style_transfer, inpainting, outpainting); saved to your files, returned as file ids and short-lived links."""
    call, service = current_call(), _service()
    if count > service.settings.max_images_per_call:
        raise ToolError(f"invalid_request: at most {service.settings.max_images_per_call} images per call")
    try:
        group, stored = await service.generate(
            call.principal,
            prompt,
            image_type,
            init_image=init_image_url,
            target_image=target_image_url,
            width=width,
            height=height,
            strength=strength,
            count=count,
        )
    except MediaError as exc:
        raise _fail(exc) from None
    expires = service.settings.link_expires_seconds
    data = {
        "image_type": image_type,
        "model": group,
        "count": len(stored),
        "images": [s.as_dict(expires) for s in stored],
        "image_urls": [s.url for s in stored],
        "file_ids": [s.file_id for s in stored],
    }
    result = to_result(envelope("success", "generate_image", data))
    inline = [
        ImageContent(type="image", data=base64.b64encode(s.data).decode("ascii"), mime_type=s.mime_type)
        for s in stored
        if len(s.data) <= service.settings.inline_image_bytes
    ]
    return result.model_copy(update={"content": [*result.content, *inline]})


async def _vision(sources: list[str], instruction: str, model: str = "", *, json_out: bool) -> tuple[str, str]:
    call, service = current_call(), _service()
    try:
        images = [await service.image(call.principal.user_id, s) for s in sources]
        return await service.vision(call.principal, images, instruction, model=model, json_out=json_out)
    except MediaError as exc:
        raise _fail(exc) from None


@capabilities.tool(
    category="vision", keywords=["image", "analyze", "vision", "photo", "look", "question"], untrusted_output=True
)
async def analyze_image(
    image_path: Source, prompt: Prompt = "What is in this image?", model: Model = ""
) -> dict[str, Any]:
    """Ask a vision model anything about an image (one of your files or an http(s) URL)."""
    answer, group = await _vision([image_path], prompt, model, json_out=False)
    return {"analysis": answer, "model": group}


@capabilities.tool(
    category="vision", keywords=["describe", "caption", "image", "photo", "alt text"], untrusted_output=True
)
async def describe_image(
    image_path: Source, detail_level: DetailLevel = "detailed", language: Language = "en"
) -> dict[str, Any]:
    """Describe an image at a detail level (brief, detailed, comprehensive) in a language."""
    instruction = DETAIL_INSTRUCTIONS[detail_level] + f" Answer in the language with code {language[:16]!r}."
    answer, group = await _vision([image_path], instruction, json_out=False)
    return {"description": answer, "detail_level": detail_level, "language": language, "model": group}


@capabilities.tool(
    category="vision",
    keywords=["ocr", "extract text", "read text", "scan", "image", "document", "receipt"],
    untrusted_output=True,
)
async def extract_text_from_image(
    image_path: Source, language: Language = "en", method: OcrMethod = "auto"
) -> dict[str, Any]:
    """Read the text in an image as lines with boxes. Local OCR needs no provider; method "vision" asks the vision
    model, "auto" uses the vision model when the node has one and falls back to local OCR."""
    call, service = current_call(), _service()
    try:
        image = await service.image(call.principal.user_id, image_path)
    except MediaError as exc:
        raise _fail(exc) from None
    note = None
    if method == "vision" or (method == "auto" and service.client is not None):
        lang = f" (the text is in language {language[:16]!r})" if language else ""
        try:
            answer, group = await service.vision(
                call.principal, [image], OCR_INSTRUCTION.format(lang=lang), json_out=True
            )
            parsed = parse_json(answer)
            raw = parsed.get("lines") if isinstance(parsed, dict) else None
            lines = [str(x) for x in raw] if isinstance(raw, list) else answer.splitlines()
            text = "\n".join(lines)
            return {"text": text, "lines": [{"text": t} for t in lines], "method": "vision", "model": group}
        except MediaError as exc:
            if method == "vision":
                raise _fail(exc) from None
            note = f"the vision model was not used ({exc.code}); local OCR answered"
    try:
        found = await service.local_ocr(image, language)
    except MediaError as exc:
        raise _fail(exc) from None
    out: dict[str, Any] = {
        "text": "\n".join(line.text for line in found),
        "lines": [line.as_dict() for line in found],
        "method": "local",
        "engine": service.settings.ocr_engine,
        "width": image.width,
        "height": image.height,
    }
    if note:
        out["note"] = note
    return out


@capabilities.tool(
    category="vision", keywords=["objects", "detect", "identify", "find", "image", "boxes"], untrusted_output=True
)
async def identify_objects_in_image(
    image_path: Source, object_type: Annotated[str, Field(max_length=200)] = "objects"
) -> dict[str, Any]:
    """Find objects (all, or of one kind) in an image, with labels, confidences and boxes (fractions of the size)."""
    answer, group = await _vision(
        [image_path], OBJECTS_INSTRUCTION.format(what=object_type or "objects"), json_out=True
    )
    parsed = parse_json(answer)
    objects = parsed.get("objects") if isinstance(parsed, dict) else None
    if not isinstance(objects, list):
        return {"objects": [], "raw": answer, "object_type": object_type, "model": group}
    return {"objects": objects, "count": len(objects), "object_type": object_type, "model": group}


@capabilities.tool(
    category="vision", keywords=["emotion", "mood", "face", "feeling", "image", "expression"], untrusted_output=True
)
async def analyze_image_emotion(image_path: Source) -> dict[str, Any]:
    """The emotions shown in an image: per face (with boxes) and the overall mood."""
    answer, group = await _vision([image_path], EMOTION_INSTRUCTION, json_out=True)
    parsed = parse_json(answer)
    if not isinstance(parsed, dict):
        return {"summary": answer, "faces": [], "model": group}
    return {**parsed, "model": group}


@capabilities.tool(
    category="vision", keywords=["compare", "difference", "similar", "two images", "diff"], untrusted_output=True
)
async def compare_two_images(
    image1_path: Source,
    image2_path: Source,
    comparison_aspects: Annotated[list[str] | None, Field(max_length=10)] = None,
) -> dict[str, Any]:
    """Compare two images: similarities, differences, a per-aspect verdict and a similarity score."""
    aspects = [a[:100] for a in comparison_aspects or []] or ["content", "composition", "colour", "style"]
    answer, group = await _vision(
        [image1_path, image2_path], COMPARE_INSTRUCTION.format(aspects=", ".join(aspects)), json_out=True
    )
    parsed = parse_json(answer)
    if not isinstance(parsed, dict):
        return {"summary": answer, "comparison_aspects": aspects, "model": group}
    return {**parsed, "comparison_aspects": aspects, "model": group}


@capabilities.tool(category="vision", keywords=["vision", "capabilities", "image", "ocr", "what can"])
async def get_vision_capabilities() -> dict[str, Any]:
    """What the image and vision tools can do on this node: operations, image types, limits and the OCR engines."""
    s = _service().settings
    model_node = _service().client is not None
    return {
        "model_node_configured": model_node,
        "vision_model": s.vision_model,
        "operations": {
            "analyze_image": model_node,
            "describe_image": model_node,
            "identify_objects_in_image": model_node,
            "analyze_image_emotion": model_node,
            "compare_two_images": model_node,
            "extract_text_from_image": {"local": _service().ocr_available(), "vision": model_node},
            "generate_image": model_node,
        },
        "local_ocr": {
            "engine": s.ocr_engine,
            "available": _service().ocr_available(),
            "tesseract": ocr.tesseract_available(s.tesseract_path),
            "rapidocr": ocr.rapidocr_available(),
        },
        "image_types": {
            t: {"model": s.image_models.get(t), "needs_init_image": t in NEEDS_IMAGE, "needs_target": t in NEEDS_TARGET}
            for t in IMAGE_TYPE_PROMPTS
        },
        "input_formats": ["image/png", "image/jpeg", "image/webp", "image/gif"],
        "limits": {"max_image_bytes": s.max_image_bytes, "max_image_pixels": s.max_image_pixels},
        "note": "operations marked true still need a provider key on the model node; without one they answer "
        "not_configured and nothing is charged",
    }


@capabilities.tool(
    category="audio",
    keywords=["transcribe", "speech", "audio", "voice", "whisper", "dictation", "speech to text"],
    scope="write",
    untrusted_output=True,
    rate_limit_per_minute=20,
)
async def transcribe_audio(
    audio: Source,
    language: Annotated[str | None, Field(max_length=16)] = None,
    model: Annotated[str | None, Field(max_length=200)] = None,
) -> dict[str, Any]:
    """Transcribe speech in an audio file (one of your files or an http(s) URL; WAV, MP3, Ogg, FLAC, M4A, WebM).
    model="local" (or no provider) uses the small built-in English model on 16-bit WAV."""
    call = current_call()
    try:
        return await _service().transcribe(call.principal, audio, language, model or None)
    except MediaError as exc:
        raise _fail(exc) from None


@capabilities.tool(category="audio", keywords=["audio", "capabilities", "transcription", "formats"])
async def get_audio_capabilities() -> dict[str, Any]:
    """What the audio tools can do here: formats, limits, the transcription model, and whether a provider is set."""
    service = _service()
    s = service.settings
    local = s.local_transcription and speech.available()
    return {
        "model_node_configured": service.client is not None,
        "transcription_model": s.transcription_model,
        "operations": {"transcribe_audio": service.client is not None or local},
        "local_transcription": {
            "available": local,
            "engine": "pocketsphinx",
            "languages": ["en"],
            "input_formats": ["audio/wav"],
            "max_seconds": s.local_transcription_max_seconds,
        },
        "note": "a speech-to-text provider on the model node (e.g. OPENAI_API_KEY for whisper-1) is preferred; "
        "without one, or with model='local', the small local English model answers (16-bit WAV only, far less "
        "accurate: docs/media.md)",
        "input_formats": sorted(AUDIO_EXTENSIONS),
        "limits": {"max_audio_bytes": s.max_audio_bytes, "max_audio_seconds": s.max_audio_seconds},
    }
