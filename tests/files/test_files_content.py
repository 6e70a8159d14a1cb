"""Type detection from magic bytes, display names, and keys built from neither the name nor the declared type."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from isa.core.errors import ApiError
from isa.files.content import (
    TextCheck,
    classify,
    display_name,
    object_key,
    user_segment,
)
from isa.files.settings import DEFAULT_TYPES
from tests.support.files import JPEG, PDF, office, png

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def kind(data: bytes, declared: str | None = None, name: str = "f", eof: bool = True) -> str:
    return classify(data, eof, declared, name, DEFAULT_TYPES)


@pytest.mark.parametrize(
    ("data", "declared", "expected"),
    [
        (png(), "image/png", "image/png"),
        (png(), None, "image/png"),
        (png(), "application/octet-stream", "image/png"),
        (JPEG, "image/jpg", "image/jpeg"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp", "image/webp"),
        (PDF, "application/pdf", "application/pdf"),
        (office("word"), DOCX, DOCX),
        (office("xl"), None, XLSX),
        (b"a,b\n1,2\n", "text/csv", "text/csv"),
        ("# Título\n".encode(), "text/markdown; charset=utf-8", "text/markdown"),
        (b'{"a": [1, 2]}', "application/json", "application/json"),
        (b"plain words", None, "text/plain"),
    ],
)
def test_allowed_content_is_recognised_by_its_bytes(data: bytes, declared: str | None, expected: str) -> None:
    assert kind(data, declared) == expected


def test_a_generic_declared_type_lets_the_file_name_pick_among_text_types_only() -> None:
    assert kind(b"a,b\n", "application/octet-stream", "data.csv") == "text/csv"
    assert kind(b"a,b\n", None, "evil.png") == "text/plain"  # the name can't make text an image


@pytest.mark.parametrize(
    ("data", "declared"),
    [
        (b"<html><script>alert(1)</script></html>", "image/png"),  # declared png, actually html
        (b"<!DOCTYPE html><p>x", "text/plain"),  # html declared as text
        (b"  <svg onload=alert(1)>", None),
        (png(100) + b"<script>alert(1)</script>", "image/png"),  # polyglot
        (PDF + b"<html><body>x</body></html>", "application/pdf"),
        (png(), "image/jpeg"),  # wrong declared type
        (b"plain", "image/png"),
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", None),  # an executable
        (b"\x00\x01\x02binary", "text/plain"),
        (b"PK\x03\x04" + b"\x00" * 40, None),  # a zip that is no office file
        (b"not json", "application/json"),
        (b"\xff\xfe\xfd invalid utf-8", "text/plain"),
        (b"plain", "text/html"),
    ],
)
def test_content_that_is_not_what_it_claims_or_not_allowed_is_refused(data: bytes, declared: str | None) -> None:
    with pytest.raises(ApiError) as err:
        kind(data, declared)
    assert err.value.status == 415


def test_types_left_out_of_the_allow_list_are_refused() -> None:
    with pytest.raises(ApiError):
        classify(PDF, True, "application/pdf", "f.pdf", ("image/png",))


def test_the_rest_of_a_text_upload_keeps_being_checked() -> None:
    check = TextCheck()
    euro = "ab€ more".encode()
    check.feed(euro[:3])  # a character split across chunks is fine
    check.feed(euro[3:], final=True)
    for bad in (b"\x00", b"\xc3\x28"):
        with pytest.raises(ApiError):
            TextCheck().feed(bad, final=True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("a/../../b", "b"),
        ("C:\\Users\\x\\report.pdf", "report.pdf"),
        ("x\x00.png", "x.png"),
        (".htaccess", "htaccess"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),
        ("line\r\nbreak.txt", "linebreak.txt"),
        ("", "file"),
        ("...", "file"),
        (None, "file"),
    ],
)
def test_display_names_keep_only_a_harmless_last_segment(raw: str | None, expected: str) -> None:
    assert display_name(raw) == expected


def test_a_huge_name_is_cut_to_255_keeping_its_extension() -> None:
    name = display_name("a" * 10_000 + ".pdf")
    assert len(name) == 255 and name.endswith(".pdf")


def test_keys_follow_the_layout_with_the_extension_of_the_detected_type() -> None:
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    key = object_key("auth0|abc", "image/jpeg", at)
    assert re.fullmatch(r"users/auth0_abc-[0-9a-f]{12}/files/2026/03/20260304_050607_[0-9a-f]{8}\.jpg", key), key
    assert object_key("alice", "text/markdown", at).startswith("users/alice/files/2026/03/20260304_050607_")
    assert object_key("alice", "text/markdown").endswith(".md")


def test_user_segments_are_safe_and_distinct_for_distinct_users() -> None:
    ids = ["alice", "auth0|abc", "auth0_abc", "../..", "a/b", "x" * 300, "ü", ""]
    segments = [user_segment(i) for i in ids]
    assert len(set(segments)) == len(ids)
    for seg in segments:
        assert re.fullmatch(r"[A-Za-z0-9_-]{0,64}(-[0-9a-f]{12})?", seg), seg
