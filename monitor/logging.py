"""Structured logging: the only structlog.configure(); JSON unless on a TTY; secrets redacted."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import re
import sys
import uuid
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

import orjson
import structlog
from structlog.types import EventDict, Processor, WrappedLogger

__all__ = ["REDACTED", "Redactor", "configure_logging", "correlated", "get_logger"]

REDACTED = "[REDACTED]"

# Shorter values are too likely to match ordinary words or numbers in log lines.
MIN_SECRET_LENGTH = 4

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_FORMATS = frozenset({"auto", "json", "console"})

# Key names whose values are secret whatever they contain; matched on the lower-cased key with
# "-", "." and spaces folded to "_", as a whole word at the end ("page_access_token", "X-Api-Key").
_SECRET_KEY = re.compile(
    r"(?:^|_)(?:access_token|token|api_?key|app_?secret|client_secret|secret|password|passwd|pwd"
    r"|authorization|auth|cookie|credentials?|private_key|appsecret_proof)$"
)
_KEY_FOLD = re.compile(r"[-. ]")

# `access_token=...` and friends in URLs and query strings, also percent-encoded (`%3D`).
_SECRET_PARAM = re.compile(
    r"(?i)(?<![A-Za-z0-9])((?:[A-Za-z0-9_.\-]*_)?(?:access_token|token|api_?key|app_?secret"
    r"|client_secret|secret|password|passwd|appsecret_proof)(?:=|%3D))[^&\s\"'<>#,;]+"
)
# JSON bodies quoted in log text: "access_token": "...".
_SECRET_JSON = re.compile(
    r"(?i)(\"(?:[A-Za-z0-9_.\-]*_)?(?:access_token|token|api_?key|app_?secret|client_secret"
    r"|secret|password|passwd)\"\s*:\s*\")(?:[^\"\\]|\\.)*(\")"
)
# Header lines: `Authorization: Bearer x`, `Authorization: Token KEY; userId=1` (Flarum),
# `Api-Key: x` (Discourse), `X-Hub-Signature...` is an HMAC, not a secret, so it stays.
_SECRET_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|api[-_]key|x-api-key|cookie|set-cookie)"
    r"(['\"]?\s*[:=]\s*['\"]?)(?:(bearer|oauth|token|basic|digest)\s+)?[^\s\"',;&]+"
)
# A bare credential scheme followed by something token-shaped (long enough not to eat prose).
_SECRET_SCHEME = re.compile(r"(?i)\b(bearer|oauth)\s+[A-Za-z0-9._~+/\-]{8,}=*")

# Values orjson renders natively and that cannot carry text worth redacting.
_PLAIN = (bool, int, float, type(None), dt.datetime, dt.date, dt.time, uuid.UUID, Enum)


def _fold_key(key: str) -> str:
    return _KEY_FOLD.sub("_", key.lower())


class Redactor:
    """A structlog processor that removes configured secret values and secret-looking fields."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret or len(secret) < MIN_SECRET_LENGTH:
                continue
            # The same token shows up percent-encoded when it is put in a URL by hand.
            variants.update({secret, quote(secret, safe=""), quote_plus(secret, safe="")})
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(variants, key=len, reverse=True)
        self._values = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact_text(self, text: str) -> str:
        """Return `text` with every secret value and credential-looking fragment replaced."""
        if self._values is not None:
            text = self._values.sub(REDACTED, text)
        if "=" in text or "%3D" in text or "%3d" in text:
            text = _SECRET_PARAM.sub(rf"\1{REDACTED}", text)
        if '"' in text:
            text = _SECRET_JSON.sub(rf"\1{REDACTED}\2", text)
        text = _SECRET_HEADER.sub(_header_replacement, text)
        return _SECRET_SCHEME.sub(rf"\1 {REDACTED}", text)

    def redact_value(self, value: Any) -> Any:
        """Redact strings anywhere inside `value` (dicts, lists, dataclasses, arbitrary objects)."""
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, Mapping):
            return {k: self._redact_item(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.redact_value(v) for v in value]
        if isinstance(value, bytes | bytearray):
            return self.redact_text(bytes(value).decode("utf-8", "replace"))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {
                f.name: self._redact_item(f.name, getattr(value, f.name))
                for f in dataclasses.fields(value)
            }
        # Anything else (URLs, exceptions, pydantic models...) would reach the output through
        # str()/repr() after this processor has run, so render it here where we can redact it.
        return self.redact_text(str(value))

    def _redact_item(self, key: object, value: Any) -> Any:
        # None and flags say whether a secret exists, not what it is; keep them readable.
        if (
            isinstance(key, str)
            and _SECRET_KEY.search(_fold_key(key))
            and not isinstance(value, bool | None)
        ):
            return REDACTED
        return self.redact_value(value)

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        """Redact the whole event dict (run after exceptions are formatted into text)."""
        return {k: self._redact_item(k, v) for k, v in event_dict.items()}


def _header_replacement(match: re.Match[str]) -> str:
    scheme = f"{match[3]} " if match[3] else ""
    return f"{match[1]}{match[2]}{scheme}{REDACTED}"


def _orjson_dumps(obj: Any, **kwargs: Any) -> str:
    # ProcessorFormatter needs str; OPT_NON_STR_KEYS because callers may log dicts keyed by ints.
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS, **kwargs).decode("utf-8")


