"""Local OCR: character error rate and time per image of tesseract (Debian's tesseract-ocr) against RapidOCR (the
PP-OCR ONNX models inside the rapidocr-onnxruntime wheel), same images, same run.

    .venv/bin/python tests/bench/bench_ocr.py [--images 24]

Images are rendered here with Pillow: invoice/receipt-like lines in several fonts, sizes, contrasts and a slight
blur, one to three lines each, so the reference text is known exactly. CER = Levenshtein distance / reference
length, over all images (whitespace runs collapsed, case kept).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from isa.media import ocr  # noqa: E402

FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
]
WORDS = [
    *("INVOICE", "Total", "Amount", "Due", "Date", "Customer", "Order", "Shipping", "Tax", "Receipt"),
    *("Paid", "Balance", "Item", "Qty", "Price"),
]


def sample(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(1, 3)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 3))]
        words.append(rng.choice([str(rng.randint(1, 99999)), f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}"]))
        lines.append(" ".join(words))
    return "\n".join(lines)


def render(text: str, rng: random.Random) -> bytes:
    font = ImageFont.truetype(rng.choice(FONTS), rng.choice([18, 24, 32, 44]))
    ink = rng.choice([(0, 0, 0), (40, 40, 90), (90, 90, 90)])
    paper = rng.choice([(255, 255, 255), (250, 245, 230), (230, 235, 240)])
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    _left, _top, right, bottom = probe.multiline_textbbox((0, 0), text, font=font, spacing=12)
    image = Image.new("RGB", (right + 60, bottom + 60), paper)
    ImageDraw.Draw(image).multiline_text((30, 30), text, font=font, fill=ink, spacing=12)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(0.8))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def norm(text: str) -> str:
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args()
    rng = random.Random(18)
    cases = [(t, render(t, rng)) for t in (sample(rng) for _ in range(args.images))]
    ref_chars = sum(len(norm(t)) for t, _ in cases)
    # Warm both engines once (RapidOCR loads its models on first use), then time the same images.
    await ocr.recognise(cases[0][1], "rapidocr", language="en", tesseract_path="tesseract", seconds=120)
    print(f"{len(cases)} images, {ref_chars} reference characters")
    for engine in ("tesseract", "rapidocr"):
        errors, started = 0, time.perf_counter()
        for text, png in cases:
            lines = await ocr.recognise(png, engine, language="en", tesseract_path="tesseract", seconds=120)
            errors += distance(norm("\n".join(line.text for line in lines)), norm(text))
        elapsed = time.perf_counter() - started
        print(
            f"{engine:10s} CER {errors / ref_chars:.4f}  ({errors} edits)  {elapsed / len(cases) * 1000:.0f} ms/image"
        )


if __name__ == "__main__":
    asyncio.run(main())
