"""A test-only domain for the agent's tests: a tool that hangs, and one that reports progress."""

from __future__ import annotations

from isa.core.builder import AppBuilder


def register(builder: AppBuilder) -> None:
    """Nothing over HTTP: the registry finds tools.py by convention."""
