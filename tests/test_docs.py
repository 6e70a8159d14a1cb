"""Docs as tests (datasette style): every setting a deployment can change is documented under docs/."""

from __future__ import annotations

import argparse
import importlib
import inspect
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

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


def _model_fields() -> Iterator[str]:
    """Every field of every settings model (`isa/**/settings.py`): the keys a deployment can set, including those
    config/settings.toml leaves at the model's default."""
    for path in sorted((ROOT / "isa").rglob("settings.py")):
        module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
        for name, model in vars(module).items():
            if inspect.isclass(model) and issubclass(model, BaseModel) and model.__module__ == module.__name__:
                yield from (f"{module.__name__}.{name}.{field}" for field in model.model_fields)


MODEL_FIELDS = sorted(_model_fields())
DOCS = "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


@pytest.mark.parametrize("key", SETTINGS)
def test_every_default_setting_is_documented(key: str) -> None:
    """The key's name (or its dotted path) appears in docs/; docs/configuration.md lists the ones no page explains."""
    leaf = key.rsplit(".", 1)[-1]
    assert re.search(rf"\b{re.escape(leaf)}\b", DOCS), f"{key} is in config/settings.toml but in no doc"


@pytest.mark.parametrize("field", MODEL_FIELDS)
def test_every_settings_model_field_is_documented(field: str) -> None:
    """A field of a settings model that settings.toml doesn't list is still a key a deployment can set."""
    leaf = field.rsplit(".", 1)[-1]
    assert re.search(rf"\b{re.escape(leaf)}\b", DOCS), f"{field} is a setting but in no doc"


def _command_paths(parser: argparse.ArgumentParser, prefix: str) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, f"{prefix} {name}")
            return
    yield prefix


def _documented_commands() -> str:
    """The docs and README, with `isa users create|list` read as `isa users create` and `isa users list`."""
    text = "\n".join(p.read_text() for p in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"])
    alternatives = re.finditer(r"(isa(?: [a-z-]+)*?) ([a-z-]+(?:\|[a-z-]+)+)", text)
    return text + "\n".join(f"\n{m[1]} {word}" for m in alternatives for word in m[2].split("|"))


def test_every_cli_command_is_documented() -> None:
    """Every command `isa --help` leads to, the domains' included (they join through roles.py), is named in the docs."""
    from isa.cli import build_parser

    commands = list(_command_paths(build_parser(), "isa"))
    assert {"isa keys create", "isa catalog virtual create", "isa files sweep", "isa worker"} <= set(commands)
    docs = _documented_commands()
    assert [c for c in commands if not re.search(re.escape(c) + r"\b", docs)] == []
