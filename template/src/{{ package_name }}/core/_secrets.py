"""Secrets never leave the server: not in a result, an error, or any log record.

The server's secrets — the provider's API key, the HTTP bearer token, a password in
`MCP_SAMPLING_BASE_URL` — are registered with `keep_secret` when the server is built.
`redact` takes them out of any text. `redact_logs` makes every log record of every
logger, at every level, pass through `redact` as it is created (message, arguments and
traceback), so a library that logs what a provider sent back cannot leak them either;
it also shortens HTTP session ids, which are bearer credentials too.

    >>> keep_secret("sk-doctest-123")
    >>> redact("the key sk-doctest-123 was refused")
    'the key [redacted] was refused'
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"

_secrets: set[str] = set()
_SESSION_ID = re.compile(r"\b([0-9a-f]{6})[0-9a-f]{26}\b")
_SESSION_LOGGERS = ("mcp.server.streamable_http", "fastmcp.server.http")


def keep_secret(value: str | None) -> None:
    """Never let `value` out (values too short to be secrets are ignored)."""
    if value and len(value) >= 6:
        _secrets.add(value)


def redact(text: str) -> str:
    """`text` without any registered secret, longest first."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def redact_any(value: Any) -> Any:
    """`value` (text, or lists and dicts of it) without any registered secret."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_any(item) for item in value]
    if isinstance(value, dict):
        return {key: redact_any(item) for key, item in value.items()}
    return value


def _for_sessions(logger: str) -> Any:
    """What a record's text goes through: redaction, and session ids shortened."""
    if logger.startswith(_SESSION_LOGGERS):
        return lambda text: _SESSION_ID.sub(r"\1…", redact(text))
    return redact


def _clean_argument(argument: Any, clean: Any) -> Any:
    if isinstance(argument, str):
        return clean(argument)
    if isinstance(argument, int | float | bool) or argument is None:
        return argument
    text = str(argument)
    cleaned = clean(text)
    return argument if cleaned == text else cleaned


def redact_logs() -> None:
    """Make every log record redacted as it is created (once per process)."""
    create = logging.getLogRecordFactory()
    if getattr(create, "redacts", False):
        return

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = create(*args, **kwargs)
        clean = _for_sessions(record.name)
        if isinstance(record.msg, str):
            record.msg = clean(record.msg)
        # Argument by argument: formatters (uvicorn's) unpack them.
        if isinstance(record.args, tuple):
            record.args = tuple(_clean_argument(arg, clean) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _clean_argument(v, clean) for k, v in record.args.items()}
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info)
            )
        return record

    redacted_record.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacted_record)
