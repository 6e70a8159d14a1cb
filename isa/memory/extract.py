"""Rule-based extraction of structured memories from dialog text (the reduced form used without a language model).

What it recognises (documented in docs/memory.md):
- facts: "my X is Y" / "my X's name is Y" -> (user, X, Y); "I live in Y" -> lives_in; "I work at/for Y" -> works_at;
  "I like/love/prefer Y" -> likes; "I am/I'm a Y" -> is; a leading "remember (that)" is dropped first. A sentence
  is split into clauses where "and/but/while/plus" is followed by "I"/"my" again, or at ";": one fact per clause.
  Anything else becomes one `note` fact holding the sentence.
- concepts: "X is a/an/the Y" -> concept X defined as the sentence; else the first words name the concept.
- procedures: numbered or bulleted lines, or "first/then/next/finally" clauses, become ordered steps.
- episodes: the first sentence is the title; "with A and B" names participants.
The LLM extractor (`llm_extract.py`, through the model node) returns the same structures and falls back to these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_REMEMBER = re.compile(r"^\s*(?:please\s+)?(?:remember|note|keep in mind)(?:\s+that)?[,:]?\s+", re.I)
_MY_IS = re.compile(r"\bmy\s+([a-z][\w' -]{0,40}?)\s+(?:is|are|was)\s+(?:called\s+|named\s+)?(.+)", re.I)
_RULES: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"\bi\s+(?:live|am living|reside)\s+in\s+(.+)", re.I), "lives_in", "location"),
    (re.compile(r"\bi\s+(?:work|am working)\s+(?:at|for)\s+(.+)", re.I), "works_at", "work"),
    (re.compile(r"\bi\s+(?:really\s+)?(?:like|love|enjoy|prefer)\s+(.+)", re.I), "likes", "preference"),
    (re.compile(r"\bi\s+(?:dislike|hate|don't like|do not like)\s+(.+)", re.I), "dislikes", "preference"),
    (re.compile(r"\b(?:i am|i'm)\s+(?:a|an)\s+(.+)", re.I), "is", "personal_info"),
    (re.compile(r"\bi\s+(?:was born|am from|come from)\s+(?:in\s+)?(.+)", re.I), "from", "personal_info"),
)
# "I live in Lisbon and I work at Acme": a new clause starts where a conjunction is followed by the speaker again
# ("I", "I'm", "my"), so each clause yields its own fact instead of one fact swallowing the rest of the sentence.
_CLAUSE = re.compile(r"\s*[,;]?\s+(?:and|but|while|plus)\s+(?=(?:i|i'm|my)\b)|\s*;\s*", re.I)
_CONCEPT = re.compile(r"^\s*([A-Za-z][\w +#.-]{0,60}?)\s+(?:is|are|means|refers to)\s+(?:a|an|the)?\s*(.+)", re.I)
_STEP_LINE = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.+)$")
_STEP_WORDS = re.compile(r"\b(?:first|then|next|after that|finally|lastly)\b[,:]?\s*", re.I)
_WITH = re.compile(r"\bwith\s+([A-Z][\w-]+(?:\s*(?:,|and)\s*[A-Z][\w-]+)*)")


@dataclass(frozen=True)
class Fact:
    subject: str
    predicate: str
    object_value: str
    fact_type: str
    content: str


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def _clean_object(value: str) -> str:
    return value.strip().rstrip(".!?;,").strip().strip("\"'")


def predicate_key(words: str) -> str:
    """'sister's name' -> 'sister_name': the stable key facts are deduplicated on."""
    words = re.sub(r"'s\b", "", words.lower())
    words = re.sub(r"\bname\b", "name", words)
    return re.sub(r"[^a-z0-9]+", "_", words).strip("_") or "note"


@dataclass(frozen=True)
class Episode:
    title: str
    participants: list[str]


@dataclass(frozen=True)
class Concept:
    name: str
    definition: str


@dataclass(frozen=True)
class Procedure:
    name: str
    steps: list[str]


def extract_facts(text: str, keep_notes: bool = True) -> list[Fact]:
    """Subject/predicate/object facts stated by the user in `text` (with keep_notes, at least one: a note)."""
    facts: list[Fact] = []
    clauses = [c.strip() for sentence in sentences(text) for c in _CLAUSE.split(sentence) if c and c.strip()]
    for sentence in clauses:
        body = _REMEMBER.sub("", sentence)
        found: Fact | None = None
        if m := _MY_IS.search(body):
            obj = _clean_object(m.group(2))
            if obj:
                found = Fact("user", predicate_key(m.group(1)), obj, "personal_info", _sentence_case(body))
        if found is None:
            for pattern, predicate, fact_type in _RULES:
                if m := pattern.search(body):
                    obj = _clean_object(m.group(1))
                    if obj:
                        found = Fact("user", predicate, obj, fact_type, _sentence_case(body))
                        break
        if found is not None:
            facts.append(found)
    if not facts and keep_notes and text.strip():
        body = _REMEMBER.sub("", text.strip())
        facts.append(Fact("user", "note", _clean_object(body) or body, "note", _sentence_case(body)))
    return facts


def _sentence_case(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


def extract_concept(text: str) -> tuple[str, str]:
    """(concept name, definition) of a concept described in `text`."""
    first = sentences(text)[0] if text.strip() else text
    if m := _CONCEPT.match(_REMEMBER.sub("", first)):
        return m.group(1).strip(), first
    words = first.split()
    return " ".join(words[:4]).rstrip(".,;:") or "concept", first


def extract_steps(text: str) -> list[str]:
    """Ordered steps of a procedure described in `text`."""
    lines = [m.group(1).strip() for line in text.splitlines() if (m := _STEP_LINE.match(line))]
    if len(lines) >= 2:
        return lines
    first = re.search(r"\bfirst\b", text, re.I)
    body = text[first.start() :] if first else text  # drop an intro ("How to water plants: first ...")
    parts = [p.strip(" ,.;") for p in _STEP_WORDS.split(body) if p.strip(" ,.;")]
    if len(parts) >= 2:
        return parts
    return sentences(text) or [text.strip()]


def procedure_name(text: str) -> str:
    m = re.search(r"\bhow to\s+([^.,;:\n]{3,60})", text, re.I)
    if m:
        return "how to " + m.group(1).strip()
    first = sentences(text)[0] if text.strip() else "procedure"
    return first[:60].rstrip(".,;:")


def episode_title(text: str) -> str:
    first = sentences(text)[0] if text.strip() else "episode"
    return first if len(first) <= 80 else first[:77].rstrip() + "..."


def participants(text: str) -> list[str]:
    names: list[str] = []
    for m in _WITH.finditer(text):
        names.extend(n.strip() for n in re.split(r"\s*(?:,|and)\s*", m.group(1)) if n.strip())
    return list(dict.fromkeys(names))


def episode(text: str) -> Episode:
    return Episode(episode_title(text), participants(text))


def concept(text: str) -> Concept:
    name, definition = extract_concept(text)
    return Concept(name, definition)


def procedure(text: str) -> Procedure:
    return Procedure(procedure_name(text), extract_steps(text))
