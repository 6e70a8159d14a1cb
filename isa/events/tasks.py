"""What one run of each task type does: fetch, compare with the task's state, and say which event to emit."""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from isa.events.egress import fetch_text
from isa.events.settings import EventsSettings

_TAGS = re.compile(r"<(script|style)\b.*?</\1>|<[^>]+>", re.S | re.I)
_HEADLINE = re.compile(r"<(h[1-3]|title)\b[^>]*>(.*?)</\1>", re.S | re.I)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass
class RunResult:
    state: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (event_type, data)


def page_text(body: str) -> str:
    return " ".join(html.unescape(_TAGS.sub(" ", body)).split())


async def _fetch(url: str, settings: EventsSettings) -> str:
    return await fetch_text(url, settings)


async def web_monitor(config: dict[str, Any], state: dict[str, Any], settings: EventsSettings) -> RunResult:
    """An event when a page's text changed since the last run and (if keywords are set) contains one of them."""
    keywords = [str(k).lower() for k in config.get("keywords", []) if str(k).strip()]
    seen: dict[str, str] = dict(state.get("hashes", {}))
    result = RunResult(state={"hashes": seen})
    for url in config["urls"]:
        text = page_text(await _fetch(url, settings))
        digest = hashlib.sha256(text.encode()).hexdigest()
        previous = seen.get(url)
        seen[url] = digest
        if previous is None or previous == digest:
            continue  # first sight is the baseline; unchanged is nothing to tell
        found = [k for k in keywords if k in text.lower()]
        if keywords and not found:
            continue
        result.events.append(("web_content_change", {"url": url, "keywords_found": found, "excerpt": text[:1000]}))
    return result


async def news_digest(config: dict[str, Any], state: dict[str, Any], settings: EventsSettings) -> RunResult:
    """The headlines (h1-h3/title) of each source page that are new since the last digest."""
    old = set(state.get("headlines", []))
    headlines: list[dict[str, str]] = []
    current: list[str] = []
    for url in config["urls"]:
        for _, raw in _HEADLINE.findall(await _fetch(url, settings)):
            title = page_text(raw)
            if title and title not in current:
                current.append(title)
                if title not in old:
                    headlines.append({"source": url, "title": title})
    limit = int(config.get("max_headlines", 20))
    result = RunResult(state={"headlines": current[-500:]})
    if headlines:
        result.events.append(("daily_news_digest", {"headlines": headlines[:limit], "count": len(headlines)}))
    return result


def read_number(body: str, config: dict[str, Any]) -> float:
    """The watched value: a dotted `json_path` into a JSON body, else the first number matching `pattern`."""
    path = config.get("json_path")
    if path:
        value: Any = json.loads(body)
        for part in str(path).split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
        return float(value)
    pattern = re.compile(str(config.get("pattern", _NUMBER.pattern)))
    match = pattern.search(page_text(body))
    if match is None:
        raise ValueError("no number found on the page")
    return float(match.group(1) if match.groups() else match.group(0))


async def threshold_watch(config: dict[str, Any], state: dict[str, Any], settings: EventsSettings) -> RunResult:
    """An event when the value moves across a bound (once per crossing, not on every run beyond it)."""
    value = read_number(await _fetch(config["url"], settings), config)
    above, below = config.get("above"), config.get("below")
    breached = (above is not None and value > float(above)) or (below is not None and value < float(below))
    result = RunResult(state={"breached": breached, "last_value": value})
    if breached and not state.get("breached", False):
        result.events.append(
            ("threshold_crossed", {"url": config["url"], "value": value, "above": above, "below": below})
        )
    return result


async def scheduled(config: dict[str, Any], state: dict[str, Any], settings: EventsSettings) -> RunResult:
    message = str(config.get("message") or "Scheduled reminder")
    return RunResult(state=state, events=[("scheduled_trigger", {"message": message})])


RUNNERS = {
    "web_monitor": web_monitor,
    "news_digest": news_digest,
    "threshold_watch": threshold_watch,
    "schedule": scheduled,
}


def run_key(task_id: str, due: datetime, index: int) -> str:
    """Idempotency key of the n-th event of one scheduled run: a rerun after a crash can't duplicate it."""
    return f"task:{task_id}:{due.isoformat()}:{index}"
