"""Guardrails: precision and recall per finding type on a generated, labelled set with hard negatives, against a
plain-regex baseline in the same run; then throughput on 1 MB of text.

    .venv/bin/python tests/bench/bench_guardrails.py [--seed 7] [--per-type 200]

Positives are valid values (Luhn cards with issuer prefixes, mod-97 IBANs, stdnum-valid SSNs, libphonenumber
example numbers of 12 regions, e-mails, prefixed keys and high-entropy tokens, medical terms) in varied sentences.
Hard negatives look like them and are not: Luhn-valid order numbers, 16-digit numbers failing Luhn, dates and
times, version strings, IBANs and SSNs with bad check digits / reserved ranges, git hashes, UUIDs, ISBNs.
A prediction counts when its type matches a labelled span it overlaps.
"""

from __future__ import annotations

import argparse
import random
import re
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

import phonenumbers
from stdnum import iban as iban_mod
from stdnum import luhn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from isa.guardrails.detect import FINDING_TYPES, Config, detect
from isa.guardrails.settings import MEDICAL_TERMS

Span = tuple[str, int, int]  # type, start, end
Sample = tuple[str, list[Span]]

BASELINE: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"\S+@\S+\.\w+"),
    "phone": re.compile(r"\+?\d[\d\s().-]{7,}\d"),
    "credit_card": re.compile(r"\b(?:\d[ -]?){13,19}\b"),
    "iban": re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9 ]{11,30}\b"),
    "national_id": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "secret": re.compile(r"\b[A-Za-z0-9_\-]{32,}\b"),
    "medical": re.compile(r"\b(" + "|".join(re.escape(t) for t in MEDICAL_TERMS) + r")\b", re.I),
}


def baseline(text: str) -> list[Span]:
    return [(t, m.start(), m.end()) for t, p in BASELINE.items() for m in p.finditer(text)]


def ours(text: str) -> list[Span]:
    config = Config(medical_terms=MEDICAL_TERMS)
    return [(f.type, f.start, f.end) for f in detect(text, FINDING_TYPES, config, 0.5)]


def card(rng: random.Random) -> str:
    prefix = rng.choice(["4", "51", "55", "2221", "34", "37", "6011", "65", "3530"])
    length = 15 if prefix in ("34", "37") else 16
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    digits = body + luhn.calc_check_digit(body)
    sep = rng.choice(["", " ", "-"])
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4)) if sep else digits


def an_iban(rng: random.Random) -> str:
    country, bban_len = rng.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14), ("ES", 20)])
    if country == "GB":
        bban = "WEST" + "".join(rng.choice(string.digits) for _ in range(14))
    elif country == "NL":
        bban = "ABNA" + "".join(rng.choice(string.digits) for _ in range(10))
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(bban_len))
    check = iban_mod.calc_check_digits(country + "00" + bban)
    value = country + check + bban
    if not iban_mod.is_valid(value):
        return an_iban(rng)
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if rng.random() < 0.5 else value


def ssn(rng: random.Random) -> str:
    return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def phone(rng: random.Random) -> str:
    region = rng.choice(["US", "GB", "DE", "FR", "IN", "BR", "JP", "AU", "ES", "IT", "NL", "CA"])
    number = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert number is not None
    fmt = phonenumbers.PhoneNumberFormat.INTERNATIONAL
    if region == "US" and rng.random() < 0.5:
        fmt = phonenumbers.PhoneNumberFormat.NATIONAL
    return phonenumbers.format_number(number, fmt)


def email(rng: random.Random) -> str:
    user = rng.choice(["jane.doe", "j.smith+news", "ops", "max_mustermann", "li.wei"])
    return f"{user}{rng.randint(1, 99)}@{rng.choice(['example.org', 'mail.example.com', 'uni.example.ac.uk'])}"


def secret(rng: random.Random) -> str:
    alnum = string.ascii_letters + string.digits
    kind = rng.choice(["aws", "gh", "stripe", "sk", "token"])
    if kind == "aws":
        return "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    if kind == "gh":
        return "ghp_" + "".join(rng.choice(alnum) for _ in range(36))
    if kind == "stripe":
        return "sk_live_" + "".join(rng.choice(alnum) for _ in range(24))
    if kind == "sk":
        return "sk-" + "".join(rng.choice(alnum) for _ in range(40))
    return "".join(rng.choice(alnum) for _ in range(32))


GENERATORS: dict[str, tuple[Callable[[random.Random], str], list[str]]] = {
    "credit_card": (card, ["Pay with card {}.", "My Visa is {} thanks", "cc: {}"]),
    "iban": (an_iban, ["Transfer to {} please.", "IBAN: {}", "account {} (salary)"]),
    "national_id": (ssn, ["SSN {} on the form", "social security number: {}."]),
    "phone": (phone, ["Call me on {} tomorrow.", "tel. {}", "reach her at {} after 5"]),
    "email": (email, ["Write to {} today.", "cc {}", "<{}>"]),
    "secret": (secret, ["export API_KEY={}", "token: {}", "the key is {}"]),
    "medical": (lambda r: r.choice(MEDICAL_TERMS), ["She was treated for {} last year.", "history of {}"]),
}


