"""Provider quirks handled once: tool JSON schemas some providers reject, and tool-name limits.

Gemini rejects `$ref`/`$defs`, `additionalProperties` and `$schema` in function parameters, so
references are inlined and those keys dropped when a Gemini deployment may serve the request.
Every provider limits tool names (OpenAI and Anthropic: ^[a-zA-Z0-9_-]{1,64}$; Gemini must start
with a letter or underscore): a name outside the common subset is replaced by a safe one, and the
model's tool calls are mapped back to the caller's names.
"""

from __future__ import annotations

import copy
import hashlib
import re
from typing import Any

# Providers whose function-calling schema is an OpenAPI subset without references.
SCHEMA_STRICT_PROVIDERS = frozenset({"gemini", "vertex_ai", "vertex_ai_beta"})
_DROP_FOR_STRICT = ("$schema", "$id", "$defs", "definitions", "additionalProperties", "$comment")
_SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MAX_REF_DEPTH = 8


def inline_refs(schema: Any) -> Any:
    """A copy of `schema` with local `$ref`s (#/$defs/X, #/definitions/X) replaced by their targets."""
    if not isinstance(schema, dict):
        return schema
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update({f"#/{key}/{name}": value for name, value in schema[key].items()})

    def walk(node: Any, depth: int) -> Any:
        if isinstance(node, list):
            return [walk(item, depth) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = defs.get(ref)
            if target is None or depth >= _MAX_REF_DEPTH:
                # Unknown or too deeply recursive: an open object is the closest safe stand-in.
                return {"type": "object", **({"description": node["description"]} if "description" in node else {})}
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return walk(merged, depth + 1)
        return {k: walk(v, depth) for k, v in node.items() if k not in ("$defs", "definitions")}

    return walk(schema, 0)


def strip_strict(schema: Any) -> Any:
    """Drop the keys schema-strict providers reject; `const` becomes a one-value enum."""
    if isinstance(schema, list):
        return [strip_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP_FOR_STRICT:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        # Property names are data, not schema keywords: keep them, clean their schemas.
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: strip_strict(sub) for name, sub in value.items()}
        else:
            out[key] = strip_strict(value)
    return out


def safe_tool_name(name: str) -> str:
    """`name` when every provider accepts it, else a stable safe name with a short hash suffix."""
    if _SAFE_NAME.match(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    base = _UNSAFE_CHARS.sub("_", name)
    if not base or not (base[0].isalpha() or base[0] == "_"):
        base = "t_" + base
    return f"{base[:55]}_{digest}"


class ToolNames:
    """The caller's tool names <-> the names sent to the provider, for one request."""

    def __init__(self) -> None:
        self.to_provider: dict[str, str] = {}
        self.to_caller: dict[str, str] = {}

    def outgoing(self, name: str) -> str:
        safe = self.to_provider.get(name)
        if safe is None:
            safe = safe_tool_name(name)
            self.to_provider[name] = safe
            if safe != name:
                self.to_caller[safe] = name
        return safe

    def incoming(self, name: str) -> str:
        return self.to_caller.get(name, name)

    @property
    def renamed(self) -> bool:
        return bool(self.to_caller)


def prepare_tools(payload: dict[str, Any], strict_schema: bool) -> ToolNames:
    """Rewrite tools, tool_choice and earlier tool calls in `payload` in place for the providers."""
    names = ToolNames()
    tools = payload.get("tools")
    if isinstance(tools, list):
        prepared = []
        for tool in tools:
            tool = copy.deepcopy(tool)
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict):
                if isinstance(function.get("name"), str):
                    function["name"] = names.outgoing(function["name"])
                params = function.get("parameters")
                if isinstance(params, dict):
                    params = inline_refs(params)
                    function["parameters"] = strip_strict(params) if strict_schema else params
            prepared.append(tool)
        payload["tools"] = prepared
    choice = payload.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        function = dict(choice["function"])
        if isinstance(function.get("name"), str):
            function["name"] = names.outgoing(function["name"])
        payload["tool_choice"] = {**choice, "function": function}
    messages = payload.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            calls = message.get("tool_calls") if isinstance(message, dict) else None
            if not isinstance(calls, list):
                continue
            renamed = []
            for c in calls:
                function = c.get("function") if isinstance(c, dict) else None
                if isinstance(function, dict) and isinstance(function.get("name"), str):
                    c = {**c, "function": {**function, "name": names.outgoing(function["name"])}}
                renamed.append(c)
            messages[i] = {**message, "tool_calls": renamed}
    return names


def restore_tool_names(message: dict[str, Any], names: ToolNames) -> None:
    """Map provider-side tool names in a message or stream delta back to the caller's, in place."""
    if not names.renamed:
        return
    for c in message.get("tool_calls") or ():
        function = c.get("function") if isinstance(c, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            function["name"] = names.incoming(function["name"])
