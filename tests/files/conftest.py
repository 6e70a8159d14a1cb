"""Fixtures of the files tests: moto's S3 server on loopback (session), a fresh versioned bucket per test."""

from __future__ import annotations

import pytest

from tests.support.files import make_bucket, moto_endpoint

__all__ = ["moto_endpoint"]


@pytest.fixture()
def bucket(moto_endpoint: str) -> str:
    return make_bucket(moto_endpoint)
