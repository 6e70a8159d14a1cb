"""Stripe's wire formats: webhook signatures (checked against the fake's independent signer) and form encoding."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from isa.users.billing.stripe import SignatureError, form_encode, verify_signature
from tests.support.fake_stripe import parse_stripe_form, stripe_signature

SECRET = "whsec_test_secret"
PAYLOAD = b'{"id":"evt_1","type":"invoice.payment_succeeded"}'


def test_a_signature_made_the_stripe_way_verifies() -> None:
    now = int(time.time())
    assert verify_signature(PAYLOAD, stripe_signature(PAYLOAD, SECRET, now), SECRET, 300) == now


def test_any_of_several_v1_signatures_may_match_and_v0_is_ignored() -> None:
    now = int(time.time())
    good = stripe_signature(PAYLOAD, SECRET, now).split(",")[1]
    header = f"t={now},v1={'0' * 64},{good},v0={'f' * 64}"
    assert verify_signature(PAYLOAD, header, SECRET, 300) == now


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "t=abc,v1=00",
        "v1=" + "0" * 64,
        f"t={int(time.time())}",
        f"t={int(time.time())},v0=" + "0" * 64,
    ],
    # Stable ids: pytest-xdist workers must collect the same names (the headers hold the current time).
    ids=["none", "empty", "garbage", "bad-time", "no-time", "no-signature", "v0-only"],
)
def test_a_missing_or_malformed_header_is_refused(header: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_signature(PAYLOAD, header, SECRET, 300)


def test_a_signature_by_another_secret_or_over_another_payload_is_refused() -> None:
    now = int(time.time())
    with pytest.raises(SignatureError):
        verify_signature(PAYLOAD, stripe_signature(PAYLOAD, "whsec_other", now), SECRET, 300)
    with pytest.raises(SignatureError):
        verify_signature(PAYLOAD + b" ", stripe_signature(PAYLOAD, SECRET, now), SECRET, 300)


def test_a_signature_older_than_the_tolerance_is_refused() -> None:
    now = int(time.time())
    old = now - 301
    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(PAYLOAD, stripe_signature(PAYLOAD, SECRET, old), SECRET, 300, now=now)
    assert verify_signature(PAYLOAD, stripe_signature(PAYLOAD, SECRET, now - 299), SECRET, 300, now=now)


def test_form_encoding_uses_stripes_bracket_notation_and_round_trips() -> None:
    params = {
        "mode": "subscription",
        "line_items": [{"quantity": 1, "price_data": {"unit_amount": 2000, "recurring": {"interval": "month"}}}],
        "metadata": {"user_id": "auth0|a b&c", "plan": "pro"},
        "allow_promotion_codes": True,
        "customer": None,
    }
    pairs = form_encode(params)
    assert ("line_items[0][price_data][recurring][interval]", "month") in pairs
    assert ("allow_promotion_codes", "true") in pairs and all(k != "customer" for k, _ in pairs)
    assert parse_stripe_form(urlencode(pairs)) == {
        "mode": "subscription",
        "line_items": [{"quantity": "1", "price_data": {"unit_amount": "2000", "recurring": {"interval": "month"}}}],
        "metadata": {"user_id": "auth0|a b&c", "plan": "pro"},
        "allow_promotion_codes": "true",
    }