class _OwnedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler installed by configure_logging, so a second call can find and replace it."""


class _StderrHandler(_OwnedHandler):
    """Writes to whatever sys.stderr is at emit time (test runners swap it between tests)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record to the current sys.stderr."""
        # Handler.handle() holds the handler lock around emit(), so this swap is safe.
        self.stream = sys.stderr
        super().emit(record)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


# syslog priorities by level, as sd-daemon(3) prefixes them.
_PRIORITIES = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2, "exception": 3}


def _journal_stream(stream: TextIO) -> bool:
    """Whether `stream` is connected to journald ($JOURNAL_STREAM names its device:inode)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


class _JournalPriority:
    """Wraps a renderer: each line starts with its syslog priority, "<4>{...}"."""

    def __init__(self, renderer: Processor) -> None:
        self._renderer = renderer

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> str:
        priority = _PRIORITIES.get(str(event.get("level", "info")), 6)
        line = self._renderer(logger, name, event)
        text = line.decode() if isinstance(line, bytes) else str(line)
        return f"<{priority}>{text}"


def _quiet_loggers(level: int) -> dict[str, int]:
    """Per-library levels: access lines are noise unless debugging; SQL echo stays opt-in."""
    return {
        "aiohttp.access": logging.INFO if level <= logging.DEBUG else logging.WARNING,
        "sqlalchemy": logging.WARNING,
        # aiosqlite logs every statement it hands to its thread at DEBUG.
        "aiosqlite": logging.WARNING,
        "asyncio": logging.INFO if level <= logging.DEBUG else logging.WARNING,
    }


def configure_logging(
    *,
    level: str = "info",
    fmt: str = "auto",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and stdlib logging once for the process; safe to call again."""
    numeric_level = _LEVELS.get(level.lower())
    if numeric_level is None:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    if fmt not in _FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use one of {', '.join(sorted(_FORMATS))}")

    target = stream if stream is not None else sys.stderr
    console = fmt == "console" or (fmt == "auto" and _is_tty(target))
    redactor = Redactor(secrets)

    renderer: Processor
    if console:
        renderer = structlog.dev.ConsoleRenderer(
            colors=_is_tty(target), exception_formatter=structlog.dev.plain_traceback
        )
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if stream is None and _journal_stream(sys.stderr):
            # journald reads a "<N>" prefix as the line's priority: `journalctl -p warning`.
            renderer = _JournalPriority(renderer)

    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    # Stdlib records (aiohttp, alembic, sqlalchemy...) get the same fields as our own events.
    foreign_pre_chain: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=foreign_pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Foreign records still carry exc_info here; turn it into text, then redact it.
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
    )

    handler = _OwnedHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OwnedHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)
    for name, lib_level in _quiet_loggers(numeric_level).items():
        logging.getLogger(name).setLevel(lib_level)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.PositionalArgumentsFormatter(),
            timestamper,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            # Redact before the event leaves structlog, so no other stdlib handler
            # (a test runner's capture, a library's own) ever sees the raw values.
            redactor,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a logger first used before (re)configuration must pick up the new setup.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named `name` (use __name__), routed through configure_logging's setup."""
    return structlog.stdlib.get_logger(name)


def correlated(**ids: str) -> contextlib.AbstractContextManager[Any]:
    """Every log line inside the block (this task and those it starts) carries `ids`, e.g. the
    poll_id that ties one poll's lines together."""
    return structlog.contextvars.bound_contextvars(**ids)
