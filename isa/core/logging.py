"""structlog set-up: JSON lines in production, a readable console in development, secrets never logged."""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, MutableMapping
from typing import Any, cast

import structlog

_SECRET_FIELD = re.compile(r"(authorization|password|passwd|secret|token|api_key|apikey|cookie|signature)", re.I)
_SECRET_TEXT = [
    # Bearer tokens and JWTs anywhere in a message.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "***jwt***"),
    # Presigned URL signatures and credentials.
    (
        re.compile(r"(?i)(X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|sig)=[^&\s\"']+"),
        r"\1=***",
    ),
    # API keys issued by isa.
    (re.compile(r"\bisa_[A-Za-z0-9_-]{20,}"), "isa_***"),
    # key=value pairs whose key names a secret.
    (re.compile(r"(?i)\b(password|passwd|secret|token|api_key|apikey)=[^&\s\"',;]+"), r"\1=***"),
    # Passwords in connection URLs.
    (re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@"), r"\1***@"),
]


def redact_text(text: str) -> str:
    """Mask tokens, signatures and passwords inside free text."""
    # Every pattern needs "=", "@", "eyJ", "isa_" or "bearer" (any case) in the text: most log values (timestamps,
    # paths, ids) have none, and pass at C speed without a regex.
    marked = "=" in text or "@" in text or "eyJ" in text or "isa_" in text
    if not marked and "bearer" not in text.lower():
        return text
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=4096)
def _secret_key(key: str) -> bool:
    """Whether a field of this name holds a secret (remembered: the same few names come in every line)."""
    return _SECRET_FIELD.search(key) is not None


def _redact(value: Any, key: str = "") -> Any:
    if key and _secret_key(key) and value not in (None, "", False):
        return "***"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, key) for v in value]
    return value


_PLAIN = (int, float, bool, type(None))  # exact types (an int subclass such as an enum may render otherwise)


def redact_processor(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: no secret reaches a log line, whatever the caller passed."""
    for key, value in event_dict.items():
        # Text, numbers, booleans and None under a name that is not a secret's take the short way (an access line
        # is only those); containers and other types go through _redact.
        kind = type(value)
        if kind is str or kind in _PLAIN:
            if key != "event" and _secret_key(key):
                event_dict[key] = _redact(value, key)
            elif kind is str:
                event_dict[key] = redact_text(value)
            continue
        event_dict[key] = _redact(value, "" if key == "event" else key)
    return event_dict


class _Formatter(structlog.stdlib.ProcessorFormatter):
    """ProcessorFormatter, with a short way for structlog's own lines (every line isa writes).

    The base class copies each record (`makeLogRecord`) and formats it again through `logging.Formatter`; for a
    record from structlog whose processors are [remove_processors_meta, renderer] that yields exactly the
    renderer's output, so the short way renders a copy of the event dict directly. Records of other libraries
    (uvicorn, psycopg) take the base class's way, through `foreign_pre_chain`.
    """

    def __init__(self, renderer: Any, **kwargs: Any) -> None:
        super().__init__(processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer], **kwargs)
        self.renderer = renderer

    def format(self, record: logging.LogRecord) -> str:
        name = getattr(record, "_name", None)
        if name is None or not isinstance(record.msg, dict):
            return super().format(record)
        logger = self.logger if self.logger is not None else getattr(record, "_logger", None)
        return str(self.renderer(logger, name, dict(record.msg)))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at emit time (test capture, redirected streams)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


# The levels of structlog's method names that `logging.Logger` maps as plainly (its `warn` also warns: not here).
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_LEVELS |= {"exception": logging.ERROR, "critical": logging.CRITICAL}


@functools.cache
def _stock(cls: type) -> bool:
    """Whether loggers of this class hand records to handlers as `logging.Logger` does (structlog's own subclass
    changes `findCaller` only)."""
    methods = ("isEnabledFor", "_log", "makeRecord", "handle", "filter", "callHandlers", *_LEVELS)
    return issubclass(cls, logging.Logger) and all(getattr(cls, m) is getattr(logging.Logger, m) for m in methods)


class _Emit:
    """structlog's last processor: writes isa's own line itself when the standard library would give it to isa's
    handler alone.

    The standard library's way (`Logger._log`, a `LogRecord`, `Logger.handle`, the handler's `handle` and `emit`,
    the formatter's short way) writes exactly `renderer(event_dict)` and a newline to the handler's stream, under
    the handler's lock; the record costs more than rendering the line. So when that record would reach isa's
    handler and no other — the logger enabled for the level (`ISA_LOGGING__LEVEL`, a logger's own level,
    `logging.disable`), not disabled, without filters, and isa's handler (without filters, its level passed) the
    only handler on the way up: no pytest `caplog`, no handler another library added — the line is rendered and
    written here, and the event stops. Otherwise it goes on as a record, as before. Every processor before this one
    (redaction included) has run in both cases.
    """

    def __init__(self, renderer: Any, handler: _StderrHandler) -> None:
        self.renderer = renderer
        self.handler = handler

    def _alone(self, logger: Any, levelno: int) -> bool:
        """Whether `logging` would hand a record of this level from this logger to our handler and to no other."""
        if not _stock(logger.__class__) or logger.disabled or logger.filters or not logger.isEnabledFor(levelno):
            return False
        found = False
        node: logging.Logger | None = logger
        while node is not None:  # as Logger.callHandlers walks
            for handler in node.handlers:
                if handler is not self.handler or found or handler.filters or levelno < handler.level:
                    return False
                found = True
            node = node.parent if node.propagate else None
        return found

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Any:
        levelno = _LEVELS.get(method_name)
        if levelno is None or not self._alone(logger, levelno):
            return structlog.stdlib.ProcessorFormatter.wrap_for_formatter(logger, method_name, event_dict)
        handler = self.handler
        lock = cast(threading.RLock, handler.lock)
        try:  # StreamHandler.emit and flush, with the formatter's short way
            line = str(self.renderer(logger, method_name, event_dict))
            with lock:
                stream = handler.stream
                stream.write(line + handler.terminator)
                if stream and hasattr(stream, "flush"):
                    stream.flush()
        except RecursionError:
            raise
        except Exception:  # as StreamHandler.emit: reported on stderr (logging.raiseExceptions), the caller goes on
            handler.handleError(logger.makeRecord(logger.name, levelno, "", 0, event_dict, (), None))
        raise structlog.DropEvent


@functools.cache
def _encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    return json.JSONEncoder(default=default).encode


def _json_dumps(obj: Any, *, default: Callable[[Any], Any]) -> str:
    """`json.dumps(obj, default=default)` with one encoder kept per `default` (dumps builds one per call)."""
    return _encoder(default)(obj)


def configure_logging(fmt: str = "console", level: str = "INFO") -> None:
    """Route structlog and the standard library (uvicorn, psycopg) through one pipeline."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(_json_dumps) if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = _StderrHandler()
    handler.setFormatter(_Formatter(renderer, foreign_pre_chain=shared))
    structlog.configure(
        processors=[*shared, _Emit(renderer, handler)],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # The formatter renders structlog's event dict only, never a record's caller, thread or process fields, so the
    # standard library need not find them for each line (its documented switches; the caller look-up walks frames).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # HTTP clients log every request at INFO, full URL included: noise on a CLI's terminal, and a URL can carry a
    # credential (an upstream's query-string token); the MCP client logs session ids. Warnings and errors still show.
    for name in ("httpx", "httpx2", "httpcore", "mcp.client"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
