"""Docs as tests (datasette style): every setting a deployment can change is documented under docs/."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Named by the operator, not by us: plan names and deployment entries are data, not settings keys.
DATA_SECTIONS = ("billing.plans.", "model.deployments")


def _keys(prefix: str, section: dict[str, object]) -> Iterator[str]:
    for key, value in section.items():
        if key == "dynaconf_merge" or (prefix + key).startswith(DATA_SECTIONS):
            continue
        if isinstance(value, dict):
            yield from _keys(f"{prefix}{key}.", value)
        else:
            yield prefix + key


SETTINGS = sorted(_keys("", tomllib.loads((ROOT / "config" / "settings.toml").read_text())["default"]))
DOCS = "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


@pytest.mark.parametrize("key", SETTINGS)
def test_every_default_setting_is_documented(key: str) -> None:
    """The key's name (or its dotted path) appears in docs/; docs/configuration.md lists the ones no page explains."""
    leaf = key.rsplit(".", 1)[-1]
    assert re.search(rf"\b{re.escape(leaf)}\b", DOCS), f"{key} is in config/settings.toml but in no doc"
