"""How a catalog item becomes searchable text and a call name (shared by sync, import and the training script)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from isa.catalog.models import OWN_SERVER, CatalogItem

MAX_NAME = 64
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[\s_\-./:{}?=&#,;()\[\]]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_PARAMS = 24
_MAX_PARAM_TEXT = 200


# Where a request's clauses meet: a sentence end, or a conjunction that starts another request ("..., and then",
# "also", "plus"). Parts of fewer than two words ("salt and pepper") are not clauses.
# Whitespace is collapsed to single spaces first, so the pattern has one way to match (no backtracking over runs).
_CLAUSE = re.compile(r"(?<=[.?!;]) |,? (?:and|then|also|plus)(?: (?:then|also))? ", re.I)
_LEAD = re.compile(r"(?:and|then|also|plus) ", re.I)
MAX_CLAUSES = 4


def clause_spans(request: str) -> list[tuple[int, int]]:
    """Where the request's clauses (at most MAX_CLAUSES) are in `" ".join(request.split())`, as (start, end)
    character offsets; none when it is one clause."""
    text = " ".join(request.split())
    spans: list[tuple[int, int]] = []
    start = 0
    for end, after in [*((m.start(), m.end()) for m in _CLAUSE.finditer(text)), (len(text), len(text))]:
        a, b = start, end
        while a < b and text[a] in " ,.;":
            a += 1
        while b > a and text[b - 1] in " ,.;":
            b -= 1
        if lead := _LEAD.match(text, a, b):
            a = lead.end()
        if len(text[a:b].split()) >= 2:
            spans.append((a, b))
        start = after
    return spans[:MAX_CLAUSES] if len(spans) > 1 else []


def clauses(request: str) -> list[str]:
    """The request's clauses (at most MAX_CLAUSES), or none when it is one clause."""
    text = " ".join(request.split())
    return [text[a:b] for a, b in clause_spans(text)]


def words(name: str) -> str:
    """`getWeatherForecast`, `get_weather.v2` or `memory://factual/{user_id}` as plain words."""
    return " ".join(p for p in _SEPARATORS.split(_CAMEL.sub(" ", name)) if p)


def _schema_terms(schema: dict[str, Any] | None) -> list[str]:
    """Parameter names and descriptions of a tool's JSON schema, or a prompt's arguments."""
    if not isinstance(schema, dict):
        return []
    terms: list[str] = []
    props = schema.get("properties")
    if isinstance(props, dict):
        for pname, spec in list(props.items())[:_MAX_PARAMS]:
            desc = spec.get("description", "") if isinstance(spec, dict) else ""
            terms.append(f"{words(str(pname))} {str(desc)[:_MAX_PARAM_TEXT]}".strip())
    args = schema.get("arguments")
    if isinstance(args, list):
        for arg in args[:_MAX_PARAMS]:
            if isinstance(arg, dict):
                desc = str(arg.get("description", ""))[:_MAX_PARAM_TEXT]
                terms.append(f"{words(str(arg.get('name', '')))} {desc}".strip())
    return terms


def name_text(item: CatalogItem) -> str:
    """Weight-A text: the item's name, and its server's name unless it is ours (every own item would share it)."""
    own = words(item.name)
    return own if item.server == OWN_SERVER else f"{words(item.server)} {own}"


def extra_text(item: CatalogItem) -> str:
    """Weight-C text: category, keywords and the parameters."""
    parts = [item.category, " ".join(item.keywords), *_schema_terms(item.input_schema)]
    return " ".join(p for p in parts if p).strip()


def embed_text(item: CatalogItem) -> str:
    """The one text the item is embedded from (measured best on the dev splits; see docs/discovery.md)."""
    return joined_text(name_text(item), item.description, extra_text(item))


def joined_text(name: str, description: str, extra: str) -> str:
    """`embed_text` from the stored name text, description and extra text (re-embedding without the item)."""
    body = " ".join(p for p in (description.strip(), extra) if p)
    return f"{name}: {body}" if body else name


def item_hash(item: CatalogItem) -> str:
    """Hash of every field: a row is rewritten only when this changes."""
    blob = json.dumps(asdict(item), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def embedding_hash(text: str, model: str) -> str:
    """Hash of what an embedding was computed from: a row is re-embedded only when this changes."""
    return hashlib.sha256(f"{model}\0{text}".encode()).hexdigest()


def slug(text: str) -> str:
    """A name part made of [A-Za-z0-9_-] only."""
    out = _UNSAFE.sub("_", text.strip()).strip("_")
    return re.sub(r"_{2,}", "_", out) or "x"


def qualified_name(server: str, name: str, taken: Iterable[str] = ()) -> str:
    """`<server>__<name>`, made safe, unique among `taken` and at most 64 characters.

    Names that are too long or already taken keep a readable prefix and end in a hash of (server, name), so the
    same tool gets the same name on every import.
    """
    used = set(taken)
    base = f"{slug(server)}__{slug(name)}"
    if len(base) <= MAX_NAME and base not in used:
        return base
    digest = hashlib.sha1(f"{server}\0{name}".encode(), usedforsecurity=False).hexdigest()
    for extra in range(100):
        tail = digest[:8] if extra == 0 else f"{digest[:8]}{extra}"
        candidate = base[: MAX_NAME - len(tail) - 1].rstrip("_-") + "_" + tail
        if candidate not in used:
            return candidate
    raise ValueError(f"cannot find a free name for {server}/{name}")
