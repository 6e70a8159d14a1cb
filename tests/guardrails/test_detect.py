"""The detectors on their own: each finding type, the hard negatives a plain regex gets wrong, and redaction."""

from __future__ import annotations

import pytest

from isa.guardrails.detect import FINDING_TYPES, Config, detect, redact

CONFIG = Config(medical_terms=("diabetes", "chemotherapy"))


def kinds(text: str, min_confidence: float = 0.5) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in detect(text, FINDING_TYPES, CONFIG, min_confidence)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111, mail jane.doe@example.org", [("credit_card", "4111 1111 1111 1111"),
                                                                  ("email", "jane.doe@example.org")]),
        ("call +44 20 7946 0958 tomorrow", [("phone", "+44 20 7946 0958")]),
        ("or (650) 253-0000 in the US", [("phone", "(650) 253-0000")]),
        ("IBAN DE89 3704 0044 0532 0130 00 AND then", [("iban", "DE89 3704 0044 0532 0130 00")]),
        ("GB82WEST12345698765432", [("iban", "GB82WEST12345698765432")]),
        ("SSN 536-90-4399 on file", [("national_id", "536-90-4399")]),
        ("aws AKIAIOSFODNN7EXAMPLE", [("secret", "AKIAIOSFODNN7EXAMPLE")]),
        ("password: hunter2hunter", [("secret", "hunter2hunter")]),
        ("token Zx9Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9L", [("secret", "Zx9Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9L")]),
        ("started chemotherapy for Diabetes", [("medical", "chemotherapy"), ("medical", "Diabetes")]),
    ],
    ids=["card+email", "phone-intl", "phone-national", "iban-spaced", "iban-compact", "ssn", "aws", "password",
         "entropy", "medical"],
)  # fmt: skip
def test_each_kind_of_sensitive_data_is_found_with_its_span(text: str, expected: list[tuple[str, str]]) -> None:
    assert kinds(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Order number 4532015112830366 ships Monday",  # passes Luhn, but it is an order number
        "Invoice #79927398713 is due",  # Luhn-valid, no card issuer prefix
        "Meeting on 2024-01-15 at 10:30, room 12/05/2023",  # dates and times are not phones
        "Tracking 1Z999AA10123456784 and ref 1234567890",
        "IBAN DE89 3704 0044 0532 0130 01 (one digit off)",
        "SSN 000-12-3456 is not a valid number",
        "the commit 9fceb02d0ae598e95dc970b74767f19372d61af8 is on main",  # hex: one character class
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ],
)
def test_hard_negatives_are_not_reported(text: str) -> None:
    assert kinds(text) == []


def test_overlapping_findings_keep_the_more_specific_one_and_redaction_replaces_spans() -> None:
    text = "pay DE89370400440532013000 or 4111-1111-1111-1111; mail a@b.io"
    found = detect(text, FINDING_TYPES, CONFIG, 0.5)
    assert [f.type for f in found] == ["iban", "credit_card", "email"]
    assert all("1111-1111" not in f.preview for f in found)  # previews are masked
    assert redact(text, found) == "pay [REDACTED:IBAN] or [REDACTED:CREDIT_CARD]; mail [REDACTED:EMAIL]"


def test_an_order_number_that_passes_luhn_is_reported_only_below_the_default_threshold() -> None:
    text = "Order number 4532015112830366"
    assert kinds(text, 0.3) == [("credit_card", "4532015112830366")]
    assert kinds("Card number 4532015112830366") == [("credit_card", "4532015112830366")]
