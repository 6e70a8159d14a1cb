"""The original's JSON result envelope `{status, action, data, timestamp, billing?}`, tool errors, masking."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

from mcp_types import CallToolResult, TextContent
from pydantic_core import to_json

from isa.core.http import jsonable
from isa.core.logging import redact_text

# Statuses a client (the agent) branches on; the two markers pause the agent for a human.
AUTHORIZATION_REQUESTED = "authorization_requested"
HUMAN_INPUT_REQUESTED = "human_input_requested"

ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string"},
        "action": {"type": "string"},
        "data": {},
        "timestamp": {"type": "string", "format": "date-time"},
        "billing": {"type": "object"},
        "untrusted": {"type": "boolean"},
        "guardrail": {"type": "object"},  # what the output screen did to untrusted data (isa/mcp/screen.py)
        "error": {"type": "string"},
    },
    "required": ["status", "action", "data", "timestamp"],
}
_MAX_AUDIT_STRING = 1000
# Argument names whose values never reach the audit log (the settings loader's rule, plus auth words).
_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_?key|private|credential|authorization|cookie|key$)", re.I)


class ToolFailure(Exception):
    """Ends a tool call with an error result; `outcome` is what the audit log records."""

    def __init__(
        self,
        outcome: str,
        code: str,
        message: str,
        *,
        retry_after: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.details = details or {}


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def envelope(
    status: str,
    action: str,
    data: Any,
    *,
    billing: dict[str, Any] | None = None,
    untrusted: bool = False,
    error: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "action": action, "data": data, "timestamp": now_iso()}
    if billing is not None:
        body["billing"] = billing
    if untrusted:
        body["untrusted"] = True
    if error is not None:
        body["error"] = error
    return body


def to_result(body: dict[str, Any], *, is_error: bool = False, untrusted: bool = False) -> CallToolResult:
    """Structured content plus the same JSON as text, for clients that only read text content.

    The text is written by pydantic's serialiser, the one that writes the structured content onto the wire: half
    the cost of json.dumps on every tools/call, and dates, decimals and ids come out alike in both (ISO 8601,
    strings); anything else it can't write is written as its str(), as before.
    """
    text = to_json(body, fallback=str).decode()
    meta = {"isa/untrusted": True} if untrusted else None
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=body,
        is_error=is_error,
        _meta=meta,
    )


def failure_result(action: str, failure: ToolFailure) -> CallToolResult:
    data: dict[str, Any] = {"code": failure.code, **failure.details}
    if failure.retry_after is not None:
        data["retry_after"] = failure.retry_after
    return to_result(envelope("error", action, data, error=failure.message), is_error=True)


def canonical(arguments: dict[str, Any]) -> str:
    return json.dumps(jsonable(arguments), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def arguments_hash(arguments: dict[str, Any]) -> str:
    """What an approval is bound to: the exact arguments, independent of key order."""
    return hashlib.sha256(canonical(arguments).encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    """Whether an argument of this name is a secret (remembered: tools are called with the same few names)."""
    return _SECRET_KEY.search(key) is not None


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {str(k): _mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v, key) for v in value[:100]]
    if value is None or isinstance(value, bool | int | float):
        return value
    if key and value != "" and _secret_key(key):
        return "***"
    text = redact_text(value if isinstance(value, str) else str(value))
    return text if len(text) <= _MAX_AUDIT_STRING else text[:_MAX_AUDIT_STRING] + f"...({len(text)} chars)"


def mask_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments fit for the audit log: secret-looking keys masked, tokens in text masked, long text cut."""
    masked = _mask(arguments)
    return masked if isinstance(masked, dict) else {}
