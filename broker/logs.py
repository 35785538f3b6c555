"""Structured JSON logs (structlog) with the request id, and a last line of defence for secrets.

The broker never passes a secret to a logger; ``redact`` still masks any event key whose
name says it holds one (password, token, assertion, SAMLResponse, secret, signin, session
key, authorization, cookie), and any value that looks like a bearer header or a SAML response.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_SECRET_KEY = re.compile(
    r"pass(word)?|token|assertion|samlresponse|secret|signin|sessionkey|session_key|authorization|cookie|private|credential",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(r"(?i)\bbearer\s+\S+|PHNhbWxwOlJlc3BvbnNl\S*|<samlp?:Response.*", re.DOTALL)
MASK = "***"


def redact(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if key in ("event", "level", "timestamp", "logger", "request_id"):
            continue
        if _SECRET_KEY.search(key) and value not in (None, "", False):
            event[key] = MASK
        elif isinstance(value, str) and _SECRET_VALUE.search(value):
            event[key] = _SECRET_VALUE.sub(MASK, value)
    return event


def configure(level: str = "info", fmt: str = "json") -> None:
    """Process-wide: structlog and the stdlib loggers (uvicorn, alembic) both go to stdout."""
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
        redact,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Rendering lives in the handler's formatter, so a cached logger follows a later configure().
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every URL it requests at INFO: URLs can carry tokens, so only warnings.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Our own access log replaces uvicorn's, which would print query strings.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # At debug level these libraries log whole requests and responses (STS answers carry
    # SecretAccessKey and SessionToken; the federation POST carries the Session JSON): never below warning.
    for name in ("botocore", "boto3", "urllib3", "httpx", "httpcore", "werkzeug", "moto"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str = "broker") -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)  # typed as the wrapper_class configure() sets