def negatives(rng: random.Random) -> list[str]:
    out: list[str] = []
    for _ in range(40):
        body = "".join(rng.choice(string.digits) for _ in range(15))
        order = body + luhn.calc_check_digit(body)
        out.append(f"Order number {order} ships on Monday.")
        bad = order[:-1] + str((int(order[-1]) + 1) % 10)
        out.append(f"Reference {bad} was received.")
        y, m, d = rng.randint(1990, 2030), rng.randint(1, 12), rng.randint(1, 28)
        out.append(f"Meeting on {y}-{m:02d}-{d:02d} at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}.")
        out.append(f"Due {d:02d}/{m:02d}/{y} or {m:02d}.{d:02d}.{y}.")
        out.append(f"Upgrade to version {rng.randint(1, 20)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}.")
        good = an_iban(rng).replace(" ", "")
        wrong = good[:2] + f"{(int(good[2:4]) + 1) % 97 + 2:02d}" + good[4:]
        if not iban_mod.is_valid(wrong):
            out.append(f"IBAN {wrong} bounced.")
        out.append(f"SSN 000-{rng.randint(10, 99)}-{rng.randint(1000, 9999)} is invalid.")
        out.append(f"commit {''.join(rng.choice('0123456789abcdef') for _ in range(40))} is on main")
        out.append(f"request id {''.join(rng.choice('0123456789abcdef') for _ in range(32))}")
        out.append(
            f"ISBN 978-{rng.randint(0, 9)}-{rng.randint(100, 999)}-{rng.randint(10000, 99999)}-{rng.randint(0, 9)}"
        )
        out.append(f"Invoice total 1,{rng.randint(100, 999)}.{rng.randint(10, 99)} EUR for {rng.randint(2, 90)} items.")
    return out


def dataset(rng: random.Random, per_type: int) -> list[Sample]:
    samples: list[Sample] = []
    for kind, (make, templates) in GENERATORS.items():
        for _ in range(per_type):
            value = make(rng)
            template = rng.choice(templates)
            start = template.index("{}")
            samples.append((template.replace("{}", value), [(kind, start, start + len(value))]))
    samples += [(text, []) for text in negatives(rng)]
    rng.shuffle(samples)
    return samples


def score(samples: list[Sample], predict: Callable[[str], list[Span]]) -> dict[str, tuple[float, float, int]]:
    tp: dict[str, int] = dict.fromkeys(FINDING_TYPES, 0)
    fp = dict(tp)
    fn = dict(tp)
    for text, labels in samples:
        predicted = predict(text)
        for t, s, e in predicted:
            hit = any(t == lt and s < le and e > ls for lt, ls, le in labels)
            tp[t] += hit
            fp[t] += not hit
        for lt, ls, le in labels:
            if not any(t == lt and s < le and e > ls for t, s, e in predicted):
                fn[lt] += 1
    out: dict[str, tuple[float, float, int]] = {}
    for t in FINDING_TYPES:
        precision = tp[t] / (tp[t] + fp[t]) if tp[t] + fp[t] else 1.0
        recall = tp[t] / (tp[t] + fn[t]) if tp[t] + fn[t] else 1.0
        out[t] = (precision, recall, fp[t])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--per-type", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    samples = dataset(rng, args.per_type)
    negs = sum(1 for _, labels in samples if not labels)
    print(f"{len(samples)} samples ({len(samples) - negs} positives, {negs} hard negatives), seed {args.seed}\n")
    base, mine = score(samples, baseline), score(samples, ours)
    print(f"{'type':<12} {'ours P':>7} {'ours R':>7} {'ours FP':>8} | {'regex P':>8} {'regex R':>8} {'regex FP':>9}")
    for t in FINDING_TYPES:
        p, r, f = mine[t]
        bp, br, bf = base[t]
        print(f"{t:<12} {p:7.3f} {r:7.3f} {f:8d} | {bp:8.3f} {br:8.3f} {bf:9d}")

    text = ""
    while len(text) < 1_000_000:
        text += " ".join(s for s, _ in samples) + "\n"
    text = text[:1_000_000]
    for name, fn in (("ours", ours), ("regex baseline", baseline)):
        started = time.perf_counter()
        found = fn(text)
        seconds = time.perf_counter() - started
        print(f"\n1 MB, {name}: {seconds:.2f} s ({1 / seconds:.2f} MB/s), {len(found)} findings")


if __name__ == "__main__":
    main()
