"""Local speech-to-text with no provider: PocketSphinx and the US-English acoustic model, language model and
dictionary that ship inside its wheel (nothing is downloaded). Small and fast, far less accurate than a provider's
model (good on clear speech and digits, poor on free text: docs/media.md), so it is the fallback, never preferred
over a configured provider. It reads 16-bit PCM WAV (other containers need a decoder isa doesn't ship)."""

from __future__ import annotations

import importlib.util
import io
import threading
import wave
from typing import Any

import anyio
import numpy as np

from isa.media.decode import CheckedAudio, MediaError

RATE = 16_000
_lock = threading.Lock()
_decoder: Any = None


def available() -> bool:
    return importlib.util.find_spec("pocketsphinx") is not None


def pcm16k(data: bytes) -> bytes:
    """Mono 16-bit samples at 16 kHz from a 16-bit PCM WAV (channels averaged, linear resampling)."""
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2 or w.getcomptype() != "NONE":
            raise MediaError(
                "unsupported_audio", "local transcription reads 16-bit PCM WAV; other audio needs a provider"
            )
        channels, rate = w.getnchannels(), w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if rate != RATE and len(samples) > 1:
        count = int(len(samples) * RATE / rate)
        samples = np.interp(np.linspace(0, len(samples) - 1, count), np.arange(len(samples)), samples)
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def _recognise(pcm: bytes) -> str:
    global _decoder
    try:
        from pocketsphinx import Decoder  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise MediaError("not_configured", "local transcription needs the pocketsphinx package") from None
    with _lock:  # one decoder per process (loading takes about a second; a decoder is not re-entrant)
        if _decoder is None:
            _decoder = Decoder(samprate=RATE, logfn="/dev/null")
        _decoder.start_utt()
        _decoder.process_raw(pcm, full_utt=True)
        _decoder.end_utt()
        hypothesis = _decoder.hyp()
    return str(hypothesis.hypstr) if hypothesis is not None else ""


async def transcribe(audio: CheckedAudio, language: str | None, max_seconds: float, seconds_limit: float) -> str:
    """The text of a WAV, off the event loop, bounded by `seconds_limit` of work."""
    if audio.mime_type != "audio/wav":
        raise MediaError("not_configured", "local transcription reads WAV only; other formats need a provider")
    if language and not language.lower().startswith("en"):
        raise MediaError("not_configured", f"the local speech model is English only; {language!r} needs a provider")
    if audio.seconds is not None and audio.seconds > max_seconds:
        raise MediaError("too_long", f"local transcription takes at most {max_seconds:.0f} s of audio")
    pcm = pcm16k(audio.data)
    try:
        with anyio.fail_after(seconds_limit):
            return await anyio.to_thread.run_sync(_recognise, pcm, abandon_on_cancel=True)
    except TimeoutError:
        raise MediaError("transcription_failed", f"local transcription took longer than {seconds_limit:g} s") from None
