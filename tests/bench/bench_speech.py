"""Local speech-to-text (PocketSphinx's bundled US-English model) on speech synthesised by espeak-ng in the run:
word error rate and real-time factor, digits against free text (same engine, same run).

    .venv/bin/python tests/bench/bench_speech.py

Synthetic speech is not human speech: read the numbers as "what the offline fallback can and cannot do".
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from isa.media import speech  # noqa: E402
from isa.media.decode import check_audio  # noqa: E402

SETS = {
    "digits": [
        "one two three four five",
        "seven eight nine zero",
        "four seven one one",
        "two zero two six",
        "three one four one five nine",
        "eight six seven five three zero nine",
    ],
    "free text": [
        "open the window",
        "the invoice number is four seven one one",
        "please call me tomorrow morning",
        "the weather is nice today",
        "send the report to the team",
        "where is the nearest train station",
    ],
}


def say(text: str) -> bytes:
    command = ["espeak-ng", "-v", "en-us", "-s", "130", "--stdout", text]
    return subprocess.run(command, capture_output=True, check=True, timeout=30).stdout


def errors(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


async def main() -> None:
    await speech.transcribe(check_audio(say("warm up"), 10**8, 600), "en", 600, 120)
    for name, phrases in SETS.items():
        words = edits = 0
        audio_s = work_s = 0.0
        for phrase in phrases:
            audio = check_audio(say(phrase), 10**8, 600)
            started = time.perf_counter()
            text = await speech.transcribe(audio, "en", 600, 120)
            work_s += time.perf_counter() - started
            audio_s += audio.seconds or 0
            words += len(phrase.split())
            edits += errors(phrase.split(), text.split())
            print(f"  {phrase!r} -> {text!r}")
        print(f"{name:10s} WER {edits / words:.3f} ({edits}/{words} words)  real-time factor {work_s / audio_s:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
