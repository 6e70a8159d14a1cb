"""Images, vision and audio for a caller: inputs from the caller's files or guarded URLs, checked from their bytes;
model work on the model node as that caller (it routes, bills per image/call and owns retries); results in the
caller's files."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from isa.auth.principal import Principal
from isa.core.egress import EgressBlocked, EgressFailed, EgressPolicy, GuardedClient, Resolver, system_resolver
from isa.core.errors import ApiError
from isa.core.logging import get_logger
from isa.files import FileRow
from isa.files.multipart import FilePart
from isa.files.service import FilesService
from isa.llm.client import ModelClient, ModelUnavailable
from isa.media import ocr, speech
from isa.media.decode import CheckedAudio, CheckedImage, MediaError, check_audio, check_image
from isa.media.schemas import IMAGE_TYPE_PROMPTS, NEEDS_IMAGE, NEEDS_TARGET
from isa.media.settings import MediaSettings

log = get_logger(__name__)
MODEL_SETUP = "set services.model_url and auth.token_secret so this node can reach the model node"


@dataclass(frozen=True)
class StoredImage:
    file_id: str
    url: str
    mime_type: str
    width: int
    height: int
    data: bytes

    def as_dict(self, expires_in: int) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "url": self.url,
            "expires_in": expires_in,
            "mime_type": self.mime_type,
            "width": self.width,
            "height": self.height,
            "bytes": len(self.data),
        }


class MediaService:
    def __init__(
        self,
        settings: MediaSettings,
        *,
        client: ModelClient | None,
        files: Callable[[], FilesService | None],
        allow_hosts: list[str],
        allow_cidrs: list[str],
        resolver: Resolver = system_resolver,
    ) -> None:
        self.settings = settings
        self.client = client
        self._files = files
        self.policy = EgressPolicy(allow_hosts, allow_cidrs, resolver)

    def files(self) -> FilesService:
        service = self._files()
        if service is None:
            raise MediaError("not_configured", "file storage is not available on this node")
        return service

    # -- inputs ----------------------------------------------------------------------------------------------------
    async def load(self, user_id: str, source: str, max_bytes: int) -> bytes:
        """The bytes of one of the caller's files (by id) or of an http(s) URL fetched through the egress guard."""
        source = source.strip()
        scheme = source.split(":", 1)[0].lower() if ":" in source else ""
        if scheme in ("http", "https"):
            guarded = GuardedClient(self.policy, 5, max_bytes, self.settings.fetch_timeout_seconds, "isa-media/1.0")
            try:
                fetched = await guarded.fetch(source)
            except EgressBlocked as exc:
                raise MediaError("blocked", str(exc)) from None
            except EgressFailed as exc:
                code = "too_large" if "larger than" in str(exc) else "fetch_failed"
                raise MediaError(code, str(exc)) from None
            if fetched.status != 200:
                raise MediaError("fetch_failed", f"the URL answered HTTP {fetched.status}")
            return fetched.content
        try:
            file_id = str(uuid.UUID(source))
        except ValueError:
            raise MediaError(
                "invalid_source", "give the id of one of your files or an http(s) URL (server paths are not accepted)"
            ) from None
        files = self.files()
        try:
            row = await files.get(user_id, file_id)  # owner-filtered: another user's file is "not found"
        except ApiError:
            raise MediaError("not_found", f"you have no file {file_id}") from None
        if row.status != "ready":
            raise MediaError("not_found", f"file {file_id} is not ready")
        if row.size_bytes > max_bytes:
            raise MediaError("too_large", f"file {file_id} is larger than {max_bytes} bytes")
        body = bytearray()
        async for chunk in files.storage.read(row.storage_key, row.storage_version):
            body.extend(chunk)
            if len(body) > max_bytes:
                raise MediaError("too_large", f"file {file_id} is larger than {max_bytes} bytes")
        return bytes(body)

    async def image(self, user_id: str, source: str) -> CheckedImage:
        s = self.settings
        return check_image(await self.load(user_id, source, s.max_image_bytes), s.max_image_bytes, s.max_image_pixels)

    async def audio(self, user_id: str, source: str) -> CheckedAudio:
        s = self.settings
        return check_audio(await self.load(user_id, source, s.max_audio_bytes), s.max_audio_bytes, s.max_audio_seconds)

    # -- the model node --------------------------------------------------------------------------------------------
    async def call_model(
        self,
        principal: Principal,
        path: str,
        what: str,
        *,
        json_body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        upload: tuple[str, bytes, str] | None = None,
    ) -> dict[str, Any]:
        """One call as the caller; errors become MediaError with a stable code (no provider -> not_configured)."""
        if self.client is None:
            raise MediaError("not_configured", f"{what} needs the model node: {MODEL_SETUP}")
        try:
            response = await self.client.send(
                principal, path, json=json_body, data=form, files={"file": upload} if upload else None
            )
        except ModelUnavailable as exc:
            raise MediaError("model_unavailable", str(exc)) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code == 200 and isinstance(answer, dict):
            return answer
        error = answer.get("error") if isinstance(answer, dict) else None
        code = str(error.get("code", "")) if isinstance(error, dict) else ""
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        log.info("media_model_call_failed", path=path, status=response.status_code, code=code)
        if code in ("model_unavailable", "model_not_found"):
            raise MediaError(
                "not_configured",
                f"{what} is not configured: {message} (set the provider key of a deployment that serves it, or "
                "point the media settings at one)",
            )
        if response.status_code == 402:
            raise MediaError("insufficient_credits", message or "your credits are used up")
        if response.status_code == 429:
            raise MediaError("rate_limited", message or "too many requests; try again shortly")
        raise MediaError("model_failed", f"the model node answered HTTP {response.status_code} {code}".strip())

    async def vision(
        self, principal: Principal, images: list[CheckedImage], instruction: str, *, model: str = "", json_out: bool
    ) -> tuple[str, str]:
        """(answer text, model group) of one vision chat over the images."""
        group = model or self.settings.vision_model
        parts: list[dict[str, Any]] = [{"type": "text", "text": instruction}]
        parts += [{"type": "image_url", "image_url": {"url": image.data_url()}} for image in images]
        body: dict[str, Any] = {"model": group, "messages": [{"role": "user", "content": parts}]}
        if json_out:
            body["response_format"] = {"type": "json_object"}
        answer = await self.call_model(principal, "/v1/chat/completions", "vision", json_body=body)
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise MediaError("model_failed", "the model node's answer has no message") from None
        return str(content or ""), group

    # -- OCR -------------------------------------------------------------------------------------------------------
    async def local_ocr(self, image: CheckedImage, language: str) -> list[ocr.Line]:
        s = self.settings
        return await ocr.recognise(
            image.data, s.ocr_engine, language=language, tesseract_path=s.tesseract_path, seconds=s.ocr_timeout_seconds
        )

    def ocr_available(self) -> bool:
        s = self.settings
        return ocr.rapidocr_available() if s.ocr_engine == "rapidocr" else ocr.tesseract_available(s.tesseract_path)

    # -- images ----------------------------------------------------------------------------------------------------
    async def generate(
        self,
        principal: Principal,
        prompt: str,
        image_type: str,
        *,
        init_image: str | None,
        target_image: str | None,
        width: int | None,
        height: int | None,
        strength: float | None,
        count: int,
    ) -> tuple[str, list[StoredImage]]:
        """(model group, stored images) for one generation routed by image type."""
        group = self.settings.image_models.get(image_type)
        if not group:
            raise MediaError("not_configured", f"no model is set for {image_type} (media.image_models)")
        if image_type in NEEDS_IMAGE and not init_image:
            raise MediaError("invalid_request", f"{image_type} needs init_image_url (a file id or an http(s) URL)")
        if image_type in NEEDS_TARGET and not target_image:
            raise MediaError("invalid_request", f"{image_type} needs target_image_url (the face to swap onto)")
        if self.client is None:  # before fetching anything: no provider, no work and no charge
            raise MediaError("not_configured", f"image generation needs the model node: {MODEL_SETUP}")
        body: dict[str, Any] = {"model": group, "prompt": IMAGE_TYPE_PROMPTS[image_type].format(prompt=prompt)}
        body["n"] = count
        if width and height:
            body["size"] = f"{width}x{height}"
        if init_image:
            body["image"] = (await self.image(principal.user_id, init_image)).data_url()
            if strength is not None:
                body["strength"] = strength
        if target_image:
            body["target_image"] = (await self.image(principal.user_id, target_image)).data_url()
        answer = await self.call_model(
            principal, "/v1/images/generations", f"image generation ({image_type})", json_body=body
        )
        items = [d for d in answer.get("data") or [] if isinstance(d, dict)]
        if not items:
            raise MediaError("model_failed", "the model node returned no image")
        stored = [await self._store_result(principal.user_id, item, image_type, i) for i, item in enumerate(items)]
        return group, stored

    async def _store_result(self, user_id: str, item: dict[str, Any], image_type: str, index: int) -> StoredImage:
        s = self.settings
        if item.get("b64_json"):
            try:
                data = base64.b64decode(str(item["b64_json"]), validate=True)
            except ValueError:
                raise MediaError("model_failed", "the provider's image is not valid base64") from None
        elif str(item.get("url", "")).startswith("data:image/") and ";base64," in str(item["url"]):
            try:  # some providers answer with a data URL
                data = base64.b64decode(str(item["url"]).split(",", 1)[1], validate=True)
            except ValueError:
                raise MediaError("model_failed", "the provider's image is not valid base64") from None
        elif item.get("url"):
            data = await self.load(user_id, str(item["url"]), s.max_image_bytes)  # provider links: guarded too
        else:
            raise MediaError("model_failed", "the provider's answer carries no image")
        image = check_image(data, s.max_image_bytes, s.max_image_pixels)
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}[image.mime_type]
        row = await self.store(user_id, f"{image_type}-{index + 1}.{ext}", image.mime_type, image.data)
        return StoredImage(str(row.id), await self.link(row), image.mime_type, image.width, image.height, image.data)

    async def store(self, user_id: str, filename: str, mime_type: str, data: bytes) -> FileRow:
        """Save bytes as one of the caller's files through the files service (type checks, quota)."""

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        try:
            return await self.files().upload(user_id, FilePart(filename, mime_type, chunks()), len(data))
        except ApiError as exc:
            raise MediaError(exc.code, exc.message) from None

    async def link(self, row: FileRow) -> str:
        try:
            return await self.files().download_url(row, self.settings.link_expires_seconds)
        except ApiError as exc:
            raise MediaError(exc.code, exc.message) from None

    # -- audio -----------------------------------------------------------------------------------------------------
    async def transcribe(
        self, principal: Principal, source: str, language: str | None, model: str | None
    ) -> dict[str, Any]:
        """A provider's transcription through the model node; the local model when asked ("local") or when no
        provider is configured (with a note saying so)."""
        s = self.settings
        audio = await self.audio(principal.user_id, source)
        out: dict[str, Any] = {"duration_seconds": audio.seconds, "mime_type": audio.mime_type}
        if model != "local":
            try:
                if self.client is None:
                    raise MediaError("not_configured", f"transcription needs a speech-to-text provider: {MODEL_SETUP}")
                group = model or s.transcription_model
                form = {"model": group, **({"language": language} if language else {})}
                answer = await self.call_model(
                    principal,
                    "/v1/audio/transcriptions",
                    "transcription",
                    form=form,
                    upload=(audio.filename, audio.data, audio.mime_type),
                )
                text = str(answer.get("text", ""))
                return {**out, "text": text, "language": answer.get("language") or language, "model": group}
            except MediaError as exc:
                if exc.code != "not_configured" or not s.local_transcription or model:
                    raise
                out["note"] = f"{exc.message}; the small local English model answered (far less accurate)"
        if not s.local_transcription:
            raise MediaError("not_configured", "local transcription is off (media.local_transcription)")
        text = await speech.transcribe(
            audio, language, s.local_transcription_max_seconds, s.local_transcription_timeout_seconds
        )
        return {**out, "text": text, "language": "en", "model": "local", "engine": "pocketsphinx"}


def parse_json(text: str) -> Any:
    """A model's JSON answer (tolerating a ```json fence), or None."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").removeprefix("json").strip()
    try:
        return json.loads(body)
    except ValueError:
        return None
