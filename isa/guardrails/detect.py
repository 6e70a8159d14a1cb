"""Finding sensitive data in text with the libraries made for each kind, and redacting it.

- e-mail: an address pattern (RFC 5322's common subset);
- phone: Google's libphonenumber (`phonenumbers`, leniency VALID: the number must exist in its region's plan, so
  dates, times and order numbers are not phones);
- credit_card: 13-19 digits passing Luhn (`stdnum.luhn`) with a known issuer prefix; next to "order", "invoice",
  "ref" or "tracking" the confidence drops below the default threshold;
- iban: `stdnum.iban` (country format and mod-97 check digits);
- national_id: `python-stdnum` validators (check digits) behind a candidate pattern per identifier;
- secret: known key prefixes (AWS, GitHub, Slack, Stripe, OpenAI-style, Google, JWT, PEM private keys, isa keys),
  `password = ...` assignments, and long high-entropy tokens (stronger next to key/token/secret);
- medical: the policy's term list, whole words, case-insensitive.
"""

from __future__ import annotations

import bisect
import importlib
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import cache
from typing import Literal

import phonenumbers
from stdnum import iban, luhn

FindingType = Literal["email", "phone", "credit_card", "iban", "national_id", "secret", "medical"]
FINDING_TYPES: tuple[FindingType, ...] = ("email", "phone", "credit_card", "iban", "national_id", "secret", "medical")


@dataclass(frozen=True)
class Finding:
    type: FindingType
    start: int
    end: int
    confidence: float
    detector: str  # which check found it (e.g. "luhn+iin", "stdnum.us.ssn", "prefix:aws_access_key")
    preview: str  # masked: never the whole value

    def out(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Config:
    """What the detectors need from the policy in force."""

    phone_region: str = "US"
    national_ids: tuple[str, ...] = ("us.ssn", "es.dni", "it.codicefiscale", "in_.aadhaar", "fr.nir", "ca.sin")
    medical_terms: tuple[str, ...] = ()


def mask(value: str) -> str:
    compact = value.strip()
    if len(compact) <= 6:
        return "*" * len(compact)
    return compact[:2] + "*" * (len(compact) - 4) + compact[-2:]


EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,8}\b")
NOT_A_CARD = re.compile(
    r"(order|invoice|ref(erence)?|tracking|po|ticket|account|booking|confirmation)\W{0,3}(no|nr|number|#|id)?\W{0,3}$",
    re.I,
)
CARD_WORDS = re.compile(r"(card|visa|mastercard|amex|credit|debit|cc)\W{0,12}$", re.I)

# (name, pattern, confidence); the match is the secret, or its group `v` when the pattern has one.
SECRET_PATTERNS: tuple[tuple[str, re.Pattern[str], float], ...] = (
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"), 0.99),
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), 0.95),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"), 0.97),
    ("slack_token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,200}\b"), 0.95),
    ("stripe_key", re.compile(r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,200}\b"), 0.97),
    ("openai_style_key", re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,200}"), 0.9),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), 0.95),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), 0.9),
    ("isa_api_key", re.compile(r"\bisa_[A-Za-z0-9_-]{40,}"), 0.97),
    ("password_assignment", re.compile(r"(?i)\b(?:password|passwd|pwd)\s{0,2}[:=]\s{0,2}(?P<v>[^\s'\"]{6,128})"), 0.8),
)
TOKEN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,256}={0,2}(?![A-Za-z0-9+/_=-])")
SECRET_WORDS = re.compile(r"(key|token|secret|password|passwd|credential|bearer|auth)\W{0,4}$", re.I)

# identifier -> candidate pattern; the stdnum module's is_valid() decides.
NATIONAL_ID_PATTERNS: dict[str, re.Pattern[str]] = {
    "us.ssn": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "es.dni": re.compile(r"\b\d{8}-?[A-Z]\b"),
    "it.codicefiscale": re.compile(r"\b[A-Z]{6}\d{2}[A-Z]\d{2}[A-Z]\d{3}[A-Z]\b"),
    "in_.aadhaar": re.compile(r"\b[2-9]\d{3} \d{4} \d{4}\b"),
    "fr.nir": re.compile(r"\b[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}\b"),
    "ca.sin": re.compile(r"\b\d{3}[- ]\d{3}[- ]\d{3}\b"),
    "nl.bsn": re.compile(r"\b\d{4}\.\d{2}\.\d{3}\b"),
    "de.idnr": re.compile(r"\b\d{2} ?\d{3} ?\d{3} ?\d{3}\b"),
}
# Issuer prefixes (IIN ranges) of the major networks: Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro.
_IIN = re.compile(
    r"^(4|5[1-5]|2(2[2-9][1-9]|2[3-9]|[3-6]|7[01]|720)|3[47]|6011|65|64[4-9]|35(2[89]|[3-8])|3(0[0-5]|[68])"
    r"|62|5018|5020|5038|6304|6759|676[1-3])"
)


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def find_emails(text: str, config: Config) -> Iterable[Finding]:
    for m in EMAIL.finditer(text):
        yield Finding("email", m.start(), m.end(), 0.95, "pattern", mask(m.group()))


# Where a phone number could be: 7+ digits with the separators numbers are written with. libphonenumber's matcher
# sees only these windows (plus a little context): its whole-text scan gives up after 65535 candidates, so a long
# text would silently lose its later numbers; per window it can't, and it is no slower (docs/benchmarks.md).
PHONE_CANDIDATE = re.compile(r"[+(]?\d[\d \t().\-/]{5,}\d")


