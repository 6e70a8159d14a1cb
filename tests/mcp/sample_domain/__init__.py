"""A test-only domain: its tools.py declares priced, rate-limited, failing and untrusted tools."""

from __future__ import annotations

from isa.core.builder import AppBuilder


def register(builder: AppBuilder) -> None:
    """Nothing to add over HTTP: the registry finds this domain's tools.py by convention."""
