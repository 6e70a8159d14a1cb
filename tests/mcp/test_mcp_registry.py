"""The capability registry: declarations next to the code, found by convention, broken ones fail at start-up."""

from __future__ import annotations

import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from isa.app import create_app
from isa.core.settings import Settings
from isa.mcp.discovery import catalog_items
from isa.mcp.registry import Capabilities, Registry, RegistryError, SecurityLevel
from tests.support.mcp_servers import SAMPLE_DOMAIN, with_domains


def test_a_tool_gets_its_input_schema_from_the_typed_signature() -> None:
    caps = Capabilities("t")

    @caps.tool(category="x", keywords=["Alpha", "alpha", " beta "])
    async def add(a: int, b: int = 2, note: str | None = None) -> int:
        """Add two numbers.

        Second paragraph is not part of the description."""
        return a + b

    decl = caps.tools[0]
    assert decl.name == "add" and decl.description == "Add two numbers."
    assert decl.keywords == ("alpha", "beta")
    schema = decl.input_schema
    assert schema["required"] == ["a"]
    assert schema["properties"]["a"]["type"] == "integer"
    assert schema["properties"]["b"]["default"] == 2
    assert decl.security is SecurityLevel.LOW and not decl.security.needs_approval


@pytest.mark.parametrize("name", ["x" * 65, "has space", "slash/name", "ünicode", ""])
def test_a_tool_name_outside_64_chars_of_the_allowed_set_is_refused(name: str) -> None:
    with pytest.raises(RegistryError, match="1-64 characters"):
        Capabilities("t").tool(name, category="x")(_documented)


def test_a_64_character_name_with_dots_and_dashes_is_accepted() -> None:
    caps = Capabilities("t")
    name = "a.b-c_" + "d" * 58
    caps.tool(name, category="x")(_documented)
    assert caps.tools[0].name == name and len(name) == 64


async def _documented() -> None:
    """Documented."""


def test_a_tool_without_a_description_is_refused() -> None:
    caps = Capabilities("t")

    async def undocumented(x: int) -> int:
        return x

    with pytest.raises(RegistryError, match="no description"):
        caps.tool(category="x")(undocumented)


def test_signatures_without_a_json_schema_are_refused() -> None:
    caps = Capabilities("t")

    async def takes_socket(sock: socket.socket) -> None:
        """Doc."""

    async def untyped(x) -> None:  # type: ignore[no-untyped-def]
        """Doc."""

    async def star_args(*args: Any, **kwargs: Any) -> None:
        """Doc."""

    with pytest.raises(RegistryError, match="without a JSON schema"):
        caps.tool(category="x")(takes_socket)
    with pytest.raises(RegistryError, match="no type annotation"):
        caps.tool(category="x")(untyped)
    with pytest.raises(RegistryError, match="declare each argument"):
        caps.tool(category="x")(star_args)


def test_bad_levels_costs_scopes_and_categories_are_refused() -> None:
    caps = Capabilities("t")
    with pytest.raises(RegistryError):
        caps.tool(category="x", security="EXTREME")(_documented)
    with pytest.raises(RegistryError):
        caps.tool(category="x", cost_credits="-1")(_documented)
    with pytest.raises(RegistryError):
        caps.tool(category="x", rate_limit_per_minute=0)(_documented)
    with pytest.raises(RegistryError):
        caps.tool(category="x", scope="root")(_documented)
    with pytest.raises(RegistryError):
        caps.tool(category=" ")(_documented)


def test_the_same_name_declared_by_two_domains_is_refused() -> None:
    one, two = Capabilities("one"), Capabilities("two")
    one.tool("same", category="x")(_documented)
    two.tool("same", category="x")(_documented)
    registry = Registry()
    registry.add(one)
    with pytest.raises(RegistryError, match="declared twice"):
        registry.add(two)


def _package(tmp_path: Path, name: str, tools_source: str | None) -> str:
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def register(builder):\n    pass\n")
    if tools_source is not None:
        (pkg / "tools.py").write_text(textwrap.dedent(tools_source))
    return name


def test_discovery_finds_each_domains_tools_module_and_skips_domains_without_one(tmp_path: Path) -> None:
    sys.path.insert(0, str(tmp_path))
    try:
        quiet = _package(tmp_path, "reg_quiet_domain", None)
        loud = _package(
            tmp_path,
            "reg_loud_domain",
            """
            from isa.mcp.registry import Capabilities
            capabilities = Capabilities("reg_loud_domain")

            @capabilities.tool(category="demo")
            async def shout(text: str) -> str:
                '''Upper-case the text.'''
                return text.upper()
            """,
        )
        registry = Registry.discover([quiet, loud, SAMPLE_DOMAIN])
        assert "shout" in registry.tools and "priced_echo" in registry.tools
    finally:
        sys.path.remove(str(tmp_path))


def test_a_broken_declaration_stops_the_node_from_starting(tmp_path: Path, settings: Settings) -> None:
    sys.path.insert(0, str(tmp_path))
    try:
        broken = _package(
            tmp_path,
            "reg_broken_domain",
            """
            from isa.mcp.registry import Capabilities
            capabilities = Capabilities("reg_broken_domain")

            def wrapper(*args, **kwargs):
                '''The original's wrapped_func bug: a wrapper without functools.wraps.'''

            capabilities.tool("execute_command", category="terminal")(wrapper)
            """,
        )
        with with_domains(broken), pytest.raises(RegistryError, match=r"execute_command|wrapper"):
            create_app(settings, "mcp", database_url="postgresql://unused/unused")
        missing = _package(tmp_path, "reg_nameless_domain", "x = 1\n")
        with pytest.raises(RegistryError, match="must define `capabilities"):
            Registry.discover([missing])
    finally:
        sys.path.remove(str(tmp_path))


def test_every_own_capability_converts_to_a_catalog_item_with_a_valid_call_name() -> None:
    registry = Registry.discover(["isa.mcp", "isa.memory", SAMPLE_DOMAIN])  # delete_my_memories is memory's
    items = catalog_items(registry)
    kinds = {item.item_type for item in items}
    assert kinds == {"tool", "prompt", "resource"}
    tools = {i.qualified_name: i for i in items if i.item_type == "tool"}
    assert set(tools) == set(registry.tools)
    assert tools["delete_my_memories"].security_level == "HIGH"
    assert tools["priced_echo"].metadata["cost_credits"] == "2"
    assert all(i.server == "isa" and len(i.qualified_name) <= 64 for i in items)
    resource = next(i for i in items if i.item_type == "resource" and i.name == "isa://tools/{name}")
    assert resource.qualified_name == "tool_declaration"
