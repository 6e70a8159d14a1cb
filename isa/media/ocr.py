"""Local OCR, no provider needed: tesseract (Debian's tesseract-ocr, run as a subprocess on stdin) or RapidOCR
(PP-OCR ONNX models shipped inside the rapidocr-onnxruntime wheel, run on onnxruntime). Both answer text lines
with pixel boxes. Nothing is ever downloaded: a missing engine answers `not_configured`."""

from __future__ import annotations

import csv
import importlib.util
import io
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

import anyio

from isa.media.decode import MediaError

# ISO 639-1 (what callers pass) -> tesseract's traineddata names.
TESSERACT_LANGS = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "nl": "nld"}


@dataclass(frozen=True)
class Line:
    text: str
    box: tuple[int, int, int, int]  # left, top, right, bottom in pixels
    confidence: float

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "box": list(self.box), "confidence": round(self.confidence, 3)}


def tesseract_available(path: str) -> bool:
    return shutil.which(path) is not None


def rapidocr_available() -> bool:
    return importlib.util.find_spec("rapidocr_onnxruntime") is not None


def _tesseract(image: bytes, path: str, language: str, timeout: float) -> list[Line]:
    lang = TESSERACT_LANGS.get(language.lower()[:2], "eng") if language else "eng"
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argument list; the binary's path comes from settings
            [path, "stdin", "stdout", "-l", lang, "tsv"],
            input=image,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise MediaError("not_configured", f"local OCR needs tesseract at {path!r} (Debian: tesseract-ocr)") from None
    except subprocess.TimeoutExpired:
        raise MediaError("ocr_failed", f"OCR took longer than {timeout:g} s") from None
    if done.returncode != 0:
        if lang != "eng" and b"Failed loading language" in done.stderr:
            return _tesseract(image, path, "en", timeout)
        raise MediaError("ocr_failed", "the local OCR engine could not read the image")
    # TSV rows are words; group them into lines by (block, paragraph, line).
    lines: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for row in csv.DictReader(io.StringIO(done.stdout.decode("utf-8", "replace")), delimiter="\t", quoting=3):
        if row.get("level") == "5" and (row.get("text") or "").strip():
            lines.setdefault((row["block_num"], row["par_num"], row["line_num"]), []).append(row)
    out: list[Line] = []
    for words in lines.values():
        left = min(int(w["left"]) for w in words)
        top = min(int(w["top"]) for w in words)
        right = max(int(w["left"]) + int(w["width"]) for w in words)
        bottom = max(int(w["top"]) + int(w["height"]) for w in words)
        conf = sum(max(float(w["conf"]), 0.0) for w in words) / len(words) / 100
        out.append(Line(" ".join(w["text"] for w in words), (left, top, right, bottom), conf))
    return out


_rapid_lock = threading.Lock()
_rapid_engine: Any = None


def _rapidocr(image: bytes) -> list[Line]:
    global _rapid_engine
    try:
        from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise MediaError("not_configured", "local OCR engine rapidocr needs the rapidocr-onnxruntime package") from None
    with _rapid_lock:  # one engine per process (loading the models takes a while; inference is not re-entrant)
        if _rapid_engine is None:
            _rapid_engine = RapidOCR()
        result, _ = _rapid_engine(image)
    out: list[Line] = []
    for points, text, score in result or []:
        xs, ys = [int(p[0]) for p in points], [int(p[1]) for p in points]
        out.append(Line(str(text), (min(xs), min(ys), max(xs), max(ys)), float(score)))
    # RapidOCR splits a line at wide gaps; merge boxes on the same baseline back into reading-order lines.
    return _merge_lines(out)


def _merge_lines(items: list[Line]) -> list[Line]:
    rows: list[list[Line]] = []
    for item in sorted(items, key=lambda i: (i.box[1], i.box[0])):
        middle = (item.box[1] + item.box[3]) / 2
        for row in rows:
            top, bottom = row[0].box[1], row[0].box[3]
            if top <= middle <= bottom:
                row.append(item)
                break
        else:
            rows.append([item])
    merged: list[Line] = []
    for row in rows:
        row.sort(key=lambda i: i.box[0])
        box = (
            min(i.box[0] for i in row),
            min(i.box[1] for i in row),
            max(i.box[2] for i in row),
            max(i.box[3] for i in row),
        )
        merged.append(Line(" ".join(i.text for i in row), box, sum(i.confidence for i in row) / len(row)))
    return merged


async def recognise(image: bytes, engine: str, *, language: str, tesseract_path: str, seconds: float) -> list[Line]:
    """Text lines in reading order, off the event loop (OCR is CPU work); at most `seconds` per image."""
    if engine == "rapidocr":
        try:
            with anyio.fail_after(seconds):
                return await anyio.to_thread.run_sync(_rapidocr, image, abandon_on_cancel=True)
        except TimeoutError:
            raise MediaError("ocr_failed", f"OCR took longer than {seconds:g} s") from None
    return await anyio.to_thread.run_sync(_tesseract, image, tesseract_path, language, seconds)