def find_phones(text: str, config: Config) -> Iterable[Finding]:
    for candidate in PHONE_CANDIDATE.finditer(text):
        if sum(c.isdigit() for c in candidate.group()) < 7:
            continue
        base = max(0, candidate.start() - 3)
        window = text[base : candidate.end() + 3]
        for m in phonenumbers.PhoneNumberMatcher(window, config.phone_region, leniency=phonenumbers.Leniency.VALID):
            international = m.raw_string.lstrip().startswith(("+", "00"))
            confidence = 0.9 if international else 0.8
            yield Finding("phone", base + m.start, base + m.end, confidence, "phonenumbers", mask(m.raw_string))


def find_cards(text: str, config: Config) -> Iterable[Finding]:
    for m in CARD.finditer(text):
        digits = _digits(m.group())
        if not 13 <= len(digits) <= 19 or len(set(digits)) == 1 or not luhn.is_valid(digits):
            continue
        if not _IIN.match(digits):
            continue
        before = text[max(0, m.start() - 30) : m.start()]
        confidence = 0.95
        if NOT_A_CARD.search(before) and not CARD_WORDS.search(before):
            confidence = 0.4  # an order/invoice number that happens to pass Luhn (1 in 10 do)
        yield Finding("credit_card", m.start(), m.end(), confidence, "luhn+iin", mask(digits))


def find_ibans(text: str, config: Config) -> Iterable[Finding]:
    for m in IBAN.finditer(text):
        candidate = m.group()
        # The pattern may swallow a following upper-case word: drop trailing groups until the checksum holds.
        while len(_compact(candidate)) >= 15:
            if iban.is_valid(candidate):
                end = m.start() + len(candidate)
                yield Finding("iban", m.start(), end, 0.97, "stdnum.iban", mask(_compact(candidate)))
                break
            if " " not in candidate:
                break
            candidate = candidate.rsplit(" ", 1)[0]


def _compact(value: str) -> str:
    return value.replace(" ", "")


@cache
def _validator(name: str) -> Callable[[str], bool]:
    module = importlib.import_module(f"stdnum.{name}")
    check: Callable[[str], bool] = module.is_valid
    return check


def find_national_ids(text: str, config: Config) -> Iterable[Finding]:
    for name in config.national_ids:
        pattern = NATIONAL_ID_PATTERNS.get(name)
        if pattern is None:
            continue
        check = _validator(name)
        for m in pattern.finditer(text):
            if check(m.group()):
                yield Finding("national_id", m.start(), m.end(), 0.85, f"stdnum.{name}", mask(m.group()))


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def find_secrets(text: str, config: Config) -> Iterable[Finding]:
    for name, pattern, confidence in SECRET_PATTERNS:
        group = "v" if "v" in pattern.groupindex else 0
        for m in pattern.finditer(text):
            start, end = m.span(group)
            yield Finding("secret", start, end, confidence, f"prefix:{name}", mask(m.group(group)))
    for m in TOKEN.finditer(text):
        token = m.group()
        classes = sum(bool(re.search(p, token)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
        if classes < 3 or entropy(token) < 4.0:
            continue
        near_word = bool(SECRET_WORDS.search(text[max(0, m.start() - 20) : m.start()]))
        yield Finding("secret", m.start(), m.end(), 0.85 if near_word else 0.6, "entropy", mask(token))


@cache
def _terms(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    words = sorted({t.strip() for t in terms if t.strip()}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.I)


def find_medical(text: str, config: Config) -> Iterable[Finding]:
    pattern = _terms(config.medical_terms)
    if pattern is None:
        return
    for m in pattern.finditer(text):
        yield Finding("medical", m.start(), m.end(), 0.7, "term_list", m.group())


DETECTORS: dict[FindingType, Callable[[str, Config], Iterable[Finding]]] = {
    "email": find_emails,
    "phone": find_phones,
    "credit_card": find_cards,
    "iban": find_ibans,
    "national_id": find_national_ids,
    "secret": find_secrets,
    "medical": find_medical,
}
# When two findings overlap, the more specific check wins before confidence does (a card number is also digits a
# phone parser might accept; a key is also a high-entropy token).
_SPECIFIC = {"iban": 6, "credit_card": 5, "national_id": 4, "email": 3, "secret": 2, "phone": 1, "medical": 0}


def detect(text: str, types: Iterable[FindingType], config: Config, min_confidence: float) -> list[Finding]:
    """Non-overlapping findings of the wanted types at or above `min_confidence`, in text order."""
    found = [f for t in dict.fromkeys(types) for f in DETECTORS[t](text, config) if f.confidence >= min_confidence]
    found.sort(key=lambda f: (-_SPECIFIC[f.type], -f.confidence, -(f.end - f.start), f.start))
    # Kept findings never overlap, so sorted by start their ends are sorted too: a new finding only has to be
    # compared with its two neighbours (bisect), not with everything kept (1 MB can hold 10^4+ findings).
    kept: list[Finding] = []
    starts: list[int] = []
    for f in found:
        i = bisect.bisect_left(starts, f.start)
        if i > 0 and kept[i - 1].end > f.start:
            continue
        if i < len(kept) and kept[i].start < f.end:
            continue
        kept.insert(i, f)
        starts.insert(i, f.start)
    return kept


def redact(text: str, findings: Iterable[Finding]) -> str:
    """The text with every finding replaced by [REDACTED:<TYPE>]."""
    out: list[str] = []
    at = 0
    for f in sorted(findings, key=lambda f: f.start):
        out.append(text[at : f.start])
        out.append(f"[REDACTED:{f.type.upper()}]")
        at = f.end
    out.append(text[at:])
    return "".join(out)
