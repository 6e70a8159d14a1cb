"""What an input really is, decided from its bytes before anything is sent anywhere: images (type by magic bytes,
byte and pixel limits read from the header before decoding, a full decode to catch truncation) and audio (type by
magic bytes, duration from the container)."""

from __future__ import annotations

import io
import warnings
import wave
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from isa.files.content import AUDIO_EXTENSIONS, sniff_audio


class MediaError(Exception):
    """A failure meant for the caller; `code` is stable (invalid_image, too_large, not_configured, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}


def sniff_image(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    mime_type: str
    width: int
    height: int

    def data_url(self) -> str:
        import base64

        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"


def check_image(data: bytes, max_bytes: int, max_pixels: int) -> CheckedImage:
    """The image if it is a PNG, JPEG, WebP or GIF within the limits and decodes completely; else MediaError."""
    if len(data) > max_bytes:
        raise MediaError("too_large", f"the image is larger than {max_bytes} bytes")
    mime = sniff_image(data)
    if mime is None:
        head = data[:512].lstrip().lower()
        if head.startswith((b"<svg", b"<?xml")) or b"<svg" in head:
            raise MediaError("unsupported_image", "SVG images are not accepted (send PNG, JPEG, WebP or GIF)")
        raise MediaError("unsupported_image", "the content is not a PNG, JPEG, WebP or GIF image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise MediaError(
                    "too_large", f"the image has {width}x{height} pixels; at most {max_pixels} are accepted"
                )
            if IMAGE_TYPES.get(image.format or "") != mime:
                raise MediaError("invalid_image", "the image's content does not match its type")
            image.load()  # a truncated or corrupt file fails here, before it is sent anywhere
    except MediaError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaError("too_large", "the image decodes to too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise MediaError("invalid_image", "the image is damaged or truncated") from None
    return CheckedImage(data, mime, width, height)


# -- audio -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedAudio:
    data: bytes
    mime_type: str
    seconds: float | None  # None: the container does not say (webm); the byte limit still holds

    @property
    def filename(self) -> str:
        return "audio" + AUDIO_EXTENSIONS[self.mime_type]


def _duration(data: bytes, mime: str) -> float | None:
    if mime == "audio/wav":
        with wave.open(io.BytesIO(data)) as w:
            rate, frame = w.getframerate(), w.getsampwidth() * w.getnchannels()
            # Count the frames really there: a streamed WAV's header may claim 2**31 frames.
            frames = len(w.readframes(w.getnframes())) // frame if frame else 0
            return frames / rate if rate else None
    if mime == "audio/webm":
        return None
    import mutagen

    parsed = mutagen.File(io.BytesIO(data))
    length = getattr(getattr(parsed, "info", None), "length", None)
    return float(length) if length else None


def check_audio(data: bytes, max_bytes: int, max_seconds: float) -> CheckedAudio:
    """The audio if it is WAV, MP3, Ogg, FLAC, M4A or WebM, within the byte and duration limits; else MediaError."""
    if len(data) > max_bytes:
        raise MediaError("too_large", f"the audio is larger than {max_bytes} bytes")
    mime = sniff_audio(data)
    if mime is None:
        raise MediaError("unsupported_audio", "the content is not WAV, MP3, Ogg, FLAC, M4A or WebM audio")
    try:
        seconds = _duration(data, mime)
    except Exception:  # any parser failure means the file is not readable audio of that type
        raise MediaError("invalid_audio", "the audio file is damaged or not what it claims to be") from None
    if mime != "audio/webm" and seconds is None:
        raise MediaError("invalid_audio", "the audio file's duration can't be read")
    if seconds is not None and seconds > max_seconds:
        raise MediaError("too_long", f"the audio lasts {seconds:.0f} s; at most {max_seconds:.0f} s are accepted")
    return CheckedAudio(data, mime, seconds)
